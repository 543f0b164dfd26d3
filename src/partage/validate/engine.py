"""Validation and typing: DuckDB SQL first, frictionless-py where SQL cannot follow.

``validate()`` is the one entry point the CLI and the pipeline use to judge a
file; ``validate_and_type()`` does the same while writing the typed Parquet and
the quarantine. Both run the SQL engine (:mod:`.sqlengine`, schema compiled by
:mod:`.compiler`); a file or schema feature it does not cover yet (see
docs/validation.md) sends the file to frictionless-py, logged with the
feature's name, so the verdict is the same either way.
"""

from __future__ import annotations

import copy
import json
import logging
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa

from ..dialect import Dialect
from ..schemas import ResolvedSchema
from .arrow import (
    BatchWriter,
    CastError,
    data_schema,
    make_converter,
    quarantine_schema,
)
from .compiler import Unsupported
from .header import wide_header_report
from .ragged import ragged_row_report
from .report import UNTYPABLE_ERROR_TYPES, Report, RowTally, add_french, describe_error
from .reread import rewrite_as_frictionless_reads
from .sqlengine import Outcome, Output, Reference, ScanChoice, SqlValidation

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


def _resource(path: Path, descriptor: dict[str, Any] | None, dialect: Dialect) -> Any:
    """frictionless' resource for the file; without a schema (``descriptor`` None) it only reads cells."""
    from frictionless import Dialect as FDialect
    from frictionless import Resource, Schema
    from frictionless.formats import CsvControl

    options: dict[str, Any] = {"format": dialect.format}
    if descriptor is not None:
        options["schema"] = Schema.from_descriptor(descriptor)
    if dialect.format == "csv":
        options["encoding"] = dialect.encoding
        options["dialect"] = FDialect(controls=[CsvControl(delimiter=dialect.delimiter, quote_char=dialect.quote_char)])
    # frictionless refuses absolute paths ("not safe"); a basepath makes the path relative.
    return Resource(path=path.name, basepath=str(path.parent), **options)


def _local_keys(descriptor: dict[str, Any], name: str | None, stem: str) -> tuple[dict[str, Any], list[str]]:
    """The descriptor as frictionless-py can check it, and a warning for each foreign key it cannot.

    frictionless-py resolves keys to other resources only inside a data package it reads; the hub's
    datasets are Parquet in the warehouse, which only the SQL engine reads. A key to the dataset's own
    id is a self-reference: frictionless knows one by the file's name (``stem``) or an empty name."""
    keys = descriptor.get("foreignKeys")
    if not isinstance(keys, list):
        return descriptor, []
    kept, warnings = [], []
    for fk in keys:
        ref = fk.get("reference") if isinstance(fk, dict) else None
        resource = ref.get("resource") if isinstance(ref, dict) else None
        if ref and resource and resource == name and resource != stem:
            kept.append({**fk, "reference": {**ref, "resource": ""}})
        elif resource and resource != stem:
            warnings.append(f"the foreign key {fk.get('fields')!r} -> {resource!r} was not checked: this file went to "
                            "frictionless-py (see the log for why), which cannot read the hub's other datasets")
        else:
            kept.append(fk)
    return {**descriptor, "foreignKeys": kept}, warnings


def _run(path: Path, descriptor: dict[str, Any], dialect: Dialect, on_row: Any = None, name: str | None = None) -> Report:
    import csv

    csv.field_size_limit(1 << 30)  # real files have huge cells (geometries); the default 128 KiB fails them
    summed = wide_header_report(path, descriptor, dialect) or ragged_row_report(path, descriptor, dialect)
    if summed is not None:  # what would take frictionless-py minutes, said in one error
        return summed
    descriptor, warnings = _local_keys(descriptor, name, path.stem)
    from frictionless import Checklist

    tally = RowTally()

    def each(row: Any) -> None:
        tally.add(row)
        if on_row is not None:
            on_row(row)

    try:
        resource = _resource(path, descriptor, dialect)
        # row errors are counted as they come (RowTally), not all kept by frictionless-py until the end
        result = resource.validate(checklist=Checklist(skip_errors=["#row"]), on_row=each, limit_errors=0)
    except Exception as e:  # a file we cannot read must give a report, never a crash
        log.debug("validation crashed", exc_info=True)
        return Report.failure("source-error", f"the file could not be read as {dialect.format}: {type(e).__name__}: {e}")
    report = Report.from_frictionless(result, tally=tally)
    for w in warnings:
        log.warning("%s: %s", path.name, w)
        report.descriptor.setdefault("warnings", []).append(w)
        for task in report.descriptor.get("tasks", []):
            task.setdefault("warnings", []).append(w)
    return report


def _fallback(feature: str, path: Path) -> None:
    log.info("validating %s with frictionless-py: the SQL engine does not cover %s yet", path.name, feature)


def _sql(path: Path, descriptor: dict[str, Any], dialect: Dialect, timezone: str, out: Output | None,
         tmp_root: Path | None = None, references: dict[str, Reference] | None = None,
         name: str | None = None, scan: ScanChoice = "auto") -> Outcome | None:
    """The SQL engine's outcome, or None when the file must go to frictionless-py (logged with the feature).

    A file whose cells DuckDB's reader would not read as Python's csv does is judged on a copy written as
    frictionless reads it (validate/reread.py): slower than a direct read, far faster than frictionless-py."""
    outcome = _sql_run(path, descriptor, dialect, timezone, out, tmp_root, references, name, scan=scan)
    if not isinstance(outcome, Unsupported):
        return outcome
    if outcome.reread:
        with tempfile.TemporaryDirectory(prefix="partage-reread-", dir=tmp_root) as tmp:
            copied = Path(tmp) / path.name
            blank_rows = rewrite_as_frictionless_reads(path, dialect, copied)
            if blank_rows is not None:
                log.info("validating %s in SQL on a copy written as frictionless reads it: %s", path.name, outcome.feature)
                again = _sql_run(copied, descriptor, replace(dialect, encoding="utf-8", quote_char='"'), timezone, out,
                                 tmp_root, references, name or path.stem, origin=path, blank_rows=blank_rows,
                                 scan=scan)
                if not isinstance(again, Unsupported):
                    return again
                outcome = again
    _fallback(outcome.feature, path)
    return None


def _sql_run(path: Path, descriptor: dict[str, Any], dialect: Dialect, timezone: str, out: Output | None,
             tmp_root: Path | None, references: dict[str, Reference] | None, name: str | None,
             origin: Path | None = None, blank_rows: tuple[int, ...] | None = None,
             scan: ScanChoice = "auto") -> Outcome | Unsupported | None:
    """One SQL run: its outcome, what it does not cover, or None after an engine error (logged)."""
    from frictionless import FrictionlessException

    try:
        run = SqlValidation(path, descriptor, dialect, timezone=timezone, tmp_root=tmp_root, references=references,
                            name=name, origin=origin, blank_rows=blank_rows, scan=scan)
    except Unsupported as e:
        return e
    except FrictionlessException as e:
        return Unsupported(f"a schema frictionless-py reports as invalid ({e})")
    result: Outcome | Unsupported | None = None
    try:
        return run.run(out)
    except Unsupported as e:
        result = e
    except FrictionlessException as e:  # a schema frictionless calls invalid, met where the engine asks it
        result = Unsupported(f"a schema frictionless-py reports as invalid ({e})")
    except (duckdb.Error, pa.ArrowException) as e:  # an engine bug must never cost a verdict
        log.warning("SQL validation of %s failed (%s: %s); using frictionless-py", (origin or path).name,
                    type(e).__name__, e)
    finally:
        run.close()
    if out is not None:
        for p in (out.data_path, out.quarantine_path):
            p.unlink(missing_ok=True)
    return result


def validate(path: Path, schema: ResolvedSchema | dict[str, Any], dialect: Dialect, *,
             timezone: str = "Europe/Paris", engine: Literal["auto", "frictionless"] = "auto",
             references: dict[str, Reference] | None = None, name: str | None = None,
             scan: ScanChoice = "auto") -> Report:
    """Judge ``path`` against ``schema``; the report has frictionless' shape.

    ``references`` gives the rows of the other datasets the schema's foreign keys point to (see
    :func:`partage.pipeline.foreign_references`); ``name`` is the dataset's own id (a key to it is a self-reference).
    ``scan="two-step"`` forces the two-step scan, which "auto" takes only when DuckDB's plan would not keep
    the file's order: tests use it to cover both scans whatever a DuckDB version's planner chooses."""
    descriptor = prepared_descriptor(schema, dialect)
    name = name or path.stem  # frictionless names a resource after its file
    if engine == "auto":
        outcome = _sql(path, descriptor, dialect, timezone, None, references=references, name=name, scan=scan)
        if outcome is not None:
            add_french(outcome.report.descriptor)
            return outcome.report
    report = _run(path, descriptor, dialect, name=name)
    report.descriptor["partage_engine"] = {"engine": "frictionless"}
    add_french(report.descriptor)
    return report


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
    engine: Literal["auto", "frictionless"] = "auto",
    tmp_root: Path | None = None,
    references: dict[str, Reference] | None = None,
    name: str | None = None,
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
    name = name or path.stem  # frictionless names a resource after its file
    fields = descriptor.get("fields", [])
    if engine == "auto":
        out = Output(policy, source_key, data_path, quarantine_path, data_schema(fields), quarantine_schema(fields))
        # DuckDB spills next to the output (the warehouse's staging dir), never to a small system /tmp
        data_path.parent.mkdir(parents=True, exist_ok=True)
        outcome = _sql(path, descriptor, dialect, timezone, out, tmp_root or data_path.parent, references, name)
        if outcome is not None:
            return _decide(outcome.report, policy, outcome.rows, outcome.quarantined, data_path, quarantine_path)
    return _frictionless_and_type(path, descriptor, dialect, policy=policy, source_key=source_key,
                                  data_path=data_path, quarantine_path=quarantine_path, timezone=timezone, name=name)


def _frictionless_and_type(
    path: Path, descriptor: dict[str, Any], dialect: Dialect, *, policy: Policy, source_key: str,
    data_path: Path, quarantine_path: Path, timezone: str, name: str | None = None,
) -> TypedResult:
    """The frictionless-py pass (one read, rows typed in Python): the fallback of the SQL engine."""
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

    report = _run(path, descriptor, dialect, on_row, name=name)
    report.descriptor["partage_engine"] = {"engine": "frictionless"}
    data.close()
    quarantine.close()
    return _decide(report, policy, data.rows, quarantine.rows, data_path, quarantine_path)


def _decide(report: Report, policy: Policy, stored: int, quarantined: int, data_path: Path,
            quarantine_path: Path) -> TypedResult:
    """Apply the policy to what was written; a rejected file leaves nothing behind."""
    add_french(report.descriptor)

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
    if stored == 0 and quarantined > 0:
        return rejected(f"every row is invalid ({quarantined} rows), first: {report.first_error()}")
    if quarantined == 0:
        quarantine_path.unlink(missing_ok=True)
    if report.error_count:
        reason = f"{stored} rows stored, {quarantined} quarantined; {report.error_count} error(s), first: {report.first_error()}"
    else:
        reason = f"{stored} rows stored, valid"
    return TypedResult(report, True, reason, stored, quarantined, data_path,
                       quarantine_path if quarantined else None)
