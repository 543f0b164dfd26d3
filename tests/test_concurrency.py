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
from partage.store.warehouse import Warehouse

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
                # refused with its own exit code (#23 case 8); at once when the first already holds its locks
                # (test_harvest), else as soon as its flow reaches them, before anything is downloaded
                assert code == 0 or (code == 3 and busy and "nothing was harvested" in out), out[-3000:]
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
import json, sys, time
from pathlib import Path
from partage.store.warehouse import Warehouse

wh, stop, up, out, ds = Warehouse(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), sys.argv[5]
stats = {"failures": [], "in_transaction": [], "after": []}
with wh.connect(read_only=True) as con:  # one connection for the whole test, as a notebook or DBeaver keeps it
    con.execute("BEGIN")  # and a transaction held open: the hardest case for a writer
    stats["in_transaction"].append(con.execute(f'SELECT count(*) FROM main."{ds}"').fetchall()[0][0])
    up.touch()
    while not stop.exists():
        try:
            stats["in_transaction"].append(con.execute(f'SELECT count(*) FROM main."{ds}"').fetchall()[0][0])
        except Exception as e:
            stats["failures"].append(f"{type(e).__name__}: {e}")
        time.sleep(0.05)
    con.execute("COMMIT")
    stats["after"].append(con.execute(f'SELECT count(*) FROM main."{ds}"').fetchall()[0][0])  # a new transaction
out.write_text(json.dumps(stats))
"""


def test_a_reader_holding_a_transaction_all_along_never_blocks_a_harvest(hub: CatalogBuilder, tmp_path: Path) -> None:
    """Issue #22: an analyst's open connection made the harvest fail after ~48 s (WarehouseBusy). On the lake
    a reader that holds one connection, inside an open transaction, for the whole test blocks no commit:
    two harvests land new versions without waiting, the reader never fails, keeps its snapshot while its
    transaction lasts, and sees the newest version in its next one."""
    hub.schema(SCHEMA, {"fields": [
        {"name": "code_insee", "type": "string"}, {"name": "station", "type": "string"},
        {"name": "valeur", "type": "number", "decimalChar": ","}]})
    for ds in DATASETS[:2]:
        hub.dataset(ds, [f"file: ../data/{ds}.csv"], schema=SCHEMA)
    write_files(hub, 1000)
    assert harvest_without_prefect(hub.catalog, hub.warehouse).exit_code == 0
    stop, up, out = tmp_path / "stop", tmp_path / "up", tmp_path / "r.json"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(hub.warehouse), str(stop), str(up), str(out),
                               DATASETS[0]])
    durations = []
    try:
        while not up.exists():
            assert holder.poll() is None
            time.sleep(0.05)
        for rows in (1500, 2000):
            write_files(hub, rows)
            t0 = time.monotonic()
            summary = harvest_without_prefect(hub.catalog, hub.warehouse)
            durations.append(time.monotonic() - t0)
            assert summary.exit_code == 0 and all(d.version for d in summary.datasets)
    finally:
        stop.touch()
        holder.wait(60)
    stats = json.loads(out.read_text())
    print(f"\nharvests while a reader held its transaction: {[round(d, 2) for d in durations]} s; "
          f"reader queries {len(stats['in_transaction'])}, failures {len(stats['failures'])}")
    assert holder.returncode == 0 and stats["failures"] == []
    assert set(stats["in_transaction"]) == {1000}  # its snapshot, whole, while its transaction lasted
    assert stats["after"] == [2000]  # the newest version at its next transaction
    assert max(durations) < 30  # no wait for the reader (a blocked commit failed after 30 s of retries before)
