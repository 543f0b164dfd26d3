"""The warehouse: a DuckLake lake in front of the validated Parquet parts.

Layout under the warehouse root (a local directory)::

    lake.sqlite (+ -wal)           the DuckLake catalog (default; PostgreSQL with PARTAGE_LAKE)
    lake/                          DuckLake's data files (or PARTAGE_LAKE_DATA, e.g. s3://bucket/lake)
    attach.sql                     what an analyst's DuckDB runs to open the lake (extensions offline)
    raw/<aa>/<sha256>              harvested files, content-addressed
    <dataset>/<version>/data/<source>.parquet          the validated parts of a version
    <dataset>/<version>/quarantine/<source>.parquet
    <dataset>/<version>/reports/<source>.json, schema.json, datapackage.json

In the lake, each dataset is a table (``main."<id>"``, alias ``main.<id_with_underscores>``) with its
provenance columns ``_source``, ``_row_number`` and ``_source_version``; ``quarantine."<id>"`` and
``duplicates."<id>"`` are tables too, and ``_partage.*`` holds datasets, sources, events, versions,
reports, publications and runs. A harvest of a dataset commits **one DuckLake snapshot**: its
tables and its metadata rows together, with the version id, run id and source states in the
snapshot's commit message and extra info. History is DuckLake time travel
(``AT (VERSION => snapshot)``); ``history."<id>"`` is a view over it.

Concurrency: DuckLake is optimistic, and its SQLite catalog is kept in WAL mode, so readers (an
analyst's session held open all night, the API) never block a commit and see each new snapshot
at their next transaction. A commit that meets a concurrent one is retried (``_transaction``).
Per process, one DuckDB instance holds the extensions and the attached lake; ``connect`` hands
out cursors.

The parts stay as files under the version directories: the pipeline carries unchanged sources'
parts from version to version, and the exports and the API read the same rows from there.
Beyond one machine the root may be an object-store URL (``s3://bucket/hub``): version
directories then live there, the rest in ``PARTAGE_LOCAL_DIR`` (default ``warehouse``).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from ..errors import DatasetConflict, HarvestRunning, LegacyWarehouse, WarehouseBusy, WarehouseError
from ..faults import checkpoint
from ..rawstore import RawStore, copy_or_link
from .lake import LAKE, LakeSpec, instance, load_sql

log = logging.getLogger("partage.store")

META = "_partage"
QUARANTINE = "quarantine"
HISTORY = "history"
DUPLICATES = "duplicates"
DUPLICATES_FILE = "duplicates.parquet"  # in a version dir: rows left out by the consolidation rule
SOURCE_VERSION = "_source_version"  # per row: the version in which its source's data arrived

# DuckLake has no primary keys: upserts are a DELETE and an INSERT in one transaction (see _upsert).
DDL = f"""
CREATE SCHEMA IF NOT EXISTS {META};
CREATE SCHEMA IF NOT EXISTS {QUARANTINE};
CREATE SCHEMA IF NOT EXISTS {HISTORY};
CREATE SCHEMA IF NOT EXISTS {DUPLICATES};
CREATE TABLE IF NOT EXISTS {META}.datasets (
    id VARCHAR, title VARCHAR, description VARCHAR, publisher VARCHAR,
    license VARCHAR, access VARCHAR, keywords VARCHAR[], schema_ref VARCHAR, policy VARCHAR,
    catalog_file VARCHAR, updated_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS {META}.sources (
    dataset_id VARCHAR, source_key VARCHAR, kind VARCHAR, label VARCHAR,
    etag VARCHAR, last_modified VARCHAR, sha256 VARCHAR, bytes BIGINT,
    validated_sha256 VARCHAR, fingerprint VARCHAR, accepted_sha256 VARCHAR,
    state VARCHAR, layer VARCHAR, reason VARCHAR,
    checked_at TIMESTAMPTZ, changed_at TIMESTAMPTZ,
    origin VARCHAR, location VARCHAR, remote_id VARCHAR, remote_modified VARCHAR, gone_since TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS {META}.source_events (
    run_id VARCHAR, dataset_id VARCHAR, source_key VARCHAR, label VARCHAR, state VARCHAR,
    layer VARCHAR, reason VARCHAR, body_bytes BIGINT, sha256 VARCHAR, recorded_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS {META}.versions (
    dataset_id VARCHAR, version VARCHAR, created_at TIMESTAMPTZ, run_id VARCHAR, path VARCHAR,
    row_count BIGINT, quarantined_rows BIGINT, schema_ref VARCHAR, schema_sha256 VARCHAR,
    parts JSON, summary JSON
);
CREATE TABLE IF NOT EXISTS {META}.reports (
    run_id VARCHAR, dataset_id VARCHAR, source_key VARCHAR, sha256 VARCHAR, version VARCHAR,
    accepted BOOLEAN, valid BOOLEAN, error_count BIGINT, report JSON, recorded_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS {META}.publications (
    target VARCHAR, dataset_id VARCHAR, remote_id VARCHAR, remote_name VARCHAR, access VARCHAR,
    version VARCHAR, published_at TIMESTAMPTZ, removed_since TIMESTAMPTZ, deleted_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS {META}.runs (
    run_id VARCHAR, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ, summary JSON
);
"""

CATALOG_VIEW = f"""
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

SOURCE_COLUMNS = ("dataset_id", "source_key", "kind", "label", "etag", "last_modified", "sha256", "bytes",
                  "validated_sha256", "fingerprint", "accepted_sha256", "state", "layer", "reason", "checked_at",
                  "changed_at", "origin", "location", "remote_id", "remote_modified", "gone_since")
# columns an update leaves as they were when it does not know them (a failed download knows no sha256)
_KEPT_WHEN_NULL = ("etag", "last_modified", "sha256", "bytes", "validated_sha256", "fingerprint", "accepted_sha256",
                   "changed_at", "origin", "location", "remote_id", "remote_modified")
LEGACY_DB = "partage.duckdb"  # the single-file warehouse before DuckLake; `partage migrate` renames it when done
COMMIT_RETRIES = 8  # a commit that meets another writer's is redone this many times before it fails


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
class Planned:
    """The dataset's latest version when a harvest read its state (None: it had none yet).

    A write that carries it is refused (:class:`DatasetConflict`) when the latest version is another one
    by the time it commits: another machine's harvest of the same dataset got there first, and this
    harvest's work — carried-over parts, source records, reports — belongs to the state it read."""

    version: str | None


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
            for version in (self.version, p.since_version):  # gc hands a removed version's reports to its heirs
                f = root / self.dataset_id / version / "reports" / f"{p.source_key}.json"
                if f.is_file():
                    out[p.source_key] = f
                    break
        return out


@dataclass(frozen=True)
class LakeCleanup:
    """What ``Warehouse.clean_lake`` expired and deleted (or would, in a dry run)."""

    snapshots: list[int]
    files: list[str]


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
    def __init__(self, root: Path | str, lake: str | None = None):
        """``lake``: the catalog's address (default ``PARTAGE_LAKE``, else ``sqlite:<root>/lake.sqlite``):
        ``sqlite:/path`` or ``postgres:<libpq string or URI>``; its data files go to ``PARTAGE_LAKE_DATA``,
        else ``<root>/lake`` (``<s3 root>/lake`` for an object-store root)."""
        text = str(root)
        self.remote: str | None = None
        if "://" in text and not text.startswith("file://"):
            self.remote = text.rstrip("/")
            self.root = Path(os.environ.get("PARTAGE_LOCAL_DIR") or "warehouse").resolve()
        else:
            self.root = Path(text.removeprefix("file://")).resolve()
        self.db_path = self.root / "lake.sqlite"  # the default catalog; see exists() for PostgreSQL
        catalog = lake or os.environ.get("PARTAGE_LAKE") or f"sqlite:{self.db_path}"
        if catalog.startswith("sqlite:"):
            catalog = "sqlite:" + str(Path(catalog.removeprefix("sqlite:")).expanduser().resolve())
        data = os.environ.get("PARTAGE_LAKE_DATA") or f"{self.data_root}/lake"
        self.lake = LakeSpec(catalog, data)
        self.raw = RawStore(self.root / "raw")
        self._fs: Any = None
        self.legacy_ok = False  # set by `partage migrate` only: it reads the old layout and writes the lake

    def legacy_database(self) -> Path | None:
        """The old layout's ``partage.duckdb`` if this warehouse still has it (not yet migrated)."""
        path = self.root / LEGACY_DB
        return path if path.exists() else None

    def refuse_legacy(self) -> None:
        """Stop before anything opens or creates a lake beside a warehouse of the old layout.

        A harvest there would start an empty lake and every stored version would look lost; the
        way forward is ``partage migrate``, which keeps them all."""
        if not self.legacy_ok and self.legacy_database() is not None:
            raise LegacyWarehouse(
                f"{self.root} is a warehouse of the layout before DuckLake ({LEGACY_DB}); run "
                f"`partage migrate --warehouse {self.spec}` once to turn it into the lake (nothing is "
                "re-validated, every stored version is kept), then run this command again")

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
        """Let DuckDB read the object store's parts through fsspec (the lake's own files go through httpfs)."""
        if self.remote:
            try:
                con.register_filesystem(self.fs)
            except (duckdb.Error, ValueError) as e:
                if "already" not in str(e).lower():
                    raise

    def carry_over(self, dataset_id: str, version: str, rel: str, dest: Path) -> None:
        """Bring a part of an earlier version into a staging directory (hard link locally, download otherwise).

        With an object-store root the part is read from there, whichever machine wrote it: a worker's
        local directory holds only what it wrote itself."""
        if self.remote:
            dest.parent.mkdir(parents=True, exist_ok=True)
            self.fs.get(f"{self.location(dataset_id, version)}/{rel}", str(dest))
            return
        source = self.version_dir(dataset_id, version) / rel
        if not source.exists():
            raise WarehouseError(
                f"{source} is missing: version {version} of {dataset_id!r} was written elsewhere (another machine "
                f"sharing the lake {self.lake.safe}?) and its parts are in that machine's warehouse directory; "
                "several machines need the warehouse on an object store (--warehouse s3://bucket/prefix, each "
                "machine with its own PARTAGE_LOCAL_DIR), see the README's \"Scaling out\"")
        copy_or_link(source, dest)

    def version_file(self, dataset_id: str, version: str, rel: str) -> Path | None:
        """A small file of a version (``schema.json``, ``datapackage.json``, ``reports/<source>.json``) on
        the local disk, or None when the version has none.

        With an object-store root, a version written by another machine has its files only there: they
        are downloaded once into the local version directory (versions never change), so every reader
        of the local path — exports, the API, gc — works on any machine."""
        local = self.version_dir(dataset_id, version) / rel
        if local.is_file() or not self.remote:
            return local if local.is_file() else None
        url = f"{self.location(dataset_id, version)}/{rel}"
        tmp = local.with_name(f".{local.name}.{os.getpid()}")
        try:
            local.parent.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(url, str(tmp))
        except FileNotFoundError:
            tmp.unlink(missing_ok=True)
            return None
        os.replace(tmp, local)
        return local

    def fetch_version_files(self, dataset_id: str, version: str, parts: list[Part]) -> None:
        """Bring a version's schema, data package and each part's report here (see ``version_file``); no-op locally."""
        if not self.remote:
            return
        self.version_file(dataset_id, version, "schema.json")
        self.version_file(dataset_id, version, "datapackage.json")
        for p in parts:  # a carried part's report is in the version that produced it (or handed on by gc)
            rel = f"reports/{p.source_key}.json"
            if self.version_file(dataset_id, version, rel) is None and p.since_version != version:
                self.version_file(dataset_id, p.since_version, rel)

    def keep_rejected_report(self, dataset_id: str, name: str, text: str) -> str:
        """Keep a rejected file's report (it belongs to no version) in ``<dataset>/rejected/``, where producers
        can be pointed to; with an object-store root in the bucket too, for every machine. Returns where."""
        local = self.root / dataset_id / "rejected" / name
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(text, encoding="utf-8")
        if not self.remote:
            return str(local)
        url = f"{self.remote}/{dataset_id}/rejected/{name}"
        self.fs.put_file(str(local), url)
        return url

    def latest_rejected_report(self, dataset_id: str, source_key: str) -> str | None:
        """Where the report of the source's latest rejected file is (run ids sort by time); with an
        object-store root the bucket's, which holds every machine's."""
        if self.remote:
            base = f"{self.remote}/{dataset_id}/rejected"
            self.fs.invalidate_cache(base)
            found = sorted(self.fs.glob(f"{base}/*-{source_key}.json"))
            if found:
                scheme = self.remote.split("://", 1)[0]
                return f"{scheme}://{found[-1].split('://', 1)[-1]}"
            return None
        folder = self.root / dataset_id / "rejected"
        local = sorted(folder.glob(f"*-{source_key}.json")) if folder.is_dir() else []
        return str(local[-1]) if local else None

    def remove_version_data(self, dataset_id: str, version: str) -> None:
        if self.remote:
            url = self.location(dataset_id, version)
            self.fs.invalidate_cache(url)  # another machine may have written it since this process listed
            if self.fs.exists(url):
                self.fs.rm(url, recursive=True)

    def remote_version_names(self, dataset_id: str) -> list[str]:
        """Names under the object store's dataset prefix (to find what a crash left there)."""
        if not self.remote:
            return []
        base = f"{self.remote}/{dataset_id}"
        self.fs.invalidate_cache(base)  # other machines write there too: never a listing cached earlier
        try:
            return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(base, detail=False))
        except FileNotFoundError:
            return []

    # -- connections -------------------------------------------------------

    def exists(self) -> bool:
        """Has a harvest created this warehouse's lake yet?"""
        if self.lake.kind == "postgres":
            try:
                with self.connect(read_only=True, _check=False) as con:
                    return con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = ? "
                                       "AND schema_name = ? AND table_name = 'versions'", [LAKE, META]).fetchone()[0] > 0
            except WarehouseError:
                return False
        return self.db_path.exists() if self.lake.catalog == f"sqlite:{self.db_path}" \
            else Path(self.lake.catalog.removeprefix("sqlite:")).exists()

    @contextmanager
    def connect(self, read_only: bool = False, wait: float | None = None,
                _check: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor on this process's DuckDB instance, with the lake as its default catalog.

        Nothing waits here: DuckLake's readers and writers do not block each other (``wait`` is
        accepted for callers of the former single-file warehouse and ignored)."""
        self.refuse_legacy()
        if read_only and _check and not self.exists():
            raise WarehouseError(f"no warehouse at {self.root} (lake {self.lake.safe}); run `partage harvest` "
                                 "first or pass --warehouse")
        if not read_only:
            self.root.mkdir(parents=True, exist_ok=True)
        con = instance(self.lake, read_only=read_only).cursor()
        try:
            con.execute(f"USE {LAKE}")
            self.register(con)
            yield con
        finally:
            con.close()

    def _transaction(self, work: Any, what: str) -> Any:
        """Run ``work(con)`` in one transaction, redone when the commit meets another writer's.

        DuckLake is optimistic: two processes committing to the same table at once see one of them
        refused (a conflict, or SQLite's "database is locked" while the other commits). The unit of
        work is redone from the start, with a short random back-off, so no commit is lost."""
        import random

        delay = 0.05
        for attempt in range(COMMIT_RETRIES + 1):
            with self.connect() as con:
                con.execute("BEGIN")
                try:
                    result = work(con)
                    con.execute("COMMIT")
                    return result
                except duckdb.TransactionException as e:
                    _rollback(con)
                    text = str(e).lower()
                    if attempt == COMMIT_RETRIES or not ("conflict" in text or "locked" in text or "busy" in text):
                        raise WarehouseBusy(f"could not commit {what} to the lake {self.lake.safe} after "
                                            f"{attempt + 1} tries ({str(e).splitlines()[0]}); run it again") from None
                    log.info("commit of %s met another writer's (%s); retrying", what, str(e).splitlines()[0])
                except BaseException:
                    _rollback(con)
                    raise
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")

    def init(self) -> None:
        """Create the lake's schemas, metadata tables and views if missing, and write attach.sql."""
        with self.connect() as con:
            missing = con.execute("SELECT count(*) FROM duckdb_views() WHERE database_name = ? AND view_name = 'catalog'",
                                  [LAKE]).fetchone()[0] == 0
        if missing:
            self._transaction(lambda con: (con.execute(DDL), con.execute(CATALOG_VIEW)), "the lake's tables")
        self.write_attach_script()

    def attach_script(self, *, read_only: bool = True) -> str:
        """What any DuckDB client runs to open this lake: LOAD each extension from its package, ATTACH, USE."""
        lines = ["-- Partage: open the lake in any DuckDB 1.5.5 client (duckdb -init attach.sql, or paste it).",
                 "-- Extensions are loaded from the Python packages Partage installs: nothing is downloaded.",
                 "SET autoinstall_known_extensions = false;", "SET autoload_known_extensions = false;"]
        lines += load_sql()
        lines.append(self.lake.attach_sql(read_only=read_only))
        lines.append(f"USE {LAKE};")
        return "\n".join(lines) + "\n"

    def write_attach_script(self) -> Path:
        path = self.root / "attach.sql"
        text = self.attach_script()
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            tmp = path.with_name(f".attach.sql.{os.getpid()}")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
        return path

    def stamp(self) -> tuple[int, int] | None:
        """Something that changes with every commit (the latest snapshot id), None before the first harvest."""
        if not self.exists():
            return None
        with self.connect(read_only=True) as con:
            row = con.execute(f"SELECT max(snapshot_id) FROM {LAKE}.snapshots()").fetchone()
        return (int(row[0] or 0), 0)

    @contextmanager
    def harvest_lock(self, datasets: list[str] | None = None, *, lend: bool = False) -> Iterator[None]:
        """Keep two writers of one dataset apart on this machine, and gc apart from harvests; never readers.

        ``datasets`` given (a harvest): each of them is locked, so a second harvest of any of them is
        refused **at once** (:class:`HarvestRunning`, exit code 3), while a harvest of other datasets
        runs beside it. ``None`` (``partage gc``): the whole warehouse. Locks are ``flock``s, released
        by the kernel when their process dies, so a crash never leaves one behind.

        Between machines (a PostgreSQL catalog) each machine has its own locks; the same dataset is
        kept to one writer by Prefect (the ``partage-warehouse`` limit, see prefect.yaml), and a harvest
        whose dataset another machine gave a new version since it read the state is refused
        (:class:`DatasetConflict`, see :class:`Planned`) — also when DuckLake refused its commit and
        ``_transaction`` redoes it.

        ``lend``: code called inside this block, in this context (the CLI's Prefect flow), may take
        the same datasets' locks again without being refused."""
        keys = {(str(self.root), d) for d in datasets or ()}
        if datasets is not None and keys <= _LENT.get():
            yield  # held by our caller for us
            return
        self.root.mkdir(parents=True, exist_ok=True)
        held: list[Any] = []
        token = None
        try:
            whole = open(self.root / ".harvest.lock", "a+")
            held.append(whole)
            _flock(whole, exclusive=datasets is None,
                   busy=lambda holder: HarvestRunning(
                       f"another harvest is running on {self.root} ({holder}); wait for it to finish"
                       if datasets is None else
                       f"`partage gc` is running on {self.root} ({holder}); harvest again when it has finished"))
            if datasets is not None:
                locks = self.root / ".locks"
                locks.mkdir(exist_ok=True)
                for ds_id in sorted(set(datasets)):
                    f = open(locks / (_lock_name(ds_id) + ".lock"), "a+")
                    held.append(f)
                    _flock(f, exclusive=True, busy=lambda holder, ds_id=ds_id: HarvestRunning(
                        f"another harvest is running on {self.root} and writing {ds_id!r} ({holder}); wait for "
                        "it to finish, or harvest other datasets"))
            if lend and datasets is not None:
                token = _LENT.set(_LENT.get() | keys)
            yield
        finally:
            if token is not None:
                _LENT.reset(token)
            for f in reversed(held):
                try:
                    fcntl.flock(f, fcntl.LOCK_UN)
                finally:
                    f.close()

    # -- reads ---------------------------------------------------------------

    def source_records(self, dataset_id: str) -> dict[str, SourceRecord]:
        return self.dataset_state(dataset_id).records

    def dataset_state(self, dataset_id: str) -> DatasetState:
        """Everything a harvest needs to know about a dataset, in one cursor."""
        fields = [f.name for f in SourceRecord.__dataclass_fields__.values()]
        with self.connect() as con:
            cur = con.execute(f"SELECT {', '.join(fields)} FROM {META}.sources WHERE dataset_id = ?", [dataset_id])
            rows = cur.fetchall()
            row = con.execute(
                f"SELECT version, parts FROM {META}.versions WHERE dataset_id = ? ORDER BY version DESC LIMIT 1",
                [dataset_id],
            ).fetchone()
        latest = None if row is None else (row[0], [Part(**p) for p in json.loads(row[1])])
        records = {r[1]: SourceRecord(**dict(zip(fields, r))) for r in rows}
        return DatasetState(records, latest)

    def latest_version_info(self, dataset_id: str) -> VersionInfo | None:
        return self.version_info(dataset_id)

    def version_info(self, dataset_id: str, version: str | None = None) -> VersionInfo | None:
        """One stored version (the latest when ``version`` is None), or None if it is not (or no longer) kept."""
        with self.connect() as con:
            row = con.execute(
                f"""SELECT version, created_at, path, row_count, quarantined_rows, schema_ref, schema_sha256, parts, summary
                    FROM {META}.versions WHERE dataset_id = ? AND (? IS NULL OR version = ?)
                    ORDER BY version DESC LIMIT 1""",
                [dataset_id, version, version],
            ).fetchone()
        if row is None:
            return None
        parts = [Part(**p) for p in json.loads(row[7])]
        self.fetch_version_files(dataset_id, row[0], parts)  # written on another machine: its JSON files from the bucket
        return VersionInfo(dataset_id, row[0], row[1], self.version_dir(dataset_id, row[0]), row[3], row[4], row[5],
                           row[6], parts, json.loads(row[8]), self.location(dataset_id, row[0]))

    def publications(self, target: str) -> dict[str, Publication]:
        fields = [f.name for f in Publication.__dataclass_fields__.values()]
        with self.connect() as con:
            rows = con.execute(f"SELECT {', '.join(fields)} FROM {META}.publications WHERE target = ?", [target]).fetchall()
        return {r[1]: Publication(**dict(zip(fields, r))) for r in rows}

    def record_publication(self, pub: Publication) -> None:
        def work(con: duckdb.DuckDBPyConnection) -> None:
            con.execute(f"DELETE FROM {META}.publications WHERE target = ? AND dataset_id = ?", [pub.target, pub.dataset_id])
            con.execute(f"INSERT INTO {META}.publications VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [pub.target, pub.dataset_id, pub.remote_id, pub.remote_name, pub.access, pub.version,
                         pub.published_at, pub.removed_since, pub.deleted_at])
        self._transaction(work, f"the publication of {pub.dataset_id} to {pub.target}")

    def version_dir(self, dataset_id: str, version: str) -> Path:
        """The local directory of a version (with a remote root: its JSON files only)."""
        return self.root / dataset_id / version

    def snapshots(self, dataset_id: str) -> dict[str, int]:
        """Each stored version of the dataset and the DuckLake snapshot that committed it."""
        with self.connect() as con:
            rows = con.execute(
                f"SELECT snapshot_id, commit_extra_info FROM {LAKE}.snapshots() "
                "WHERE commit_message = ? ORDER BY snapshot_id", [f"partage: {dataset_id}"]).fetchall()
        out = {}
        for snap, info in rows:
            try:
                out[json.loads(info)["version"]] = int(snap)
            except (TypeError, ValueError, KeyError):
                continue
        return out

    def clean_lake(self, *, grace: dt.timedelta, dry_run: bool = False) -> "LakeCleanup":
        """Expire the snapshots no kept version needs, then delete the data files only they referred to.

        Kept: the snapshot that committed each version still in ``_partage.versions`` (``history``
        and ``partage history`` travel to them) and the latest one. The others — a retention-removed
        version's, the metadata-only commits of unchanged runs, publications, run records — go, but
        only once older than ``grace``: an analyst's transaction opened on one of them keeps reading
        its files until then. Files no snapshot ever committed (a writer killed mid-commit) go too,
        after the same grace (``ducklake_delete_orphaned_files``)."""
        cutoff = now() - grace
        with self.connect() as con:
            snaps = con.execute(f"SELECT snapshot_id, snapshot_time, commit_message, commit_extra_info "
                                f"FROM {LAKE}.snapshots() ORDER BY snapshot_id").fetchall()
            kept = {tuple(r) for r in con.execute(f"SELECT dataset_id, version FROM {META}.versions").fetchall()}
            needed = {int(snaps[-1][0])} if snaps else set()
            for snap, _, message, info in snaps:
                if isinstance(message, str) and message.startswith("partage: ") and info:
                    try:
                        extra = json.loads(info)
                        if (extra.get("dataset"), extra.get("version")) in kept:
                            needed.add(int(snap))
                    except (TypeError, ValueError, AttributeError):
                        needed.add(int(snap))  # not ours to judge: kept
            expire = [int(s) for s, at, _, _ in snaps if int(s) not in needed and at < cutoff]
            cleanup_dry = "true" if dry_run else "false"
            if expire and not dry_run:
                con.execute(f"CALL ducklake_expire_snapshots({literal(LAKE)}, versions => "
                            f"[{', '.join(map(str, expire))}])")
            files = [r[0] for r in con.execute(
                f"CALL ducklake_cleanup_old_files({literal(LAKE)}, dry_run => {cleanup_dry}, older_than => ?)",
                [cutoff]).fetchall()]
            files += [r[0] for r in con.execute(
                f"CALL ducklake_delete_orphaned_files({literal(LAKE)}, dry_run => {cleanup_dry}, older_than => ?)",
                [cutoff]).fetchall()]
        return LakeCleanup(expire, files)

    # -- writes --------------------------------------------------------------

    def record_run(self, run_id: str, started: dt.datetime, summary: dict[str, Any] | None = None) -> None:
        def work(con: duckdb.DuckDBPyConnection) -> None:
            con.execute(f"DELETE FROM {META}.runs WHERE run_id = ?", [run_id])
            con.execute(f"INSERT INTO {META}.runs VALUES (?, ?, ?, ?)",
                        [run_id, started, now() if summary is not None else None,
                         json.dumps(summary) if summary else None])
        self._transaction(work, f"run {run_id}")

    def mark_removed(self, run_id: str, catalog_ids: set[str]) -> list[str]:
        """Datasets stored here that the catalog no longer has: their sources become ``gone`` (once,
        with the date and why), so ``partage status`` and the ``catalog`` view stop calling them not
        ok every night; their versions stay until retention removes them. Returns the ids marked now."""
        reason = ("its dataset was removed from the catalog; the stored versions stay until retention "
                  "(`partage gc`) removes them")

        def work(con: duckdb.DuckDBPyConnection) -> list[str]:
            ids = sorted(catalog_ids)
            rows = con.execute(f"SELECT dataset_id, source_key, label FROM {META}.sources WHERE NOT list_contains(?, "
                               "dataset_id) AND state IS DISTINCT FROM 'gone'", [ids]).fetchall()
            if not rows:
                return []
            at = now()
            con.execute(f"UPDATE {META}.sources SET state = 'gone', layer = NULL, reason = ?, checked_at = ?, "
                        "gone_since = ? WHERE NOT list_contains(?, dataset_id) AND state IS DISTINCT FROM 'gone'",
                        [reason, at, at, ids])
            con.executemany(f"INSERT INTO {META}.source_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [[run_id, d, k, label, "gone", None, reason, 0, None, at] for d, k, label in rows])
            return sorted({r[0] for r in rows})

        return self._transaction(work, "the datasets removed from the catalog")

    def record_sources(self, run_id: str, dataset: dict[str, Any], updates: list[dict[str, Any]],
                       reports: list[dict[str, Any]], con: duckdb.DuckDBPyConnection | None = None,
                       planned: Planned | None = None) -> None:
        """Upsert the dataset row and each source's state; append events and reports.

        ``planned``: the version the harvest read; refused with :class:`DatasetConflict` if it is no
        longer the latest (checked in the transaction, so again when a conflicting commit is redone)."""
        if con is None:
            self._transaction(lambda c: self.record_sources(run_id, dataset, updates, reports, c, planned),
                              f"the sources of {dataset['id']}")
            return
        if planned is not None:
            self.check_planned(con, dataset["id"], planned)
        at = now()
        con.execute(f"DELETE FROM {META}.datasets WHERE id = ?", [dataset["id"]])
        con.execute(
            f"INSERT INTO {META}.datasets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [dataset["id"], dataset["title"], dataset["description"], dataset.get("publisher"), dataset["license"],
             dataset["access"], dataset.get("keywords", []), dataset.get("schema_ref"), dataset["policy"],
             dataset.get("catalog_file"), at],
        )
        if updates:
            old = {r[1]: dict(zip(SOURCE_COLUMNS, r)) for r in con.execute(
                f"SELECT {', '.join(SOURCE_COLUMNS)} FROM {META}.sources WHERE dataset_id = ?", [dataset["id"]]).fetchall()}
            keys = [u["source_key"] for u in updates]
            con.execute(f"DELETE FROM {META}.sources WHERE dataset_id = ? AND list_contains(?, source_key)",
                        [dataset["id"], keys])
            rows, events = [], []
            for u in updates:
                if u.get("delete"):  # a portal's own row, once the portal lists again
                    continue
                new = {"dataset_id": dataset["id"], "source_key": u["source_key"], "kind": u["kind"],
                       "label": u["label"], "state": u["state"], "layer": u.get("layer"), "reason": u["reason"],
                       "checked_at": at, "changed_at": at if u["state"] == "updated" else None,
                       "gone_since": u.get("gone_since")}
                for c in ("etag", "last_modified", "sha256", "bytes", "validated_sha256", "fingerprint",
                          "accepted_sha256", "origin", "location", "remote_id", "remote_modified"):
                    new[c] = u.get(c)
                before = old.get(u["source_key"], {})
                for c in _KEPT_WHEN_NULL:
                    if new[c] is None:
                        new[c] = before.get(c)
                rows.append([new[c] for c in SOURCE_COLUMNS])
                events.append([run_id, dataset["id"], u["source_key"], u["label"], u["state"], u.get("layer"),
                               u["reason"], u.get("body_bytes", 0), u.get("sha256"), at])
            if rows:
                con.executemany(f"INSERT INTO {META}.sources ({', '.join(SOURCE_COLUMNS)}) VALUES "
                                f"({', '.join('?' * len(SOURCE_COLUMNS))})", rows)
                con.executemany(f"INSERT INTO {META}.source_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", events)
        if reports:
            con.executemany(
                f"INSERT INTO {META}.reports VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [[run_id, dataset["id"], r["source_key"], r["sha256"], r.get("version"), r["accepted"],
                  r["valid"], r["error_count"], r["report"], at] for r in reports],
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
        planned: Planned | None = None,
    ) -> Path:
        """Make a staged version visible: rename its directory, then commit one lake snapshot.

        ``planned``: the latest version when the harvest read the dataset's state; if another writer
        has stored a newer one since, :class:`DatasetConflict` is raised — before the upload when it
        is already visible, else when the commit that met the other one is redone.

        The rename makes the parts final but unreferenced; the snapshot holds the dataset's
        tables (rewritten from the version's parts), the version row and the source states. A
        crash before the commit leaves the previous snapshot whole, plus a version directory and
        perhaps lake files nothing refers to, which ``partage gc`` removes.
        """
        final = self.version_dir(dataset["id"], version)
        location = self.location(dataset["id"], version)
        if planned is not None:
            with self.connect() as con:
                self.check_planned(con, dataset["id"], planned)
        _fsync_tree(staged)
        if self.remote:
            self._upload(staged, location)
        rows = int(summary.get("rows", sum(p.rows for p in parts)))  # net of rows the consolidation rule left out
        quarantined = sum(p.quarantined for p in parts)
        older = self.snapshots(dataset["id"])
        checkpoint("before-rename")
        os.replace(staged, final)
        _fsync_dir(final.parent)
        if self.remote:  # the parts are in the object store; keep only the small JSON files here
            for sub in ("data", "quarantine"):
                shutil.rmtree(final / sub, ignore_errors=True)
            (final / DUPLICATES_FILE).unlink(missing_ok=True)
        checkpoint("renamed")
        states = {u["source_key"]: u["state"] for u in updates if not u.get("delete")}
        info = json.dumps({"dataset": dataset["id"], "version": version, "run_id": run_id, "sources": states},
                          ensure_ascii=False)

        def work(con: duckdb.DuckDBPyConnection) -> None:
            if planned is not None:
                self.check_planned(con, dataset["id"], planned)
            con.execute(f"DELETE FROM {META}.versions WHERE dataset_id = ? AND version = ?", [dataset["id"], version])
            con.execute(
                f"INSERT INTO {META}.versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [dataset["id"], version, now(), run_id, location, rows, quarantined, schema_ref,
                 schema_sha256, json.dumps([p.to_dict() for p in parts]), json.dumps(summary)],
            )
            checkpoint("in-transaction")
            for r in reports:
                r.setdefault("version", version)
            self.record_sources(run_id, dataset, updates, reports, con)
            self._write_tables(con, dataset["id"], dataset["title"], dataset.get("description") or "",
                               location, parts, columns, summary)
            _point_history(con, dataset["id"], older, version)
            con.execute(f"CALL {LAKE}.set_commit_message('partage', ?, extra_info => ?)",
                        [f"partage: {dataset['id']}", info])
            checkpoint("views-repointed")

        self._transaction(work, f"version {version} of {dataset['id']}")
        checkpoint("committed")
        return final

    @staticmethod
    def check_planned(con: duckdb.DuckDBPyConnection, dataset_id: str, planned: Planned) -> None:
        """Raise :class:`DatasetConflict` unless the dataset's latest version is still the one planned on.

        Inside a commit's transaction this reads the snapshot the commit is built on: when another
        writer commits first, DuckLake refuses this commit (a conflict on the dataset's tables),
        ``_transaction`` redoes it in a new transaction, and this check then sees the other version."""
        row = con.execute(f"SELECT max(version) FROM {META}.versions WHERE dataset_id = ?", [dataset_id]).fetchone()
        current = row[0] if row else None
        if current != planned.version:
            raise DatasetConflict(dataset_id, planned.version, current)

    def _upload(self, staged: Path, location: str) -> None:
        """Copy a staged version to the object store. Until the commit nothing refers to it; gc removes it after a crash."""
        for path in sorted(staged.rglob("*")):
            if path.is_file():
                self.fs.put_file(str(path), f"{location}/{path.relative_to(staged).as_posix()}")

    @staticmethod
    def _write_tables(con: duckdb.DuckDBPyConnection, dataset_id: str, title: str, description: str,
                      location: str | Path, parts: list[Part], columns: list[dict[str, Any]],
                      summary: dict[str, Any] | None = None) -> None:
        """Rewrite the dataset's lake tables from a version's parts, with their comments. Inside the caller's transaction."""
        ds = ident(dataset_id)
        location = str(location)
        q_files = [f"{location}/{p.quarantine}" for p in parts if p.quarantine]
        _replace_rows(con, f"main.{ds}", version_relation(location, parts, summary))
        comment = title + (f" — {description}" if description else "")
        con.execute(f"COMMENT ON TABLE main.{ds} IS {literal(comment)}")
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
            _replace_rows(con, f"{QUARANTINE}.{ds}", f"read_parquet({qf}, union_by_name = true)")
            con.execute(f"COMMENT ON TABLE {QUARANTINE}.{ds} IS {literal('Invalid rows of ' + dataset_id + ', as received, with their errors')}")
        else:
            con.execute(f"DROP TABLE IF EXISTS {QUARANTINE}.{ds}")
        dup_file = f"{location}/{DUPLICATES_FILE}"
        if (summary or {}).get("duplicates", {}).get("rows"):
            _replace_rows(con, f"{DUPLICATES}.{ds}",
                          f"(SELECT r.*, d._kept_source, d._kept_row_number "
                          f"FROM {parts_relation(location, parts)} AS r JOIN read_parquet({literal(dup_file)}) AS d "
                          "ON r._source = d._source AND r._row_number = d._row_number)")
            con.execute(f"COMMENT ON TABLE {DUPLICATES}.{ds} IS " + literal(
                f"Rows of {dataset_id} whose primary key another source also has, with the row kept "
                f"(_kept_source, _kept_row_number); rule: {summary['duplicates']['rule']}"))  # type: ignore[index]
        else:
            con.execute(f"DROP TABLE IF EXISTS {DUPLICATES}.{ds}")


_LENT: ContextVar[frozenset[tuple[str, str]]] = ContextVar("partage_harvest_locks_lent", default=frozenset())


def _lock_name(dataset_id: str) -> str:
    """A file name for a dataset's lock: the id when it is a safe name, else a digest (ids come from outside)."""
    import hashlib
    import re

    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,100}", dataset_id):
        return dataset_id
    return "id-" + hashlib.sha256(dataset_id.encode()).hexdigest()[:24]


def _flock(f: Any, *, exclusive: bool, busy: Any) -> None:
    """Take ``f``'s lock without waiting and write who holds it; ``busy(holder)`` is raised when it is taken."""
    try:
        fcntl.flock(f, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        raise busy(f.read().strip() or "a process of this machine") from None
    if exclusive:
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} since {now().isoformat(timespec='seconds')}")
        f.flush()


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass  # the failed commit already ended the transaction


def _replace_rows(con: duckdb.DuckDBPyConnection, table: str, relation: str) -> None:
    """Make ``table`` hold exactly ``relation``'s rows: a DELETE and an INSERT when the columns are the
    same (the table keeps its identity, so time travel reaches its earlier snapshots), else a new table."""
    schema, name = table.split(".", 1)
    current = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = ? AND schema_name = ? "
        "AND table_name = ? ORDER BY column_index", [LAKE, schema, name.strip('"').replace('""', '"')]).fetchall()
    wanted = [tuple(r[:2]) for r in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]
    if current and [tuple(c) for c in current] == wanted:
        con.execute(f"DELETE FROM {table}")
        con.execute(f"INSERT INTO {table} SELECT * FROM {relation}")
    else:
        con.execute(f"DROP TABLE IF EXISTS {table}")
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM {relation}")


def _point_history(con: duckdb.DuckDBPyConnection, dataset_id: str, snapshots: dict[str, int],
                   current: str | None) -> None:
    """history."<id>": every kept version's rows by time travel, with the version in `_version`.

    ``snapshots`` maps each earlier version to the snapshot that committed it; ``current`` is the
    version being committed (its rows are the table's, in this same transaction)."""
    ds = ident(dataset_id)
    kept = {r[0] for r in con.execute(f"SELECT version FROM {META}.versions WHERE dataset_id = ?", [dataset_id]).fetchall()}
    selects = [f"SELECT *, {literal(v)} AS _version FROM main.{ds} AT (VERSION => {snap})"
               for v, snap in sorted(snapshots.items()) if v in kept and v != current]
    if current is not None:
        selects.append(f"SELECT *, {literal(current)} AS _version FROM main.{ds}")
    if not selects:
        con.execute(f"DROP VIEW IF EXISTS {HISTORY}.{ds}")
        return
    con.execute(f"CREATE OR REPLACE VIEW {HISTORY}.{ds} AS " + " UNION ALL BY NAME ".join(selects))
    con.execute(f"COMMENT ON VIEW {HISTORY}.{ds} IS "
                + literal(f"Every kept version of {dataset_id} (DuckLake time travel); _version says which"))


def point_history(warehouse: "Warehouse", dataset_id: str) -> None:
    """Rebuild history."<id>" after versions were removed (gc), in a transaction of its own."""
    snaps = warehouse.snapshots(dataset_id)
    latest = max(snaps) if snaps else None

    def work(con: duckdb.DuckDBPyConnection) -> None:
        kept = {r[0] for r in con.execute(f"SELECT version FROM {META}.versions WHERE dataset_id = ?",
                                          [dataset_id]).fetchall()}
        _point_history(con, dataset_id, {v: s for v, s in snaps.items() if v != latest}, latest if latest in kept else None)
    warehouse._transaction(work, f"the history of {dataset_id}")


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
