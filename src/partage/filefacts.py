"""What one read of a downloaded file tells: is it UTF-8, how many line feeds, where the empty lines are,
any lone carriage return.

Dialect detection needs the first, the SQL validator the others; both used to read
the whole file in Python (a third of a second each for 300 MB). One read now
serves both, and is remembered for the file as it is (path, size, mtime): the
harvest detects the dialect and then validates the same file.

UTF-8 validity is checked by Arrow's validator (SIMD), which agrees with
Python's strict decoder on overlongs, surrogates and truncated sequences.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

_CHUNK = 1 << 22
_REMEMBERED = 16
MAX_EMPTY_LINES = 100_000
_EMPTY_SEAM = re.compile(rb"\n\r?\n")
_EMPTY = "\n\r?\n"  # no alternation with ^: RE2 then loses its literal prefix search (25 times slower)


@dataclass(frozen=True)
class FileFacts:
    utf8: bool  # the whole file decodes as UTF-8 (a BOM included)
    line_feeds: int
    ends_with_lf: bool
    lone_cr: bool  # a b"\r" not followed by b"\n": old Mac line ends, or one inside a cell
    # each empty line's index (0-based, the line feeds before it): a blank row to frictionless, skipped by
    # DuckDB's reader. A line feed inside a quoted cell can also be followed by one; the validator tells
    # them apart. None: more than MAX_EMPTY_LINES of them
    empty_lines: tuple[int, ...] | None = ()
    quotes: int = 0  # double quotes: an odd count means one is never closed, which DuckDB's reader may skip over


_cache: OrderedDict[tuple[str, int, int], FileFacts] = OrderedDict()
_lock = threading.Lock()


def _complete(chunk: bytes) -> int:
    """Where the last whole UTF-8 character of ``chunk`` ends (a sequence may straddle two reads)."""
    for back in range(1, min(4, len(chunk)) + 1):
        b = chunk[-back]
        if b < 0x80:
            return len(chunk)
        if b >= 0xC0:  # a lead byte: is its sequence whole?
            need = 2 if b < 0xE0 else 3 if b < 0xF0 else 4
            return len(chunk) if back >= need else len(chunk) - back
    return len(chunk)  # only continuation bytes: let the validator judge


def _valid_utf8(data: bytes) -> bool:
    try:
        pa.array([data], pa.binary()).cast(pa.string())
        return True
    except pa.ArrowInvalid:
        return False


class _EmptyLines:
    """Finds ``\n\n`` and ``\n\r\n`` across reads. Arrow's RE2 tells first whether a read holds any (0.3 ms
    for 4 MB, ten times faster than bytes.find on a two-byte needle): a file without any costs next to nothing."""

    def __init__(self) -> None:
        self.found: list[int] | None = []
        # the last two bytes read (an empty line may straddle two reads); first, a line feed before the file,
        # which makes an empty first line one like the others
        self._tail = b"\n"

    def feed(self, chunk: bytes, feeds_before: int) -> None:
        """``feeds_before``: the line feeds of the file before ``chunk`` (its caller counts them anyway)."""
        tail, self._tail = self._tail, (self._tail + chunk)[-2:]
        if self.found is None:
            return
        if not (_EMPTY_SEAM.search(tail + chunk[:2])
                or pc.count_substring_regex(pa.array([chunk], pa.binary()), pattern=_EMPTY)[0].as_py()):
            return
        buf, seam = tail + chunk, len(tail)
        hits = []
        for needle in (b"\n\n", b"\n\r\n"):
            at = buf.find(needle)
            while at != -1:
                if at + len(needle) - 1 >= seam:  # its closing line feed is new: not found in the last read
                    hits.append(at)
                at = buf.find(needle, at + 1)
        counted, before = 0, feeds_before - tail.count(b"\n")
        for at in sorted(hits):  # the empty line starts after the line feed at `at`
            before += buf.count(b"\n", counted, at + 1)
            counted = at + 1
            self.found.append(before)
        if len(self.found) > MAX_EMPTY_LINES:
            self.found = None


def file_facts(path: Path) -> FileFacts:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    utf8, feeds, quotes, lone_cr, last, carry = True, 0, 0, False, b"", b""
    empty = _EmptyLines()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            empty.feed(chunk, feeds)
            feeds += chunk.count(b"\n")
            quotes += chunk.count(b'"')
            if not lone_cr and b"\r" in chunk and chunk.count(b"\r") != chunk.count(b"\r\n"):
                lone_cr = chunk.replace(b"\r\n", b"").count(b"\r") > (1 if chunk.endswith(b"\r") else 0)
            last = chunk[-1:]
            if utf8:
                data = carry + chunk
                cut = _complete(data)
                utf8, carry = _valid_utf8(data[:cut]), data[cut:]
    if carry:
        utf8 = utf8 and _valid_utf8(carry)
    facts = FileFacts(utf8, feeds, last == b"\n", lone_cr, None if empty.found is None else tuple(empty.found), quotes)
    with _lock:
        _cache[key] = facts
        while len(_cache) > _REMEMBERED:
            _cache.popitem(last=False)
    return facts
