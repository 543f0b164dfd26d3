"""Analysts read while the scheduled harvest writes: no failure beyond the documented brief retry.

Two reader processes query the warehouse in a loop — the way `partage sql`, a
notebook or a BI tool connecting per query does — while the real `partage
harvest` (Prefect flow) writes new versions of six datasets, twice. A second
harvest started meanwhile is turned away with a clear message. Every read
must succeed and see a whole version (the old row count or the new one).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from partage.pipeline import harvest_without_prefect

from .conftest import CatalogBuilder

pytestmark = pytest.mark.slow

SCHEMA = "test/mesures@1.0"
DATASETS = [f"mesures-{i}" for i in range(6)]
READER = r"""
import json, sys, time
from pathlib import Path
from partage.warehouse import Warehouse

wh, stop, out = Warehouse(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
ids = sys.argv[4].split(",")
stats = {"queries": 0, "failures": [], "waits": [], "counts": {}}
i = 0
while not stop.exists():
    ds = ids[i % len(ids)]
    i += 1
    t0 = time.monotonic()
    try:
        with wh.connect(read_only=True) as con:
            waited = time.monotonic() - t0
            n = con.execute(f'SELECT count(*) FROM main."{ds}"').fetchall()[0][0]
            con.execute("SELECT id, rows, latest_version FROM catalog").fetchall()
        stats["waits"].append(waited)
        stats["counts"].setdefault(ds, []).append(n)
        stats["queries"] += 1
    except Exception as e:
        stats["failures"].append(f"{type(e).__name__}: {e}")
out.write_text(json.dumps(stats))
"""


def write_files(hub: CatalogBuilder, rows: int) -> None:
    for ds in DATASETS:
        lines = ["code_insee;station;valeur"]
        lines += [f"{'2A' if i % 3 == 0 else '01'}{i % 1000:03d};{ds}-{i};{i % 97},5" for i in range(rows)]
        hub.file(f"{ds}.csv", "\n".join(lines) + "\n")


def test_readers_never_fail_while_harvests_write(hub: CatalogBuilder, tmp_path: Path) -> None:
    hub.schema(SCHEMA, {"fields": [
        {"name": "code_insee", "type": "string", "constraints": {"pattern": "^(2A|2B|[0-9]{2})[0-9]{3}$"}},
        {"name": "station", "type": "string", "constraints": {"required": True}},
        {"name": "valeur", "type": "number", "decimalChar": ","},
    ], "primaryKey": ["station"]})
    for ds in DATASETS:
        hub.dataset(ds, [f"file: ../data/{ds}.csv"], schema=SCHEMA)
    sizes = [2000, 2500, 3000]
    write_files(hub, sizes[0])
    assert harvest_without_prefect(hub.catalog, hub.warehouse).exit_code == 0

    stop = tmp_path / "stop"
    env = dict(os.environ, PARTAGE_DB_WAIT="5")  # the documented brief retry, shortened: a reader waiting longer fails
    readers = [subprocess.Popen([sys.executable, "-c", READER, str(hub.warehouse), str(stop), str(tmp_path / f"r{i}.json"),
                                 ",".join(DATASETS)], env=env, stderr=subprocess.PIPE) for i in range(2)]
    partage = [str(Path(sys.executable).with_name("partage")), "harvest", "--catalog", str(hub.catalog),
               "--warehouse", str(hub.warehouse)]
    try:
        time.sleep(1.0)
        turned_away = 0
        for rows in sizes[1:]:
            write_files(hub, rows)
            runs = []
            for _ in range(2):  # the second harvest starts while the first runs
                runs.append(subprocess.Popen(partage, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
                time.sleep(1.5)
            results = [(p.wait(600), p.stdout.read() if p.stdout else "") for p in runs]
            for code, out in results:
                busy = "another harvest is running" in out
                assert code == 0 or (code == 1 and busy), out[-3000:]
                turned_away += busy
            assert any(code == 0 for code, _ in results)
    finally:
        stop.touch()
        for r in readers:
            r.wait(60)
    stats = [json.loads((tmp_path / f"r{i}.json").read_text()) for i in range(2)]
    queries = sum(s["queries"] for s in stats)
    failures = [f for s in stats for f in s["failures"]]
    waits = sorted(w for s in stats for w in s["waits"])
    print(f"\nharvests turned away by the lock: {turned_away}; readers: {queries} queries, {len(failures)} failures, connect wait p50 {waits[len(waits) // 2] * 1000:.1f} ms, "
          f"p99 {waits[int(len(waits) * 0.99)] * 1000:.1f} ms, max {waits[-1] * 1000:.1f} ms")
    assert failures == []
    assert queries > 100
    seen = {n for s in stats for counts in s["counts"].values() for n in counts}
    assert seen <= set(sizes), f"a reader saw a partial version: row counts {sorted(seen)}"
    assert sizes[-1] in seen  # readers did run while the new versions landed


HOLDER = r"""
import sys, time
from pathlib import Path
from partage.warehouse import Warehouse

wh, stop = Warehouse(sys.argv[1]), Path(sys.argv[2])
Path(sys.argv[3]).touch()
while not stop.exists():
    with wh.connect(read_only=True) as con:  # an analyst's tool querying in a tight loop
        con.execute("SELECT count(*) FROM _partage.versions").fetchall()
        time.sleep(0.03)
"""


def test_a_writer_gets_in_between_readers_that_never_let_go(tmp_path: Path) -> None:
    """Three processes querying back to back always leave one holding DuckDB's shared lock: without
    the writer's flag, the harvest would wait out PARTAGE_DB_WAIT and give up."""
    from partage.warehouse import Warehouse

    wh = Warehouse(tmp_path / "wh")
    wh.init()
    stop = tmp_path / "stop"
    env = dict(os.environ, PARTAGE_DB_WAIT="30")
    holders = [subprocess.Popen([sys.executable, "-c", HOLDER, str(wh.root), str(stop), str(tmp_path / f"up{i}")], env=env)
               for i in range(3)]
    try:
        while not all((tmp_path / f"up{i}").exists() for i in range(3)):
            time.sleep(0.05)
        time.sleep(1.0)
        waits = []
        for _ in range(5):
            t0 = time.monotonic()
            with wh.connect(wait=8) as con:
                con.execute("SELECT 1").fetchall()
            waits.append(time.monotonic() - t0)
            time.sleep(0.2)
    finally:
        stop.touch()
        for h in holders:
            h.wait(30)
    assert all(h.returncode == 0 for h in holders)  # the readers never failed either
    assert max(waits) < 3, waits
    assert not wh._flag.exists()  # lowered once in


def test_a_dead_or_stale_writer_flag_holds_no_reader_back(tmp_path: Path) -> None:
    from partage.warehouse import Warehouse

    wh = Warehouse(tmp_path / "wh")
    wh.init()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    wh._flag.write_text(str(dead.pid))  # a writer killed while it waited
    t0 = time.monotonic()
    with wh.connect(read_only=True, wait=5):
        pass
    assert time.monotonic() - t0 < 1
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        wh._flag.write_text(str(live.pid))
        os.utime(wh._flag, (time.time() - 60, time.time() - 60))  # a live process's flag, not refreshed for a minute
        t0 = time.monotonic()
        with wh.connect(read_only=True, wait=5):
            pass
        assert time.monotonic() - t0 < 1
        wh._flag.write_text(str(live.pid))  # fresh: the reader holds back until it is lowered
        threading.Timer(0.6, wh._flag.unlink).start()
        t0 = time.monotonic()
        with wh.connect(read_only=True, wait=5):
            pass
        assert 0.5 < time.monotonic() - t0 < 3
    finally:
        live.kill()
        live.wait()
