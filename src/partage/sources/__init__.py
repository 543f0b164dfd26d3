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
from dataclasses import dataclass
from typing import Literal

from ..catalog import Auth, CatalogEntry
from ..rawstore import RawStore
from ..warehouse import SourceRecord

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


@dataclass(frozen=True)
class Acquired:
    resource: SourceResource
    state: AcquiredState
    reason: str
    layer: str | None = None  # which check decided: etag, last-modified, size+mtime, sha256
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


def expand(entry: CatalogEntry) -> tuple[list[SourceResource], list[Acquired]]:
    """Turn catalog sources into resources; what cannot be expanded comes back already failed."""
    from . import file as file_kind
    from . import url as url_kind

    resources: list[SourceResource] = []
    failures: list[Acquired] = []
    ds = entry.dataset
    for src in ds.sources:
        max_bytes = src.max_bytes or ds.max_bytes
        if src.kind == "url":
            resources.append(url_kind.resource(ds.id, src, max_bytes))
        elif src.kind == "file":
            found, failure = file_kind.resources(entry, src, max_bytes)
            resources += found
            if failure:
                failures.append(failure)
        else:
            res = SourceResource(ds.id, source_key(src.kind, src.location), src.kind, src.location, f"{src.kind}: {src.location}")
            failures.append(Acquired(res, "failed", f"source kind '{src.kind}' is not supported by this version of Partage yet; "
                                                     "use a 'url:' to the file meanwhile"))
    return resources, failures


def acquire(resource: SourceResource, record: SourceRecord | None, raw: RawStore) -> Acquired:
    from . import file as file_kind
    from . import url as url_kind

    try:
        if resource.kind == "url":
            return url_kind.acquire(resource, record, raw)
        if resource.kind == "file":
            return file_kind.acquire(resource, record, raw)
        return Acquired(resource, "failed", f"source kind '{resource.kind}' cannot be acquired")
    except Exception as e:  # the contract: a source never raises
        return Acquired(resource, "failed", f"{resource.label}: unexpected error {type(e).__name__}: {e}")
