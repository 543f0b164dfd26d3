"""``file:`` sources: partner drops in a folder, as a path or a glob.

Relative patterns are read from the catalog directory. Only regular files are
taken (no directories, no hidden files, no device files); each matching file is
a resource of its own, so partners can drop one file per month.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from ..catalog import CatalogEntry, Source
from ..rawstore import RawStore
from ..store.warehouse import SourceRecord
from . import Acquired, SourceResource, source_key


def resources(entry: CatalogEntry, src: Source, max_bytes: int | None) -> tuple[list[SourceResource], Acquired | None]:
    assert src.file is not None
    base = entry.path.parent
    pattern = src.file if os.path.isabs(src.file) else str(base / src.file)
    matches = sorted(p for p in glob.glob(pattern) if not Path(p).name.startswith(".") and Path(p).is_file())
    found = []
    for m in matches:
        path = Path(m).resolve()
        try:
            shown = os.path.relpath(m, base)
        except ValueError:
            shown = str(path)
        found.append(SourceResource(entry.id, source_key("file", shown), "file", str(path), shown, None, max_bytes))
    if found:
        return found, None
    res = SourceResource(entry.id, source_key("file", src.file), "file", pattern, src.file)
    return [], Acquired(res, "failed", f"no file matches {src.file!r} (looked in {base}); check the path or the partner's drop")


def acquire(res: SourceResource, record: SourceRecord | None, raw: RawStore) -> Acquired:
    path = Path(res.location)
    try:
        st = path.stat()
    except OSError as e:
        return Acquired(res, "failed", f"{res.label}: cannot read ({e.strerror}); check the path and its permissions")
    stamp = str(st.st_mtime_ns)
    if record is not None and record.bytes == st.st_size and record.last_modified == stamp and raw.has(record.sha256):
        return Acquired(res, "unchanged", "same size and modification time as last harvest; not read",
                        "size+mtime", record.sha256, record.bytes, 0, None, stamp)
    if res.max_bytes is not None and st.st_size > res.max_bytes:
        return Acquired(res, "failed", f"{res.label} is {st.st_size:,} bytes, over the limit of {res.max_bytes:,}; raise max_bytes if expected")
    stored = raw.put_file(path, res.label, res.max_bytes)
    if record is not None and stored.sha256 == record.sha256:
        return Acquired(res, "unchanged", f"touched but same content (sha256 {stored.sha256[:12]}…)", "sha256",
                        stored.sha256, stored.bytes, 0, None, stamp)
    return Acquired(res, "changed", f"read {stored.bytes:,} bytes", "sha256", stored.sha256, stored.bytes, 0, None, stamp)
