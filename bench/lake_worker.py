"""Two harvest workers against one: two `partage harvest` processes on disjoint halves of a catalog, into one lake.

    make bench-lake      (or: .venv/bin/python bench/lake_worker.py [--datasets 40] [--runs 3]
                          [--old DIR] [--quick] [--results bench/RESULTS.md])

One process harvests all N datasets into a new warehouse; then, into another new warehouse,
two processes started together harvest the first and the second half of the catalog (their ids on
the command line). The figure is the wall time until the last process ends; the ratio is two ÷
one (below 1: two workers finish sooner). The warehouse is created first (``Warehouse.init``, untimed),
as a hub's exists before its workers run; the last column reports, from one more run, what two
workers do when they both start on no warehouse at all. Commit time per dataset as in bench/lake_harvest.py
(that script's harvest child times the warehouse's writing calls). The lake on its SQLite catalog,
on a PostgreSQL catalog when PARTAGE_TEST_PG_URL is set, and the old layout (0798d75, --old),
where what the second process does is reported (one run).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lake_harvest as lh  # noqa: E402
from machine import describe  # noqa: E402


def two_workers(code: lh.Code, root: Path, plain: bool, n: int) -> tuple[float, list[lh.Harvest]]:
    ids = [f"jeu-{i:04d}" for i in range(n)]
    t0 = time.monotonic()
    started = [lh.start_harvest(code, root, plain, half) for half in (ids[: n // 2], ids[n // 2:])]
    done = [lh.finish_harvest(*s) for s in started]
    return time.monotonic() - t0, done


INIT = ("import sys\ntry:\n    from partage.store.warehouse import Warehouse\n"
        "except ImportError:  # the old code (0798d75)\n    from partage.warehouse import Warehouse\n"
        "Warehouse(sys.argv[1]).init()")


def init(code: lh.Code, root: Path) -> None:
    """Create the warehouse (the lake's catalog, its tables) before the timed harvests, as a hub's would exist."""
    subprocess.run([code.python, "-c", INIT, str(root / "warehouse")], env={**lh.base_env(), **code.env},
                   cwd=root, check=True, capture_output=True)


def problems_of(done: list[lh.Harvest], n: int) -> list[str]:
    out = [f"exit {h.code}: {lh.short(h.error or h.tail.strip().splitlines()[-1])}"
           for h in done if h.error or h.code not in (0, 1)]
    stored = len(set().union(*(h.stored for h in done)))
    if stored < n:
        out.append(f"{stored} of {n} datasets stored")
    return out


def measure(code: lh.Code, pg: lh.Postgres | None, n: int, runs: int, plain: bool,
            on_nothing: bool = True) -> dict[str, object]:
    one, two, c_one, c_two, loads, problems = [], [], [], [], [], []
    for _ in range(1 if code.layout == "old" else runs):  # the old code: what happens, once
        c = lh.with_lake(code, pg)
        with lh.scratch(n) as root:
            init(c, root)
            loads.append(lh.load())
            h = lh.harvest(c, root, plain, check=False)
        one.append(h.wall)
        c_one += list(h.commits.values())
        problems += [f"one process: {p}" for p in problems_of([h], n)]
        c = lh.with_lake(code, pg)
        with lh.scratch(n) as root:
            init(c, root)
            wall, done = two_workers(c, root, plain, n)
        two.append(wall)
        for h in done:
            c_two += list(h.commits.values())
        problems += problems_of(done, n)
    empty = ["not run (--quick)"]
    if on_nothing:
        c = lh.with_lake(code, pg)
        with lh.scratch(n) as root:  # once more, the two started on nothing: both create the warehouse
            _, done = two_workers(c, root, plain, n)
        empty = problems_of(done, n)
    return {"one": one, "two": two, "c_one": c_one, "c_two": c_two, "loads": loads,
            "problems": sorted(set(problems)), "empty": empty}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", type=int, default=40)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--old", type=Path, default=lh.DEFAULT_OLD, help="the code of 0798d75 with its .venv (bench/build-old.sh DIR); 'none' to skip")
    ap.add_argument("--plain", action="store_true", help="harvest without Prefect (harvest_without_prefect)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke mode: 4 datasets, 1 run, no Prefect, no run on no warehouse")
    ap.add_argument("--results", type=Path, help="also add the output as the newest section of this file (RESULTS.md)")
    a = ap.parse_args()
    if a.quick:
        a.datasets, a.runs, a.plain = 4, 1, True
    old = lh.old_code(a.old)
    pg = lh.postgres()
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    started = dt.datetime.now(dt.timezone.utc)
    try:
        say(describe(("duckdb", "duckdb-extension-ducklake", "prefect")))
        how = "the run loop without Prefect" if a.plain else "`partage harvest` (Prefect flow, its temporary server)"
        say(f"- {how}, fresh processes; {a.datasets} datasets × 1 CSV of 20 rows, into a new warehouse (made by Warehouse.init, untimed); "
            f"{a.runs} run(s) per cell, median; load average (1 min) at the start of each run\n")
        if not a.plain:
            with lh.scratch(1) as root:
                lh.harvest(lh.Code("warm-up", lh.NEW_PY, "lake"), root, plain=False)
        say(f"### Two workers against one, {a.datasets} datasets into one warehouse\n")
        say("| code | load | one process s | two processes s | two ÷ one | commit ms one: median | p99 "
            "| commit ms two: median | p99 | what happened | two started on no warehouse (once) |")
        say("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
        for code, with_pg in lh.sides(old, pg):
            r = measure(code, with_pg, a.datasets, a.runs, a.plain, on_nothing=not a.quick)
            one, two = statistics.median(r["one"]), statistics.median(r["two"])  # type: ignore[arg-type]
            problems = "; ".join(r["problems"]) or "all datasets stored"  # type: ignore[arg-type]
            empty = "; ".join(r["empty"]) or "all datasets stored"  # type: ignore[arg-type]
            say(f"| {code.label} | {', '.join(r['loads'])} | {one:.2f} | {two:.2f} | {two / one:.2f} | "  # type: ignore[arg-type]
                f"{lh.ms(r['c_one'])} | {lh.ms(r['c_two'])} | {problems} | {empty} |")  # type: ignore[arg-type]
        say(f"\nload average at the end: {lh.load()}; {(dt.datetime.now(dt.timezone.utc) - started).seconds // 60} min")
    finally:
        if pg is not None:
            pg.close()
        lh.remove_prefect_home()
    if a.results:
        lh.add_section(a.results, f"{started:%Y-%m-%d %H:%M} UTC: two harvest workers against one "
                       f"(`bench/lake_worker.py{lh.command_line()}`)", lines)


if __name__ == "__main__":
    main()
