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
import re
from dataclasses import dataclass, replace
from pathlib import Path

from .catalog import Dialect as DialectConfig
from .filefacts import file_facts

DELIMITERS = (";", ",", "\t", "|")
_CHUNK = 1 << 20
_SNIFF_BYTES = 256 * 1024
_SNIFF_LINES = 200


@dataclass(frozen=True)
class MixedEncoding:
    """A UTF-8 file with some lines in a legacy encoding (rows appended by another tool, a
    spreadsheet export pasted at the end). Read whole as cp1252 its UTF-8 letters turn into
    mojibake (``EntrÃ©es``); read whole as UTF-8 it fails. Each line is read in its own encoding."""

    legacy: str  # "cp1252", or "latin-1" for lines cp1252 cannot decode
    lines: tuple[int, ...]  # the physical line numbers (1-based) read in the legacy encoding, the first 20
    count: int  # how many lines that is

    def describe(self) -> str:
        shown = ", ".join(str(n) for n in self.lines) + (" …" if self.count > len(self.lines) else "")
        return f"{self.count:,} line(s) in {self.legacy} among UTF-8 ones, each read in its own encoding (lines {shown})"

    def convert(self, path: Path, dest: Path) -> Path:
        """A UTF-8 copy of ``path``, line by line (line and row numbers unchanged)."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "rb") as src, open(dest, "wb") as out:
            for line in src:
                try:
                    line.decode("utf-8")
                    out.write(line)
                except UnicodeDecodeError:
                    out.write(_legacy_line(line).encode("utf-8"))
        return dest


# The UTF-8 form of À..ÿ (every accented letter of French): 0xC3 and a continuation byte. In a
# cp1252 file that is "Ã" followed by a symbol ("Ã©"), which French text never holds; so a file
# that is not valid UTF-8 but has these pairs mixes both encodings.
_UTF8_LETTER = re.compile(rb"\xc3[\x80-\xbf]")
_SHOWN_LINES = 20


def _legacy_line(line: bytes) -> str:
    try:
        return line.decode("cp1252")
    except UnicodeDecodeError:  # 0x81, 0x8D, 0x8F, 0x90, 0x9D are undefined in cp1252
        return line.decode("latin-1")


def find_mixed_encoding(path: Path) -> MixedEncoding | None:
    """The lines of a mostly-UTF-8 text file that are not UTF-8, or None when the file is in one
    encoding. Cheap for the common cases: a valid UTF-8 file is known from its facts (one read
    shared with the validator), a plain cp1252 file from one regular-expression scan."""
    if file_facts(path).utf8:
        return None
    with open(path, "rb") as f:
        carry = b""
        while chunk := f.read(_CHUNK):
            if _UTF8_LETTER.search(carry + chunk):
                break
            carry = chunk[-1:]
        else:
            return None
    legacy: list[int] = []
    count, utf8_letters, cp1252 = 0, False, True
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            try:
                line.decode("utf-8")
                utf8_letters = utf8_letters or not line.isascii()
            except UnicodeDecodeError:
                count += 1
                if len(legacy) < _SHOWN_LINES:
                    legacy.append(n)
                if cp1252:
                    try:
                        line.decode("cp1252")
                    except UnicodeDecodeError:
                        cp1252 = False
    if not count or not utf8_letters:
        return None
    return MixedEncoding("cp1252" if cp1252 else "latin-1", tuple(legacy), count)


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
    mixed: MixedEncoding | None = None  # the file was a mix of encodings, read line by line (a UTF-8 copy)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "format": self.format,
            "encoding": self.encoding,
            "delimiter": self.delimiter,
            "quoteChar": self.quote_char,
            "decimalChar": self.decimal_char,
            "groupChar": self.group_char,
            "detected": list(self.detected),
        }
        if self.mixed is not None:
            out["mixedEncoding"] = {"legacy": self.mixed.legacy, "lines": list(self.mixed.lines),
                                    "count": self.mixed.count}
        return out

    def describe(self) -> str:
        """How the file was read, in the words of a harvest line: ``read as cp1252, ';' delimiter``."""
        if self.format != "csv":
            return f"read as {self.format}"
        names = {";": "';'", ",": "','", "\t": "tab", "|": "'|'"}
        encoding = "UTF-8 with " + self.mixed.describe() if self.mixed is not None else self.encoding
        return f"read as {encoding}, {names.get(self.delimiter, repr(self.delimiter))} delimiter"


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
