"""Turn a downloaded file into the data file inside it, or say plainly why there is none.

Portals serve more than plain CSV under a data URL. data.gouv.fr carries national files
gzipped (``.csv.gz``) or zipped with one CSV inside; an expired link or a login wall answers
``200 OK`` with an HTML page. Read as CSV, the first two give a header of binary noise and the
third a header of HTML tags: a report of "incorrect labels" that sends the data team looking in
the wrong place. So the raw file is looked at first (its bytes, not its name or Content-Type,
which portals get wrong), unpacked into a work directory when it is an archive, and refused
with a message that names what it is when it is a web page.

Decompression streams (memory stays flat) and stops at ``PARTAGE_MAX_UNPACKED_BYTES`` (20 GiB
by default): a small archive that expands without end (a "zip bomb") is refused, not written
until the disk is full. Spreadsheets are zips too (xlsx, ods): they are left as they are, for
the format detection that reads them.
"""

from __future__ import annotations

import gzip
import os
import re
import zipfile
from pathlib import Path
from typing import BinaryIO

from .errors import NotDataError, SourceFormatError

_HTML = re.compile(rb"^(?:\xef\xbb\xbf)?\s*(?:<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>]|<!--)", re.IGNORECASE)
_DATA_SUFFIXES = (".csv", ".tsv", ".txt", ".json", ".xlsx", ".xls", ".ods", ".geojson")
_CHUNK = 1 << 20


def max_unpacked() -> int:
    return int(os.environ.get("PARTAGE_MAX_UNPACKED_BYTES", 20 << 30))


def plain_file(path: Path, workdir: Path, name: str = "") -> Path:
    """``path`` itself when it is plain data; else the data file unpacked from it into ``workdir``.

    ``name`` (the source's URL or file name) only words the messages. A plain file is returned as
    is, so calling this twice is harmless."""
    with open(path, "rb") as f:
        head = f.read(512)
    shown = name or path.name
    if head.startswith(b"\x1f\x8b"):
        return _gunzip(path, workdir, shown)
    if head.startswith(b"PK\x03\x04") and zipfile.is_zipfile(path):
        return _unzip(path, workdir, shown)
    if _HTML.match(head):
        raise NotDataError(
            f"{shown}: the server sent a web page (HTML), not data. The link may have expired or need a "
            "login: open it in a browser, then fix the source's URL in the catalog (or add 'auth:')")
    return path


def _copy_capped(src: BinaryIO, dest: Path, shown: str) -> Path:
    cap, written = max_unpacked(), 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(dest, "wb") as out:
            while chunk := src.read(_CHUNK):
                written += len(chunk)
                if written > cap:
                    raise SourceFormatError(
                        f"{shown}: unpacks to more than {cap:,} bytes (PARTAGE_MAX_UNPACKED_BYTES); refused. "
                        "Raise the limit if this size is expected")
                out.write(chunk)
    except (OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile) as e:
        dest.unlink(missing_ok=True)
        raise SourceFormatError(f"{shown}: the archive is damaged or cut short ({type(e).__name__}: {e}); "
                                "download it again, or ask the producer for a whole file") from None
    except SourceFormatError:
        dest.unlink(missing_ok=True)
        raise
    return dest


def _gunzip(path: Path, workdir: Path, shown: str) -> Path:
    dest = workdir / (path.name + ".unpacked")
    with gzip.open(path, "rb") as src:
        out = _copy_capped(src, dest, shown)  # type: ignore[arg-type]
    # a gzipped zip or a gzipped web page: look at what came out too
    return plain_file(out, workdir / "inner", shown)


def _unzip(path: Path, workdir: Path, shown: str) -> Path:
    with zipfile.ZipFile(path) as z:
        names = [i.filename for i in z.infolist() if not i.is_dir()]
        if "[Content_Types].xml" in names or "mimetype" in names:
            return path  # an office spreadsheet (xlsx, ods): read as such
        # macOS adds __MACOSX/._name copies of each file; hidden files are never the data
        data = [n for n in names if n.lower().endswith(_DATA_SUFFIXES)
                and "__MACOSX/" not in n and not n.rsplit("/", 1)[-1].startswith(".")]
        if len(data) != 1:
            listed = ", ".join(data or names)[:400] or "nothing"
            raise SourceFormatError(
                f"{shown}: a zip archive holding {len(data)} data file(s) ({listed}); Partage reads an archive "
                "with exactly one CSV, JSON or spreadsheet inside. Point the source at one file, or ask the "
                "producer for one file per resource")
        member = data[0]
        suffix = Path(member).suffix.lower()
        with z.open(member) as src:
            return _copy_capped(src, workdir / (path.name + ".unpacked" + suffix), shown)  # type: ignore[arg-type]
