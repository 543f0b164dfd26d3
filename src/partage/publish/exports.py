"""Files published for a version: one Parquet, a CSV that validates against the schema, the report.

Exports are derived from an immutable version, so each is written once
(to a temporary name, then renamed) under ``<warehouse>/exports/<id>/<version>/``
and reused: the same version always publishes the same bytes, which is what
lets a republish compare sha256 and upload nothing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..rawstore import file_sha256
from ..validate.arrow import ROW_COLUMN, SOURCE_COLUMN
from ..store.warehouse import SOURCE_VERSION, VersionInfo, Warehouse, ident, literal, version_relation


@dataclass(frozen=True)
class ExportFile:
    role: str  # data-parquet, data-csv, schema, report
    path: Path
    sha256: str
    bytes: int
    format: str
    mediatype: str


def _text_expr(field: dict[str, Any]) -> str:
    """SQL giving a field's value back as text in the schema's own format."""
    col = ident(field["name"])
    kind = field.get("type", "string")
    fmt = field.get("format", "default")
    if kind == "geopoint":
        if fmt == "array":
            return f"'[' || {col}.lon || ', ' || {col}.lat || ']'"
        if fmt == "object":
            return f"'{{\"lon\": ' || {col}.lon || ', \"lat\": ' || {col}.lat || '}}'"
        return f"{col}.lon || ',' || {col}.lat"
    if kind == "boolean":
        true = (field.get("trueValues") or ["true"])[0]
        false = (field.get("falseValues") or ["false"])[0]
        return f"CASE WHEN {col} IS NULL THEN NULL WHEN {col} THEN {literal(true)} ELSE {literal(false)} END"
    if kind in ("date", "time") and isinstance(fmt, str) and "%" in fmt:
        return f"strftime({col}, {literal(fmt)})"
    if kind == "datetime":
        pattern = fmt if isinstance(fmt, str) and "%" in fmt else "%Y-%m-%dT%H:%M:%SZ"
        return f"strftime(timezone('UTC', {col}), {literal(pattern)})"
    return f"CAST({col} AS VARCHAR)"


def _atomic(path: Path, write) -> Path:  # type: ignore[no-untyped-def]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _describe(role: str, path: Path, fmt: str, mediatype: str) -> ExportFile:
    return ExportFile(role, path, file_sha256(path), path.stat().st_size, fmt, mediatype)


def exports(warehouse: Warehouse, info: VersionInfo) -> list[ExportFile]:
    """The four files a catalog entry offers, written once per version."""
    base = warehouse.root / "exports" / info.dataset_id / info.version
    # the rows the views show (consolidation rule applied), without the per-row version column
    source = f"(SELECT * EXCLUDE ({SOURCE_VERSION}) FROM {version_relation(info.location or info.path, info.parts, info.summary)})"
    order = f"ORDER BY {ident(SOURCE_COLUMN)}, {ident(ROW_COLUMN)}"
    fields = info.schema.get("fields", [])

    parquet = base / f"{info.dataset_id}.parquet"
    csv = base / f"{info.dataset_id}.csv"
    report = base / "validation-report.json"
    if not parquet.exists() or not csv.exists():
        import duckdb

        con = duckdb.connect()  # in-memory: the warehouse file is not held while exporting
        warehouse.register(con)
        try:
            if not parquet.exists():
                _atomic(parquet, lambda t: con.execute(
                    f"COPY (SELECT * FROM {source} {order}) TO {literal(str(t))} (FORMAT parquet, COMPRESSION zstd)"))
            if not csv.exists():
                cols = ", ".join(f"{_text_expr(f)} AS {ident(f['name'])}" for f in fields)
                _atomic(csv, lambda t: con.execute(
                    f"COPY (SELECT {cols} FROM {source} {order}) TO {literal(str(t))} (FORMAT csv, HEADER true, DELIMITER ',')"))
        finally:
            con.close()
    if not report.exists():
        content = {
            "dataset": info.dataset_id,
            "version": info.version,
            "schema": {"ref": info.schema_ref, "sha256": info.schema_sha256},
            "summary": info.summary,
            "sources": {key: json.loads(f.read_text(encoding="utf-8")) for key, f in sorted(info.report_files(warehouse.root).items())},
        }
        _atomic(report, lambda t: t.write_text(json.dumps(content, ensure_ascii=False, indent=2, default=str), encoding="utf-8"))
    return [
        _describe("data-parquet", parquet, "Parquet", "application/vnd.apache.parquet"),
        _describe("data-csv", csv, "CSV", "text/csv"),
        _describe("schema", info.path / "schema.json", "JSON", "application/schema+json"),
        _describe("report", report, "JSON", "application/json"),
    ]
