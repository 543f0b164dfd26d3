"""``partage migrate``: a warehouse of the layout before DuckLake becomes today's lake.

The old layout (Partage up to commit 0798d75) is a single DuckDB file ``partage.duckdb`` with
the metadata tables ``_partage.*`` and views over the version directories
``<dataset>/<version>/{data,quarantine}/<source>.parquet``. Those directories are exactly what the
lake's store keeps today, so they are reused in place: nothing is downloaded or validated again.

How a version becomes a snapshot. Each old version, in the order it was created, is committed
through the store's own commit path (``Warehouse._write_tables`` and the history view, the code
``publish_version`` runs), in one transaction with its ``_partage.versions`` row, the source events
and validation reports of the run that made it, and a commit message and extra info as
``publish_version`` writes them (``partage: <id>``; dataset, version, run_id, sources) plus
``migrated_from``. ``ducklake_add_data_files`` was not used: it registers a Parquet file as the
table's own, and the parts are not the table's rows — ``_source_version`` is added when they are
read, the consolidation's ``duplicates.parquet`` is anti-joined, parts of several versions are
unioned by name — and a file DuckLake owns is deleted when its snapshots expire, while the parts
are shared between versions and read by the exports and the API. Going through the commit path
gives each migrated snapshot the very rows and tables a harvest of that version writes today, at
the cost of one copy of the rows into the lake's own files (as every harvest makes).

After the versions, one last snapshot (``partage: migrate``) holds the current state: the
sources, the datasets, the publications, the runs, and the events and reports of runs that made
no version. Then ``partage.duckdb`` is renamed ``partage.duckdb.migrated`` (kept, nothing is lost)
and the warehouse is an ordinary lake.

Resuming. Every snapshot is atomic and says which version it holds, so a migration stopped
anywhere (a crash, Ctrl-C) is run again and skips what is committed; a finished one is a no-op.
While ``partage.duckdb`` is there, every other command refuses the warehouse (``Warehouse.refuse_legacy``).

Reading the old file. The old code ran DuckDB 2.0.1 (its first lock, commit c68786a), whose files
DuckDB 1.5.5 cannot open (storage version 999). The metadata is therefore read from an export,
``partage.export/`` beside the file: one Parquet file per ``_partage`` table and a manifest,
written by :data:`EXPORT_SCRIPT` run by a Python whose DuckDB reads the file — this process's
when it can, else the one given with ``--legacy-python`` (the old virtualenv's). The export is
kept; it is checked against the file's size and modification time.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import duckdb

from ..errors import WarehouseError
from ..faults import checkpoint
from .warehouse import LEGACY_DB, META, Part, Warehouse, _point_history, ident, literal
from .lake import LAKE

EXPORT_DIR = "partage.export"
MIGRATED_SUFFIX = ".migrated"
DONE_MESSAGE = "partage: migrate"
LEGACY_LAYOUT = "partage.duckdb (before DuckLake, up to 0798d75)"
TABLES = ("datasets", "sources", "source_events", "versions", "reports", "publications", "runs")

# Run by any Python whose duckdb module can open the old file: argv = database, export directory.
# It needs nothing but duckdb, so the old virtualenv runs it as it is.
EXPORT_SCRIPT = r'''
import json, os, shutil, sys
import duckdb
db, out = sys.argv[1], sys.argv[2]
tables = %r
tmp = out + ".tmp"
shutil.rmtree(tmp, ignore_errors=True)
os.makedirs(tmp)
con = duckdb.connect(db, read_only=True)
counts = {}
for t in tables:
    if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = '_partage' AND table_name = ?", [t]).fetchone()[0]:
        continue
    path = os.path.join(tmp, t + ".parquet").replace("'", "''")
    con.execute('COPY (SELECT * FROM _partage."%%s") TO \'%%s\' (FORMAT parquet)' %% (t, path))
    counts[t] = con.execute('SELECT count(*) FROM _partage."%%s"' %% t).fetchone()[0]
con.close()
st = os.stat(db)
with open(os.path.join(tmp, "manifest.json"), "w") as f:
    json.dump({"duckdb": duckdb.__version__, "bytes": st.st_size, "mtime": st.st_mtime, "tables": counts}, f)
shutil.rmtree(out, ignore_errors=True)
os.replace(tmp, out)
print(json.dumps(counts))
''' % (TABLES,)


class MigrationError(WarehouseError):
    """The old warehouse cannot be migrated as it is; the message says what to do."""


@dataclass(frozen=True)
class LegacyVersion:
    """One version of the old layout, and whether the lake already has its snapshot."""

    dataset_id: str
    version: str
    run_id: str | None
    created_at: dt.datetime | None
    rows: int
    quarantined: int
    parts: list[Part]
    old_path: str
    state: Literal["pending", "done"]


@dataclass(frozen=True)
class MigrationPlan:
    """What ``partage migrate`` will do, printed before it does it."""

    database: Path
    export: Path
    duckdb_version: str  # the DuckDB that read the old file
    datasets: list[str]
    versions: list[LegacyVersion]
    tables: dict[str, int]  # rows per old _partage table
    finished: bool  # the final metadata snapshot is committed already
    skipped: list[str] = field(default_factory=list)  # datasets known only to the catalog (no version yet)

    @property
    def pending(self) -> list[LegacyVersion]:
        return [v for v in self.versions if v.state == "pending"]


@dataclass(frozen=True)
class MigrationResult:
    state: Literal["migrated", "nothing-to-do", "dry-run"]
    plan: MigrationPlan | None
    committed: int  # snapshots committed by this run
    kept_as: Path | None  # where partage.duckdb went


Say = Callable[[str], None]


class Migration:
    """The old layout of one warehouse, read through its export, and its move into the lake."""

    def __init__(self, warehouse: Warehouse, *, legacy_python: str | None = None, say: Say | None = None):
        self.wh = warehouse
        self.wh.legacy_ok = True
        self.legacy_python = legacy_python
        self.say: Say = say or (lambda line: None)
        self.exported = False  # this run wrote partage.export/

    # -- reading the old metadata ------------------------------------------------

    @property
    def database(self) -> Path:
        return self.wh.root / LEGACY_DB

    @property
    def export_dir(self) -> Path:
        return self.wh.root / EXPORT_DIR

    def export(self) -> dict[str, Any]:
        """Make sure ``partage.export/`` matches ``partage.duckdb``; return its manifest."""
        manifest = self._manifest()
        if manifest is not None:
            return manifest
        python = self.legacy_python
        if python is None:
            try:  # can this process's DuckDB read the file?
                duckdb.connect(str(self.database), read_only=True).close()
                python = sys.executable
            except duckdb.Error as e:
                raise MigrationError(
                    f"{self.database} was written by a DuckDB that DuckDB {duckdb.__version__} cannot read "
                    f"({str(e).splitlines()[0]}). Run the migration with the Python of the old Partage "
                    f"installation, whose DuckDB wrote it: `partage migrate --warehouse {self.wh.spec} "
                    "--legacy-python /path/to/old/.venv/bin/python` (it only exports the _partage tables to "
                    f"{self.export_dir}/), or see README, Migrating from the old layout") from None
        self.say(f"exporting the metadata of {self.database} with {python}")
        proc = subprocess.run([python, "-c", EXPORT_SCRIPT, str(self.database), str(self.export_dir)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise MigrationError(f"{python} could not export the metadata of {self.database}: {last}; "
                                 "give --legacy-python the Python of the Partage installation that wrote it")
        self.exported = True
        manifest = self._manifest()
        if manifest is None:
            raise MigrationError(f"the export of {self.database} in {self.export_dir} does not match the file; "
                                 "is a harvest of the old installation still running? Stop it and run again")
        return manifest

    def _manifest(self) -> dict[str, Any] | None:
        """The export's manifest if it was made from the file as it is now."""
        path = self.export_dir / "manifest.json"
        if not path.is_file():
            return None
        manifest = json.loads(path.read_text(encoding="utf-8"))
        st = self.database.stat()
        # whole seconds: an archive (tar) keeps the file's mtime to the second
        if manifest.get("bytes") != st.st_size or int(float(manifest.get("mtime", 0))) != int(st.st_mtime):
            return None
        return manifest

    def _rows(self, con: duckdb.DuckDBPyConnection, table: str, where: str = "",
              params: list[Any] | None = None) -> list[dict[str, Any]]:
        f = self._file(table)
        if f is None:
            return []
        cur = con.execute(f"SELECT * FROM read_parquet({literal(str(f))}) {where}", params or [])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def _file(self, table: str) -> Path | None:
        f = self.export_dir / f"{table}.parquet"
        return f if f.is_file() else None

    # -- the plan ----------------------------------------------------------------

    def plan(self) -> MigrationPlan | None:
        """What is to do; None when the warehouse has no old layout left (migrated, or never was)."""
        if not self.database.exists():
            return None
        manifest = self.export()
        con = duckdb.connect()  # the export is plain Parquet: no lake needed to read it (a dry run creates nothing)
        try:
            rows = self._rows(con, "versions", "ORDER BY created_at, version, dataset_id")
            datasets = [r["id"] for r in self._rows(con, "datasets", "ORDER BY id")]
        finally:
            con.close()
        lake = self.wh.exists()
        finished = False
        if lake:
            with self.wh.connect() as lcon:
                finished = lcon.execute(f"SELECT count(*) FROM {LAKE}.snapshots() WHERE commit_message = ?",
                                        [DONE_MESSAGE]).fetchone()[0] > 0
        done: dict[str, dict[str, int]] = {}
        versions = []
        for r in rows:
            ds = r["dataset_id"]
            if ds not in done:
                done[ds] = self.wh.snapshots(ds) if lake else {}
            versions.append(LegacyVersion(
                ds, r["version"], r["run_id"], r["created_at"], int(r["row_count"] or 0),
                int(r["quarantined_rows"] or 0), [Part(**p) for p in (r["parts"] if isinstance(r["parts"], list) else json.loads(r["parts"]))], r["path"],
                "done" if r["version"] in done[ds] else "pending"))
        known = {(v.dataset_id, v.version) for v in versions}
        for ds, snaps in done.items():
            foreign = [v for v in snaps if (ds, v) not in known]
            if foreign:
                raise MigrationError(
                    f"the lake {self.wh.lake.safe} already has version(s) {', '.join(foreign)} of {ds} that "
                    f"{self.database} does not know (a harvest into a new lake beside the old layout?); "
                    "move that lake aside (lake.sqlite and lake/) and run `partage migrate` again")
        with_versions = {v.dataset_id for v in versions}
        return MigrationPlan(self.database, self.export_dir, str(manifest.get("duckdb")), datasets, versions,
                             {k: int(v) for k, v in manifest.get("tables", {}).items()}, finished,
                             [d for d in datasets if d not in with_versions])

    def check_files(self, plan: MigrationPlan) -> None:
        """Every part a pending version needs is where the lake will read it, before anything is written."""
        missing = []
        for v in plan.pending:
            location = self.wh.location(v.dataset_id, v.version)
            for p in v.parts:
                for rel in filter(None, (p.data, p.quarantine)):
                    path = f"{location}/{rel}"
                    if not (self.wh.fs.exists(path) if self.wh.remote else Path(path).is_file()):
                        missing.append(f"{v.dataset_id} {v.version}: {path}")
        if missing:
            raise MigrationError(f"{len(missing)} part file(s) of the old warehouse are missing, first: {missing[0]}; "
                                 "restore the version directories (or their backup) and run `partage migrate` again")

    # -- doing it ----------------------------------------------------------------

    def run(self, *, dry_run: bool = False) -> MigrationResult:
        plan = self.plan()
        if plan is None:
            kept = self.database.with_name(LEGACY_DB + MIGRATED_SUFFIX)
            self.say(f"nothing to migrate in {self.wh.root}: no {LEGACY_DB}"
                     + (f" (already migrated; the old file is kept as {kept.name})" if kept.exists() else ""))
            return MigrationResult("nothing-to-do", None, 0, None)
        self._print_plan(plan)
        if dry_run:
            self.say("dry run: nothing changed" + (f" (but the metadata export {EXPORT_DIR}/, kept for the real run)"
                                                    if self.exported else ""))
            return MigrationResult("dry-run", plan, 0, None)
        self.check_files(plan)
        self.wh.init()
        committed = 0
        first_of = {}
        for v in plan.versions:
            first_of.setdefault(v.dataset_id, v.version)
        total = len(plan.pending)
        for i, v in enumerate(plan.pending, 1):
            snap = self._commit_version(v, first=first_of[v.dataset_id] == v.version)
            committed += 1
            self.say(f"[{i}/{total}] {v.dataset_id} {v.version}: {v.rows:,} rows, {v.quarantined:,} quarantined "
                     f"→ snapshot {snap}")
        if not plan.finished:
            snap = self._commit_state(plan)
            committed += 1
            self.say(f"sources, datasets, publications, runs and the remaining events and reports → snapshot {snap}")
        checkpoint("migrate-before-retire")
        kept = self._retire()
        self.say(f"done: {len(plan.versions)} version(s) of {len(plan.datasets)} dataset(s) in the lake "
                 f"{self.wh.lake.safe}; the old file is kept as {kept}")
        return MigrationResult("migrated", plan, committed, kept)

    def _print_plan(self, plan: MigrationPlan) -> None:
        self.say(f"old warehouse {plan.database} (read with DuckDB {plan.duckdb_version}, export {plan.export})")
        self.say(f"into the lake {self.wh.lake.safe}, data in {self.wh.lake.data_path}")
        for ds in plan.datasets:
            vs = [v for v in plan.versions if v.dataset_id == ds]
            if not vs:
                self.say(f"  {ds}: no version (its dataset and source rows are copied)")
                continue
            todo = sum(v.state == "pending" for v in vs)
            self.say(f"  {ds}: {len(vs)} version(s), {todo} to commit")
            for v in vs:
                self.say(f"    {v.version}  {v.rows:>9,} rows  {v.quarantined:>7,} quarantined  "
                         f"{len(v.parts)} part(s)  {'already in the lake' if v.state == 'done' else 'to do'}")
        self.say("  metadata rows: " + ", ".join(f"{k} {n:,}" for k, n in plan.tables.items())
                 + ("" if not plan.finished else " (already copied)"))

    def _commit_version(self, v: LegacyVersion, *, first: bool) -> int:
        """One old version → one snapshot, through the store's commit path (see the module's docstring)."""
        wh = self.wh
        location = wh.location(v.dataset_id, v.version)
        schema_file = wh.version_dir(v.dataset_id, v.version) / "schema.json"
        columns = json.loads(schema_file.read_text(encoding="utf-8")).get("fields", []) if schema_file.is_file() else []
        older = wh.snapshots(v.dataset_id)
        vfile, efile, rfile, dfile = (self._file(t) for t in ("versions", "source_events", "reports", "datasets"))

        def work(con: duckdb.DuckDBPyConnection) -> int:
            (row,) = self._rows(con, "versions", "WHERE dataset_id = ? AND version = ?", [v.dataset_id, v.version])
            (dataset,) = self._rows(con, "datasets", "WHERE id = ?", [v.dataset_id]) or [
                {"id": v.dataset_id, "title": v.dataset_id, "description": None}]
            events = self._rows(con, "source_events", "WHERE dataset_id = ? AND run_id IS NOT DISTINCT FROM ? "
                                "ORDER BY recorded_at", [v.dataset_id, v.run_id])
            con.execute(f"DELETE FROM {META}.versions WHERE dataset_id = ? AND version = ?", [v.dataset_id, v.version])
            con.execute(f"INSERT INTO {META}.versions BY NAME SELECT * REPLACE (? AS path) FROM read_parquet(?) "
                        "WHERE dataset_id = ? AND version = ?", [location, str(vfile), v.dataset_id, v.version])
            if efile is not None:
                con.execute(f"INSERT INTO {META}.source_events BY NAME SELECT * FROM read_parquet(?) "
                            "WHERE dataset_id = ? AND run_id IS NOT DISTINCT FROM ?", [str(efile), v.dataset_id, v.run_id])
            if rfile is not None:
                con.execute(f"INSERT INTO {META}.reports BY NAME SELECT * FROM read_parquet(?) "
                            "WHERE dataset_id = ? AND run_id IS NOT DISTINCT FROM ?", [str(rfile), v.dataset_id, v.run_id])
            if first and dfile is not None:
                con.execute(f"DELETE FROM {META}.datasets WHERE id = ?", [v.dataset_id])
                con.execute(f"INSERT INTO {META}.datasets BY NAME SELECT * FROM read_parquet(?) WHERE id = ?",
                            [str(dfile), v.dataset_id])
            summary = row["summary"] if isinstance(row.get("summary"), dict) else json.loads(row.get("summary") or "{}")
            Warehouse._write_tables(con, v.dataset_id, dataset.get("title") or v.dataset_id,
                                    dataset.get("description") or "", location, v.parts, columns, summary)
            _point_history(con, v.dataset_id, older, v.version)
            states = {e["source_key"]: e["state"] for e in events}
            info = {"dataset": v.dataset_id, "version": v.version, "run_id": v.run_id, "sources": states,
                    "migrated_from": {"layout": LEGACY_LAYOUT, "path": v.old_path,
                                      "created_at": v.created_at.isoformat() if v.created_at else None}}
            con.execute(f"CALL {LAKE}.set_commit_message('partage', ?, extra_info => ?)",
                        [f"partage: {v.dataset_id}", json.dumps(info, ensure_ascii=False)])
            checkpoint("migrate-in-transaction")
            return 0

        wh._transaction(work, f"version {v.version} of {v.dataset_id} (migrated)")
        checkpoint("migrate-committed")
        return wh.snapshots(v.dataset_id)[v.version]

    def _commit_state(self, plan: MigrationPlan) -> int:
        """The current metadata, and what belongs to no version, in the migration's last snapshot."""
        made = sorted({(v.dataset_id, v.run_id or "") for v in plan.versions})
        pairs = "(" + ", ".join(f"({literal(d)}, {literal(r)})" for d, r in made) + ")" if made else None
        not_made = f"WHERE (dataset_id, coalesce(run_id, '')) NOT IN {pairs}" if pairs else ""

        def work(con: duckdb.DuckDBPyConnection) -> None:
            for table in ("sources", "datasets", "publications", "runs"):
                f = self._file(table)
                if table == "datasets":
                    con.execute(f"DELETE FROM {META}.datasets")
                else:
                    con.execute(f"DELETE FROM {META}.{ident(table)}")
                if f is not None:
                    con.execute(f"INSERT INTO {META}.{ident(table)} BY NAME SELECT * FROM read_parquet(?)", [str(f)])
            for table in ("source_events", "reports"):
                f = self._file(table)
                if f is not None:
                    con.execute(f"INSERT INTO {META}.{ident(table)} BY NAME SELECT * FROM read_parquet(?) {not_made}",
                                [str(f)])
            info = {"migrated_from": {"layout": LEGACY_LAYOUT, "database": str(plan.database),
                                      "duckdb": plan.duckdb_version},
                    "datasets": len(plan.datasets), "versions": len(plan.versions), "tables": plan.tables}
            con.execute(f"CALL {LAKE}.set_commit_message('partage', ?, extra_info => ?)",
                        [DONE_MESSAGE, json.dumps(info, ensure_ascii=False)])

        self.wh._transaction(work, "the metadata of the old warehouse (migrated)")
        with self.wh.connect() as con:
            return int(con.execute(f"SELECT max(snapshot_id) FROM {LAKE}.snapshots() WHERE commit_message = ?",
                                   [DONE_MESSAGE]).fetchone()[0])

    def _retire(self) -> Path:
        """Rename partage.duckdb (and a WAL beside it) so the warehouse is an ordinary lake; nothing is deleted."""
        kept = self.database.with_name(LEGACY_DB + MIGRATED_SUFFIX)
        wal = self.database.with_name(LEGACY_DB + ".wal")
        if wal.exists():
            os.replace(wal, kept.with_name(kept.name + ".wal"))
        if kept.exists():  # a file migrated before, and a new partage.duckdb since: keep both
            kept = kept.with_name(f"{LEGACY_DB}.{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}{MIGRATED_SUFFIX}")
        os.replace(self.database, kept)
        return kept


def migrate(warehouse: Warehouse, *, dry_run: bool = False, legacy_python: str | None = None,
            say: Say | None = None) -> MigrationResult:
    """Turn ``warehouse`` (old layout) into the lake; see the module's docstring."""
    return Migration(warehouse, legacy_python=legacy_python, say=say).run(dry_run=dry_run)
