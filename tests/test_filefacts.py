"""The facts of one read of a file: here, where its empty lines are, whatever the reads' boundaries."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from partage import filefacts


def empty_lines_by_splitting(data: bytes) -> tuple[int, ...]:
    """The reference: the lines Python's csv reads as rows without cells (``""`` or ``"\\r"`` before a line feed)."""
    return tuple(i for i, line in enumerate(data.split(b"\n")[:-1]) if line in (b"", b"\r"))


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1 << 22])
def test_empty_lines_are_found_across_read_boundaries(tmp_path: Path, chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filefacts, "_CHUNK", chunk)
    rnd = random.Random(chunk)
    path = tmp_path / "f.csv"
    for _ in range(400):
        data = bytes(rnd.choice(b'ab\n\r,"') for _ in range(rnd.randrange(0, 60)))
        path.write_bytes(data)
        filefacts._cache.clear()
        facts = filefacts.file_facts(path)
        assert facts.empty_lines == empty_lines_by_splitting(data), data
        assert facts.line_feeds == data.count(b"\n") and facts.quotes == data.count(b'"')


def test_too_many_empty_lines_are_not_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filefacts, "MAX_EMPTY_LINES", 3)
    path = tmp_path / "f.csv"
    path.write_bytes(b"a\n\n\n\nb\n")
    assert filefacts.file_facts(path).empty_lines == (1, 2, 3)
    path.write_bytes(b"a\n\n\n\n\nb\n")
    assert filefacts.file_facts(path).empty_lines is None
