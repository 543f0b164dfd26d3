"""What the portal kinds (ckan, udata, ods, dcat) share: reading API pages safely, paging
without looping, and giving each listed resource a stable identity.

A portal lists resources; each becomes a :class:`SourceResource` acquired like a
``url:`` source. The identity of a resource is its remote id when the portal has
one, else its canonical URL (volatile query parameters removed). When the
remote id or the URL of a known resource changes but the other does not, the
resource keeps its key: it is mapped, not duplicated.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..catalog import Auth, Source
from ..credentials import resolve
from ..errors import PortalError
from ..fetch import SECRET_QUERY_KEYS, Document, get_document, redact
from ..store.warehouse import SourceRecord
from . import SourceResource

VOLATILE_QUERY_KEYS = {"_", "cb", "cachebuster", "cache", "nocache", "ts", "timestamp", "rand", "random",
                       "fbclid", "gclid", "mc_cid", "mc_eid"} | SECRET_QUERY_KEYS


@dataclass(frozen=True)
class Listed:
    """A resource as a portal lists it, before it gets its key."""

    url: str
    remote_id: str | None = None
    format: str | None = None  # as the portal declares it: CSV, text/csv, http://…/CSV
    modified: str | None = None  # the portal's own modification date of the resource (or its dataset)
    size: int | None = None  # bytes, as the portal declares them


def canonical_url(url: str) -> str:
    """The URL that identifies a resource: lower-case scheme and host, no default port, no
    fragment, no volatile or secret query parameters, the others sorted."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    netloc = host if port is None or (scheme, port) in (("http", 80), ("https", 443)) else f"{host}:{port}"
    query = sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                   if k.lower() not in VOLATILE_QUERY_KEYS and not k.lower().startswith("utm_"))
    return urlunsplit((scheme, netloc, parts.path or "/", urlencode(query), ""))


def portal_key(src: Source) -> str:
    """The key of a portal source itself (its failures are recorded under it)."""
    from . import source_key

    filters = json.dumps({k: getattr(src, k) for k in ("organization", "tags", "q", "dataset", "schema_", "formats")},
                         sort_keys=True, default=str)
    return source_key(src.kind, f"{src.location}#{filters}")


def resource_key(kind: str, url: str, identity: str) -> str:
    tail = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1] or kind
    slug = re.sub(r"[^a-z0-9]+", "-", tail.lower()).strip("-")[:40] or kind
    return f"{slug}-{hashlib.sha1(f'{kind}:{identity}'.encode()).hexdigest()[:8]}"


def format_matches(listed: Listed, formats: Iterable[str]) -> bool:
    """Whether a resource is in one of ``formats`` (CSV, parquet…), by declared format, media type
    or file extension, case-insensitively. No ``formats`` means every resource."""
    wanted = {f.lower().lstrip(".") for f in formats}
    if not wanted:
        return True
    declared = (listed.format or "").lower().strip()
    names = {declared, declared.rsplit("/", 1)[-1], declared.rsplit("+", 1)[-1]}
    if "csv" in wanted:
        names |= {"csv"} if declared in ("text/csv", "application/csv") else set()
    ext = urlsplit(listed.url).path.rsplit(".", 1)[-1].lower() if "." in urlsplit(listed.url).path else ""
    return bool(wanted & names) or (not declared and ext in wanted)


def auth_headers(auth: Auth | None, *, raw_token: bool = False) -> dict[str, str]:
    """Request headers for a portal's API. ``raw_token``: CKAN takes its API token bare."""
    if auth is None:
        return {}
    import base64

    headers: dict[str, str] = {}
    if auth.bearer:
        token = resolve(auth.bearer)
        headers["Authorization"] = token if raw_token else f"Bearer {token}"
    if auth.basic:
        pair = f"{auth.basic.username}:{resolve(auth.basic.password)}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    for name, ref in auth.headers.items():
        headers[name] = resolve(ref)
    return headers


def get_json(url: str, *, params: dict[str, str] | None = None, headers: dict[str, str] | None = None,
             what: str = "the portal") -> tuple[Any, Document]:
    """An API page as JSON; HTML or anything else is a clear error naming the URL."""
    doc = get_document(url, params=params, headers=headers, secret_headers=frozenset(headers or {}))
    head = doc.body[:512].lstrip().lower()
    if "html" in doc.content_type.lower() or head.startswith((b"<!doctype", b"<html")):
        raise PortalError(f"{redact(doc.url)} answered an HTML page instead of JSON: is {what}'s address right "
                          "(the portal's root, not a page of its site), and is the API enabled?")
    try:
        return json.loads(doc.body), doc
    except ValueError as e:
        raise PortalError(f"{redact(doc.url)} did not answer JSON ({e}); check the address of {what}") from None


class PageGuard:
    """Stops a listing that would never end: a page seen before, a page that brings only items
    already seen, or more pages than PARTAGE_MAX_PAGES (default 1000)."""

    def __init__(self, start_url: str):
        self.start_url = start_url
        self.pages = 0
        self.limit = int(os.environ.get("PARTAGE_MAX_PAGES", 1000))
        self._digests: set[str] = set()
        self._items: set[str] = set()

    def page(self, url: str, body: bytes, item_ids: list[str]) -> None:
        self.pages += 1
        where = redact(url)
        if self.pages > self.limit:
            raise PortalError(f"{redact(self.start_url)}: more than {self.limit} pages (last {where}); the portal keeps "
                              "paging: narrow the source, or raise PARTAGE_MAX_PAGES if the catalog is that big")
        digest = hashlib.sha256(body).hexdigest()
        if digest in self._digests:
            raise PortalError(f"{where}: the portal answered the same page again (page {self.pages}); it loops, so "
                              "the listing was stopped. Report it to the portal; the other sources go on")
        self._digests.add(digest)
        if item_ids and all(i in self._items for i in item_ids):
            raise PortalError(f"{where}: page {self.pages} only repeats items already listed; the portal's paging "
                              "loops, so the listing was stopped")
        self._items.update(item_ids)


def to_resources(dataset_id: str, src: Source, listed: list[Listed], records: dict[str, SourceRecord],
                 max_bytes: int | None) -> list[SourceResource]:
    """Keys for what a portal listed, mapped onto the resources this source harvested before."""
    origin = portal_key(src)
    mine = [r for r in records.values() if r.origin == origin and r.source_key != origin]
    by_remote = {r.remote_id: r.source_key for r in mine if r.remote_id}
    by_url = {r.location: r.source_key for r in mine if r.location}
    portal_host = urlsplit(src.location).netloc.lower()
    out: dict[str, SourceResource] = {}
    for item in listed:
        if urlsplit(item.url).scheme.lower() not in ("http", "https"):
            continue  # ftp:, mailto:, relative junk: nothing a harvest can fetch
        canon = canonical_url(item.url)
        identity = f"{src.location}#{item.remote_id}" if item.remote_id else canon
        key = (by_remote.get(item.remote_id or "") or by_url.get(canon) or resource_key(src.kind, item.url, identity))
        if key in out:
            continue  # the same file listed twice (two datasets sharing it): harvested once
        same_host = urlsplit(item.url).netloc.lower() == portal_host
        out[key] = SourceResource(
            dataset_id, key, src.kind, item.url, redact(item.url),
            src.auth if same_host else None,  # the portal's credentials never go to another host
            max_bytes, origin=origin, remote_id=item.remote_id, remote_modified=item.modified,
            remote_size=item.size, canonical=canon,
        )
    return list(out.values())
