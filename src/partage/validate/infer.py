"""Schema inference for sources that have no Table Schema.

Inference reads the *whole* column, not a sample, and never turns an
identifier into a number: a value with a leading zero (``01001``), a letter
(``2A004``) or a plus sign makes the column a string. The inferred schema is
stored with the version like any other, so analysts see what was decided.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from pathlib import Path
from typing import Any

from ..dialect import Dialect

_INT = re.compile(r"^-?(0|[1-9][0-9]{0,17})$")
_NUM = re.compile(r"^-?(0|[1-9][0-9]*)\.[0-9]+$")
_BOOL = {"true", "false"}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$")

_ORDER = ("integer", "number", "boolean", "date", "datetime")

# Columns whose name says "code" stay strings even when every value happens to be digits
# without a leading zero (all communes of the Hauts-de-Seine are 92xxx, every SIREN is 9 digits).
IDENTIFIER_NAME = re.compile(
    r"(^|[^a-z])(insee|siren|siret|code|cp|postal|postcode|zip|uai|finess|rna|tel|telephone|phone|id|identifiant|ref|reference)([^a-z]|$)",
    re.IGNORECASE,
)


def _fits(kind: str, v: str) -> bool:
    if kind == "integer":
        return bool(_INT.match(v))
    if kind == "number":
        return bool(_INT.match(v) or _NUM.match(v))
    if kind == "boolean":
        return v.lower() in _BOOL
    if kind == "date":
        if not _DATE.match(v):
            return False
        try:
            dt.date.fromisoformat(v)
            return True
        except ValueError:
            return False
    if kind == "datetime":
        return bool(_DATETIME.match(v))
    return False


def _names(labels: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for i, label in enumerate(labels, 1):
        name = label if label.strip() else f"field{i}"
        if name in seen:
            seen[name] += 1
            name = f"{name}{seen[name]}"
        else:
            seen[name] = 1
        out.append(name)
    return out


def infer_schema(path: Path, dialect: Dialect) -> dict[str, Any]:
    if dialect.format != "csv":
        from frictionless import Resource

        res = Resource(path=path.name, basepath=str(path.parent), format=dialect.format)
        res.infer()
        return res.schema.to_descriptor()
    with open(path, encoding=dialect.encoding, newline="") as f:
        reader = csv.reader(f, delimiter=dialect.delimiter, quotechar=dialect.quote_char)
        labels = next(reader, [])
        names = _names(labels)
        candidates = [set(_ORDER) for _ in names]
        seen_value = [False] * len(names)
        for row in reader:
            for i, cell in enumerate(row[: len(names)]):
                v = cell.strip()
                if not v:
                    continue
                seen_value[i] = True
                cands = candidates[i]
                if cands:
                    cands.difference_update([k for k in cands if not _fits(k, v)])
    fields = []
    for name, cands, seen in zip(names, candidates, seen_value):
        kind = next((k for k in _ORDER if k in cands), "string") if seen else "string"
        if kind in ("integer", "number") and IDENTIFIER_NAME.search(name.replace("_", " ")):
            kind = "string"
        fields.append({"name": name, "type": kind})
    return {"fields": fields}
