"""What the API knows about the datasets, read from ``partage.duckdb`` without holding it.

A harvest needs the file to itself for its short metadata transactions (the
locking model in :mod:`partage.warehouse`). So this cache opens the file
read-only for a few milliseconds, copies what it needs into plain objects,
closes it, and reads it again only when the file's size or mtime changed (at
most every ``refresh`` seconds). If the file is busy, the previous snapshot keeps
serving: a version is visible here at most a refresh later than in DuckDB.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from ..errors import WarehouseBusy, WarehouseError
from ..warehouse import META, Warehouse, ident, literal


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str  # DuckDB's type, from the Parquet files
    field: dict[str, Any] | None  # the Table Schema field, None for _source/_row_number/_version


@dataclass(frozen=True)
class Version:
    version: str
    created_at: dt.datetime
    row_count: int
    quarantined: int
    schema_ref: str | None
    schema_sha256: str | None
    files: tuple[str, ...]  # absolute paths of the data parts
    summary: dict[str, Any]


@dataclass(frozen=True)
class Dataset:
    id: str
    title: str
    description: str
    publisher: str | None
    license: str | None
    access: str
    keywords: list[str]
    schema_ref: str | None
    policy: str | None
    last_check: dt.datetime | None
    source_states: dict[str, int]
    versions: tuple[Version, ...]  # oldest first

    @property
    def latest(self) -> Version | None:
        return self.versions[-1] if self.versions else None

    def find(self, version: str) -> Version | None:
        return next((v for v in self.versions if v.version == version), None)

    def as_of(self, when: dt.datetime) -> Version | None:
        """The version that was the latest at ``when``."""
        found = None
        for v in self.versions:
            if v.created_at <= when:
                found = v
        return found


@dataclass
class Snapshot:
    datasets: dict[str, Dataset]
    generation: int
    loaded_at: float = field(default_factory=time.monotonic)


class CatalogCache:
    def __init__(self, warehouse: Warehouse, refresh: float = 1.0):
        self.warehouse = warehouse
        self.refresh = refresh
        self._snapshot: Snapshot | None = None
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self._generation = 0
        self._columns: dict[tuple[str, str], tuple[Column, ...]] = {}
        self._schemas: dict[tuple[str, str], dict[str, Any]] = {}
        self._columns_con = duckdb.connect(":memory:")
        self._columns_lock = threading.Lock()

    def snapshot(self) -> Snapshot:
        snap = self._snapshot
        now = time.monotonic()
        if snap is not None and now - self._checked < self.refresh:
            return snap
        # One thread refreshes; the others go on with the snapshot they have.
        if not self._lock.acquire(blocking=snap is None):
            return snap  # type: ignore[return-value]
        try:
            self._checked = time.monotonic()
            try:
                st = self.warehouse.db_path.stat()
            except FileNotFoundError:
                if snap is None:
                    raise WarehouseError(
                        f"no warehouse at {self.warehouse.db_path}; run `partage harvest` first or pass --warehouse"
                    ) from None
                return snap
            stamp = (st.st_mtime_ns, st.st_size)
            if snap is not None and stamp == self._stamp:
                return snap
            try:
                datasets = self._load(wait=0.0 if snap is not None else 30.0)
            except WarehouseBusy:
                if snap is None:
                    raise
                return snap
            self._generation += 1
            self._snapshot = Snapshot(datasets, self._generation)
            self._stamp = stamp
            return self._snapshot
        finally:
            self._lock.release()

    def _load(self, wait: float) -> dict[str, Dataset]:
        with self.warehouse.connect(read_only=True, wait=wait) as con:
            ds_rows = con.execute(
                f"SELECT id, title, description, publisher, license, access, keywords, schema_ref, policy "
                f"FROM {META}.datasets ORDER BY id"
            ).fetchall()
            v_rows = con.execute(
                f"SELECT dataset_id, version, created_at, row_count, quarantined_rows, schema_ref, schema_sha256, "
                f"parts, summary FROM {META}.versions ORDER BY dataset_id, version"
            ).fetchall()
            s_rows = con.execute(
                f"SELECT dataset_id, state, count(*), max(checked_at) FROM {META}.sources GROUP BY ALL"
            ).fetchall()
        versions: dict[str, list[Version]] = {}
        for d_id, version, created, rows, quarantined, schema_ref, sha, parts, summary in v_rows:
            vdir = self.warehouse.version_dir(d_id, version)  # not the stored path: the warehouse may have moved
            files = tuple(str(vdir / p["data"]) for p in json.loads(parts) if p.get("data"))
            versions.setdefault(d_id, []).append(
                Version(version, created, rows or 0, quarantined or 0, schema_ref, sha, files,
                        json.loads(summary) if summary else {}))
        states: dict[str, dict[str, int]] = {}
        checks: dict[str, dt.datetime] = {}
        for d_id, state, n, checked in s_rows:
            states.setdefault(d_id, {})[state or "unknown"] = n
            if checked is not None and (d_id not in checks or checked > checks[d_id]):
                checks[d_id] = checked
        out = {}
        for d_id, title, description, publisher, license_, access, keywords, schema_ref, policy in ds_rows:
            out[d_id] = Dataset(d_id, title or d_id, description or "", publisher, license_,
                                access or "internal",  # unknown access is treated as the most restricted
                                list(keywords or []), schema_ref, policy, checks.get(d_id), states.get(d_id, {}),
                                tuple(versions.get(d_id, [])))
        return out

    # -- per version, cached forever (versions are immutable) -------------------------

    def schema(self, dataset_id: str, version: str) -> dict[str, Any]:
        key = (dataset_id, version)
        if key not in self._schemas:
            path = self.warehouse.version_dir(dataset_id, version) / "schema.json"
            try:
                self._schemas[key] = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self._schemas[key] = {"fields": []}
        return self._schemas[key]

    def columns(self, dataset: Dataset, version: Version) -> tuple[Column, ...]:
        """Columns as stored (DuckDB types read from the Parquet footers), with their schema field."""
        key = (dataset.id, version.version)
        cols = self._columns.get(key)
        if cols is not None:
            return cols
        fields = {f.get("name"): f for f in self.schema(dataset.id, version.version).get("fields", [])}
        if not version.files:
            cols = tuple(Column(name, "VARCHAR", f) for name, f in fields.items() if name)
        else:
            listed = "[" + ", ".join(literal(f) for f in version.files) + "]"
            with self._columns_lock:
                described = self._columns_con.execute(
                    f"DESCRIBE SELECT * FROM read_parquet({listed}, union_by_name = true)").fetchall()
            cols = tuple(Column(r[0], str(r[1]), fields.get(r[0])) for r in described)
        self._columns[key] = cols
        return cols


def quoted_files(version: Version) -> str:
    return "[" + ", ".join(literal(f) for f in version.files) + "]"


__all__ = ["CatalogCache", "Column", "Dataset", "Snapshot", "Version", "ident", "quoted_files"]
