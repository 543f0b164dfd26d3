"""Several writers (#22): one lake (PostgreSQL catalog, data on S3 served by moto on 127.0.0.1) written
by several processes and machines at once.

- processes that open a fresh, empty catalog at the same moment all succeed (the first ATTACH creates
  DuckLake's tables; without a guard they race and all but one fail);
- a writer whose harvest planned on a version another machine has since replaced is refused with
  :class:`~partage.errors.DatasetConflict`, never committed over the other's version;
- a worker whose local warehouse directory is empty reads an earlier version's files from the bucket;
- two Prefect process workers of one real ``prefect server`` harvest twenty datasets into the lake at once.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from partage.catalog import load_catalog
from partage.pipeline import InlineStages, harvest_without_prefect, run_harvest
from partage.store.warehouse import Warehouse

from .conftest import COMMUNES_CSV, COMMUNES_SCHEMA, PREFECT, REPO, CatalogBuilder, S3Bucket, stop_process

pytestmark = pytest.mark.slow  # subprocesses, a PostgreSQL catalog, moto, a Prefect server

SCHEMA = "test/communes@1.0"
PARIS = "code_insee,nom,population,surface_km2,date_maj\n75056,Paris,{population},105.4,2024-01-01\n"

OPENER = textwrap.dedent("""
    import os, sys, time
    from partage.store.lake import LakeSpec, instance
    ready, go = sys.argv[1], sys.argv[2]
    open(ready, "w").close()
    while not os.path.exists(go):  # every process attaches at the same moment
        time.sleep(0.005)
    try:
        con = instance(LakeSpec(os.environ["LAKE_CATALOG"], os.environ["LAKE_DATA"]))
        print("ok", con.execute("SELECT count(*) FROM lake.snapshots()").fetchone()[0])
    except Exception as e:
        print(type(e).__name__, e)
""")


def test_processes_first_attaching_an_empty_postgres_catalog_at_once_all_succeed(pg_catalog_url: str,
                                                                                  tmp_path: Path) -> None:
    """Measured before the fix: 3 of 4 processes failed on DuckLake's ``CREATE TABLE ducklake_metadata``."""
    env = dict(os.environ, LAKE_CATALOG=pg_catalog_url, LAKE_DATA=str(tmp_path / "data"), PYTHONPATH=str(REPO / "src"))
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", OPENER, str(tmp_path / f"ready{i}"), str(go)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(4)]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready{i}").exists() for i in range(4)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.02)
    go.touch()
    outputs = [p.communicate(timeout=180)[0].strip() for p in procs]
    assert all(o.startswith("ok ") for o in outputs), outputs
    assert pg_catalog_url.split("@")[0].split(":")[-1] not in "".join(outputs)  # no password in any message


# -- a commit on a stale base ------------------------------------------------------------------

OTHER_MACHINE = textwrap.dedent("""
    import sys
    from partage.pipeline import harvest_without_prefect
    summary = harvest_without_prefect(sys.argv[1], sys.argv[2], sys.argv[3:] or None)
    print([(d.dataset_id, d.version) for d in summary.datasets])
    raise SystemExit(summary.exit_code)
""")


def _machine(tmp_path: Path, name: str, pg: str) -> dict[str, str]:
    """The environment of a writer on its own machine: its own (empty) local directory, the shared lake."""
    return dict(os.environ, PARTAGE_LOCAL_DIR=str(tmp_path / name), PARTAGE_LAKE=pg, PYTHONPATH=str(REPO / "src"))


def _other_machine_harvests(hub: CatalogBuilder, url: str, env: dict[str, str], *ids: str) -> None:
    done = subprocess.run([sys.executable, "-c", OTHER_MACHINE, str(hub.catalog), url, *ids], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]


def _versions(wh: Warehouse, dataset_id: str) -> list[tuple[str, str]]:
    with wh.connect(read_only=True) as con:
        return con.execute("SELECT version, run_id FROM _partage.versions WHERE dataset_id = ? ORDER BY version",
                           [dataset_id]).fetchall()


def test_a_commit_planned_on_a_version_another_machine_replaced_is_refused(
        pg_catalog_url: str, s3_bucket: S3Bucket, hub: CatalogBuilder, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two machines (their own local dirs, so their harvest locks never meet) write the same dataset:
    the one whose harvest read the older state gets DatasetConflict, the other's version stays whole,
    and the run's other datasets are stored."""
    import partage.store.warehouse as warehouse_module

    url = f"{s3_bucket.url}/hub"
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    hub.file("a.csv", COMMUNES_CSV)
    hub.file("b.csv", PARIS.format(population=2100000))
    hub.file("c.csv", COMMUNES_CSV)
    hub.dataset("communes", ["file: ../data/a.csv", "file: ../data/b.csv"], schema=SCHEMA)
    hub.dataset("autre", ["file: ../data/c.csv"], schema=SCHEMA)
    other = _machine(tmp_path, "machine-b", pg_catalog_url)
    _other_machine_harvests(hub, url, other, "communes")
    monkeypatch.setenv("PARTAGE_LAKE", pg_catalog_url)
    monkeypatch.setenv("PARTAGE_LOCAL_DIR", str(tmp_path / "machine-a"))  # empty: v1 was written on machine b
    wh = Warehouse(url)
    cat = load_catalog(hub.catalog)
    ((v1, _),) = _versions(wh, "communes")

    # 1. machine b stores v2 after machine a read the state (v1), before a commits
    class OtherWritesFirst(InlineStages):
        def store(self, entry, acquired, run_id, state):  # type: ignore[no-untyped-def]
            if entry.id == "communes":
                _other_machine_harvests(hub, url, other, "communes")
            return super().store(entry, acquired, run_id, state)

    hub.file("a.csv", COMMUNES_CSV.replace("73000", "74000"))
    summary = run_harvest(cat, wh, OtherWritesFirst(wh, hub.schemas), None, hub.schemas)
    by_id = {d.dataset_id: d for d in summary.datasets}
    refused = by_id["communes"]
    assert refused.version is None and {s.state for s in refused.sources} == {"failed"}
    reason = refused.sources[0].reason
    assert "'communes' was written by another harvest meanwhile" in reason and f"started from {v1}" in reason
    assert "partage harvest communes" in reason
    assert by_id["autre"].version is not None and by_id["autre"].ok  # the others go on
    (_, (v2, run_b)) = _versions(wh, "communes")
    assert run_b != summary.run_id  # machine b's version is the latest, not overwritten
    assert _q(wh, "SELECT population FROM communes WHERE code_insee = '2A004'") == [(74000,)]

    # 2. machine b commits while machine a is inside its commit's transaction: DuckLake refuses a's
    #    commit, and the redone commit sees v3 and is refused instead of being written over it
    hub.file("b.csv", PARIS.format(population=2200000))
    real = warehouse_module.checkpoint
    met: list[str] = []

    def in_transaction(point: str) -> None:
        if point == "in-transaction" and not met:
            met.append(point)
            _other_machine_harvests(hub, url, other, "communes")
        real(point)

    monkeypatch.setattr(warehouse_module, "checkpoint", in_transaction)
    retried: list[str] = []
    monkeypatch.setattr(warehouse_module.log, "info", lambda msg, *a: retried.append(msg % a))
    second = harvest_without_prefect(hub.catalog, url, ["communes"])
    assert met and any("met another writer's" in r for r in retried), retried
    (refused,) = second.datasets
    assert refused.version is None and "was written by another harvest meanwhile" in refused.sources[0].reason
    versions = _versions(wh, "communes")
    assert len(versions) == 3 and versions[-1][1] not in (summary.run_id, second.run_id)
    assert _q(wh, "SELECT population FROM communes WHERE code_insee = '75056'") == [(2200000,)]
    assert _q(wh, "SELECT count(*) FROM communes") == [(4,)]
    with wh.connect(read_only=True) as con:
        states = con.execute("SELECT state FROM _partage.sources WHERE dataset_id = 'communes'").fetchall()
    assert {s for (s,) in states} == {"failed"}  # recorded failed: `partage status` shows it, with the reason

    # and harvesting it again starts from the new version: nothing left to do
    again = harvest_without_prefect(hub.catalog, url, ["communes"])
    assert again.exit_code == 0 and {s.state for s in again.sources} == {"unchanged"}


def _q(wh: Warehouse, sql: str) -> list[tuple[Any, ...]]:
    with wh.connect(read_only=True) as con:
        return con.execute(sql).fetchall()


# -- a worker whose local directory is empty -------------------------------------------------------


def test_a_worker_with_an_empty_local_dir_reads_earlier_versions_files_from_the_bucket(
        pg_catalog_url: str, s3_bucket: S3Bucket, hub: CatalogBuilder, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Machine b writes v1; machine a (nothing on its disk) carries b's part over into v2, exports v2 with
    every part's report, and its gc hands v1's reports on in the bucket; machine c, as empty, still finds them."""
    import fsspec

    from partage.gc import collect_garbage
    from partage.publish.exports import exports

    url = f"{s3_bucket.url}/hub"
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    hub.file("a.csv", COMMUNES_CSV)
    hub.file("b.csv", PARIS.format(population=2100000))
    hub.file("bad.csv", "code_insee,nom,population,surface_km2,date_maj\nXX,,-1,a,b\n")
    hub.dataset("communes", ["file: ../data/a.csv", "file: ../data/b.csv"], schema=SCHEMA,
                extra="retention: {keep: 1}\n")
    hub.dataset("refus", ["file: ../data/bad.csv"], schema=SCHEMA, policy="reject")
    _other_machine_harvests_allowing_rejects(hub, url, _machine(tmp_path, "machine-b", pg_catalog_url))
    monkeypatch.setenv("PARTAGE_LAKE", pg_catalog_url)

    def machine(name: str) -> Warehouse:
        monkeypatch.setenv("PARTAGE_LOCAL_DIR", str(tmp_path / name))
        return Warehouse(url)

    a = machine("machine-a")
    assert not a.root.exists()
    ((v1, _),) = _versions(a, "communes")
    hub.file("b.csv", PARIS.format(population=2200000))
    second = harvest_without_prefect(hub.catalog, url, ["communes"])
    assert [s.state for s in second.sources] == ["unchanged", "updated"], [s.reason for s in second.sources]
    assert second.sources[1].report_path and second.sources[1].report_path.startswith(url + "/communes/")
    info = a.latest_version_info("communes")
    assert info is not None and info.version != v1
    files = {f.role: f.path for f in exports(a, info)}
    report = json.loads(files["report"].read_text(encoding="utf-8"))
    assert len(report["sources"]) == 2  # b's part's report came from v1, written on machine b
    assert json.loads(files["schema"].read_text(encoding="utf-8"))["primaryKey"] == ["code_insee"]

    # an upload no transaction recorded yet: another machine's harvest about to commit, or a crash's
    fs = fsspec.filesystem("s3")
    in_flight = f"{s3_bucket.name}/hub/communes/20991231T235959000Z/data/x.parquet"
    fs.pipe(in_flight, b"PAR1")
    gc = collect_garbage(a, load_catalog(hub.catalog))
    assert gc.versions == [("communes", v1)]
    assert gc.remote_orphans == [] and fs.exists(in_flight)  # too young to be judged a leftover
    assert collect_garbage(a, None, grace=dt.timedelta(0)).remote_orphans == [f"{url}/communes/20991231T235959000Z"]
    c = machine("machine-c")
    info = c.latest_version_info("communes")
    assert info is not None and len(info.report_files(c.root)) == 2  # handed on in the bucket
    assert _q(c, "SELECT population FROM communes WHERE code_insee = '75056'") == [(2200000,)]

    # a rejected file's report (it has no version) is in the bucket too, for whoever reads the alert
    fs.invalidate_cache()
    assert fs.find(f"{s3_bucket.name}/hub/refus/rejected")


def _other_machine_harvests_allowing_rejects(hub: CatalogBuilder, url: str, env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, "-c", OTHER_MACHINE, str(hub.catalog), url], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1) and "Traceback" not in done.stderr, done.stdout + done.stderr[-3000:]


# -- two Prefect process workers, one lake -------------------------------------------------------

WORKERS = 2
DATASETS = [f"commune-{i:02d}" for i in range(20)]
RUNS = [DATASETS[i::4] for i in range(4)]  # four runs of five datasets; each worker runs one at a time


def _rows(i: int) -> int:
    return 1 + i % 5


def _csv(i: int) -> str:
    lines = ["code_insee,nom,population,surface_km2,date_maj"]
    lines += [f"{30 + i:02d}{j:03d},Commune {i}-{j},{100 * i + j},1.5,2024-01-01" for j in range(_rows(i))]
    return "\n".join(lines) + "\n"


def test_two_prefect_workers_harvest_twenty_datasets_into_one_lake_at_once(
        prefect_server: tuple[str, dict[str, str]], pg_catalog_url: str, s3_bucket: S3Bucket, http_server,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real `prefect server`, a process work pool, two `prefect worker start` (each its own empty local
    directory; the same PostgreSQL catalog and bucket), a deployment of the harvest flow and four runs of
    five datasets each: every dataset is stored exactly once, by one of the workers, and both worked."""
    import httpx

    api, env = prefect_server
    project = CatalogBuilder(tmp_path / "project")
    shutil.copytree(REPO / "flows", project.root / "flows", ignore=shutil.ignore_patterns("__pycache__"))
    project.schema(SCHEMA, COMMUNES_SCHEMA)
    for i, ds in enumerate(DATASETS):
        project.dataset(ds, [f"url: {http_server.serve(f'/{ds}.csv', _csv(i))}"], schema=SCHEMA)
    url = f"{s3_bucket.url}/hub"
    (project.root / "prefect.yaml").write_text(textwrap.dedent(f"""
        name: partage-scale-out
        prefect-version: 3.8.8
        build: null
        push: null
        pull:
          - prefect.deployments.steps.set_working_directory:
              directory: "{project.root}"
        deployments:
          - name: scale-out
            entrypoint: flows/harvest.py:harvest
            parameters:
              catalog: "{project.catalog}"
              warehouse: "{url}"
            work_pool:
              name: scale-out
              work_queue_name: default
        """), encoding="utf-8")
    server = s3_bucket.server
    env = {**env, "PARTAGE_LAKE": pg_catalog_url, "AWS_ENDPOINT_URL": server.endpoint,
           "AWS_ACCESS_KEY_ID": server.key_id, "AWS_SECRET_ACCESS_KEY": server.secret,
           "AWS_DEFAULT_REGION": server.region, "PREFECT_WORKER_QUERY_SECONDS": "1"}
    cli = lambda *args: subprocess.run([PREFECT, *args], cwd=project.root, env=env, capture_output=True,  # noqa: E731
                                       text=True, timeout=180)
    for args in (("work-pool", "create", "scale-out", "--type", "process"), ("--no-prompt", "deploy", "--all")):
        done = cli(*args)
        assert done.returncode == 0, done.stdout + done.stderr
    (deployment,) = httpx.post(f"{api}/deployments/filter", json={}).json()

    started = time.monotonic()
    locals_ = [tmp_path / f"worker-{n}" for n in range(WORKERS)]
    logs = [open(tmp_path / f"worker-{n}.log", "w") for n in range(WORKERS)]
    workers = [subprocess.Popen([PREFECT, "worker", "start", "--pool", "scale-out", "--limit", "1",
                                 "--name", f"worker-{n}"], cwd=project.root,
                                env={**env, "PARTAGE_LOCAL_DIR": str(locals_[n])}, stdout=logs[n],
                                stderr=subprocess.STDOUT) for n in range(WORKERS)]
    try:
        runs = [httpx.post(f"{api}/deployments/{deployment['id']}/create_flow_run",
                           json={"parameters": {"ids": ids}}).json()["id"] for ids in RUNS]
        states: dict[str, str] = {}
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            found = httpx.post(f"{api}/flow_runs/filter", json={"flow_runs": {"id": {"any_": runs}}}).json()
            states = {r["id"]: r["state_type"] for r in found}
            if len(states) == len(runs) and all(s in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
                                                for s in states.values()):
                break
            time.sleep(1)
        wall = time.monotonic() - started
    finally:
        for w in workers:
            stop_process(w)
        for f in logs:
            f.close()
    tails = "\n".join((tmp_path / f"worker-{n}.log").read_text()[-3000:] for n in range(WORKERS))
    assert sorted(states.values()) == ["COMPLETED"] * len(runs), f"{states}\n{tails}"

    monkeypatch.setenv("PARTAGE_LAKE", pg_catalog_url)
    monkeypatch.setenv("PARTAGE_LOCAL_DIR", str(tmp_path / "reader"))
    wh = Warehouse(url)
    versions = {d: (n, rows) for d, n, rows in _q(
        wh, "SELECT dataset_id, count(*), max(row_count) FROM _partage.versions GROUP BY 1")}
    assert versions == {ds: (1, _rows(i)) for i, ds in enumerate(DATASETS)}  # each stored exactly once
    for i, ds in enumerate(DATASETS):
        assert _q(wh, f'SELECT count(*), count(DISTINCT code_insee) FROM main."{ds}"') == [(_rows(i), _rows(i))]
    assert _q(wh, "SELECT state, count(*) FROM _partage.sources GROUP BY 1") == [("updated", len(DATASETS))]
    snapshots = _q(wh, "SELECT commit_message, count(*) FROM lake.snapshots() "
                       "WHERE commit_message LIKE 'partage: %' GROUP BY 1")
    assert dict(snapshots) == {f"partage: {ds}": 1 for ds in DATASETS}  # one harvest snapshot per dataset
    assert _q(wh, "SELECT count(*) FROM _partage.runs WHERE finished_at IS NOT NULL") == [(len(runs),)]

    # the two workers ran flow runs at the same time
    spans = sorted((r["start_time"], r["end_time"]) for r in found)
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:])), spans

    # both workers wrote, each into its own local directory, and no dataset was written by both
    wrote = [{p.name for p in d.iterdir() if p.name in DATASETS} if d.is_dir() else set() for d in locals_]
    assert all(wrote), f"a worker did nothing: {wrote}\n{tails}"
    assert not (wrote[0] & wrote[1]) and wrote[0] | wrote[1] == set(DATASETS)
    print(f"\n{len(DATASETS)} datasets in {len(runs)} runs on {WORKERS} workers: {wall:.1f} s "
          f"(worker-0 {len(wrote[0])}, worker-1 {len(wrote[1])} datasets)")
