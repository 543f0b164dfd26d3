"""Source kinds: each expands a catalog source into resources, and acquires a resource's raw file.

Every resource gets a stable key within its dataset (a readable slug plus a
hash of its kind and location), under which its state and its share of each
version are kept. Acquiring never raises for a bad source: it returns an
:class:`Acquired` in state ``failed`` with a reason a person can act on, so
one bad source never stops the others.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from typing import Literal

from ..catalog import Auth, CatalogEntry, Dialect, Source
from ..errors import PortalError
from ..rawstore import RawStore
from ..store.warehouse import SourceRecord

AcquiredState = Literal["unchanged", "changed", "failed"]


@dataclass(frozen=True)
class SourceResource:
    dataset_id: str
    key: str
    kind: str
    location: str  # the URL, or the absolute path of a file
    label: str  # what people see: the URL without secrets, or the path as the catalog wrote it
    auth: Auth | None = None
    max_bytes: int | None = None
    # what portals tell about a resource (None for url/file sources)
    origin: str | None = None  # key of the portal source that listed it
    remote_id: str | None = None
    remote_modified: str | None = None  # the portal's own modification date: a change-detection layer
    remote_size: int | None = None
    canonical: str | None = None  # canonical URL, kept to map a resource whose remote id changes
    dialect: Dialect | None = None  # the source's own `dialect:` (over the dataset's), if it has one


@dataclass(frozen=True)
class Acquired:
    resource: SourceResource
    state: AcquiredState
    reason: str
    layer: str | None = None  # which check decided: etag, last-modified, portal-modified, size, size+mtime, sha256
    sha256: str | None = None
    bytes: int | None = None
    body_bytes: int = 0
    etag: str | None = None
    last_modified: str | None = None
    transient: bool = False  # a failure that may pass if tried later (timeouts, 5xx)


def source_key(kind: str, location: str) -> str:
    tail = re.split(r"[/\\]", location.split("?", 1)[0].rstrip("/"))[-1] or kind
    slug = re.sub(r"[^a-z0-9]+", "-", tail.lower()).strip("-")[:40] or kind
    digest = hashlib.sha1(f"{kind}:{location}".encode()).hexdigest()[:8]
    return f"{slug}-{digest}"


PORTAL_KINDS = ("ckan", "udata", "ods", "dcat")


def expand(entry: CatalogEntry, records: dict[str, SourceRecord] | None = None) -> tuple[list[SourceResource], list[Acquired]]:
    """Turn catalog sources into resources; what cannot be expanded comes back already failed.

    Portals are listed over the network here. ``records`` (the dataset's source records) map
    listed resources onto known keys; when a portal cannot be listed, every resource it listed
    before comes back ``failed`` with the portal's reason, so its data is kept, not taken for gone.
    """
    records = records or {}
    resources: list[SourceResource] = []
    failures: list[Acquired] = []
    for src in entry.dataset.sources:
        found, failed = _expand_one(entry, src, records)
        if src.dialect is not None:  # every resource the source gives is read with its own dialect
            found = [replace(r, dialect=src.dialect) for r in found]
        resources += found
        failures += failed
    return resources, failures


def _expand_one(entry: CatalogEntry, src: Source,
                records: dict[str, SourceRecord]) -> tuple[list[SourceResource], list[Acquired]]:
    from . import file as file_kind
    from . import url as url_kind

    ds = entry.dataset
    max_bytes = src.max_bytes or ds.max_bytes
    if src.kind == "url":
        return [url_kind.resource(ds.id, src, max_bytes)], []
    if src.kind == "file" and (src.file or "").startswith("s3://"):
        from . import s3

        found, failure = s3.resources(entry, src, max_bytes)
        return found, [failure] if failure else []
    if src.kind == "file":
        found, failure = file_kind.resources(entry, src, max_bytes)
        return found, [failure] if failure else []
    return expand_portal(ds.id, src, records, max_bytes)


def expand_portal(dataset_id: str, src: Source, records: dict[str, SourceRecord],
                  max_bytes: int | None) -> tuple[list[SourceResource], list[Acquired]]:
    from importlib import import_module

    from ..errors import PartageError, TransientError
    from ..fetch import redact
    from .portal import portal_key, to_resources

    origin = portal_key(src)
    label = f"{src.kind}: {redact(src.location)}"
    try:
        lister = import_module(f".{src.kind}", __name__)
        listed = lister.list_resources(src)
        found = to_resources(dataset_id, src, listed, records, max_bytes)
        if not found:
            raise PortalError(f"{label}: the portal lists no resource matching this source "
                              "(check organization / tags / q / dataset / schema / formats)")
        return found, []
    except PartageError as e:
        reason, transient = str(e), isinstance(e, TransientError)
    except Exception as e:  # a portal answering something unexpected must not stop the run
        reason, transient = f"{label}: unexpected answer ({type(e).__name__}: {e})", False
    me = SourceResource(dataset_id, origin, src.kind, src.location, label, origin=origin)
    kept = [SourceResource(dataset_id, r.source_key, r.kind or src.kind, r.location or "", r.label or r.source_key,
                           origin=origin)
            for r in records.values() if r.origin == origin and r.source_key != origin and r.state != "gone"]
    note = "; its data from the last harvest is kept"
    return [], [Acquired(me, "failed", reason, transient=transient)] + [
        Acquired(k, "failed", f"not checked: {reason}{note}", transient=transient) for k in kept]


def acquire(resource: SourceResource, record: SourceRecord | None, raw: RawStore) -> Acquired:
    from . import file as file_kind
    from . import url as url_kind

    try:
        if resource.kind == "url" or (resource.kind in PORTAL_KINDS and resource.origin != resource.key):
            return url_kind.acquire(resource, record, raw)
        if resource.kind == "file":
            return file_kind.acquire(resource, record, raw)
        if resource.kind == "s3":
            from . import s3

            return s3.acquire(resource, record, raw)
        return Acquired(resource, "failed", f"source kind '{resource.kind}' cannot be acquired")
    except Exception as e:  # the contract: a source never raises
        return Acquired(resource, "failed", f"{resource.label}: unexpected error {type(e).__name__}: {e}")
