"""`partage gc`: retention and leftovers, never the latest version, never what is not ours."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from partage.cli import app
from partage.store.warehouse import Warehouse

from .conftest import COMMUNES_CSV, COMMUNES_SCHEMA, CatalogBuilder, query

pytestmark = pytest.mark.slow
SCHEMA = "test/communes@1.0"
runner = CliRunner()


def three_versions(hub: CatalogBuilder, harvest, retention: str) -> list[str]:
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    hub.dataset("communes", ["file: ../data/c.csv"], schema=SCHEMA, extra=retention)
    out = []
    for extra_rows in range(3):
        hub.file("c.csv", COMMUNES_CSV + "".join(f"0100{i + 2},Commune {i},1,1,2024-01-01\n" for i in range(extra_rows)))
        out.append(harvest().datasets[0].version)
    return out


def gc(hub: CatalogBuilder, *args: str):
    return runner.invoke(app, ["gc", "--catalog", str(hub.catalog), "--warehouse", str(hub.warehouse), *args])


def test_retention_keeps_the_last_versions(hub: CatalogBuilder, harvest) -> None:
    v1, v2, v3 = three_versions(hub, harvest, "retention: {keep: 2}\n")
    wh = Warehouse(hub.warehouse)
    dry = gc(hub, "--dry-run")
    assert dry.exit_code == 0 and f"communes/{v1}" in dry.output and wh.version_dir("communes", v1).exists()
    r = gc(hub)
    assert r.exit_code == 0, r.output
    assert not wh.version_dir("communes", v1).exists() and wh.version_dir("communes", v3).exists()
    assert [v for (v,) in query(hub, "SELECT version FROM _partage.versions ORDER BY 1")] == [v2, v3]
    assert dict(query(hub, 'SELECT _version, count(*) FROM history."communes" GROUP BY 1')) == {v2: 4, v3: 5}
    assert query(hub, "SELECT count(*) FROM communes") == [(5,)]


def test_without_retention_every_version_stays(hub: CatalogBuilder, harvest) -> None:
    three_versions(hub, harvest, "")
    gc(hub)
    assert query(hub, "SELECT count(*) FROM _partage.versions") == [(3,)]


def test_leftovers_of_crashes_go_and_nothing_else(hub: CatalogBuilder, harvest) -> None:
    v1, v2, v3 = three_versions(hub, harvest, "")
    wh = Warehouse(hub.warehouse)
    staging = hub.warehouse / "communes" / ".staging-20260101T000000000Z-abc123"
    never_committed = hub.warehouse / "communes" / "20260101T000000000Z"
    for d in (staging, never_committed):
        (d / "data").mkdir(parents=True)
        (d / "data" / "x.parquet").write_bytes(b"half")
    (wh.raw.tmp).mkdir(parents=True, exist_ok=True)
    (wh.raw.tmp / "dead.part").write_bytes(b"partial download")
    stray = wh.raw.root / "ab" / ("ab" + "0" * 62)
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"nobody refers to me")
    users_own = hub.warehouse / "public" / "notes.txt"
    users_own.parent.mkdir(parents=True)
    users_own.write_text("not Partage's")
    r = gc(hub)
    assert r.exit_code == 0, r.output
    assert not staging.exists() and not never_committed.exists() and not stray.exists()
    assert not (wh.raw.tmp / "dead.part").exists()
    assert users_own.exists() and all(wh.version_dir("communes", v).exists() for v in (v1, v2, v3))
    assert query(hub, "SELECT count(*) FROM communes") == [(5,)]
    (state,) = query(hub, "SELECT sha256 FROM _partage.sources")
    assert wh.raw.path_for(state[0]).exists()


def test_gc_waits_for_no_harvest(hub: CatalogBuilder, harvest) -> None:
    three_versions(hub, harvest, "retention: {keep: 1}\n")
    with Warehouse(hub.warehouse).harvest_lock():
        r = gc(hub)
    assert r.exit_code == 3 and "another harvest is running" in r.output
    assert query(hub, "SELECT count(*) FROM _partage.versions") == [(3,)]


@pytest.mark.parametrize("runner", ["prefect", "plain"])
def test_gc_keeps_the_reports_of_parts_carried_over(hub: CatalogBuilder, request, runner: str) -> None:
    """Issue #22: with `retention: {keep: 1}`, gc removed the version that produced an unchanged source's
    part, and with it that source's report: the next published validation report silently lacked it.
    The harvests go through the one run loop, with its stages as Prefect tasks and called inline."""
    from partage.pipeline import harvest_without_prefect

    harvest = request.getfixturevalue("harvest") if runner == "prefect" else \
        (lambda: harvest_without_prefect(hub.catalog, hub.warehouse))
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    hub.file("a.csv", COMMUNES_CSV)
    hub.file("b.csv", COMMUNES_CSV.splitlines()[0] + "\n01053,Bourg-en-Bresse,41000,23.86,2024-06-01\n")
    hub.dataset("communes", ["file: ../data/a.csv", "file: ../data/b.csv"], schema=SCHEMA,
                extra="retention: {keep: 1}\nduplicates: keep\n")
    harvest()
    hub.file("a.csv", COMMUNES_CSV + "01004,Ambérieu-en-Bugey,14000,24.6,2024-01-01\n")  # b.csv unchanged
    harvest()
    wh = Warehouse(hub.warehouse)
    info = wh.latest_version_info("communes")
    assert info is not None and len(info.report_files(wh.root)) == 2
    r = gc(hub)
    assert r.exit_code == 0, r.output
    info = wh.latest_version_info("communes")
    assert info is not None
    assert sorted(info.report_files(wh.root)) == sorted(p.source_key for p in info.parts)  # both reports still there
    assert query(hub, "SELECT count(*) FROM communes") == [(5,)]


def test_gc_expires_the_snapshots_of_removed_versions_and_deletes_their_lake_files(hub: CatalogBuilder, harvest) -> None:
    """#22: retention goes through DuckLake — the snapshots no kept version needs are expired and the data
    files only they referred to are deleted; the kept versions stay reachable by time travel."""
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    hub.dataset("communes", ["file: ../data/c.csv"], schema=SCHEMA, extra="retention: {keep: 1}\n")
    header = COMMUNES_CSV.splitlines()[0]
    for n in (40, 60, 80):  # above DuckLake's inlining limit: real Parquet files in lake/
        hub.file("c.csv", header + "\n" + "".join(f"{1001 + i:05d},Commune {i},{i},1.5,2024-01-01\n" for i in range(n)))
        harvest()
    wh = Warehouse(hub.warehouse)
    lake_files = lambda: sorted(p for p in (wh.root / "lake").rglob("*.parquet"))  # noqa: E731
    before = lake_files()
    snaps = wh.snapshots("communes")
    assert len(snaps) == 3
    r = gc(hub, "--dry-run", "--grace", "0")
    assert r.exit_code == 0 and "snapshot(s) to expire" in r.output, r.output
    assert lake_files() == before  # a dry run deletes nothing
    r = gc(hub, "--grace", "0")
    assert r.exit_code == 0, r.output
    latest_version, latest_snap = max(snaps.items())
    with wh.connect(read_only=True) as con:
        remaining = [s for (s,) in con.execute("SELECT snapshot_id FROM lake.snapshots() ORDER BY 1").fetchall()]
        assert con.execute(f"SELECT count(*) FROM communes AT (VERSION => {latest_snap})").fetchone()[0] == 80
    assert latest_snap in remaining and all(s not in remaining for v, s in snaps.items() if v != latest_version)
    after = lake_files()
    assert len(after) < len(before) and set(after) < set(before)  # the removed versions' files went, none appeared
    assert query(hub, "SELECT count(*) FROM communes") == [(80,)]
    assert query(hub, 'SELECT count(*), min(_version) FROM history."communes"') == [(80, latest_version)]
    assert "snapshot(s) expired" in r.output
    hub.file("c.csv", header + "\n" + "".join(f"{1001 + i:05d},Commune {i},{i},1.5,2024-01-01\n" for i in range(90)))
    assert harvest().datasets[0].version  # the lake goes on after the clean-up
    assert query(hub, "SELECT count(*) FROM communes") == [(90,)]


def test_gc_leaves_young_snapshots_within_the_grace_period(hub: CatalogBuilder, harvest) -> None:
    three_versions(hub, harvest, "retention: {keep: 1}\n")
    wh = Warehouse(hub.warehouse)
    with wh.connect(read_only=True) as con:
        before = {r[0] for r in con.execute("SELECT snapshot_id FROM lake.snapshots()").fetchall()}
    r = gc(hub)  # the default grace: 24 h, so an analyst's transaction on an old snapshot reads on
    assert r.exit_code == 0 and "0 snapshot(s) expired" in r.output, r.output
    with wh.connect(read_only=True) as con:
        after = {r[0] for r in con.execute("SELECT snapshot_id FROM lake.snapshots()").fetchall()}
    # gc's own removals commit snapshots of their own; none of the earlier ones is gone
    assert before <= after, sorted(before - after)
