"""Content-addressed store of the raw files as they were harvested.

``<warehouse>/raw/<aa>/<sha256>``: the same bytes are kept once whatever their
source, and a file is only visible under its final name once it is complete
(written to ``raw/tmp/`` then renamed), so a crash never leaves a truncated
file that looks valid.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .errors import TerminalFetchError
from .faults import checkpoint


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    bytes: int
    path: Path


class _Sink:
    def __init__(self, f: BinaryIO, max_bytes: int | None, what: str):
        self._f = f
        self._hash = hashlib.sha256()
        self.bytes = 0
        self._max = max_bytes
        self._what = what

    def write(self, chunk: bytes) -> None:
        self.bytes += len(chunk)
        if self._max is not None and self.bytes > self._max:
            raise TerminalFetchError(
                f"{self._what} is larger than the limit of {self._max:,} bytes; "
                "raise max_bytes in the catalog entry if this size is expected"
            )
        self._hash.update(chunk)
        self._f.write(chunk)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


class RawStore:
    def __init__(self, root: Path):
        self.root = root
        self.tmp = root / "tmp"

    def path_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def has(self, sha256: str | None) -> bool:
        return bool(sha256) and self.path_for(sha256).is_file()  # type: ignore[arg-type]

    @contextmanager
    def writer(self, what: str, max_bytes: int | None = None) -> Iterator[_Sink]:
        """Yield a sink; on success the content lands at its sha256 path, on error nothing remains."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        tmp = self.tmp / f"{uuid.uuid4().hex}.part"
        try:
            with open(tmp, "wb") as f:
                sink = _Sink(f, max_bytes, what)
                yield sink
                f.flush()
                os.fsync(f.fileno())
            final = self.path_for(sink.sha256)
            final.parent.mkdir(parents=True, exist_ok=True)
            checkpoint("raw-written")
            if final.exists():
                tmp.unlink()
            else:
                os.replace(tmp, final)
            sink.path = final  # type: ignore[attr-defined]
        finally:
            if tmp.exists():
                tmp.unlink()

    def put_file(self, src: Path, what: str, max_bytes: int | None = None) -> StoredFile:
        with self.writer(what, max_bytes) as sink, open(src, "rb") as f:
            while chunk := f.read(1 << 20):
                sink.write(chunk)
        return StoredFile(sink.sha256, sink.bytes, self.path_for(sink.sha256))


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def copy_or_link(src: Path, dst: Path) -> None:
    """Hard-link when possible (free, immutable files), copy otherwise."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
