"""``url:`` sources: one file over HTTP(S), with conditional GET."""

from __future__ import annotations

from ..catalog import Source
from ..credentials import resolve
from ..errors import CredentialError, FetchError, TransientFetchError
from ..fetch import Validators, fetch, redact
from ..rawstore import RawStore
from ..store.warehouse import SourceRecord
from . import Acquired, SourceResource, source_key


def resource(dataset_id: str, src: Source, max_bytes: int | None) -> SourceResource:
    assert src.url is not None
    from .portal import canonical_url

    return SourceResource(dataset_id, source_key("url", src.url), "url", src.url, redact(src.url), src.auth, max_bytes,
                          canonical=canonical_url(src.url))


def _auth_headers(res: SourceResource) -> tuple[dict[str, str], frozenset[str]]:
    if res.auth is None:
        return {}, frozenset()
    import base64

    headers: dict[str, str] = {}
    if res.auth.bearer:  # CKAN takes its API token bare, and refuses it behind "Bearer"
        token = resolve(res.auth.bearer)
        headers["Authorization"] = token if res.kind == "ckan" else f"Bearer {token}"
    if res.auth.basic:
        pair = f"{res.auth.basic.username}:{resolve(res.auth.basic.password)}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    for name, ref in res.auth.headers.items():
        headers[name] = resolve(ref)
    return headers, frozenset(headers)


def acquire(res: SourceResource, record: SourceRecord | None, raw: RawStore) -> Acquired:
    try:
        headers, secret = _auth_headers(res)
    except CredentialError as e:
        return Acquired(res, "failed", str(e))
    have_raw = record is not None and raw.has(record.sha256)
    if record is not None and record.location and res.canonical and record.location != res.canonical:
        have_raw = False  # the portal moved the file: validators and dates of the old URL say nothing of the new one
    previous = Validators(record.etag, record.last_modified) if have_raw and record else None
    if previous is not None and not (previous.etag or previous.last_modified):
        previous = None
    # Layer 2, for servers that give no validators: the portal's own modification date (and size).
    if (previous is None and have_raw and record is not None and res.remote_modified
            and record.remote_modified == res.remote_modified
            and (res.remote_size is None or record.bytes is None or res.remote_size == record.bytes)):
        return Acquired(res, "unchanged", f"the portal's modification date is still {res.remote_modified}; not downloaded",
                        "portal-modified", record.sha256, record.bytes, 0, record.etag, record.last_modified)
    size_changed = (record is not None and res.remote_size is not None and record.bytes is not None
                    and res.remote_size != record.bytes)
    try:
        out = fetch(res.location, raw, previous=previous, headers=headers, secret_headers=secret, max_bytes=res.max_bytes)
    except TransientFetchError as e:
        return Acquired(res, "failed", str(e), transient=True)
    except FetchError as e:
        return Acquired(res, "failed", str(e))
    tries = f" after {out.attempts} attempts" if out.attempts > 1 else ""
    if out.status == "not-modified":
        assert record is not None
        layer = "etag" if previous and previous.etag else "last-modified"
        why = f"not modified (ETag {previous.etag})" if layer == "etag" and previous else f"not modified since {record.last_modified}"
        return Acquired(res, "unchanged", f"{why}; nothing downloaded{tries}", layer, record.sha256, record.bytes, 0,
                        out.etag or record.etag, out.last_modified or record.last_modified)
    assert out.sha256 is not None  # set on every download
    size = raw.path_for(out.sha256).stat().st_size
    if record is not None and out.sha256 == record.sha256:
        return Acquired(res, "unchanged", f"downloaded{tries}, same content as last harvest (sha256 {out.sha256[:12]}…)",
                        "sha256", out.sha256, size, out.body_bytes, out.etag, out.last_modified)
    if size_changed and record is not None:
        return Acquired(res, "changed", f"the portal gives a new size ({record.bytes:,} -> {res.remote_size:,} bytes); "
                        f"downloaded {size:,} bytes{tries}", "size", out.sha256, size, out.body_bytes, out.etag, out.last_modified)
    return Acquired(res, "changed", f"downloaded {size:,} bytes{tries}", "sha256", out.sha256, size, out.body_bytes,
                    out.etag, out.last_modified)
