"""What the API knows about the datasets, read from the lake's metadata tables without holding them.

The cache reads ``_partage.*`` through the store (:func:`partage.store.metadata.catalog_rows`, one
read-only cursor for a few milliseconds), copies it into plain objects, and reads it again only
when the lake has a new snapshot (looked at every ``refresh`` seconds). A version is visible here
at most a refresh later than in SQL. Each version's rows are read by DuckLake time travel
(:func:`relation_of`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import duckdb

from ..errors import WarehouseBusy, WarehouseError
from ..store import metadata
from ..store.warehouse import Warehouse, version_relation

log = logging.getLogger("partage.api")


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
    relation: str  # the SQL relation of its rows: the dataset's lake table at this version's snapshot
    has_data: bool
    summary: dict[str, Any]
    snapshot_id: int | None = None  # the lake snapshot that committed it (None: read from its Parquet parts)


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
    """The first snapshot is read on first use; later ones by a background thread, which also
    lets ``prepare`` (the engine's preloading of new versions) run before a snapshot is served."""

    def __init__(self, warehouse: Warehouse, refresh: float = 1.0,
                 prepare: Callable[[dict[str, Dataset]], None] | None = None, catalog: Path | None = None):
        self.warehouse = warehouse
        self.refresh = refresh
        self.prepare = prepare
        # The catalog directory, when the API runs beside it: each dataset's access is the one its
        # catalog entry says *now* (made internal, a dataset leaves the API within a refresh, without
        # waiting for the next harvest to record it). Its files are looked at on every refresh.
        self.catalog = catalog
        self._catalog_sig: tuple[tuple[str, int, int], ...] | None = None
        self._catalog_access: dict[str, str] = {}
        self._snapshot: Snapshot | None = None
        self._stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self._publish_lock = threading.RLock()
        self._generation = 0
        self._stop = threading.Event()
        self._columns: dict[tuple[str, str], tuple[Column, ...]] = {}
        self._schemas: dict[tuple[str, str], dict[str, Any]] = {}
        self._columns_con = reader(warehouse)
        self._columns_lock = threading.Lock()

    def snapshot(self) -> Snapshot:
        snap = self._snapshot
        if snap is not None:
            return snap
        with self._lock:
            if self._snapshot is None:
                stamp = self._stat()
                if stamp is None:
                    raise WarehouseError(f"no warehouse at {self.warehouse.db_path}; run `partage harvest` first "
                                         "or pass --warehouse")
                self._publish(self._load(wait=30.0), stamp)
                threading.Thread(target=self._refresher, name="partage-catalog-refresh", daemon=True).start()
            return self._snapshot  # type: ignore[return-value]

    def close(self) -> None:
        self._stop.set()
        with self._columns_lock:
            self._columns_con.close()

    def _stat(self) -> tuple[int, int] | None:
        """The lake's latest snapshot: it changes with every commit (None before the first harvest)."""
        try:
            return self.warehouse.stamp()
        except WarehouseError:
            return None

    def refresh_now(self, wait: float = 0.0) -> Snapshot | None:
        """Re-read the catalog at once if its file changed since the snapshot being served.

        For a request naming a version this process has not seen: with ``--workers N`` another
        process, or a client quicker than the refresh interval, may have learnt of it first, and a
        pinned ``next`` link must not answer 404 on one process and 200 on the other. The new
        versions are not copied into memory first (their queries read the lake until the copy is
        made). None when the file changed but a harvest holds it now: the caller cannot know yet.
        ``wait`` is 0 by default: the caller may be an event loop, which must not block on a lock.
        """
        current = self.snapshot()
        stamp = self._stat()
        if stamp is None or stamp == self._stamp:
            return current
        with self._publish_lock:
            if stamp == self._stamp:  # another request re-read it meanwhile
                return self._snapshot
            try:
                datasets = self._load(wait=wait)
            except WarehouseBusy:
                return None
            self._publish(datasets, stamp, prepare=False)
            return self._snapshot

    def _publish(self, datasets: dict[str, Dataset], stamp: tuple[int, int], prepare: bool = True) -> None:
        if prepare and self.prepare is not None:
            self.prepare(datasets)
        with self._publish_lock:
            if self._stamp is not None and stamp[0] < self._stamp[0]:
                return  # refresh_now published a newer catalog while this one was being prepared
            self._generation += 1
            self._snapshot = Snapshot(datasets, self._generation)
            self._stamp = stamp

    def _catalog_signature(self) -> tuple[tuple[str, int, int], ...] | None:
        """The catalog's entry files (names, modification times, sizes): a few stat calls."""
        if self.catalog is None:
            return None
        try:
            return tuple(sorted((p.name, st.st_mtime_ns, st.st_size) for p in self.catalog.iterdir()
                                if p.suffix in (".yaml", ".yml") for st in (p.stat(),)))
        except OSError:
            return None

    def _catalog_changed(self) -> bool:
        sig = self._catalog_signature()
        return sig is not None and sig != self._catalog_sig

    def _read_catalog_access(self) -> dict[str, str]:
        """Each catalog entry's access now. An entry file that does not load (being edited, a typo) is
        served as ``internal`` until it loads again: its access may just have been narrowed, and a
        public reader must never get what its producer has just withdrawn."""
        from ..catalog import read_catalog

        if self.catalog is None:
            return {}
        sig = self._catalog_signature()
        if sig is not None and sig != self._catalog_sig:
            cat, problems = read_catalog(self.catalog)
            access = {i: e.dataset.access for i, e in cat.entries.items()}
            for name, _, _ in sig:
                stem = name.rsplit(".", 1)[0]
                if not stem.startswith("_") and stem not in access:
                    access[stem] = "internal"
            if problems:
                log.warning("catalog %s: %s; an entry that does not load is served as internal until fixed",
                            self.catalog, "; ".join(problems)[:500])
            self._catalog_access, self._catalog_sig = access, sig
        return self._catalog_access

    def _refresher(self) -> None:
        while not self._stop.wait(self.refresh):
            stamp = self._stat()
            if stamp is None or (stamp == self._stamp and not self._catalog_changed()):
                continue
            try:
                datasets = self._load(wait=0.0)
            except WarehouseBusy:
                continue  # a harvest holds the file: keep serving what we have, look again soon
            except Exception:  # noqa: BLE001 - the thread must survive anything; the old snapshot stays
                log.exception("could not refresh the catalog from %s", self.warehouse.db_path)
                continue
            try:
                self._publish(datasets, stamp)
            except Exception:  # noqa: BLE001
                log.exception("could not prepare the new versions")

    def _load(self, wait: float) -> dict[str, Dataset]:
        rows = metadata.catalog_rows(self.warehouse, wait=wait)
        versions: dict[str, list[Version]] = {}
        for v in rows.versions:
            snap = rows.snapshots.get((v.dataset_id, v.version))
            versions.setdefault(v.dataset_id, []).append(
                Version(v.version, v.created_at, v.row_count, v.quarantined_rows, v.schema_ref, v.schema_sha256,
                        relation_of(self.warehouse, v, snap), bool(v.parts), v.summary, snap))
        states: dict[str, dict[str, int]] = {}
        checks: dict[str, dt.datetime] = {}
        for c in rows.source_states:
            by_state = states.setdefault(c.dataset_id, {})
            by_state[c.state or "unknown"] = by_state.get(c.state or "unknown", 0) + c.count
            if c.last_checked is not None and (c.dataset_id not in checks or c.last_checked > checks[c.dataset_id]):
                checks[c.dataset_id] = c.last_checked
        out = {}
        now_in_catalog = self._read_catalog_access()
        for d in rows.datasets:
            out[d.id] = Dataset(d.id, d.title or d.id, d.description or "", d.publisher, d.license,
                                d.access or "internal",  # unknown access is treated as the most restricted
                                list(d.keywords), d.schema_ref, d.policy, checks.get(d.id), states.get(d.id, {}),
                                tuple(versions.get(d.id, [])))
            if d.id in now_in_catalog and now_in_catalog[d.id] != out[d.id].access:
                out[d.id] = replace(out[d.id], access=now_in_catalog[d.id])
        return out

    # -- per version, cached forever (versions are immutable) -------------------------

    def schema(self, dataset_id: str, version: str) -> dict[str, Any]:
        key = (dataset_id, version)
        if key not in self._schemas:
            try:  # on an object-store warehouse, fetched once from the bucket when another machine wrote it
                path = self.warehouse.version_file(dataset_id, version, "schema.json")
                if path is None:
                    raise FileNotFoundError(dataset_id, version)
                self._schemas[key] = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError, WarehouseError):
                self._schemas[key] = {"fields": []}
        return self._schemas[key]

    def columns(self, dataset: Dataset, version: Version) -> tuple[Column, ...]:
        """Columns as stored (DuckDB types read from the Parquet footers), with their schema field."""
        key = (dataset.id, version.version)
        cols = self._columns.get(key)
        if cols is not None:
            return cols
        fields = {f.get("name"): f for f in self.schema(dataset.id, version.version).get("fields", [])}
        if not version.has_data:
            cols = tuple(Column(name, "VARCHAR", f) for name, f in fields.items() if name)
        else:
            with self._columns_lock:
                described = self._columns_con.execute(f"DESCRIBE SELECT * FROM {version.relation}").fetchall()
            cols = tuple(Column(r[0], str(r[1]), fields.get(r[0])) for r in described)
        self._columns[key] = cols
        return cols


def reader(warehouse: Warehouse) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that reads what :func:`relation_of` gives: the lake attached read-only, and
    the object store's files registered (the fallback reads a version's parts there)."""
    from ..store.engine import connect

    con = connect()
    try:
        con.execute(warehouse.lake.attach_sql(read_only=True))
        warehouse.register(con)
    except BaseException:
        con.close()
        raise
    return con


def relation_of(warehouse: Warehouse, version: metadata.VersionRecord, snapshot_id: int | None) -> str:
    """Where the API reads a version's rows: DuckLake time travel on the dataset's table.

    ``lake.main."<id>" AT (VERSION => snapshot)`` is what analysts read (``partage history`` prints
    it), so the API and SQL give the same rows for a version. Measured against the version's own
    Parquet parts (``bench/api_time_travel.py``, 1M rows, one thread, a loaded 2-core machine): a
    filtered page or count is 1.3-1.5x slower from the lake (94 -> 122 ms, 4.7 -> 6.9 ms: its
    catalog is read at each query), a sorted page 2-5x faster, and the copy into memory, which
    serves every version within PARTAGE_API_CACHE_ROWS, 1.7-2.5x faster. Not enough either way to
    keep a second reader. A version no snapshot commits (not expected: gc keeps the snapshot of
    every kept version) is read from its parts, the rows the lake table was written from."""
    if not version.parts:
        return ""
    if snapshot_id is not None:
        return "(SELECT * FROM " + metadata.time_travel_relation(version.dataset_id, snapshot_id) + ")"
    # Not the stored path: the warehouse may have moved since.
    return version_relation(warehouse.location(version.dataset_id, version.version), version.parts, version.summary)


def indexed_columns(columns: tuple[Column, ...], schema: dict[str, Any]) -> list[str]:
    """Columns worth an index in memory: the primary key, and codes (a ``pattern``: INSEE, SIREN…)
    that data services look rows up by."""
    pk = schema.get("primaryKey") or []
    pk = [pk] if isinstance(pk, str) else list(pk)
    names = {c.name for c in columns}
    out = [c for c in pk if c in names]
    for c in columns:
        if c.field and (c.field.get("constraints") or {}).get("pattern") and c.name not in out \
                and c.sql_type.upper() == "VARCHAR":
            out.append(c.name)
    return out[:6]
