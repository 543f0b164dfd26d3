"""The lake's metadata tables (``_partage.*``) as typed records: what the CLI, gc, the report and the API read.

Only the store writes SQL on these tables (STYLE: one owner per piece of state). Every other stage
calls a function here and gets frozen dataclasses with named fields, so a column added to a table
or a query changed never shifts a positional tuple in a caller. The harvest's own reads and writes
(``Warehouse.dataset_state``, ``publish_version``…) stay in :mod:`partage.store.warehouse`.

Each function opens its own read-only cursor: one consistent DuckLake snapshot per call. A caller
that needs several reads from one moment (the API's catalog) uses the function that returns them
together (:func:`catalog_rows`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

import duckdb

from .warehouse import META, Part, Warehouse, ident
from .lake import LAKE

log = logging.getLogger("partage.store")

SourceState = Literal["unchanged", "updated", "rejected", "failed", "gone", "skipped"]
SOURCE_STATES: tuple[str, ...] = get_args(SourceState)
NOT_OK_STATES = ("rejected", "failed")  # what `partage status` counts as "not ok"


def source_state(value: str | None) -> SourceState | None:
    """A state read from ``_partage.sources``, checked once here (None when missing or unknown)."""
    if value is None:
        return None
    if value not in SOURCE_STATES:
        log.warning("unknown source state %r in the lake's metadata; shown as none", value)
        return None
    return cast(SourceState, value)


def _parts(text: str | None) -> list[Part]:
    return [Part(**p) for p in json.loads(text or "[]")]


# -- records ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetRecord:
    """A row of ``_partage.datasets``: the catalog entry as the last harvest recorded it."""

    id: str
    title: str | None
    description: str | None
    publisher: str | None
    license: str | None
    access: str | None
    keywords: tuple[str, ...]
    schema_ref: str | None
    policy: str | None


@dataclass(frozen=True)
class VersionRecord:
    """A row of ``_partage.versions``: one stored version of a dataset."""

    dataset_id: str
    version: str
    created_at: dt.datetime
    path: str  # the data location recorded at harvest time (Warehouse.location gives today's)
    row_count: int
    quarantined_rows: int
    schema_ref: str | None
    schema_sha256: str | None
    parts: list[Part]
    summary: dict[str, Any]  # the validation summary as the harvest wrote it (rows, duplicates, quality)

    @property
    def new_parts(self) -> list[str]:
        """The sources whose data arrived in this version (the others were carried over)."""
        return [p.source_key for p in self.parts if p.since_version == self.version]

    @property
    def raw_files(self) -> set[str]:
        """The sha256 of each raw file this version's parts came from."""
        return {p.sha256 for p in self.parts}


@dataclass(frozen=True)
class SourceStatus:
    """A row of ``_partage.sources``: the last state of a source and why."""

    dataset_id: str
    source_key: str
    label: str | None
    remote_id: str | None
    state: SourceState | None
    layer: str | None  # what decided the state: etag, last-modified, size, sha256…
    reason: str | None
    checked_at: dt.datetime | None
    changed_at: dt.datetime | None
    gone_since: dt.datetime | None


@dataclass(frozen=True)
class DatasetStatus:
    """One line of ``partage status``: a dataset, its latest version and its sources' states."""

    id: str
    access: str | None
    latest_version: str | None
    rows: int | None
    quarantined: int | None
    sources: int
    not_ok: int  # sources rejected or failed at their last check
    last_checked: dt.datetime | None


@dataclass(frozen=True)
class SourceStateCount:
    """How many sources of a dataset are in a state, and the latest check among them."""

    dataset_id: str
    state: SourceState | None
    count: int
    last_checked: dt.datetime | None


@dataclass(frozen=True)
class LatestReport:
    """The latest validation report recorded for a source (a frictionless report, as JSON)."""

    dataset_id: str
    source_key: str
    report: dict[str, Any]


@dataclass(frozen=True)
class CatalogRows:
    """What the API's catalog reads, from one snapshot of the lake."""

    datasets: list[DatasetRecord]
    versions: list[VersionRecord]  # by dataset, oldest first
    source_states: list[SourceStateCount]
    snapshots: dict[tuple[str, str], int]  # (dataset, version) -> the lake snapshot that committed it


@dataclass(frozen=True)
class HistoryEntry:
    """A stored version and the lake snapshot that committed it: what time travel needs."""

    version: VersionRecord
    snapshot_id: int | None  # None only if the snapshot is gone (it should not be: gc keeps those of kept versions)
    snapshot_time: dt.datetime | None

    def time_travel_sql(self, *, limit: int | None = None) -> str | None:
        """The query an analyst runs (``partage sql``, or DuckDB with attach.sql) to read this version's rows."""
        if self.snapshot_id is None:
            return None
        return time_travel_sql(self.version.dataset_id, self.snapshot_id, limit=limit)


def time_travel_sql(dataset_id: str, snapshot_id: int, *, limit: int | None = None) -> str:
    """``SELECT * FROM lake.main."<id>" AT (VERSION => n)``: the dataset's table as snapshot ``n`` left it."""
    sql = f"SELECT * FROM {time_travel_relation(dataset_id, snapshot_id)}"
    return sql + (f" LIMIT {int(limit)}" if limit is not None else "")


def time_travel_relation(dataset_id: str, snapshot_id: int) -> str:
    """The dataset's table at a snapshot, as a relation to select from (a connection with the lake attached)."""
    return f"{LAKE}.main.{ident(dataset_id)} AT (VERSION => {int(snapshot_id)})"


# -- reads --------------------------------------------------------------------------------

_VERSION_COLUMNS = ("dataset_id, version, created_at, path, row_count, quarantined_rows, schema_ref, "
                    "schema_sha256, parts, summary")
_SOURCE_COLUMNS = "dataset_id, source_key, label, remote_id, state, layer, reason, checked_at, changed_at, gone_since"


def _version(row: tuple[Any, ...]) -> VersionRecord:
    d_id, version, created, path, rows, quarantined, schema_ref, sha, parts, summary = row
    return VersionRecord(dataset_id=d_id, version=version, created_at=created, path=path or "",
                         row_count=rows or 0, quarantined_rows=quarantined or 0, schema_ref=schema_ref,
                         schema_sha256=sha, parts=_parts(parts), summary=json.loads(summary) if summary else {})


def _dataset(row: tuple[Any, ...]) -> DatasetRecord:
    d_id, title, description, publisher, license_, access, keywords, schema_ref, policy = row
    return DatasetRecord(id=d_id, title=title, description=description, publisher=publisher, license=license_,
                         access=access, keywords=tuple(keywords or ()), schema_ref=schema_ref, policy=policy)


def _source(row: tuple[Any, ...]) -> SourceStatus:
    d_id, key, label, remote_id, state, layer, reason, checked, changed, gone = row
    return SourceStatus(dataset_id=d_id, source_key=key, label=label, remote_id=remote_id, state=source_state(state),
                        layer=layer, reason=reason, checked_at=checked, changed_at=changed, gone_since=gone)


def _versions(con: duckdb.DuckDBPyConnection, dataset_id: str | None, newest_first: bool) -> list[VersionRecord]:
    where, params = ("WHERE dataset_id = ?", [dataset_id]) if dataset_id is not None else ("", [])
    order = "DESC" if newest_first else "ASC"
    return [_version(r) for r in con.execute(
        f"SELECT {_VERSION_COLUMNS} FROM {META}.versions {where} ORDER BY dataset_id, version {order}",
        params).fetchall()]


def _datasets(con: duckdb.DuckDBPyConnection) -> list[DatasetRecord]:
    return [_dataset(r) for r in con.execute(
        f"SELECT id, title, description, publisher, license, access, keywords, schema_ref, policy "
        f"FROM {META}.datasets ORDER BY id").fetchall()]


def versions(warehouse: Warehouse, dataset_id: str | None = None, *, newest_first: bool = False,
             read_only: bool = True) -> list[VersionRecord]:
    """The stored versions (of one dataset, or all), by dataset then version.

    ``read_only=False``: through the writer's instance (gc, which writes next and may find no lake yet)."""
    with warehouse.connect(read_only=read_only) as con:
        return _versions(con, dataset_id, newest_first)


def datasets(warehouse: Warehouse) -> list[DatasetRecord]:
    """Every dataset a harvest has recorded, by id."""
    with warehouse.connect(read_only=True) as con:
        return _datasets(con)


def sources(warehouse: Warehouse, dataset_id: str | None = None) -> list[SourceStatus]:
    """The last state of each source (of one dataset, or all), by dataset then label."""
    where, params = ("WHERE dataset_id = ?", [dataset_id]) if dataset_id is not None else ("", [])
    with warehouse.connect(read_only=True) as con:
        return [_source(r) for r in con.execute(
            f"SELECT {_SOURCE_COLUMNS} FROM {META}.sources {where} ORDER BY dataset_id, label", params).fetchall()]


def dataset_statuses(warehouse: Warehouse, dataset_id: str | None = None) -> list[DatasetStatus]:
    """``partage status``: each dataset with its latest version and how many of its sources are not ok."""
    where, params = ("WHERE d.id = ?", [dataset_id]) if dataset_id is not None else ("", [])
    not_ok = ", ".join(f"'{s}'" for s in NOT_OK_STATES)
    with warehouse.connect(read_only=True) as con:
        rows = con.execute(f"""
            SELECT d.id, d.access, v.version, v.row_count, v.quarantined_rows,
                   count(s.source_key), count(s.source_key) FILTER (WHERE s.state IN ({not_ok})),
                   max(s.checked_at)
            FROM {META}.datasets d
            LEFT JOIN (SELECT * FROM {META}.versions
                       QUALIFY row_number() OVER (PARTITION BY dataset_id ORDER BY version DESC) = 1) v
              ON v.dataset_id = d.id
            LEFT JOIN {META}.sources s ON s.dataset_id = d.id
            {where}
            GROUP BY ALL ORDER BY d.id""", params).fetchall()
    return [DatasetStatus(id=r[0], access=r[1], latest_version=r[2], rows=r[3], quarantined=r[4], sources=r[5],
                          not_ok=r[6], last_checked=r[7]) for r in rows]


def latest_reports(warehouse: Warehouse) -> list[LatestReport]:
    """The latest validation report of each source."""
    with warehouse.connect(read_only=True) as con:
        rows = con.execute(
            f"SELECT dataset_id, source_key, report FROM {META}.reports "
            "QUALIFY row_number() OVER (PARTITION BY dataset_id, source_key ORDER BY recorded_at DESC) = 1").fetchall()
    return [LatestReport(dataset_id=d, source_key=k, report=json.loads(r)) for d, k, r in rows]


def catalog_rows(warehouse: Warehouse, *, wait: float | None = None) -> CatalogRows:
    """Datasets, versions and source-state counts from one cursor (the API's catalog cache)."""
    with warehouse.connect(read_only=True, wait=wait) as con:
        ds = _datasets(con)
        vs = _versions(con, None, newest_first=False)
        counts = [SourceStateCount(dataset_id=d, state=source_state(s), count=n, last_checked=at)
                  for d, s, n, at in con.execute(
                      f"SELECT dataset_id, state, count(*), max(checked_at) FROM {META}.sources GROUP BY ALL").fetchall()]
        snaps = _version_snapshots(con)
    return CatalogRows(ds, vs, counts, snaps)


def _version_snapshots(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], int]:
    """Every version's snapshot, from the commits' extra info (as ``Warehouse.snapshots``, for all datasets)."""
    out: dict[tuple[str, str], int] = {}
    for snap, info in con.execute(
            f"SELECT snapshot_id, commit_extra_info FROM {LAKE}.snapshots() "
            "WHERE starts_with(commit_message, 'partage: ') ORDER BY snapshot_id").fetchall():
        try:
            extra = json.loads(info)
            out[(extra["dataset"], extra["version"])] = int(snap)
        except (TypeError, ValueError, KeyError):
            continue  # not a version's commit (gc, migrate's last copy, publications)
    return out


def raw_files_in_use(warehouse: Warehouse, *, read_only: bool = True) -> set[str]:
    """The sha256 of each raw file a source's last state refers to (downloaded, validated or accepted)."""
    with warehouse.connect(read_only=read_only) as con:
        return {r[0] for r in con.execute(
            f"SELECT sha256 FROM {META}.sources UNION SELECT accepted_sha256 FROM {META}.sources "
            f"UNION SELECT validated_sha256 FROM {META}.sources").fetchall() if r[0]}


def history(warehouse: Warehouse, dataset_id: str) -> list[HistoryEntry]:
    """Every stored version of a dataset, newest first, with the snapshot that committed it and its time."""
    stored = versions(warehouse, dataset_id, newest_first=True)
    if not stored:
        return []
    snaps = warehouse.snapshots(dataset_id)
    ids = sorted(set(snaps.values()))
    times: dict[int, dt.datetime] = {}
    if ids:
        with warehouse.connect(read_only=True) as con:
            times = {int(s): at for s, at in con.execute(
                f"SELECT snapshot_id, snapshot_time FROM {LAKE}.snapshots() WHERE list_contains(?, snapshot_id)",
                [ids]).fetchall()}
    out = []
    for v in stored:
        snap = snaps.get(v.version)
        out.append(HistoryEntry(v, snap, times.get(snap) if snap is not None else None))
    return out


# -- writes -------------------------------------------------------------------------------


def forget_versions(warehouse: Warehouse, removed: Iterable[tuple[str, str]]) -> None:
    """Delete the rows of versions ``(dataset_id, version)`` in one transaction (gc's retention).

    The caller rebuilds each dataset's history view after (``warehouse.point_history``)."""
    pairs = list(removed)

    def work(con: duckdb.DuckDBPyConnection) -> None:
        for ds_id, v in pairs:
            con.execute(f"DELETE FROM {META}.versions WHERE dataset_id = ? AND version = ?", [ds_id, v])

    if pairs:
        warehouse._transaction(work, "the removal of old versions")
