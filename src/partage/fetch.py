"""HTTP downloads the way a scheduled harvest needs them.

* Conditional GET (If-None-Match / If-Modified-Since) with the validators the
  warehouse kept from the last run: an unchanged source costs one request and
  no body.
* Streaming into the content-addressed raw store with a running sha256 and a
  size cap, so memory does not grow with the file.
* Retries with exponential backoff and jitter, on transient failures only
  (timeouts, connection errors, 408/425/429/5xx); a 404 is final at once.
* Redirects followed by hand: only http(s), at most 10, credentials dropped
  when the host changes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from . import USER_AGENT
from .errors import TerminalFetchError, TransientFetchError
from .rawstore import RawStore

log = logging.getLogger("partage.fetch")

TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
SECRET_QUERY_KEYS = {"token", "access_token", "apikey", "api_key", "key", "signature", "sig", "password", "secret"}
DEFAULT_MAX_BYTES = 2 * 1024**3
MAX_REDIRECTS = 10


_SLOTS: dict[str, threading.BoundedSemaphore] = {}
_SLOTS_LOCK = threading.Lock()


def host_limit() -> int:
    return max(1, int(os.environ.get("PARTAGE_HOST_CONCURRENCY", 4)))


@contextlib.contextmanager
def host_slot(url: str) -> Iterator[None]:
    """Hold one of the N request slots of ``url``'s host (PARTAGE_HOST_CONCURRENCY, default 4).

    Sources are acquired by many threads at once; a portal expanding into a
    hundred resources must not get a hundred parallel requests from us.
    """
    host = (urlsplit(url).netloc or "").lower()
    with _SLOTS_LOCK:
        slot = _SLOTS.get(host)
        if slot is None:
            slot = _SLOTS[host] = threading.BoundedSemaphore(host_limit())
    with slot:
        yield


def redact(url: str) -> str:
    """A URL fit for logs and reports: no userinfo, no secret-looking query values."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    query = urlencode(
        [(k, "***" if k.lower() in SECRET_QUERY_KEYS else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


@dataclass(frozen=True)
class Validators:
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class FetchOutcome:
    status: Literal["not-modified", "downloaded"]
    url: str  # redacted
    http_status: int
    attempts: int
    body_bytes: int  # bytes of body actually transferred
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    backoff: float = 1.0  # seconds, doubled each try, with jitter
    max_wait: float = 30.0

    @classmethod
    def from_env(cls) -> RetryPolicy:
        return cls(
            attempts=int(os.environ.get("PARTAGE_RETRY_ATTEMPTS", cls.attempts)),
            backoff=float(os.environ.get("PARTAGE_RETRY_BACKOFF", cls.backoff)),
        )

    def wait(self, attempt: int, retry_after: str | None) -> float:
        if retry_after and retry_after.strip().isdigit():
            return min(float(retry_after), self.max_wait)
        return min(self.backoff * (2 ** (attempt - 1)) * (0.5 + random.random()), self.max_wait)


def _timeout() -> httpx.Timeout:
    return httpx.Timeout(
        connect=float(os.environ.get("PARTAGE_CONNECT_TIMEOUT", 15)),
        read=float(os.environ.get("PARTAGE_READ_TIMEOUT", 120)),
        write=30.0,
        pool=30.0,
    )


def _request_once(
    client: httpx.Client,
    url: str,
    headers: dict[str, str],
    raw: RawStore,
    max_bytes: int,
    secret_headers: frozenset[str],
) -> FetchOutcome:
    current = url
    hdrs = dict(headers)
    origin = urlsplit(url).netloc
    for _ in range(MAX_REDIRECTS + 1):
        with client.stream("GET", current, headers=hdrs) as r:
            if r.has_redirect_location:
                location = r.headers.get("location", "")
                nxt = str(r.url.join(location))
                scheme = urlsplit(nxt).scheme.lower()
                if scheme not in ("http", "https"):
                    raise TerminalFetchError(
                        f"{redact(url)} redirects to a {scheme or 'relative'}: URL ({redact(nxt)}); only http(s) redirects are followed",
                        url=redact(url), status=r.status_code,
                    )
                if urlsplit(nxt).netloc != origin:  # never hand credentials to another host
                    drop = {"authorization", "cookie"} | {n.lower() for n in secret_headers}
                    hdrs = {k: v for k, v in hdrs.items() if k.lower() not in drop}
                current = nxt
                continue
            if r.status_code == 304:
                return FetchOutcome("not-modified", redact(current), 304, 1, 0,
                                    r.headers.get("etag"), r.headers.get("last-modified"), r.headers.get("content-type"))
            if r.status_code in TRANSIENT_STATUS:
                raise TransientFetchError(
                    f"{redact(url)} answered HTTP {r.status_code} ({r.reason_phrase})",
                    url=redact(url), status=r.status_code, retry_after=r.headers.get("retry-after"),
                )
            if r.status_code >= 400:
                hint = _credential_hint(r.status_code, hdrs, secret_headers, moved=current != url) or {
                    401: "the server wants credentials: add 'auth:' to the source",
                    403: "access refused: check the credentials or ask the producer",
                    404: "the file is not there any more: check the URL with the producer",
                    410: "the file was removed: update the catalog entry",
                }.get(r.status_code, "check the URL")
                raise TerminalFetchError(
                    f"{redact(url)} answered HTTP {r.status_code} ({r.reason_phrase}); {hint}",
                    url=redact(url), status=r.status_code,
                )
            declared = r.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise TerminalFetchError(
                    f"{redact(url)} announces {int(declared):,} bytes, over the limit of {max_bytes:,}; "
                    "raise max_bytes in the catalog entry if this size is expected",
                    url=redact(url), status=r.status_code,
                )
            limit = float(os.environ.get("PARTAGE_SOURCE_TIMEOUT", 3600))
            deadline = time.monotonic() + limit
            with raw.writer(redact(url), max_bytes) as sink:
                # No chunk size: each network read is handed over as it arrives, so the deadline is
                # looked at after every read (with a 64 KiB chunk, a server sending less never tripped it).
                for chunk in r.iter_raw() if _identity(r) else r.iter_bytes():
                    sink.write(chunk)
                    if time.monotonic() > deadline:  # a server trickling bytes never trips the read timeout
                        raise TransientFetchError(
                            f"{redact(url)}: download took longer than {limit:.0f}s (PARTAGE_SOURCE_TIMEOUT); "
                            "stopped, will try again next run", url=redact(url))
            return FetchOutcome(
                "downloaded", redact(current), r.status_code, 1, r.num_bytes_downloaded,
                r.headers.get("etag"), r.headers.get("last-modified"), r.headers.get("content-type"), sink.sha256,
            )
    raise TerminalFetchError(f"{redact(url)}: more than {MAX_REDIRECTS} redirects", url=redact(url))


def _credential_hint(status: int, sent: dict[str, str], secret_headers: frozenset[str], *, moved: bool) -> str | None:
    """The advice for a 401/403 that knows whether credentials went with the request: telling a
    source that already has ``auth:`` to "add 'auth:'" names a fix that does not apply."""
    if status not in (401, 403):
        return None
    names = {"authorization", "cookie"} | {n.lower() for n in secret_headers}
    if any(k.lower() in names for k in sent):
        return ("the server refused the credential of the source's 'auth:': check that its value (the "
                "environment variable or Prefect Secret it names) is current and grants access to this file")
    if secret_headers and moved:
        return ("the request was redirected to another host, which gets no credentials (they are only "
                "sent to the host of the catalog's URL): use the final URL in the catalog")
    return None


def _identity(r: httpx.Response) -> bool:
    return r.headers.get("content-encoding", "identity").lower() in ("identity", "")


def fetch(
    url: str,
    raw: RawStore,
    *,
    previous: Validators | None = None,
    headers: dict[str, str] | None = None,
    secret_headers: frozenset[str] = frozenset(),
    max_bytes: int | None = None,
    retry: RetryPolicy | None = None,
) -> FetchOutcome:
    """Download ``url`` into ``raw`` unless the server says it has not changed.

    Raises TransientFetchError when every attempt failed transiently, and
    TerminalFetchError at once for what a retry cannot fix.
    """
    retry = retry or RetryPolicy.from_env()
    max_bytes = max_bytes or DEFAULT_MAX_BYTES
    hdrs = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"}
    hdrs.update(headers or {})
    if previous and previous.etag:
        hdrs["If-None-Match"] = previous.etag
    if previous and previous.last_modified:
        hdrs["If-Modified-Since"] = previous.last_modified
    def once(client: httpx.Client, attempt: int) -> FetchOutcome:
        out = _request_once(client, url, hdrs, raw, max_bytes, secret_headers)
        return FetchOutcome(**{**out.__dict__, "attempts": attempt})

    return _with_retries(url, retry, once)


T = TypeVar("T")


def _with_retries(url: str, retry: RetryPolicy, once: Callable[[httpx.Client, int], T]) -> T:
    """Run ``once(client, attempt)`` in the host's slot, retrying transient failures with jittered waits."""
    last: TransientFetchError | None = None
    with httpx.Client(timeout=_timeout(), follow_redirects=False) as client:
        for attempt in range(1, retry.attempts + 1):
            try:
                with host_slot(url):
                    return once(client, attempt)
            except TransientFetchError as e:
                last = e
            except httpx.TimeoutException as e:
                last = TransientFetchError(f"{redact(url)}: timed out ({type(e).__name__})", url=redact(url))
            except httpx.TransportError as e:
                last = TransientFetchError(f"{redact(url)}: connection failed ({type(e).__name__}: {e})", url=redact(url))
            except httpx.InvalidURL as e:
                raise TerminalFetchError(f"{redact(url)}: invalid URL ({e})", url=redact(url)) from None
            if attempt < retry.attempts:
                wait = retry.wait(attempt, last.retry_after)
                log.info("%s; retry %d/%d in %.1fs", last, attempt, retry.attempts - 1, wait)
                time.sleep(wait)
    assert last is not None
    raise TransientFetchError(f"{last} (gave up after {retry.attempts} attempts; will try again next run)",
                              url=last.url, status=last.status)


@dataclass(frozen=True)
class Document:
    """A small document read whole: a portal's API page or a catalog file."""

    url: str  # the URL finally answered (after redirects), not redacted: callers redact before showing
    body: bytes
    content_type: str
    attempts: int


DEFAULT_DOCUMENT_MAX_BYTES = 64 * 1024**2


def get_document(
    url: str,
    *,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    secret_headers: frozenset[str] = frozenset(),
    max_bytes: int | None = None,
    retry: RetryPolicy | None = None,
) -> Document:
    """GET a document into memory, with the same rules as :func:`fetch` (retries on transient
    errors only, http(s) redirects only, credentials dropped on another host, size cap, host slots)."""
    retry = retry or RetryPolicy.from_env()
    cap = max_bytes or int(os.environ.get("PARTAGE_DOCUMENT_MAX_BYTES", DEFAULT_DOCUMENT_MAX_BYTES))
    if params:
        parts = urlsplit(url)
        query = urlencode(parse_qsl(parts.query, keep_blank_values=True) + list(params.items()))
        url = urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
    base = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"}
    base.update(headers or {})
    return _with_retries(url, retry, lambda client, attempt: _get_once(client, url, base, cap, secret_headers, attempt))


def _get_once(client: httpx.Client, url: str, headers: dict[str, str], cap: int, secret_headers: frozenset[str],
              attempt: int) -> Document:
    current, hdrs, origin = url, dict(headers), urlsplit(url).netloc
    for _ in range(MAX_REDIRECTS + 1):
        with client.stream("GET", current, headers=hdrs) as r:
            if r.has_redirect_location:
                nxt = str(r.url.join(r.headers.get("location", "")))
                scheme = urlsplit(nxt).scheme.lower()
                if scheme not in ("http", "https"):
                    raise TerminalFetchError(
                        f"{redact(url)} redirects to a {scheme or 'relative'}: URL ({redact(nxt)}); only http(s) redirects are followed",
                        url=redact(url), status=r.status_code)
                if urlsplit(nxt).netloc != origin:
                    drop = {"authorization", "cookie"} | {n.lower() for n in secret_headers}
                    hdrs = {k: v for k, v in hdrs.items() if k.lower() not in drop}
                current = nxt
                continue
            if r.status_code in TRANSIENT_STATUS:
                raise TransientFetchError(f"{redact(url)} answered HTTP {r.status_code} ({r.reason_phrase})",
                                          url=redact(url), status=r.status_code, retry_after=r.headers.get("retry-after"))
            if r.status_code >= 400:
                hint = _credential_hint(r.status_code, hdrs, secret_headers, moved=current != url) or {
                        401: "the portal wants credentials: add 'auth:' to the source",
                        403: "access refused: check the credentials",
                        404: "not found: check the portal address and the dataset/organization name"}.get(r.status_code, "check the address")
                raise TerminalFetchError(f"{redact(url)} answered HTTP {r.status_code} ({r.reason_phrase}); {hint}",
                                         url=redact(url), status=r.status_code)
            body = bytearray()
            limit = float(os.environ.get("PARTAGE_LISTING_TIMEOUT", 600))
            deadline = time.monotonic() + limit
            for chunk in r.iter_bytes():  # each read as it arrives: the deadline is looked at after every one
                body += chunk
                if time.monotonic() > deadline:
                    raise TransientFetchError(
                        f"{redact(url)}: the answer took longer than {limit:.0f}s (PARTAGE_LISTING_TIMEOUT); "
                        "stopped, will try again next run", url=redact(url))
                if len(body) > cap:
                    raise TerminalFetchError(
                        f"{redact(url)}: answer larger than {cap:,} bytes (PARTAGE_DOCUMENT_MAX_BYTES); "
                        "narrow the source (organization, tags, dataset) or raise the limit", url=redact(url))
            return Document(str(r.url), bytes(body), r.headers.get("content-type", ""), attempt)
    raise TerminalFetchError(f"{redact(url)}: more than {MAX_REDIRECTS} redirects", url=redact(url))
