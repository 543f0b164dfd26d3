"""Benchmarks of the harvest command: cold start on the demo catalog, orchestration overhead per source.

    .venv/bin/python bench/harvest_overhead.py [--runs 3] [--sources 200]   (or: make bench)

1. Cold start: `partage harvest` on a copy of the demo catalog, in fresh processes,
   first run (empty warehouse) and second run (nothing changed), with the CLI's early
   start of Prefect's temporary server (the default) and without it
   (PARTAGE_EARLY_SERVER=0: Prefect starts its own server when the flow runs, as before).
2. Overhead per source: a catalog of N datasets with one small file each, harvested by the
   Prefect flow (in a fresh process), versus the same engine calls (plan, acquire, store)
   in a plain loop without Prefect; (flow - engine) / N is what orchestration costs a source.

Prints the machine, the versions and the tables (medians of the runs).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if r.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return elapsed


def cold_start(runs: int) -> list[tuple[str, str, float, list[float]]]:
    rows = []
    base_env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    base_env.pop("PREFECT_API_URL", None)
    for label, extra in (("early server (default)", {}), ("Prefect's own server (PARTAGE_EARLY_SERVER=0)", {"PARTAGE_EARLY_SERVER": "0"})):
        first, second = [], []
        for _ in range(runs):
            with tempfile.TemporaryDirectory(prefix="partage-bench-") as tmp:
                root = Path(tmp)
                for name in ("catalog", "schemas", "demo"):
                    shutil.copytree(REPO / name, root / name)
                env = {**base_env, **extra}
                cmd = [PY, "-m", "partage.cli", "harvest"]
                first.append(timed(cmd, root, env))
                second.append(timed(cmd, root, env))
        rows.append((label, "first run (4 sources stored)", statistics.median(first), first))
        rows.append((label, "second run (all unchanged)", statistics.median(second), second))
    return rows


def make_catalog(root: Path, n: int) -> None:
    (root / "catalog").mkdir(parents=True)
    (root / "data").mkdir()
    for i in range(n):
        ds = f"jeu-{i:04d}"
        (root / "data" / f"{ds}.csv").write_text(
            "code_insee,nom,valeur\n" + "".join(f"{(i * 7 + j) % 95 + 1:02d}{j:03d},Commune {j},{j * 1.5}\n" for j in range(20)),
            encoding="utf-8")
        (root / "catalog" / f"{ds}.yaml").write_text(
            f"id: {ds}\ntitle: Jeu {i}\nlicense: etalab-2.0\naccess: open\nsources:\n  - file: ../data/{ds}.csv\n",
            encoding="utf-8")


ENGINE_ONLY = """
import sys, time
from pathlib import Path
from partage.catalog import load_catalog
from partage.pipeline import plan, store_dataset, new_run_id
from partage.sources import acquire
from partage.store.warehouse import Warehouse
root = Path(sys.argv[1])
t = time.perf_counter()
cat = load_catalog(root / "catalog")
wh = Warehouse(root / "warehouse"); wh.init()
run = new_run_id()
for entry in cat.entries.values():
    resources, failures = plan(entry)
    state = wh.dataset_state(entry.id)
    acquired = [acquire(r, state.records.get(r.key), wh.raw) for r in resources] + failures
    store_dataset(entry, acquired, wh, run_id=run, state=state)
print(time.perf_counter() - t)
"""

FLOW_ONLY = """
import sys, time
t = time.perf_counter()
from flows.harvest import harvest
import logging
r = harvest(catalog=sys.argv[1] + "/catalog", warehouse=sys.argv[1] + "/warehouse")
print(time.perf_counter() - t)
"""


def overhead(n: int, runs: int) -> list[tuple[str, float, float, float, float]]:
    rows = []
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING"}
    env.pop("PREFECT_API_URL", None)
    for phase in ("first run (all stored)", "second run (all unchanged)"):
        flow_t, engine_t = [], []
        for _ in range(runs):
            for script, sink in ((FLOW_ONLY, flow_t), (ENGINE_ONLY, engine_t)):
                with tempfile.TemporaryDirectory(prefix="partage-bench-") as tmp:
                    root = Path(tmp)
                    make_catalog(root, n)
                    if phase.startswith("second"):
                        subprocess.run([PY, "-c", script, str(root)], env=env, capture_output=True, text=True, check=True)
                    r = subprocess.run([PY, "-c", script, str(root)], env=env, capture_output=True, text=True, check=True)
                    sink.append(float(r.stdout.strip().splitlines()[-1]))
        f, e = statistics.median(flow_t), statistics.median(engine_t)
        rows.append((phase, f, e, (f - e) / n * 1000, e / n * 1000))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sources", type=int, default=200)
    a = ap.parse_args()
    print("# Partage harvest benchmarks\n")
    print(describe() + "\n")
    print(f"## Cold start of `partage harvest` on the demo catalog (wall s, median of {a.runs} fresh processes)\n")
    print("| mode | run | median s | runs s |\n|---|---|---:|---|")
    for label, run, med, all_ in cold_start(a.runs):
        print(f"| {label} | {run} | {med:.2f} | {', '.join(f'{x:.2f}' for x in all_)} |")
    print(f"\n## Orchestration overhead, {a.sources} datasets × 1 source (s, median of {a.runs})\n")
    print("Flow: the Prefect flow in a fresh process, imports and Prefect's temporary server included. "
          "Engine: the same plan/acquire/store calls in a plain loop.\n")
    print("| run | flow s | engine s | overhead per source ms | engine per source ms |\n|---|---:|---:|---:|---:|")
    for phase, f, e, per, eng in overhead(a.sources, a.runs):
        print(f"| {phase} | {f:.2f} | {e:.2f} | {per:.1f} | {eng:.1f} |")


if __name__ == "__main__":
    main()
