"""`partage migrate` on a warehouse written by the code before DuckLake (commit 0798d75).

The fixture (tests/fixtures/legacy-warehouse-0798d75.tar.gz, rebuilt by
scripts/make-legacy-fixture.sh) was made by that code itself, on the DuckDB it ran on (2.0.1):
`communes` has 3 versions (the second and third change one source, the other's part carried
over; the third quarantines a row), `lieux-culture` a rejected partner file, `tarifs` one version.
DuckDB 1.5.5 cannot open its partage.duckdb, so the fixture carries the export of its `_partage`
tables that `--legacy-python` makes with the old DuckDB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from partage.cli import app
from partage.errors import LegacyWarehouse
from partage.store import lake as lake_store
from partage.store.migrate import EXPORT_DIR, Migration
from partage.store.warehouse import Warehouse, ident

from .conftest import CatalogBuilder

FIXTURE = Path(__file__).parent / "fixtures" / "legacy-warehouse-0798d75.tar.gz"
PARTAGE = Path(sys.executable).with_name("partage")
runner = CliRunner()


@pytest.fixture
def legacy(tmp_path: Path) -> CatalogBuilder:
    """The old warehouse with the catalog, schemas and data files that made it."""
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(tmp_path / "hub", filter="data")
    hub = CatalogBuilder(tmp_path / "hub")
    yield hub
    lake_store.forget(Warehouse(hub.warehouse).lake)


def old_table(hub: CatalogBuilder, table: str, order: str = "") -> list[dict[str, Any]]:
    """A table of the old partage.duckdb, as the old DuckDB exported it."""
    con = duckdb.connect()
    cur = con.execute(f"SELECT * FROM read_parquet('{hub.warehouse / EXPORT_DIR / table}.parquet') {order}")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def old_rows(hub: CatalogBuilder, dataset: str, version: str, sub: str = "data") -> list[tuple[Any, ...]]:
    """A version's rows read straight from its Parquet parts (the old layout's files)."""
    files = sorted((hub.warehouse / dataset / version / sub).glob("*.parquet"))
    if not files:
        return []
    con = duckdb.connect()
    return sorted(con.execute(f"SELECT * FROM read_parquet({[str(f) for f in files]}, union_by_name = true)").fetchall(),
                  key=repr)


def lake(hub: CatalogBuilder, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    wh = Warehouse(hub.warehouse)
    wh.legacy_ok = True  # a test looks into a lake whose migration is not finished
    with wh.connect(read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def run_migrate(hub: CatalogBuilder, *args: str):
    return runner.invoke(app, ["migrate", "--warehouse", str(hub.warehouse), *args])


def counts(hub: CatalogBuilder) -> dict[str, int]:
    tables = ("datasets", "sources", "source_events", "versions", "reports", "publications", "runs")
    return {t: lake(hub, f"SELECT count(*) FROM _partage.{t}")[0][0] for t in tables}


@pytest.mark.slow  # subprocesses: the refusal is in the entry point, before typer dispatches
def test_other_commands_refuse_the_old_layout_and_name_migrate(legacy: CatalogBuilder) -> None:
    wh = str(legacy.warehouse)
    for args in (["status"], ["history", "communes"], ["sql", "SELECT 1"],
                 ["harvest", "--catalog", str(legacy.catalog)], ["serve"], ["gc", "--catalog", str(legacy.catalog)]):
        p = subprocess.run([str(PARTAGE), *args, "--warehouse", wh], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PARTAGE_NO_CKAN": "1"})
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        text = " ".join(p.stderr.split())  # rich wraps long lines
        assert "partage migrate --warehouse" in text and "before DuckLake" in text, args
    # the store itself refuses too (the Prefect flow, the API): never an empty lake beside the old one
    with pytest.raises(LegacyWarehouse, match="partage migrate"):
        with Warehouse(wh).connect():
            pass
    assert not (legacy.warehouse / "lake.sqlite").exists() and not (legacy.warehouse / "lake").exists()


def test_dry_run_prints_the_plan_and_changes_nothing(legacy: CatalogBuilder) -> None:
    r = run_migrate(legacy, "--dry-run")
    assert r.exit_code == 0, r.output
    assert "communes: 3 version(s), 3 to commit" in r.output and "DuckDB 2.0.1" in r.output
    assert "lieux-culture: 1 version(s)" in r.output and "tarifs: 1 version(s)" in r.output
    assert "dry run: nothing changed" in r.output
    assert (legacy.warehouse / "partage.duckdb").exists() and not (legacy.warehouse / "lake.sqlite").exists()


def test_every_old_version_becomes_a_snapshot_with_its_rows(legacy: CatalogBuilder) -> None:
    versions = old_table(legacy, "versions", "ORDER BY created_at")
    manifest = json.loads((legacy.warehouse / EXPORT_DIR / "manifest.json").read_text())
    r = run_migrate(legacy)
    assert r.exit_code == 0, r.output
    assert "[5/5]" in r.output and "partage.duckdb.migrated" in r.output
    wh = Warehouse(legacy.warehouse)
    assert not (legacy.warehouse / "partage.duckdb").exists() and (legacy.warehouse / "partage.duckdb.migrated").exists()

    by_ds: dict[str, list[str]] = {}
    for v in versions:
        by_ds.setdefault(v["dataset_id"], []).append(v["version"])
    assert {d: len(vs) for d, vs in by_ds.items()} == {"communes": 3, "lieux-culture": 1, "tarifs": 1}
    snaps = {d: wh.snapshots(d) for d in by_ds}
    for d, vs in by_ds.items():
        assert list(snaps[d]) == vs  # each version, in order
    order = sorted((s, d, v) for d in snaps for v, s in snaps[d].items())
    assert [(d, v) for _, d, v in order] == [(v["dataset_id"], v["version"]) for v in versions]  # as they were made

    for v in versions:
        d, ver, snap = v["dataset_id"], v["version"], snaps[v["dataset_id"]][v["version"]]
        got = sorted(lake(legacy, f"SELECT * EXCLUDE (_source_version) FROM main.{ident(d)} AT (VERSION => {snap})"),
                     key=repr)
        assert got == old_rows(legacy, d, ver) and len(got) == v["row_count"], (d, ver)
        info = json.loads(lake(legacy, "SELECT commit_extra_info FROM lake.snapshots() WHERE snapshot_id = ?", [snap])[0][0])
        assert info["dataset"] == d and info["version"] == ver and info["run_id"] == v["run_id"]
        assert info["migrated_from"]["path"] == v["path"]

    v1, v2, v3 = by_ds["communes"]
    # carried-over parts keep the version their rows arrived in
    assert dict(lake(legacy, "SELECT _source_version, count(*) FROM communes GROUP BY 1")) == {v1: 2, v3: 3}
    assert dict(lake(legacy, 'SELECT _version, count(*) FROM history."communes" GROUP BY 1')) == {v1: 4, v2: 5, v3: 5}
    # quarantine: the third version's invalid row, as the old file holds it
    assert sorted(lake(legacy, 'SELECT * FROM quarantine."communes"'), key=repr) == old_rows(legacy, "communes", v3, "quarantine")
    assert len(old_rows(legacy, "communes", v3, "quarantine")) == 1
    # metadata: every old row, once
    assert counts(legacy) == manifest["tables"]
    assert manifest["tables"]["publications"] > 0
    assert sorted(lake(legacy, "SELECT target, dataset_id, version, published_at FROM _partage.publications")) == \
        sorted((p["target"], p["dataset_id"], p["version"], p["published_at"]) for p in old_table(legacy, "publications"))
    old_sources = {(s["dataset_id"], s["source_key"]): (s["state"], s["sha256"], s["checked_at"])
                   for s in old_table(legacy, "sources")}
    new_sources = {(d, k): (st, sha, at) for d, k, st, sha, at in
                   lake(legacy, "SELECT dataset_id, source_key, state, sha256, checked_at FROM _partage.sources")}
    assert new_sources == old_sources
    assert [s for (_, k), (s, _, _) in new_sources.items() if "partenaire" in k] == ["rejected"]
    assert sorted(lake(legacy, "SELECT source_key, accepted FROM _partage.reports WHERE dataset_id = 'lieux-culture'")) == \
        sorted((x["source_key"], x["accepted"]) for x in old_table(legacy, "reports") if x["dataset_id"] == "lieux-culture")
    # time travel keeps the metadata of each moment: at the first communes snapshot, one version row
    assert lake(legacy, f"SELECT count(*) FROM _partage.versions AT (VERSION => {snaps['communes'][v1]}) "
                        "WHERE dataset_id = 'communes'") == [(1,)]

    h = runner.invoke(app, ["history", "communes", "--warehouse", str(legacy.warehouse)])
    assert h.exit_code == 0 and all(v in h.output for v in (v1, v2, v3)), h.output
    s = runner.invoke(app, ["status", "--warehouse", str(legacy.warehouse)])
    assert s.exit_code == 0 and v3 in s.output, s.output

    # a second run: nothing to do, nothing duplicated
    before = lake(legacy, "SELECT count(*) FROM lake.snapshots()")
    again = run_migrate(legacy)
    assert again.exit_code == 0 and "nothing to migrate" in again.output
    assert lake(legacy, "SELECT count(*) FROM lake.snapshots()") == before and counts(legacy) == manifest["tables"]


def test_a_migration_stopped_midway_resumes_without_duplicates(legacy: CatalogBuilder, monkeypatch) -> None:
    manifest = json.loads((legacy.warehouse / EXPORT_DIR / "manifest.json").read_text())
    real = Warehouse._write_tables
    calls = []

    def crash_on_third(*args: Any, **kwargs: Any) -> None:
        calls.append(args[1])
        if len(calls) == 3:
            raise KeyboardInterrupt  # the process stops inside the third commit
        real(*args, **kwargs)

    monkeypatch.setattr(Warehouse, "_write_tables", staticmethod(crash_on_third))
    with pytest.raises(KeyboardInterrupt):
        Migration(Warehouse(legacy.warehouse)).run()
    monkeypatch.setattr(Warehouse, "_write_tables", staticmethod(real))
    assert (legacy.warehouse / "partage.duckdb").exists()
    assert lake(legacy, "SELECT count(*) FROM _partage.versions") == [(2,)]
    # still refused by the other commands until the migration is finished
    with pytest.raises(LegacyWarehouse):
        with Warehouse(legacy.warehouse).connect(read_only=True):
            pass

    r = run_migrate(legacy)
    assert r.exit_code == 0, r.output
    assert "already in the lake" in r.output and "[3/3]" in r.output
    assert counts(legacy) == manifest["tables"]
    wh = Warehouse(legacy.warehouse)
    assert [len(wh.snapshots(d)) for d in ("communes", "lieux-culture", "tarifs")] == [3, 1, 1]


@pytest.mark.slow  # a subprocess killed with SIGKILL at each point
@pytest.mark.parametrize("point", ["migrate-in-transaction", "migrate-committed", "migrate-before-retire"])
def test_a_migration_killed_at_any_point_finishes_on_the_next_run(legacy: CatalogBuilder, point: str) -> None:
    manifest = json.loads((legacy.warehouse / EXPORT_DIR / "manifest.json").read_text())
    p = subprocess.run([str(PARTAGE), "migrate", "--warehouse", str(legacy.warehouse)], capture_output=True, text=True,
                       timeout=300, env={**os.environ, "PARTAGE_CRASH_AT": point})
    assert p.returncode == -9, (p.stdout, p.stderr)
    assert (legacy.warehouse / "partage.duckdb").exists()  # other commands still refuse the warehouse
    r = run_migrate(legacy)
    assert r.exit_code == 0, r.output
    assert counts(legacy) == manifest["tables"]
    wh = Warehouse(legacy.warehouse)
    assert [len(wh.snapshots(d)) for d in ("communes", "lieux-culture", "tarifs")] == [3, 1, 1]
    assert lake(legacy, "SELECT count(*) FROM lake.snapshots() WHERE commit_message = 'partage: migrate'") == [(1,)]
    assert (legacy.warehouse / "partage.duckdb.migrated").exists() and not (legacy.warehouse / "partage.duckdb").exists()


def test_a_file_this_duckdb_cannot_read_needs_the_old_python(legacy: CatalogBuilder) -> None:
    import shutil

    shutil.rmtree(legacy.warehouse / EXPORT_DIR)
    r = run_migrate(legacy)
    assert r.exit_code == 2
    assert "--legacy-python" in r.output and "cannot read" in r.output
    assert not (legacy.warehouse / "lake.sqlite").exists()


@pytest.mark.slow  # runs the export script in a subprocess
def test_legacy_python_exports_the_metadata_itself(legacy: CatalogBuilder) -> None:
    """--legacy-python runs the export script with that Python's DuckDB. Here the old file is rebuilt
    with this DuckDB (the 2.0.1 one cannot be opened by it), and this Python stands for the old one."""
    import shutil

    export = legacy.warehouse / EXPORT_DIR
    db = legacy.warehouse / "partage.duckdb"
    tables = json.loads((export / "manifest.json").read_text())["tables"]
    db.unlink()
    con = duckdb.connect(str(db))
    con.execute("CREATE SCHEMA _partage")
    for t in tables:
        con.execute(f"CREATE TABLE _partage.{t} AS SELECT * FROM read_parquet('{export / t}.parquet')")
    con.close()
    shutil.rmtree(export)
    r = run_migrate(legacy, "--legacy-python", sys.executable)
    assert r.exit_code == 0, r.output
    assert f"exporting the metadata of {db}" in r.output
    assert counts(legacy) == tables
    assert len(Warehouse(legacy.warehouse).snapshots("communes")) == 3


@pytest.mark.slow
def test_a_harvest_after_migration_continues_the_versions(legacy: CatalogBuilder, harvest) -> None:
    assert run_migrate(legacy).exit_code == 0
    wh = Warehouse(legacy.warehouse)
    v1, v2, v3 = wh.snapshots("communes")
    nord = legacy.data / "communes-nord.csv"
    nord.write_text(nord.read_text(encoding="utf-8") + "01004,Ambérieu-en-Bugey,14000,24.6,2024-07-01\n",
                    encoding="utf-8")
    summary = harvest()
    states = {(s.dataset_id, s.label.rsplit("/", 1)[-1]): s.state for s in summary.sources}
    assert states[("communes", "communes-nord.csv")] == "updated"
    assert states[("communes", "communes-sud.csv")] == "unchanged" and states[("tarifs", "tarifs.csv")] == "unchanged"
    # the file rejected before the migration is still rejected (#23 case 1), and not read again
    assert states[("lieux-culture", "lieux-partenaire.csv")] == "rejected"
    rejected = next(s for s in summary.sources if s.label.endswith("lieux-partenaire.csv"))
    assert "still the file rejected earlier, not validated again" in rejected.reason
    snaps = wh.snapshots("communes")
    assert list(snaps)[:3] == [v1, v2, v3] and len(snaps) == 4
    v4 = list(snaps)[3]
    assert v4 > v3
    assert lake(legacy, "SELECT count(*) FROM communes") == [(6,)]  # 4 valid nord rows + 2 sud rows
    assert dict(lake(legacy, "SELECT _source_version, count(*) FROM communes GROUP BY 1")) == {v1: 2, v4: 4}
    assert lake(legacy, f'SELECT count(*) FROM "communes" AT (VERSION => {snaps[v1]})') == [(4,)]
    assert dict(lake(legacy, 'SELECT _version, count(*) FROM history."communes" GROUP BY 1')) == {v1: 4, v2: 5, v3: 5, v4: 6}
    assert [len(wh.snapshots(d)) for d in ("lieux-culture", "tarifs")] == [1, 1]
