"""Rows thousands of cells too wide (or too narrow) for the schema, found before frictionless-py reads them.

frictionless-py gives each extra-cell (or missing-cell) error a copy of the whole row: one row of
10,003 cells against a 3-field schema makes 10,000 errors of 10,003 cells (about 100 s and a 50 MB
report), and a 100 MB line of delimiters exhausts memory. Such a row is not data but a broken file (a
wrong delimiter, binary bytes, two files pasted together), so the file gets one error that says which
rows and what to check, at once. Rows a few cells off still go to frictionless-py, which reports each cell.
Only files the SQL engine sends to frictionless-py are read here (ragged rows are one reason it does).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

from ..dialect import Dialect
from ..report.i18n import number_fr
from .report import Report

log = logging.getLogger("partage.validate")

# cells off x cells in the row, past which a row is summed up: frictionless-py takes about 1.4 s for a
# row of 1,003 cells against 3 fields, and the time grows with the square
ROW_COST = 1_000_000
_SHOWN = 5


def ragged_row_report(path: Path, descriptor: dict[str, Any], dialect: Dialect) -> Report | None:
    """The one-error report for a file with such rows, or None when frictionless-py can judge it cell by cell."""
    fields = descriptor.get("fields")
    if dialect.format != "csv" or not isinstance(fields, list):
        return None
    width = len(fields)
    found: list[tuple[int, int]] = []  # (row number as frictionless counts it, cells)
    total = 0
    try:
        with open(path, encoding=dialect.encoding, newline="", errors="replace") as f:
            reader = csv.reader(f, delimiter=dialect.delimiter, quotechar=dialect.quote_char or '"')
            for number, row in enumerate(reader, start=1):
                cells = len(row)
                if number > 1 and abs(cells - width) * cells > ROW_COST:
                    total += 1
                    if len(found) < _SHOWN:
                        found.append((number, cells))
    except (csv.Error, LookupError, OSError, UnicodeError, MemoryError):
        return None  # frictionless-py reports what it can of that file
    if not found:
        return None
    rows = ", ".join(f"row {n:,} has {c:,} cells" for n, c in found)
    more = f" (and {total - len(found):,} more such rows)" if total > len(found) else ""

    rows_fr = ", ".join(f"la ligne {number_fr(n)} a {number_fr(c)} cellules" for n, c in found)
    more_fr = f" (et {number_fr(total - len(found))} autres lignes de ce genre)" if more else ""
    message = (f"{rows}{more} where the schema has {width:,} fields: these are not data rows (is the delimiter "
               f"{dialect.delimiter!r} right? binary bytes? two files pasted together?). Fix those rows and send the "
               "file again; the file was not validated further")
    report = Report.failure("source-error", message, title="Irregular rows")
    report.task["errors"][0]["messageFr"] = (
        f"{rows_fr}{more_fr} là où le schéma a {number_fr(width)} champs : ce ne sont pas des lignes de données (le "
        f"séparateur {dialect.delimiter!r} est-il le bon ? des octets binaires ? deux fichiers collés ?). Corrigez ces "
        "lignes et renvoyez le fichier ; il n'a pas été validé plus avant")
    log.info("%s: %s", path.name, message)
    return report
