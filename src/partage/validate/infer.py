"""Schema inference for sources that have no Table Schema.

Inference reads the *whole* column, not a sample, and never turns an
identifier into a number: a value with a leading zero (``01001``), a letter
(``2A004``) or a plus sign makes the column a string. The inferred schema is
stored with the version like any other, so analysts see what was decided.

The values French files hold are recognised too, each only when *every* value of
the column has the form (a single other value keeps the column text):
dates ``15/04/2024`` (``%d/%m/%Y``) and ``2019/06/25`` (``%Y/%m/%d``), numbers with
a decimal comma (``7,5``: ``decimalChar: ","``). Spreadsheets (XLSX, XLS, ODS) follow
the same rules over the cells frictionless reads: a text cell ``'06004'`` keeps its
zero, a date cell (a datetime at midnight in every row) is a ``date``, not a
timestamp. frictionless' own inference, used before, guessed from the first rows
and read ``'06004'`` as the integer 6004.

Left as text on purpose: ``"48.85,2.35"`` points (Opendatasoft's ``geo_point_2d`` is
latitude first, Table Schema's default ``geopoint`` longitude first: reading one as
the other would move every point, so a producer's schema must say which).
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..dialect import Dialect

# Python's csv refuses a cell over 128 KiB ("field larger than field limit"): a long text cell (a
# description, a GeoJSON geometry) is data, not an error, and frictionless reads it.
csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))

_INT = re.compile(r"^-?(0|[1-9][0-9]{0,17})$")
_NUM = re.compile(r"^-?(0|[1-9][0-9]*)\.[0-9]+$")
_NUM_COMMA = re.compile(r"^-?(0|[1-9][0-9]*),[0-9]+$")
_BOOL = {"true", "false"}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE_DMY = re.compile(r"^\d{2}/\d{2}/\d{4}$")
_DATE_YMD = re.compile(r"^\d{4}/\d{2}/\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$")


@dataclass(frozen=True)
class Kind:
    """One type a whole column may have, and the field properties that read it."""

    name: str
    type: str
    properties: tuple[tuple[str, str], ...] = ()

    def field(self, name: str) -> dict[str, Any]:
        return {"name": name, "type": self.type, **dict(self.properties)}


INTEGER = Kind("integer", "integer")
NUMBER = Kind("number", "number")
NUMBER_COMMA = Kind("number-comma", "number", (("decimalChar", ","),))
BOOLEAN = Kind("boolean", "boolean")
DATE = Kind("date", "date")
DATE_DMY = Kind("date-dmy", "date", (("format", "%d/%m/%Y"),))
DATE_YMD = Kind("date-ymd", "date", (("format", "%Y/%m/%d"),))
DATETIME = Kind("datetime", "datetime")

# preference when several fit every value (a column of integers also fits the numbers)
_ORDER = (INTEGER, NUMBER, NUMBER_COMMA, BOOLEAN, DATE, DATE_DMY, DATE_YMD, DATETIME)

# Columns whose name says "code" stay strings even when every value happens to be digits
# without a leading zero (all communes of the Hauts-de-Seine are 92xxx, every SIREN is 9 digits).
IDENTIFIER_NAME = re.compile(
    r"(^|[^a-z])(insee|siren|siret|code|cp|postal|postcode|zip|uai|finess|rna|tel|telephone|phone|id|identifiant|ref|reference)([^a-z]|$)",
    re.IGNORECASE,
)


def _valid_date(v: str, fmt: str) -> bool:
    try:
        dt.datetime.strptime(v, fmt)
        return True
    except ValueError:
        return False


def _fits(kind: Kind, v: str) -> bool:
    """Whether the text ``v`` (stripped, not empty) reads as ``kind``."""
    name = kind.name
    if name == "integer":
        return bool(_INT.match(v))
    if name == "number":
        return bool(_INT.match(v) or _NUM.match(v))
    if name == "number-comma":
        return bool(_INT.match(v) or _NUM_COMMA.match(v))
    if name == "boolean":
        return v.lower() in _BOOL
    if name == "date":
        return bool(_DATE.match(v)) and _valid_date(v, "%Y-%m-%d")
    if name == "date-dmy":
        return bool(_DATE_DMY.match(v)) and _valid_date(v, "%d/%m/%Y")
    if name == "date-ymd":
        return bool(_DATE_YMD.match(v)) and _valid_date(v, "%Y/%m/%d")
    if name == "datetime":
        return bool(_DATETIME.match(v))
    return False


def _cell_fits(kind: Kind, cell: Any) -> bool:
    """Whether a spreadsheet cell, as frictionless reads it (str, int, float, bool, date, datetime),
    is read by ``kind`` the way frictionless' field of that type reads it."""
    if isinstance(cell, str):
        v = cell.strip()
        return not v or _fits(kind, v)
    if isinstance(cell, bool):
        return kind is BOOLEAN
    if isinstance(cell, int):
        return kind in (INTEGER, NUMBER)
    if isinstance(cell, float):
        return kind is NUMBER or (kind is INTEGER and cell.is_integer())
    if isinstance(cell, dt.datetime):  # before date: a datetime is a date too
        midnight = cell.time() == dt.time(0) and cell.tzinfo is None
        return kind is DATETIME or (kind is DATE and midnight)
    if isinstance(cell, dt.date):
        return kind is DATE
    return False  # times, durations…: text


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _names(labels: list[str]) -> list[str]:
    """Field names from header labels: a blank label is ``field<i>``; control characters (a NUL
    from a binary file read as text) are dropped, as no column name can hold them (DuckLake's
    catalog refused the commit of a column named NUL)."""
    seen: dict[str, int] = {}
    out = []
    for i, label in enumerate(labels, 1):
        label = _CONTROL.sub("", label)
        name = label if label.strip() else f"field{i}"
        if name in seen:
            seen[name] += 1
            name = f"{name}{seen[name]}"
        else:
            seen[name] = 1
        out.append(name)
    return out


def _fields(names: list[str], candidates: list[list[Kind]], seen: list[bool], *, typed: list[bool]) -> list[dict[str, Any]]:
    fields = []
    for name, cands, any_value, numeric_cells in zip(names, candidates, seen, typed):
        kind = next((k for k in _ORDER if k in cands), None) if any_value else None
        if kind is not None and kind.type in ("integer", "number") and IDENTIFIER_NAME.search(name.replace("_", " ")):
            kind = None  # a code stays text
        # Without a type, a column is text. frictionless reads no number or date *cell* of a spreadsheet
        # as a string (each would be a type error): such a column is `any`, stored as the cells' text,
        # so a code held as numbers in an XLSX is text as in the CSV of the same data.
        fields.append(kind.field(name) if kind is not None else {"name": name, "type": "any" if numeric_cells else "string"})
    return fields


def describe_inferred(descriptor: dict[str, Any]) -> str:
    """The decisions worth telling a reader of the harvest line: formats and decimal commas."""
    notable = [f"{f['name']}: {f['type']} " + (f"({f['format']})" if "format" in f else "with a decimal comma")
               for f in descriptor.get("fields", []) if "format" in f or f.get("decimalChar") == ","]
    return "schema inferred over whole columns" + (f" ({'; '.join(notable)})" if notable else "")


def infer_schema(path: Path, dialect: Dialect) -> dict[str, Any]:
    if dialect.format != "csv":
        return _infer_cells(path, dialect)
    with open(path, encoding=dialect.encoding, newline="") as f:
        reader = csv.reader(f, delimiter=dialect.delimiter, quotechar=dialect.quote_char)
        labels = next(reader, [])
        names = _names(labels)
        candidates = [list(_ORDER) for _ in names]
        seen_value = [False] * len(names)
        for row in reader:
            for i, cell in enumerate(row[: len(names)]):
                v = cell.strip()
                if not v:
                    continue
                seen_value[i] = True
                cands = candidates[i]
                if cands:
                    candidates[i] = [k for k in cands if _fits(k, v)]
    return {"fields": _fields(names, candidates, seen_value, typed=[False] * len(names))}


def _infer_cells(path: Path, dialect: Dialect) -> dict[str, Any]:
    """Spreadsheets and JSON: the same whole-column rules over frictionless' cells."""
    from frictionless import Resource

    res = Resource(path=path.name, basepath=str(path.parent), format=dialect.format)
    with res:
        rows = iter(res.cell_stream)
        labels = [("" if c is None else str(c)) for c in next(rows, [])]
        names = _names(labels)
        candidates = [list(_ORDER) for _ in names]
        seen_value = [False] * len(names)
        typed = [False] * len(names)  # the column holds number or date cells, not only text
        for row in rows:
            for i, cell in enumerate(row[: len(names)]):
                if cell is None or (isinstance(cell, str) and not cell.strip()):
                    continue
                seen_value[i] = True
                typed[i] = typed[i] or not isinstance(cell, str)
                if candidates[i]:
                    candidates[i] = [k for k in candidates[i] if _cell_fits(k, cell)]
    return {"fields": _fields(names, candidates, seen_value, typed=typed)}
