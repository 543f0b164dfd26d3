"""The validation report, in frictionless' report shape.

We keep frictionless' JSON layout (``valid``, ``stats``, ``tasks[].errors`` with
``type``, ``rowNumber``, ``fieldName``, ``note``, ``message``) so Validata-style
tools can read what Partage stores. The list of errors is capped when stored
(all invalid rows are kept, with their errors, in the quarantine table); the
counts are never capped.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# Errors that concern the file or its header rather than one row: the columns
# cannot be trusted, so the file is rejected whatever the policy.
ROW_ERROR_TYPES = {
    "type-error", "constraint-error", "missing-cell", "extra-cell", "blank-row",
    "primary-key", "unique-error", "foreign-key", "row-constraint", "sequential-value",
    "truncated-value", "forbidden-value", "deviated-value", "ascii-value", "duplicate-row",
}
# Rows that cannot be stored as typed data even under the lenient `warn` policy: a cell that cannot be
# typed (storing NULL would lose the value), or a blank row (it carries no data at all).
UNTYPABLE_ERROR_TYPES = {"type-error", "partage-cast-error", "blank-row"}
STORED_ERRORS_LIMIT = 1000


@dataclass
class RowTally:
    """The row errors of a frictionless-py run, counted as they come: the first ``limit`` kept as
    descriptors, the rest only counted. frictionless-py otherwise keeps every error object, each with a
    copy of its row, until the end: a big file where every row is wrong (a renamed column, a wrong schema
    version) took 3.7 KB per error, 18 GB for 5M errors."""

    limit: int = STORED_ERRORS_LIMIT
    count: int = 0
    invalid_rows: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    stored: list[dict[str, Any]] = field(default_factory=list)

    def add(self, row: Any) -> None:
        """frictionless' ``on_row``: the row's errors are computed by then (its baseline check read them)."""
        errors = row.errors
        if not errors:
            return
        self.invalid_rows += 1
        for error in errors:
            self.count += 1
            self.by_type[error.type] += 1
            if len(self.stored) < self.limit:
                self.stored.append(error.to_descriptor())


@dataclass
class Report:
    descriptor: dict[str, Any]
    error_count: int
    row_count: int
    invalid_rows: int = 0
    errors_by_type: dict[str, int] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return bool(self.descriptor.get("valid"))

    @property
    def task(self) -> dict[str, Any]:
        tasks = self.descriptor.get("tasks") or [{}]
        return tasks[0]

    @property
    def errors(self) -> list[dict[str, Any]]:
        return list(self.task.get("errors", []))

    @property
    def file_errors(self) -> list[dict[str, Any]]:
        """Errors about the file or its header (no row, or a non-row error type)."""
        return [e for e in self.errors if e.get("type") not in ROW_ERROR_TYPES]

    def summary(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "rows": self.row_count,
            "errors": self.error_count,
            "invalid_rows": self.invalid_rows,
            "errors_by_type": self.errors_by_type,
        }

    def first_error(self) -> str:
        for e in self.errors:
            return describe_error(e)
        return ""

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.descriptor, ensure_ascii=False, indent=indent, default=str)

    @classmethod
    def from_frictionless(cls, report: Any, *, limit: int = STORED_ERRORS_LIMIT, tally: RowTally | None = None) -> Report:
        """``tally``: the row errors, counted as frictionless-py found them rather than kept in its report
        (see :class:`RowTally`); they go after the header's errors, as frictionless orders them."""
        desc = report.to_descriptor()
        task = (desc.get("tasks") or [{}])[0]
        errors = task.get("errors", [])
        invalid_rows = len({e["rowNumber"] for e in errors if e.get("rowNumber")})
        by_type = Counter(e.get("type", "?") for e in errors)
        count = len(errors)
        if tally is not None and tally.count:
            head = [e for e in errors if "#header" in (e.get("tags") or [])]
            errors = head + tally.stored + [e for e in errors if "#header" not in (e.get("tags") or [])]
            count += tally.count
            by_type.update(tally.by_type)
            invalid_rows += tally.invalid_rows
            task["errors"] = errors
            desc["valid"] = task["valid"] = False
            task.setdefault("stats", {})["errors"] = count
            desc.setdefault("stats", {})["errors"] = count
        rows = int(task.get("stats", {}).get("rows") or 0)
        if count > limit:
            task["errors"] = errors[:limit]
            task.setdefault("warnings", []).append(
                f"report truncated to the first {limit} of {count} errors; every invalid row and its errors "
                "is kept in the dataset's quarantine table"
            )
        return cls(desc, count, rows, invalid_rows, dict(by_type))

    @classmethod
    def failure(cls, error_type: str, message: str, *, title: str = "Could not validate") -> Report:
        """A report for a file that could not be read at all (same shape, one file-level error)."""
        err = {"type": error_type, "title": title, "description": "", "message": message, "tags": ["#file"], "note": message}
        desc = {
            "valid": False,
            "stats": {"tasks": 1, "errors": 1, "warnings": 0, "seconds": 0},
            "warnings": [],
            "errors": [],
            "tasks": [{"name": "", "type": "table", "valid": False, "place": "", "labels": [],
                       "stats": {"errors": 1, "warnings": 0, "seconds": 0}, "warnings": [], "errors": [err]}],
        }
        return cls(desc, 1, 0, 0, {error_type: 1})


FRENCH: dict[str, str] = {
    "type-error": "La cellule « {cell} » (ligne {rowNumber}, champ « {fieldName} », colonne {fieldNumber}) "
                  "n'a pas le type attendu : {note}",
    "constraint-error": "La cellule « {cell} » (ligne {rowNumber}, champ « {fieldName} », colonne {fieldNumber}) "
                        "ne respecte pas une contrainte : {note}",
    "primary-key": "La ligne {rowNumber} a une clé primaire en double ou vide : {note}",
    "unique-error": "La cellule « {cell} » (ligne {rowNumber}, champ « {fieldName} ») est en double : {note}",
    "blank-row": "La ligne {rowNumber} est vide",
    "missing-cell": "La ligne {rowNumber} n'a pas de cellule pour le champ « {fieldName} » (colonne {fieldNumber})",
    "extra-cell": "La ligne {rowNumber} a une cellule en trop (colonne {fieldNumber}) : « {cell} »",
}


def add_french(descriptor: dict[str, Any]) -> dict[str, Any]:
    """Give every error a ``messageFr`` beside frictionless' English ``message``: producers read French."""
    from ..report.i18n import ERROR_TITLES

    for task in descriptor.get("tasks", []):
        for e in task.get("errors", []):
            if e.get("messageFr"):  # written in French where it was made (a header summed up by the engine)
                continue
            template = FRENCH.get(e.get("type", ""))
            values = {k: e.get(k, "") for k in ("cell", "rowNumber", "fieldName", "fieldNumber", "note")}
            values["note"] = values["note"] or ""
            if template:
                e["messageFr"] = template.format(**values)
            else:
                title = ERROR_TITLES["fr"].get(e.get("type", ""), e.get("title", "Erreur"))
                e["messageFr"] = f"{title} : {e.get('note') or e.get('message', '')}"
    return descriptor


def describe_error(e: dict[str, Any]) -> str:
    """One line a producer understands: where, which field, what."""
    where = []
    if e.get("rowNumber"):
        where.append(f"row {e['rowNumber']}")
    if e.get("fieldName"):
        where.append(f"field '{e['fieldName']}'")
    prefix = ", ".join(where)
    msg = e.get("message") or e.get("note") or e.get("type", "error")
    return f"{prefix}: {msg}" if prefix else str(msg)
