"""A header of thousands of labels that differs from the schema, summed up in one error.

frictionless-py gives each label error a copy of every label, and copies it again when it builds
the report: its time grows with label errors x labels (3,000 extra labels: 45 s; 10,000: minutes,
and a report holding 10,000 x 10,000 labels). Such a file is rejected for its header whatever the
policy, so one error saying what differs and what to fix serves the producer better, at once. A wide
header with a few wrong labels still goes to frictionless-py, which reports each label.
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
from pathlib import Path
from typing import Any

from ..dialect import Dialect
from ..report.i18n import number_fr
from .report import Report

log = logging.getLogger("partage.validate")

# label errors x labels past which the header is summed up: frictionless-py takes about 5 s for
# 1,000 wrong labels among 1,000
HEADER_COST = 1_000_000
_HEADER_READ = 4 << 20


def _labels(path: Path, dialect: Dialect) -> tuple[list[str], bool] | None:
    """The header's labels and whether it was read whole (a header longer than 4 MB is cut)."""
    try:
        with open(path, encoding=dialect.encoding, newline="", errors="replace") as f:
            head = f.read(_HEADER_READ)
        rows = list(itertools.islice(csv.reader(io.StringIO(head), delimiter=dialect.delimiter,
                                                quotechar=dialect.quote_char or '"'), 2))
    except (csv.Error, LookupError, OSError, UnicodeError):
        return None
    if not rows:
        return None
    labels = [label.removeprefix("\ufeff") if i == 0 else label for i, label in enumerate(rows[0])]
    whole = len(rows) > 1 or len(head) < _HEADER_READ
    return (labels, True) if whole else (labels[:-1], False)  # cut: the last label read is partial


def header_cost(labels: list[str], names: list[str], *, whole: bool = True) -> int:
    """frictionless-py's work on a header: its label errors (about) x the labels each one copies."""
    moved = sum(1 for a, b in zip(labels, names) if a != b)
    wrong = moved + max(len(labels) - len(names), 0) + (max(len(names) - len(labels), 0) if whole else 0)
    return wrong * len(labels)


def wide_header_report(path: Path, descriptor: dict[str, Any], dialect: Dialect) -> Report | None:
    """The one-error report for such a header, or None when frictionless-py can check it label by label."""
    fields = descriptor.get("fields")
    if dialect.format != "csv" or not isinstance(fields, list):
        return None
    read = _labels(path, dialect)
    if read is None:
        return None
    labels, whole = read
    names = [str(f.get("name", "")) if isinstance(f, dict) else "" for f in fields]
    if header_cost(labels, names, whole=whole) <= HEADER_COST:
        return None
    moved = sum(1 for a, b in zip(labels, names) if a != b)
    known, seen = set(names), set(labels)
    extra = [label for label in labels if label not in known]
    absent = [n for n in names if n not in seen] if whole else []

    def say(french: bool) -> str:
        def num(n: int) -> str:
            return number_fr(n) if french else f"{n:,}"

        def first(items: list[str]) -> str:
            more = f" … ({num(len(items) - 10)} {'de plus' if french else 'more'})" if len(items) > 10 else ""
            return ", ".join(f"'{x}'" for x in items[:10]) + more

        plus = "" if whole else "+"
        if french:
            parts = [f"l'en-tête a {num(len(labels))}{plus} colonnes là où le schéma a {num(len(names))} champs"]
            parts += [f"{num(len(extra))} ne sont pas des noms de champs ({first(extra)})"] if extra else []
            parts += [f"{num(len(absent))} champs n'ont pas de colonne ({first(absent)})"] if absent else []
            parts += [f"{num(moved)} colonnes ne sont pas dans l'ordre du schéma"] if moved and not extra and not absent else []
            return ("; ".join(parts) + ". Corrigez l'en-tête du fichier, ou le schéma, et renvoyez le fichier "
                    "(ses lignes n'ont pas été vérifiées)")
        parts = [f"the header has {num(len(labels))}{plus} labels where the schema has {num(len(names))} fields"]
        parts += [f"{num(len(extra))} labels are not field names ({first(extra)})"] if extra else []
        parts += [f"{num(len(absent))} fields have no label ({first(absent)})"] if absent else []
        parts += [f"{num(moved)} labels are not in the schema's order"] if moved and not extra and not absent else []
        return ("; ".join(parts) + ". Fix the file's header, or the schema, and send the file again (a header this "
                "wide and this different from the schema is summed up in this one error; its rows were not checked)")

    message = say(french=False)
    report = Report.failure("header-error", message, title="Header Error")
    report.task["labels"] = labels
    error = report.task["errors"][0]
    error["tags"] = ["#table", "#header"]
    error["messageFr"] = say(french=True)
    log.info("%s: %s", path.name, message)
    return report
