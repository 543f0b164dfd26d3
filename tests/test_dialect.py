"""Encoding and delimiter detection on the files French portals really publish."""

from __future__ import annotations

from pathlib import Path

import pytest

from partage.catalog import Dialect as DialectConfig
from partage.dialect import detect

ROWS = [["code_insee", "nom", "surface"], ["01001", "L'Abergement-Clémenciat", "15,95"], ["2A004", "Ajaccio", "82,03"]]


def write(tmp_path: Path, text: str, encoding: str, name: str = "f.csv") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


@pytest.mark.parametrize(
    ("encoding", "delimiter", "expected_encoding"),
    [
        ("cp1252", ";", "cp1252"),
        ("utf-8", ",", "utf-8"),
        ("utf-8-sig", ";", "utf-8-sig"),
        ("utf-8", "\t", "utf-8"),
        ("utf-8", "|", "utf-8"),
        ("latin-1", ";", "cp1252"),  # é is the same byte in both; cp1252 is the superset we read with
    ],
)
def test_detects_encoding_and_delimiter(tmp_path: Path, encoding: str, delimiter: str, expected_encoding: str) -> None:
    text = "\n".join(delimiter.join(f'"{c}"' if delimiter in c else c for c in r) for r in ROWS) + "\n"
    d = detect(write(tmp_path, text, encoding))
    assert (d.format, d.encoding, d.delimiter) == ("csv", expected_encoding, delimiter)


def test_accent_far_into_the_file_is_still_found(tmp_path: Path) -> None:
    """A sample-based guess would call this UTF-8 and fail on the last row."""
    lines = ["code;nom"] + [f"{i:05d};Ville" for i in range(60_000)] + ["99999;Châteauroux"]
    d = detect(write(tmp_path, "\n".join(lines) + "\n", "cp1252"))
    assert d.encoding == "cp1252" and d.delimiter == ";"


def test_bytes_undefined_in_cp1252_fall_back_to_latin1(tmp_path: Path) -> None:
    p = tmp_path / "f.csv"
    p.write_bytes(b"a;b\n1;\x81\x8d\n")
    assert detect(p).encoding == "latin-1"


def test_explicit_dialect_wins(tmp_path: Path) -> None:
    p = write(tmp_path, "a;b\n1;2\n", "utf-8")
    d = detect(p, DialectConfig(delimiter=",", encoding="latin-1"))
    assert (d.encoding, d.delimiter, d.detected) == ("latin-1", ",", ("format",))


def test_xlsx_recognised_by_content(tmp_path: Path) -> None:
    p = tmp_path / "noextension"
    p.write_bytes(b"PK\x03\x04" + b"\0" * 20)
    assert detect(p).format == "xlsx"
