"""Encoding, delimiter and format detection for the files French portals publish.

Why not leave it to frictionless? Its encoding guess reads a sample, so a
cp1252 file whose first accented letter is on row 40,000 is read as UTF-8 and
fails there. We check the *whole* file for UTF-8 validity (a fast streaming
decode) and fall back to cp1252, then Latin-1. The delimiter is chosen on the
first lines: the candidate that splits every line into the same number (> 1)
of fields wins.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass, replace
from pathlib import Path

from .catalog import Dialect as DialectConfig
from .filefacts import file_facts

DELIMITERS = (";", ",", "\t", "|")
_CHUNK = 1 << 20
_SNIFF_BYTES = 256 * 1024
_SNIFF_LINES = 200


@dataclass(frozen=True)
class Dialect:
    """How to read one file; what was detected and what was imposed by the catalog."""

    format: str = "csv"
    encoding: str = "utf-8"
    delimiter: str = ","
    quote_char: str = '"'
    decimal_char: str | None = None
    group_char: str | None = None
    detected: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "format": self.format,
            "encoding": self.encoding,
            "delimiter": self.delimiter,
            "quoteChar": self.quote_char,
            "decimalChar": self.decimal_char,
            "groupChar": self.group_char,
            "detected": list(self.detected),
        }


def sniff_format(path: Path, hint: str | None = None) -> str:
    """Content first (magic bytes), then the name's extension, then CSV."""
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        return "xls"
    if hint:
        ext = hint.lower().rsplit("?", 1)[0].rsplit(".", 1)[-1]
        if ext in ("csv", "tsv", "txt"):
            return "csv"
        if ext in ("json",):
            return "json"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped[:1] in (b"{", b"["):
        return "json"
    return "csv"


def detect_encoding(path: Path) -> str:
    """UTF-8 (with or without BOM) if the whole file decodes, else cp1252, else Latin-1."""
    with open(path, "rb") as f:
        head = f.read(4)
        if head.startswith(codecs.BOM_UTF8):
            bom = "utf-8-sig"
        elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        else:
            bom = ""
        if file_facts(path).utf8:  # one read shared with the validator's row count
            return bom or "utf-8"
        f.seek(0)
        cp1252 = codecs.getincrementaldecoder("cp1252")()
        try:
            while chunk := f.read(_CHUNK):
                cp1252.decode(chunk)
            return "cp1252"
        except UnicodeDecodeError:
            # bytes 0x81, 0x8D, 0x8F, 0x90, 0x9D are undefined in cp1252; Latin-1 reads anything
            return "latin-1"


def detect_delimiter(path: Path, encoding: str) -> str:
    with open(path, "rb") as f:
        raw = f.read(_SNIFF_BYTES)
    text = raw.decode(encoding, errors="replace")
    if len(raw) == _SNIFF_BYTES:  # do not judge a line cut in the middle
        text = text[: text.rfind("\n") + 1] or text
    lines = text.splitlines()[:_SNIFF_LINES]
    best, best_score = ",", (-1.0, 0)
    for delim in DELIMITERS:
        try:
            rows = [r for r in csv.reader(io.StringIO("\n".join(lines)), delimiter=delim) if r]
        except csv.Error:
            continue
        if not rows:
            continue
        width = len(rows[0])
        if width < 2:
            continue
        consistent = sum(1 for r in rows if len(r) == width) / len(rows)
        score = (consistent, width)
        if score > best_score:
            best, best_score = delim, score
    return best


def detect(path: Path, config: DialectConfig | None = None, name_hint: str | None = None) -> Dialect:
    """Detect what the catalog does not impose. Explicit settings always win."""
    config = config or DialectConfig()
    detected: list[str] = []
    fmt: str | None = config.format
    if fmt is None:
        fmt = sniff_format(path, name_hint)
        detected.append("format")
    dialect = Dialect(format=fmt, decimal_char=config.decimalChar, group_char=config.groupChar)
    if fmt != "csv":
        return replace(dialect, detected=tuple(detected))
    encoding = config.encoding
    if encoding is None:
        encoding = detect_encoding(path)
        detected.append("encoding")
    delimiter = config.delimiter
    if delimiter is None:
        delimiter = detect_delimiter(path, encoding)
        detected.append("delimiter")
    return replace(
        dialect,
        encoding=encoding,
        delimiter=delimiter,
        quote_char=config.quoteChar or '"',
        detected=tuple(detected),
    )
