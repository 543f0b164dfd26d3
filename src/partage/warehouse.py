"""The warehouse: immutable Parquet versions and the DuckDB file in front of them.

Layout under the warehouse root (a local directory)::

    partage.duckdb                 metadata (schema _partage) + one view per dataset
    raw/<aa>/<sha256>              harvested files, content-addressed
    <dataset>/<version>/data/<source>.parquet
    <dataset>/<version>/quarantine/<source>.parquet
    <dataset>/<version>/reports/<source>.json, schema.json, datapackage.json

Locking model: DuckDB lets one process write a database file, and a writer
blocks readers in other processes. So the harvest opens the file only for short
metadata transactions and closes it at once; all slow work (download,
validation, Parquet) happens outside. A version becomes visible in a single
transaction that records it and repoints the view; before that, its files sit
in a directory nothing refers to. A second harvest is kept out by a lock file.

Beyond one machine, the root may be an object-store URL (``s3://bucket/hub``,
any fsspec protocol): version directories then live there, and the DuckDB
file, raw downloads, staging and the small JSON files of each version stay in
a local directory (``PARTAGE_LOCAL_DIR``, default ``warehouse``). Every
connection Partage opens registers the store's fsspec filesystem, so views
over ``s3://`` paths work without DuckDB's httpfs extension.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from .errors import WarehouseBusy, WarehouseError
from .faults import checkpoint
from .rawstore import RawStore, copy_or_link

META = "_partage"
QUARANTINE = "quarantine"
HISTORY = "history"
DUPLICATES = "duplicates"
DUPLICATES_FILE = "duplicates.parquet"  # in a version dir: rows left out by the consolidation rule
SOURCE_VERSION = "_source_version"  # per row: the version in which its source's data arrived

DDL = f"""
CREATE SCHEMA IF NOT EXISTS {META};
CREATE SCHEMA IF NOT EXISTS {QUARANTINE};
CREATE SCHEMA IF NOT EXISTS {HISTORY};
CREATE SCHEMA IF NOT EXISTS {DUPLICATES};
CREATE TABLE IF NOT EXISTS {META}.datasets (
    id VARCHAR PRIMARY KEY, title VARCHAR, description VARCHAR, publisher VARCHAR,
    license VARCHAR, access VARCHAR, keywords VARCHAR[], schema_ref VARCHAR, policy VARCHAR,
    catalog_file VARCHAR, updated_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS {META}.sources (
    dataset_id VARCHAR, source_key VARCHAR, kind VARCHAR, label VARCHAR,
    etag VARCHAR, last_modified VARCHAR, sha256 VARCHAR, bytes BIGINT,
    validated_sha256 VARCHAR, fingerprint VARCHAR, accepted_sha256 VARCHAR,
    state VARCHAR, layer VARCHAR, reason VARCHAR,
    checked_at TIMESTAMPTZ, changed_at TIMESTAMPTZ,
    PRIMARY KEY (dataset_id, source_key)
);
ALTER TABLE {META}.sources ADD COLUMN IF NOT EXISTS origin VARCHAR;
ALTER TABLE {META}.sources ADD COLUMN IF NOT EXISTS location VARCHAR;
ALTER TABLE {META}.sources ADD COLUMN IF NOT EXISTS remote_id VARCHAR;
ALTER TABLE {META}.sources ADD COLUMN IF NOT EXISTS remote_modified VARCHAR;
ALTER TABLE {META}.sources ADD COLUMN IF NOT EXISTS gone_since TIMESTAMPTZ;
CREATE TABLE IF NOT EXISTS {META}.source_events (
    run_id VARCHAR, dataset_id VARCHAR, source_key VARCHAR, label VARCHAR, state VARCHAR,
    layer VARCHAR, reason VARCHAR, body_bytes BIGINT, sha256 VARCHAR, recorded_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS {META}.versions (
    dataset_id VARCHAR, version VARCHAR, created_at TIMESTAMPTZ, run_id VARCHAR, path VARCHAR,
    row_count BIGINT, quarantined_rows BIGINT, schema_ref VARCHAR, schema_sha256 VARCHAR,
    parts JSON, summary JSON,
    PRIMARY KEY (dataset_id, version)
);
CREATE TABLE IF NOT EXISTS {META}.reports (
    run_id VARCHAR, dataset_id VARCHAR, source_key VARCHAR, sha256 VARCHAR, version VARCHAR,
    accepted BOOLEAN, valid BOOLEAN, error_count BIGINT, report JSON, recorded_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS {META}.publications (
    target VARCHAR, dataset_id VARCHAR, remote_id VARCHAR, remote_name VARCHAR, access VARCHAR,
    version VARCHAR, published_at TIMESTAMPTZ, removed_since TIMESTAMPTZ, deleted_at TIMESTAMPTZ,
    PRIMARY KEY (target, dataset_id)
);
CREATE TABLE IF NOT EXISTS {META}.runs (
    run_id VARCHAR PRIMARY KEY, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ, summary JSON
);
CREATE OR REPLACE VIEW main.catalog AS
SELECT d.id, d.title, d.description, d.license, d.access, d.publisher, d.schema_ref AS schema, d.policy,
       (SELECT list(s.label ORDER BY s.label) FROM {META}.sources s WHERE s.dataset_id = d.id) AS sources,
       (SELECT list(s.state ORDER BY s.label) FROM {META}.sources s WHERE s.dataset_id = d.id) AS source_states,
       v.version AS latest_version, v.created_at AS last_update, v.row_count AS rows,
       v.quarantined_rows AS quarantined, v.summary AS quality,
       (SELECT max(s.checked_at) FROM {META}.sources s WHERE s.dataset_id = d.id) AS last_check
FROM {META}.datasets d
LEFT JOIN (SELECT * FROM {META}.versions
           QUALIFY row_number() OVER (PARTITION BY dataset_id ORDER BY version DESC) = 1) v ON v.dataset_id = d.id;
COMMENT ON VIEW main.catalog IS 'Every dataset of the hub: licence, access, sources and their last state, latest version, rows, quality';
"""


def ident(name: str) -> str:
    """Quote an SQL identifier (dataset ids and column names come from outside)."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """Quote a string literal for DDL, where DuckDB takes no parameters (paths, comments)."""
    return "'" + value.replace("'", "''") + "'"


def sql_alias(dataset_id: str) -> str:
    """The id with '-' turned to '_', so it can be written unquoted in SQL."""
    return dataset_id.replace("-", "_")


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_version_id(after: str | None = None) -> str:
    v = now().strftime("%Y%m%dT%H%M%S%f")[:-3] + "Z"
    if after and v <= after:  # clock went back, or two versions in the same millisecond
        v = after[:-1] + "1Z" if after.endswith("Z") else after + "1"
    return v


WRITER_RETRY = 0.1  # a writer whose flag stands retries this often (readers finish their query in ms)
FLAG_FRESH = 3.0  # seconds: a writer refreshes its flag at each retry; an older flag is a dead one's


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


@dataclass(frozen=True)
class SourceRecord:
    dataset_id: str
    source_key: str
    etag: str | None
    last_modified: str | None
    sha256: str | None
    bytes: int | None
    validated_sha256: str | None
    fingerprint: str | None
    accepted_sha256: str | None
    state: str | None
    reason: str | None
    # identity, for portal resources: which portal source listed it, its canonical URL
    # (credentials removed), the portal's id and modification date; when it disappeared
    origin: str | None = None
    location: str | None = None
    remote_id: str | None = None
    remote_modified: str | None = None
    gone_since: dt.datetime | None = None
    kind: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class Part:
    """One source's share of a version: its typed rows, and its quarantined rows if any."""

    source_key: str
    data: str  # path relative to the version directory
    quarantine: str | None
    sha256: str  # raw file it came from
    rows: int
    quarantined: int
    since_version: str  # the version in which this part was first produced

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass(frozen=True)
class DatasetState:
    records: dict[str, SourceRecord]
    latest: tuple[str, list[Part]] | None


@dataclass(frozen=True)
class VersionInfo:
    """What publishing needs to know about a dataset's latest version."""

    dataset_id: str
    version: str
    created_at: dt.datetime
    path: Path
    row_count: int
    quarantined: int
    schema_ref: str | None
    schema_sha256: str | None
    parts: list[Part]
    summary: dict[str, Any]
    location: str = ""  # where the data files are: the local path, or the object-store URL

    @property
    def schema(self) -> dict[str, Any]:
        return json.loads((self.path / "schema.json").read_text(encoding="utf-8"))

    def report_files(self, root: Path) -> dict[str, Path]:
        """Each part's validation report (it lives in the version that produced the part)."""
        out = {}
        for p in self.parts:
            f = root / self.dataset_id / p.since_version / "reports" / f"{p.source_key}.json"
            if f.is_file():
                out[p.source_key] = f
        return out


@dataclass(frozen=True)
class Publication:
    target: str
    dataset_id: str
    remote_id: str | None
    remote_name: str | None
    access: str | None
    version: str | None
    published_at: dt.datetime | None
    removed_since: dt.datetime | None
    deleted_at: dt.datetime | None


class Warehouse:
    def __init__(self, root: Path | str):
        text = str(root)
        self.remote: str | None = None
        if "://" in text and not text.startswith("file://"):
            self.remote = text.rstrip("/")
            self.root = Path(os.environ.get("PARTAGE_LOCAL_DIR") or "warehouse").resolve()
        else:
            self.root = Path(text.removeprefix("file://")).resolve()
        self.db_path = self.root / "partage.duckdb"
        self.raw = RawStore(self.root / "raw")
        self._fs: Any = None

    # -- where data files live -------------------------------------------------

    @property
    def spec(self) -> str:
        """What to pass to ``Warehouse()`` elsewhere (a Prefect task) to get this same warehouse."""
        return self.remote or str(self.root)

    @property
    def data_root(self) -> str:
        return self.remote or str(self.root)

    def location(self, dataset_id: str, version: str) -> str:
        """A version's data directory: a local path, or a URL under the object store."""
        return f"{self.data_root}/{dataset_id}/{version}"

    @property
    def fs(self) -> Any:
        """The object store's fsspec filesystem (credentials and endpoint from the usual environment)."""
        if self._fs is None:
            try:
                import fsspec
            except ImportError:
                raise WarehouseError("an object-store warehouse needs fsspec and its driver: pip install 'partage[s3]'") from None
            try:
                self._fs, _ = fsspec.core.url_to_fs(self.remote)
            except (ImportError, ValueError) as e:
                raise WarehouseError(f"cannot use {self.remote}: {e}; for s3:// install 'partage[s3]'") from None
        return self._fs

    def register(self, con: duckdb.DuckDBPyConnection) -> None:
        """Let DuckDB read the object store's files through fsspec (no httpfs extension needed)."""
        if self.remote:
            con.register_filesystem(self.fs)

    def carry_over(self, dataset_id: str, version: str, rel: str, dest: Path) -> None:
        """Bring a part of an earlier version into a staging directory (hard link locally, download otherwise)."""
        if self.remote:
            dest.parent.mkdir(parents=True, exist_ok=True)
            self.fs.get(f"{self.location(dataset_id, version)}/{rel}", str(dest))
        else:
            copy_or_link(self.version_dir(dataset_id, version) / rel, dest)

    def remove_version_data(self, dataset_id: str, version: str) -> None:
        if self.remote:
            url = self.location(dataset_id, version)
            if self.fs.exists(url):
                self.fs.rm(url, recursive=True)

    def remote_version_names(self, dataset_id: str) -> list[str]:
        """Names under the object store's dataset prefix (to find what a crash left there)."""
        if not self.remote:
            return []
        base = f"{self.remote}/{dataset_id}"
        try:
            return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(base, detail=False))
        except FileNotFoundError:
            return []

    # -- connections -------------------------------------------------------

    @contextmanager
    def connect(self, read_only: bool = False, wait: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection; retries while another process holds the file.

        A writer that finds the file held raises a flag (``partage.duckdb.writer-waiting``, its PID)
        and readers hold back while it stands: two analysts querying in tight loops otherwise keep
        a shared lock on the file without a gap, and the harvest waits until it gives up. The flag
        is honoured only while it is fresh and its process alive, so a killed writer blocks no one."""
        if wait is None:
            wait = float(os.environ.get("PARTAGE_DB_WAIT", 30))
        if read_only and not self.db_path.exists():
            raise WarehouseError(f"no warehouse at {self.db_path}; run `partage harvest` first or pass --warehouse")
        self.root.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + wait
        delay = 0.05
        flagged = False
        try:
            while True:
                if read_only:
                    self._give_way(deadline)
                try:
                    con = duckdb.connect(str(self.db_path), read_only=read_only)
                    self.register(con)
                    break
                except duckdb.IOException as e:
                    if "lock" not in str(e).lower() or time.monotonic() > deadline:
                        if "lock" in str(e).lower():
                            raise WarehouseBusy(
                                f"{self.db_path} is held by another process (a harvest or an open DuckDB session) "
                                f"for more than {wait:.0f}s; close it and try again"
                            ) from None
                        raise WarehouseError(f"cannot open {self.db_path}: {e}") from None
                    if not read_only:
                        self._raise_flag()
                        flagged = True
                        delay = min(delay, WRITER_RETRY)  # readers are holding back: catch the gap
                    time.sleep(delay)
                    delay = min(delay * 2, WRITER_RETRY if flagged else 1.0)
        finally:
            if flagged:
                self._lower_flag()
        try:
            yield con
        finally:
            con.close()

    @property
    def _flag(self) -> Path:
        return self.db_path.with_name(self.db_path.name + ".writer-waiting")

    def _raise_flag(self) -> None:
        try:
            tmp = self._flag.with_name(f"{self._flag.name}.{os.getpid()}")
            tmp.write_text(str(os.getpid()))
            os.replace(tmp, self._flag)  # also refreshes its time: readers honour a fresh flag only
        except OSError:
            pass  # a read-only directory: no priority, the plain retry still works

    def _lower_flag(self) -> None:
        try:
            if self._flag.read_text().strip() == str(os.getpid()):
                self._flag.unlink()
        except (OSError, ValueError):
            pass

    def _give_way(self, deadline: float) -> None:
        """Hold back while a live writer's fresh flag stands, at most until the reader's own deadline."""
        while time.monotonic() < deadline:
            try:
                flag = self._flag
                age = time.time() - flag.stat().st_mtime
                pid = int(flag.read_text().strip())
            except (OSError, ValueError):
                return
            if age > FLAG_FRESH or pid == os.getpid() or not _alive(pid):
                return
            time.sleep(0.02)

    def init(self) -> None:
        with self.connect() as con:
            con.execute(DDL)

    @contextmanager
    def harvest_lock(self) -> Iterator[None]:
        """Keep a second harvest out while one runs (readers are not affected)."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / ".harvest.lock"
        with open(path, "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "unknown"
                raise WarehouseBusy(
                    f"another harvest is running on {self.root} ({holder}); wait for it to finish"
                ) from None
            f.seek(0)
            f.truncate()
            f.write(f"pid {os.getpid()} since {now().isoformat(timespec='seconds')}")
            f.flush()
            try:
                yield
            finally:
                f.seek(0)
                f.truncate()
                fcntl.flock(f, fcntl.LOCK_UN)

    # -- reads ---------------------------------------------------------------

    def source_records(self, dataset_id: str) -> dict[str, SourceRecord]:
        return self.dataset_state(dataset_id).records

    def dataset_state(self, dataset_id: str) -> DatasetState:
        """Everything a harvest needs to know about a dataset, in one short connection
        (opening the file costs ~20 ms; a catalog of hundreds of datasets notices)."""
        with self.connect() as con:
            rows = con.execute(
                f"SELECT dataset_id, source_key, etag, last_modified, sha256, bytes, validated_sha256, "
                f"fingerprint, accepted_sha256, state, reason, origin, location, remote_id, remote_modified, "
                f"gone_since, kind, label FROM {META}.sources WHERE dataset_id = ?",
                [dataset_id],
            ).fetchall()
            row = con.execute(
                f"SELECT version, parts FROM {META}.versions WHERE dataset_id = ? ORDER BY version DESC LIMIT 1",
                [dataset_id],
            ).fetchone()
        latest = None if row is None else (row[0], [Part(**p) for p in json.loads(row[1])])
        return DatasetState({r[1]: SourceRecord(*r) for r in rows}, latest)

    def latest_version_info(self, dataset_id: str) -> VersionInfo | None:
        with self.connect() as con:
            row = con.execute(
                f"""SELECT version, created_at, path, row_count, quarantined_rows, schema_ref, schema_sha256, parts, summary
                    FROM {META}.versions WHERE dataset_id = ? ORDER BY version DESC LIMIT 1""",
                [dataset_id],
            ).fetchone()
        if row is None:
            return None
        return VersionInfo(dataset_id, row[0], row[1], self.version_dir(dataset_id, row[0]), row[3], row[4], row[5],
                           row[6], [Part(**p) for p in json.loads(row[7])], json.loads(row[8]),
                           self.location(dataset_id, row[0]))

    def publications(self, target: str) -> dict[str, Publication]:
        with self.connect() as con:
            rows = con.execute(f"SELECT * FROM {META}.publications WHERE target = ?", [target]).fetchall()
        return {r[1]: Publication(*r) for r in rows}

    def record_publication(self, pub: Publication) -> None:
        with self.connect() as con:
            con.execute(f"INSERT OR REPLACE INTO {META}.publications VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [pub.target, pub.dataset_id, pub.remote_id, pub.remote_name, pub.access, pub.version,
                         pub.published_at, pub.removed_since, pub.deleted_at])

    def version_dir(self, dataset_id: str, version: str) -> Path:
        """The local directory of a version (with a remote root: its JSON files only)."""
        return self.root / dataset_id / version

    # -- writes --------------------------------------------------------------

    def record_run(self, run_id: str, started: dt.datetime, summary: dict[str, Any] | None = None) -> None:
        with self.connect() as con:
            con.execute(
                f"INSERT OR REPLACE INTO {META}.runs VALUES (?, ?, ?, ?)",
                [run_id, started, now() if summary is not None else None, json.dumps(summary) if summary else None],
            )

    def record_sources(self, run_id: str, dataset: dict[str, Any], updates: list[dict[str, Any]],
                       reports: list[dict[str, Any]], con: duckdb.DuckDBPyConnection | None = None) -> None:
        """Upsert the dataset row and each source's state; append events and reports."""
        if con is None:
            with self.connect() as con:
                con.execute("BEGIN")
                self.record_sources(run_id, dataset, updates, reports, con)
                con.execute("COMMIT")
            return
        at = now()
        con.execute(
            f"INSERT OR REPLACE INTO {META}.datasets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [dataset["id"], dataset["title"], dataset["description"], dataset.get("publisher"), dataset["license"],
             dataset["access"], dataset.get("keywords", []), dataset.get("schema_ref"), dataset["policy"],
             dataset.get("catalog_file"), at],
        )
        for u in updates:
            if u.get("delete"):  # a portal's own row, once the portal lists again
                con.execute(f"DELETE FROM {META}.sources WHERE dataset_id = ? AND source_key = ?",
                            [dataset["id"], u["source_key"]])
                continue
            con.execute(
                f"""INSERT INTO {META}.sources (dataset_id, source_key, kind, label, etag, last_modified, sha256, bytes,
                    validated_sha256, fingerprint, accepted_sha256, state, layer, reason, checked_at, changed_at,
                    origin, location, remote_id, remote_modified, gone_since)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (dataset_id, source_key) DO UPDATE SET
                  kind = excluded.kind, label = excluded.label,
                  etag = COALESCE(excluded.etag, {META}.sources.etag),
                  last_modified = COALESCE(excluded.last_modified, {META}.sources.last_modified),
                  sha256 = COALESCE(excluded.sha256, {META}.sources.sha256),
                  bytes = COALESCE(excluded.bytes, {META}.sources.bytes),
                  validated_sha256 = COALESCE(excluded.validated_sha256, {META}.sources.validated_sha256),
                  fingerprint = COALESCE(excluded.fingerprint, {META}.sources.fingerprint),
                  accepted_sha256 = COALESCE(excluded.accepted_sha256, {META}.sources.accepted_sha256),
                  state = excluded.state, layer = excluded.layer, reason = excluded.reason,
                  checked_at = excluded.checked_at,
                  changed_at = COALESCE(excluded.changed_at, {META}.sources.changed_at),
                  origin = COALESCE(excluded.origin, {META}.sources.origin),
                  location = COALESCE(excluded.location, {META}.sources.location),
                  remote_id = COALESCE(excluded.remote_id, {META}.sources.remote_id),
                  remote_modified = COALESCE(excluded.remote_modified, {META}.sources.remote_modified),
                  gone_since = excluded.gone_since""",
                [dataset["id"], u["source_key"], u["kind"], u["label"], u.get("etag"), u.get("last_modified"),
                 u.get("sha256"), u.get("bytes"), u.get("validated_sha256"), u.get("fingerprint"),
                 u.get("accepted_sha256"), u["state"], u.get("layer"), u["reason"], at,
                 at if u["state"] == "updated" else None, u.get("origin"), u.get("location"), u.get("remote_id"),
                 u.get("remote_modified"), u.get("gone_since")],
            )
            con.execute(
                f"INSERT INTO {META}.source_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [run_id, dataset["id"], u["source_key"], u["label"], u["state"], u.get("layer"), u["reason"],
                 u.get("body_bytes", 0), u.get("sha256"), at],
            )
        for r in reports:
            con.execute(
                f"INSERT INTO {META}.reports VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [run_id, dataset["id"], r["source_key"], r["sha256"], r.get("version"), r["accepted"],
                 r["valid"], r["error_count"], r["report"], at],
            )

    def publish_version(
        self,
        *,
        run_id: str,
        dataset: dict[str, Any],
        version: str,
        staged: Path,
        parts: list[Part],
        columns: list[dict[str, Any]],
        schema_ref: str,
        schema_sha256: str,
        summary: dict[str, Any],
        updates: list[dict[str, Any]],
        reports: list[dict[str, Any]],
    ) -> Path:
        """Make a staged version visible: rename its directory, then one transaction.

        The rename makes the files final but unreferenced; the transaction
        records the version, the source states and repoints both views. A crash
        before COMMIT leaves the previous version in place, plus a version
        directory nothing refers to.
        """
        final = self.version_dir(dataset["id"], version)
        location = self.location(dataset["id"], version)
        _fsync_tree(staged)
        if self.remote:
            self._upload(staged, location)
        rows = int(summary.get("rows", sum(p.rows for p in parts)))  # net of rows the consolidation rule left out
        quarantined = sum(p.quarantined for p in parts)
        # Open the database first: if it is busy we fail before the version directory exists.
        with self.connect() as con:
            checkpoint("before-rename")
            os.replace(staged, final)
            _fsync_dir(final.parent)
            if self.remote:  # the data is in the object store; keep only the small JSON files here
                for sub in ("data", "quarantine"):
                    shutil.rmtree(final / sub, ignore_errors=True)
                (final / DUPLICATES_FILE).unlink(missing_ok=True)
            checkpoint("renamed")
            con.execute("BEGIN")
            try:
                con.execute(
                    f"INSERT INTO {META}.versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [dataset["id"], version, now(), run_id, location, rows, quarantined, schema_ref,
                     schema_sha256, json.dumps([p.to_dict() for p in parts]), json.dumps(summary)],
                )
                checkpoint("in-transaction")
                for r in reports:
                    r.setdefault("version", version)
                self.record_sources(run_id, dataset, updates, reports, con)
                self._point_views(con, dataset["id"], dataset["title"], dataset.get("description") or "",
                                  location, parts, columns, summary)
                checkpoint("views-repointed")
                con.execute("COMMIT")
                checkpoint("committed")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return final

    def _upload(self, staged: Path, location: str) -> None:
        """Copy a staged version to the object store. Until the commit nothing refers to it; gc removes it after a crash."""
        for path in sorted(staged.rglob("*")):
            if path.is_file():
                self.fs.put_file(str(path), f"{location}/{path.relative_to(staged).as_posix()}")


    @staticmethod
    def _point_views(con: duckdb.DuckDBPyConnection, dataset_id: str, title: str, description: str,
                     location: str | Path, parts: list[Part], columns: list[dict[str, Any]],
                     summary: dict[str, Any] | None = None) -> None:
        """(Re)create the dataset's views on a version's files, with their comments. Inside the caller's transaction."""
        ds = ident(dataset_id)
        location = str(location)
        q_files = [f"{location}/{p.quarantine}" for p in parts if p.quarantine]
        relation = version_relation(location, parts, summary)
        con.execute(f"CREATE OR REPLACE VIEW main.{ds} AS SELECT * FROM {relation}")
        comment = title + (f" — {description}" if description else "")
        con.execute(f"COMMENT ON VIEW main.{ds} IS {literal(comment)}")
        for col in columns:
            text = " — ".join(x for x in (col.get("title"), col.get("description")) if x)
            if text:
                con.execute(f"COMMENT ON COLUMN main.{ds}.{ident(col['name'])} IS {literal(text)}")
        con.execute(f"COMMENT ON COLUMN main.{ds}._source IS 'Partage: key of the source this row came from'")
        con.execute(f"COMMENT ON COLUMN main.{ds}._row_number IS 'Partage: row number in the source file'")
        con.execute(f"COMMENT ON COLUMN main.{ds}.{SOURCE_VERSION} IS "
                    "'Partage: the version in which this row''s source data arrived (see _partage.versions)'")
        alias = sql_alias(dataset_id)
        if alias != dataset_id:  # `bornes_irve` for analysts who would rather not quote `"bornes-irve"`
            con.execute(f"CREATE OR REPLACE VIEW main.{ident(alias)} AS SELECT * FROM main.{ds}")
            con.execute(f"COMMENT ON VIEW main.{ident(alias)} IS {literal('Alias of ' + dataset_id)}")
        if q_files:
            qf = "[" + ", ".join(literal(f) for f in q_files) + "]"
            con.execute(f"CREATE OR REPLACE VIEW {QUARANTINE}.{ds} AS SELECT * FROM read_parquet({qf}, union_by_name = true)")
            con.execute(f"COMMENT ON VIEW {QUARANTINE}.{ds} IS {literal('Invalid rows of ' + dataset_id + ', as received, with their errors')}")
        else:
            con.execute(f"DROP VIEW IF EXISTS {QUARANTINE}.{ds}")
        dup_file = f"{location}/{DUPLICATES_FILE}"
        if (summary or {}).get("duplicates", {}).get("rows"):
            con.execute(f"CREATE OR REPLACE VIEW {DUPLICATES}.{ds} AS SELECT r.*, d._kept_source, d._kept_row_number "
                        f"FROM {parts_relation(location, parts)} AS r JOIN read_parquet({literal(dup_file)}) AS d "
                        "ON r._source = d._source AND r._row_number = d._row_number")
            con.execute(f"COMMENT ON VIEW {DUPLICATES}.{ds} IS " + literal(
                f"Rows of {dataset_id} whose primary key another source also has, with the row kept "
                f"(_kept_source, _kept_row_number); rule: {summary['duplicates']['rule']}"))  # type: ignore[index]
        else:
            con.execute(f"DROP VIEW IF EXISTS {DUPLICATES}.{ds}")
        Warehouse._point_history(con, dataset_id, location.rsplit("/", 1)[0])

    @staticmethod
    def _point_history(con: duckdb.DuckDBPyConnection, dataset_id: str, dataset_dir: str | Path) -> None:
        """history."<id>": every stored version's rows, with the version in `_version`."""
        versions = con.execute(
            f"SELECT version, parts, summary FROM {META}.versions WHERE dataset_id = ? ORDER BY version", [dataset_id]
        ).fetchall()
        selects = []
        for version, parts_json, summary_json in versions:
            parts = [Part(**p) for p in json.loads(parts_json)]
            if parts:
                relation = version_relation(f"{dataset_dir}/{version}", parts, json.loads(summary_json or "{}"))
                selects.append(f"SELECT *, {literal(version)} AS _version FROM {relation}")
        if not selects:
            return
        ds = ident(dataset_id)
        con.execute(f"CREATE OR REPLACE VIEW {HISTORY}.{ds} AS " + " UNION ALL BY NAME ".join(selects))
        con.execute(f"COMMENT ON VIEW {HISTORY}.{ds} IS "
                    + literal(f"Every stored version of {dataset_id}; _version says which (see _partage.versions)"))

    def repoint_moved_views(self) -> list[str]:
        """After the warehouse directory moved, point every view at the files where they now are.

        Views hold absolute paths (DuckDB resolves relative ones against the
        reader's working directory, not the database file), so a moved or
        re-mounted warehouse needs this; the harvest calls it at the start.
        """
        with self.connect() as con:
            latest = con.execute(
                f"""SELECT v.dataset_id, v.version, v.path, v.parts, d.title, d.description, v.summary
                    FROM {META}.versions v JOIN {META}.datasets d ON d.id = v.dataset_id
                    QUALIFY row_number() OVER (PARTITION BY v.dataset_id ORDER BY v.version DESC) = 1"""
            ).fetchall()
            moved = []
            for dataset_id, version, path, parts_json, title, description, summary_json in latest:
                here = self.version_dir(dataset_id, version)
                if "://" in path or path == str(here) or not here.is_dir():  # object-store URLs do not move
                    continue
                schema_file = here / "schema.json"
                columns = json.loads(schema_file.read_text(encoding="utf-8")).get("fields", []) if schema_file.is_file() else []
                con.execute("BEGIN")
                self._point_views(con, dataset_id, title or dataset_id, description or "", here,
                                  [Part(**p) for p in json.loads(parts_json)], columns, json.loads(summary_json or "{}"))
                con.execute(f"UPDATE {META}.versions SET path = ? WHERE dataset_id = ? AND version = ?",
                            [str(here), dataset_id, version])
                con.execute("COMMIT")
                moved.append(dataset_id)
        return moved


def parts_relation(version_dir: str | Path, parts: list[Part]) -> str:
    """Every row of a version's parts, with ``_source_version`` (the version in which each part was produced)."""
    by_version: dict[str, list[str]] = {}
    for p in parts:
        by_version.setdefault(p.since_version, []).append(f"{version_dir}/{p.data}")
    selects = [
        f"SELECT *, {literal(v)} AS {SOURCE_VERSION} FROM read_parquet([{', '.join(literal(f) for f in files)}], "
        "union_by_name = true)"
        for v, files in sorted(by_version.items())
    ]
    return "(" + " UNION ALL BY NAME ".join(selects) + ")"


def version_relation(version_dir: str | Path, parts: list[Part], summary: dict[str, Any] | None = None) -> str:
    """The SQL relation of a version's rows, as its views show them.

    Parts of unchanged sources are carried over from older versions, so each
    row says in ``_source_version`` where it arrived. Rows the consolidation
    rule left out (``duplicates.parquet``) are removed with an anti-join: parts
    are shared between versions and never rewritten. Exports and the API read
    through this same relation, so every reader sees the same rows.
    """
    body = parts_relation(version_dir, parts)
    dup = (summary or {}).get("duplicates") or {}
    if dup.get("dropped"):
        return (f"(SELECT r.* FROM {body} AS r ANTI JOIN read_parquet({literal(f'{version_dir}/{DUPLICATES_FILE}')}) AS d "
                "ON r._source = d._source AND r._row_number = d._row_number)")
    return body


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))
