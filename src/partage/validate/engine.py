"""Validation and typing, backed by frictionless-py for now.

``validate()`` is the one entry point the CLI and the pipeline use to judge a
file; ``validate_and_type()`` does the same pass while writing the typed
Parquet and the quarantine, so a file is read once. Issue #3 replaces the
inside of both with a DuckDB SQL engine; their signatures are the contract.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from ..dialect import Dialect
from ..schemas import ResolvedSchema
from .arrow import (
    BatchWriter,
    CastError,
    data_schema,
    make_converter,
    quarantine_schema,
)
from .report import UNTYPABLE_ERROR_TYPES, Report, describe_error

log = logging.getLogger("partage.validate")

Policy = Literal["reject", "quarantine", "warn"]


def prepared_descriptor(schema: ResolvedSchema | dict[str, Any], dialect: Dialect) -> dict[str, Any]:
    """The schema as validated: the catalog's decimalChar/groupChar apply to numeric fields that set none."""
    desc = copy.deepcopy(schema.descriptor if isinstance(schema, ResolvedSchema) else schema)
    for f in desc.get("fields", []):
        if f.get("type") in ("number", "integer"):
            if dialect.decimal_char and f.get("type") == "number":
                f.setdefault("decimalChar", dialect.decimal_char)
            if dialect.group_char:
                f.setdefault("groupChar", dialect.group_char)
    return desc


def _resource(path: Path, descriptor: dict[str, Any], dialect: Dialect) -> Any:
    from frictionless import Dialect as FDialect
    from frictionless import Resource, Schema
    from frictionless.formats import CsvControl

    options: dict[str, Any] = {"format": dialect.format, "schema": Schema.from_descriptor(descriptor)}
    if dialect.format == "csv":
        options["encoding"] = dialect.encoding
        options["dialect"] = FDialect(controls=[CsvControl(delimiter=dialect.delimiter, quote_char=dialect.quote_char)])
    # frictionless refuses absolute paths ("not safe"); a basepath makes the path relative.
    return Resource(path=path.name, basepath=str(path.parent), **options)


def _run(path: Path, descriptor: dict[str, Any], dialect: Dialect, on_row: Any = None) -> Report:
    import csv

    csv.field_size_limit(1 << 30)  # real files have huge cells (geometries); the default 128 KiB fails them
    try:
        resource = _resource(path, descriptor, dialect)
        result = resource.validate(on_row=on_row, limit_errors=0)
    except Exception as e:  # a file we cannot read must give a report, never a crash
        log.debug("validation crashed", exc_info=True)
        return Report.failure("source-error", f"the file could not be read as {dialect.format}: {type(e).__name__}: {e}")
    return Report.from_frictionless(result)


def validate(path: Path, schema: ResolvedSchema | dict[str, Any], dialect: Dialect) -> Report:
    """Judge ``path`` against ``schema``; the report has frictionless' shape."""
    return _run(path, prepared_descriptor(schema, dialect), dialect)


@dataclass(frozen=True)
class TypedResult:
    report: Report
    accepted: bool
    reason: str
    rows: int  # rows stored in the data file
    quarantined: int
    data_path: Path | None
    quarantine_path: Path | None


def validate_and_type(
    path: Path,
    schema: ResolvedSchema | dict[str, Any],
    dialect: Dialect,
    *,
    policy: Policy,
    source_key: str,
    data_path: Path,
    quarantine_path: Path,
    timezone: str = "Europe/Paris",
) -> TypedResult:
    """Validate and write typed rows in one pass, then apply the entry's policy.

    * ``reject``: any error rejects the file (nothing written stays).
    * ``quarantine``: valid rows are stored; invalid rows go, as original text
      with their errors, to the quarantine file.
    * ``warn``: every row that can be typed is stored (constraint errors are
      reported, not enforced); rows with a cell that cannot be typed are
      quarantined, so no value is silently turned into NULL.

    Errors about the file or its header reject it under every policy: when the
    columns do not line up with the schema, no row can be trusted.
    """
    descriptor = prepared_descriptor(schema, dialect)
    fields = descriptor.get("fields", [])
    names = [f["name"] for f in fields]
    tz = ZoneInfo(timezone)
    converters = [make_converter(f, tz) for f in fields]
    data = BatchWriter(data_path, data_schema(fields))
    quarantine = BatchWriter(quarantine_path, quarantine_schema(fields))
    width = len(names)

    def on_row(row: Any) -> None:
        errors = [
            {"type": e.type, "field": getattr(e, "field_name", None), "message": e.message}
            for e in row.errors
        ]
        typable = not any(e["type"] in UNTYPABLE_ERROR_TYPES for e in errors)
        keep = not errors if policy != "warn" else typable
        values: list[Any] = []
        if keep:
            for conv, name in zip(converters, names):
                try:
                    values.append(conv(row[name]))
                except (CastError, ValueError, TypeError, OverflowError) as e:
                    errors.append({"type": "partage-cast-error", "field": name,
                                   "message": f"field '{name}': {e}; kept in quarantine rather than stored wrong"})
                    keep = False
                    break
        if keep:
            data.append(values + [source_key, row.row_number])
        else:
            cells = [None if c is None else str(c) for c in list(row.cells)[:width]]
            cells += [None] * (width - len(cells))
            quarantine.append(cells + [source_key, row.row_number, json.dumps(errors, ensure_ascii=False)])

    report = _run(path, descriptor, dialect, on_row)
    data.close()
    quarantine.close()

    def rejected(reason: str) -> TypedResult:
        for p in (data_path, quarantine_path):
            p.unlink(missing_ok=True)
        return TypedResult(report, False, reason, 0, 0, None, None)

    if report.file_errors:
        first = describe_error(report.file_errors[0])
        return rejected(
            f"the file cannot be read against the schema ({first}); fix the file's header/format or the schema. "
            "Rejected under every policy"
        )
    if report.error_count and policy == "reject":
        return rejected(
            f"{report.error_count} error(s) in {report.invalid_rows} row(s), first: {report.first_error()}; "
            "policy 'reject' keeps the previous version. Fix the file, or use policy 'quarantine'"
        )
    if data.rows == 0 and quarantine.rows > 0:
        return rejected(f"every row is invalid ({quarantine.rows} rows), first: {report.first_error()}")
    if quarantine.rows == 0:
        quarantine_path.unlink(missing_ok=True)
    if report.error_count:
        reason = f"{data.rows} rows stored, {quarantine.rows} quarantined; {report.error_count} error(s), first: {report.first_error()}"
    else:
        reason = f"{data.rows} rows stored, valid"
    return TypedResult(report, True, reason, data.rows, quarantine.rows, data_path,
                       quarantine_path if quarantine.rows else None)
