"""The lake against the old layout: commit time per dataset, the 200-dataset harvest, a reader during a harvest.

    make bench-lake      (or: .venv/bin/python bench/lake_harvest.py [--datasets 200] [--runs 3] [--reader-datasets 40]
                          [--old DIR] [--validate-rows 1000000] [--quick] [--results bench/RESULTS.md])

Before: the code of commit 0798d75 (one DuckDB file, partage.duckdb, DuckDB 2.0.1), in a worktree
with its own venv (--old; bench/build-old.sh builds it, from c68786a's uv.lock).
After: this checkout (DuckLake on the pinned DuckDB 1.5.5), its SQLite catalog, and a PostgreSQL
catalog when PARTAGE_TEST_PG_URL is set (`make pg`; a fresh database per lake, dropped after).

Each harvest is a fresh `partage harvest` process (Prefect's temporary server included) on a
catalog of N datasets with one small CSV each (bench/harvest_overhead.py's catalog), timed from
outside; inside, the warehouse's two writing calls (``publish_version`` for a new version,
``record_sources`` otherwise) are timed per dataset: that is the "commit time per dataset"
(fsync of the staged version and the rename included). --plain runs the same run loop without
Prefect (``harvest_without_prefect``): the quick mode's default, to stay within a test's time.

Reader: a second process opens one connection (the lake: attach.sql, as an analyst; the old
layout: the DuckDB file, read-only) and keeps it open, querying in a loop (a pause of --pause s
between queries) before and while a harvest rewrites every dataset; its latencies are split
into idle and during the harvest. The old code cannot write while a reader holds the file: its
harvest waits PARTAGE_DB_WAIT seconds (30 by default) and fails with WarehouseBusy, reported as such.

Validation: bench/validate.py at --validate-rows rows, run by this venv (DuckDB 1.5.5) and by the
old venv (DuckDB 2.0.1) on this checkout's code (PYTHONPATH=src), one after the other.

Load average is recorded before each measurement (the machine is shared); medians of --runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harvest_overhead import make_catalog  # noqa: E402
from machine import describe  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
NEW_PY = sys.executable
# The code of 0798d75 with its venv: bench/build-old.sh makes it (`make bench-lake` does).
DEFAULT_OLD = Path(os.environ.get("PARTAGE_BENCH_OLD") or Path.home() / ".cache" / "partage-bench-old")
# One Prefect home for every harvest of a bench run, its database made by a warm-up harvest (not
# timed): as on a hub, where ~/.prefect outlives the runs. Both codes use Prefect 3.9.1.
_prefect_home: list[Path] = []


def prefect_home() -> Path:
    """The bench run's Prefect home, made on first use (importing this module makes nothing)."""
    if not _prefect_home:
        _prefect_home.append(Path(tempfile.mkdtemp(prefix="partage-bench-prefect-")))
    return _prefect_home[0]


def remove_prefect_home() -> None:
    while _prefect_home:
        shutil.rmtree(_prefect_home.pop(), ignore_errors=True)

# Runs in the harvest's own process (old or new venv): times the warehouse's writing calls per
# dataset (outermost only: the lake's publish_version calls record_sources inside its transaction).
HARVEST = r"""
import atexit, json, sys, threading, time
mode, catalog, warehouse, out = sys.argv[1:5]
ids = sys.argv[5:]
try:
    from partage.store.warehouse import Warehouse
except ImportError:  # the old code (0798d75): warehouse.py beside the stages
    from partage.warehouse import Warehouse
calls, depth = [], threading.local()

def timed(name, f, dataset):
    def wrapper(self, *a, **k):
        d = getattr(depth, "n", 0)
        depth.n = d + 1
        t, ok = time.perf_counter(), False
        try:
            value = f(self, *a, **k)
            ok = True
            return value
        finally:
            depth.n = d
            if d == 0:
                calls.append([dataset(a, k)["id"], name, time.perf_counter() - t, ok])
    return wrapper

Warehouse.publish_version = timed("version", Warehouse.publish_version, lambda a, k: k["dataset"])
Warehouse.record_sources = timed("sources", Warehouse.record_sources, lambda a, k: a[1] if len(a) > 1 else k["dataset"])
result = {"calls": calls, "error": None}
atexit.register(lambda: open(out, "w").write(json.dumps(result)))
if mode == "plain":
    from partage.pipeline import harvest_without_prefect
    try:
        summary = harvest_without_prefect(catalog, warehouse, ids or None)
    except Exception as e:
        result["error"] = f"{type(e).__name__}: {str(e).splitlines()[0]}"
        sys.exit(1)
    sys.exit(summary.exit_code)
sys.argv = ["partage", "harvest", *ids, "--catalog", catalog, "--warehouse", warehouse]
from partage.cli import main
main()
"""

# One connection held open, a query in a loop until the stop file appears; (monotonic time, latency) per query.
READER = r"""
import json, sys, time
from pathlib import Path
import duckdb
kind, root, stop, out, pause = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4], float(sys.argv[5])
if kind == "lake":
    con = duckdb.connect()
    con.execute((root / "attach.sql").read_text())
else:
    con = duckdb.connect(str(root / "partage.duckdb"), read_only=True)
sql = 'SELECT (SELECT count(*) FROM catalog), (SELECT sum(valeur) FROM "jeu-0000")'
samples, errors = [], []
ready = Path(out + ".ready")
while not stop.exists():
    t = time.monotonic()
    try:
        con.execute(sql).fetchall()
        samples.append((t, time.monotonic() - t))
    except duckdb.Error as e:
        errors.append(str(e).splitlines()[0])
    if not ready.exists():
        ready.touch()
    time.sleep(pause)
con.close()
Path(out).write_text(json.dumps({"samples": samples, "errors": errors[:5], "error_count": len(errors)}))
"""


@dataclass
class Code:
    """One side of the comparison: a Python (its venv) and what it writes to."""

    label: str
    python: str
    layout: str  # "lake" or "old"
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Harvest:
    wall: float
    code: int
    commits: dict[str, float]  # dataset -> seconds in the warehouse's writing calls
    stored: set[str]  # datasets whose writing calls all succeeded
    error: str | None
    tail: str


def load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def ms(xs: list[float]) -> str:
    return f"{statistics.median(xs) * 1000:.1f} | {pct(xs, 0.99) * 1000:.1f}" if xs else "– | –"


def short(message: str) -> str:
    """An error's first line without the scratch directory's path, cut to fit a table cell."""
    text = re.sub(r"/\S*/partage-lake-bench-[^/\s]+/", "", message.splitlines()[0] if message else "")
    return text.replace("|", "/")[:200]


def base_env() -> dict[str, str]:
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING",
           "PARTAGE_NO_CKAN": "1"}
    for k in ("PREFECT_API_URL", "PARTAGE_LAKE", "PARTAGE_LAKE_DATA", "PARTAGE_WAREHOUSE", "PARTAGE_CATALOG", "PYTHONPATH"):
        env.pop(k, None)
    return env


def start_harvest(code: Code, root: Path, plain: bool, ids: list[str] | None = None,
                  extra: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], Path, float]:
    out = Path(tempfile.mktemp(prefix="harvest-", suffix=".json", dir=root))
    env = {**base_env(), **code.env, **(extra or {}), "PREFECT_HOME": str(prefect_home())}
    cmd = [code.python, "-c", HARVEST, "plain" if plain else "cli", str(root / "catalog"), str(root / "warehouse"),
           str(out), *(ids or [])]
    return subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True), \
        out, time.monotonic()


# What the CLI prints (or Prefect logs) of a WarehouseBusy, old code and new.
BUSY = re.compile(r"[\w/.-]*partage\.duckdb is held by another process[^'\"\n]*|another harvest is running[^'\"\n]*"
                  r"|could not commit[^'\"\n]*")
BROKEN = re.compile(r"cannot open the lake[^\n]*")


def finish_harvest(proc: subprocess.Popen[str], out: Path, started: float) -> Harvest:
    tail = proc.communicate()[0]
    wall = time.monotonic() - started
    data = json.loads(out.read_text()) if out.exists() else {"calls": [], "error": None}
    commits: dict[str, float] = {}
    failed = set()
    for dataset, _, seconds, ok in data["calls"]:
        commits[dataset] = commits.get(dataset, 0.0) + seconds
        if not ok:
            failed.add(dataset)
    error = data["error"]
    if error is None and proc.returncode not in (0, 1):
        error = next((x.strip() for x in tail.splitlines() if "Busy" in x or "held by" in x or "Error" in x),
                     f"exit {proc.returncode}")
    busy, broken = BUSY.search(tail), BROKEN.search(tail)
    if error is None and (busy or broken):  # the CLI's message (exit 1) of a WarehouseBusy or WarehouseError
        error = f"WarehouseBusy: {busy.group(0)}" if busy else f"WarehouseError: {broken.group(0)}"  # type: ignore[union-attr]
    return Harvest(wall, proc.returncode, commits, set(commits) - failed, error, tail[-3000:])


def harvest(code: Code, root: Path, plain: bool, ids: list[str] | None = None, *, check: bool = True) -> Harvest:
    h = finish_harvest(*start_harvest(code, root, plain, ids))
    if check and (h.code not in (0, 1) or h.error):
        raise SystemExit(f"{code.label}: harvest failed ({h.code}, {h.error}):\n{h.tail}")
    return h


def change_every_source(root: Path) -> None:
    """A new row in each dataset's file: the next harvest stores a new version of every dataset."""
    for path in sorted((root / "data").glob("*.csv")):
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"2A{time.time_ns() % 1000:03d},Commune ajoutée,{time.time() % 1000:.3f}\n")


def old_code(arg: Path) -> Path | None:
    """The --old argument: the built code of 0798d75, or None for 'none'; stops naming the fix when unbuilt."""
    if str(arg) == "none":
        return None
    if not (arg / ".venv" / "bin" / "python").exists():
        raise SystemExit(f"{arg}/.venv/bin/python is missing: run `bench/build-old.sh {arg}` (the code of 0798d75 "
                         "and its venv), or pass --old none")
    return arg


def postgres() -> "Postgres | None":
    """A PostgreSQL catalog server for the 'after' rows, when `make pg` made one (PARTAGE_TEST_PG_URL)."""
    url = os.environ.get("PARTAGE_TEST_PG_URL")
    return Postgres(url) if url else None


class Postgres:
    """Fresh databases on the server of PARTAGE_TEST_PG_URL, dropped at the end (lake_engine.py's helper)."""

    def __init__(self, url: str):
        from lake_engine import Postgres as Pg

        self.pg = Pg(url)

    def lake(self) -> str:
        return self.pg.database()

    def close(self) -> None:
        self.pg.close()


@contextmanager
def scratch(n: int) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="partage-lake-bench-") as tmp:
        root = Path(tmp)
        make_catalog(root, n)
        yield root


def sides(old: Path | None, pg: Postgres | None) -> list[tuple[Code, Postgres | None]]:
    out: list[tuple[Code, Postgres | None]] = []
    if old is not None:
        out.append((Code("before: 0798d75, partage.duckdb (DuckDB 2.0.1)", str(old / ".venv" / "bin" / "python"), "old"), None))
    out.append((Code("after: main, DuckLake, SQLite catalog (DuckDB 1.5.5)", NEW_PY, "lake"), None))
    if pg is not None:
        out.append((Code("after: main, DuckLake, PostgreSQL catalog (DuckDB 1.5.5)", NEW_PY, "lake"), pg))
    return out


def with_lake(code: Code, pg: Postgres | None) -> Code:
    if pg is None:
        return code
    return Code(code.label, code.python, code.layout, {"PARTAGE_LAKE": pg.lake()})


def harvest_runs(code: Code, pg: Postgres | None, n: int, runs: int, plain: bool) -> dict[str, object]:
    """First run (empty warehouse) and second run (nothing changed), `runs` times, each in a fresh warehouse."""
    first, second, c_first, c_second, loads = [], [], [], [], []
    for _ in range(runs):
        c = with_lake(code, pg)
        with scratch(n) as root:
            loads.append(load())
            h1 = harvest(c, root, plain)
            h2 = harvest(c, root, plain)
        first.append(h1.wall)
        second.append(h2.wall)
        c_first += list(h1.commits.values())
        c_second += list(h2.commits.values())
    return {"first": first, "second": second, "c_first": c_first, "c_second": c_second, "loads": loads}


def reader_run(code: Code, pg: Postgres | None, n: int, plain: bool, pause: float, idle: float,
               db_wait: str | None) -> dict[str, object]:
    """A reader holding one connection while a harvest rewrites every dataset (the warehouse made by a first harvest)."""
    c = with_lake(code, pg)
    with scratch(n) as root:
        harvest(c, root, plain)
        change_every_source(root)
        stop, out = root / "stop", root / "reader.json"
        reader = subprocess.Popen([c.python, "-c", READER, c.layout, str(root / "warehouse"), str(stop), str(out),
                                   str(pause)], env={**base_env(), **c.env}, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while not Path(str(out) + ".ready").exists():
            if reader.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{code.label}: the reader did not start:\n{reader.communicate()[0][-2000:]}")
            time.sleep(0.05)
        time.sleep(idle)
        extra = {"PARTAGE_DB_WAIT": db_wait} if db_wait else None
        load_at = load()
        h = finish_harvest(*start_harvest(c, root, plain, extra=extra))
        t_end = time.monotonic()
        stop.touch()
        reader.communicate(timeout=120)
        data = json.loads(out.read_text())
    t_start = t_end - h.wall
    idle_lat = [lat for t, lat in data["samples"] if t < t_start]
    during = [lat for t, lat in data["samples"] if t_start <= t <= t_end]
    return {"idle": idle_lat, "during": during, "harvest": h, "load": load_at, "reader_errors": data["error_count"],
            "updated": len(h.stored)}


def validation(old: Path | None, rows: int, runs: int, fl_rows: int) -> list[tuple[str, str, dict[str, str]]]:
    """bench/validate.py in this venv and in the old venv (this checkout's code on DuckDB 2.0.1)."""
    out = []
    pythons = [("this venv", NEW_PY, {})]
    if old is not None:
        pythons.append(("the old venv, PYTHONPATH=src", str(old / ".venv" / "bin" / "python"),
                        {"PYTHONPATH": str(REPO / "src")}))
    for label, py, extra in pythons:
        at = load()
        r = subprocess.run([py, str(REPO / "bench" / "validate.py"), "--rows", str(rows), "--fl-rows", str(fl_rows),
                            "--runs", str(runs), "--no-messy"], env={**base_env(), **extra}, cwd=REPO,
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"validate.py in {label} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
        duckdb_v = re.search(r"duckdb (\S+?),", r.stdout)
        cells: dict[str, str] = {"load": at, "duckdb": duckdb_v.group(1) if duckdb_v else "?"}
        for line in r.stdout.splitlines():
            cols = [x.strip() for x in line.strip("|").split("|")]
            if len(cols) == 8 and cols[0].replace(",", "") == str(rows):
                key = "floor" if "(floor)" in cols[1] else "sorted" if "sorted" in cols[1] else \
                    "partage" if "Partage" in cols[1] else None
                if key:
                    cells[f"{key}_s"], cells[f"{key}_mb"] = cols[2], cols[5]
                    if key == "partage":
                        cells["rate"], cells["errors"], cells["stored"] = cols[3], cols[6], cols[7]
        out.append((label, py, cells))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    ap.add_argument("--old", type=Path, default=DEFAULT_OLD,
                    help="the code of 0798d75 with its .venv (bench/build-old.sh DIR makes it; default "
                    "PARTAGE_BENCH_OLD, else ~/.cache/partage-bench-old); 'none': no 'before' rows")
    ap.add_argument("--plain", action="store_true", help="harvest without Prefect (harvest_without_prefect)")
    ap.add_argument("--reader-datasets", type=int, default=40, help="the catalog the harvest beside the reader writes")
    ap.add_argument("--validate-runs", type=int, default=3)
    ap.add_argument("--pause", type=float, default=0.01, help="the reader's pause between queries, s")
    ap.add_argument("--idle", type=float, default=2.0, help="the reader's idle seconds before the harvest starts")
    ap.add_argument("--db-wait", default=None, help="PARTAGE_DB_WAIT for the old code's harvest beside the reader "
                    "(default: its own, 30 s)")
    ap.add_argument("--validate-rows", type=int, default=1_000_000, help="0: no validation rows")
    ap.add_argument("--fl-rows", type=int, default=20_000, help="validate.py's frictionless sample (not compared here)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke mode: 3 datasets, 1 run, no Prefect, 5,000 validation rows, PARTAGE_DB_WAIT=2")
    ap.add_argument("--results", type=Path, help="also add the output as the newest section of this file (RESULTS.md)")
    a = ap.parse_args()
    if a.quick:
        a.datasets, a.runs, a.plain, a.idle, a.fl_rows = 3, 1, True, 0.3, 1_000
        a.reader_datasets, a.validate_runs = 3, 1
        a.validate_rows = min(a.validate_rows, 5_000) if a.validate_rows else 0
        a.db_wait = a.db_wait or "2"
    old = old_code(a.old)
    pg = postgres()
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    started = dt.datetime.now(dt.timezone.utc)
    try:
        say(describe(("duckdb", "duckdb-extension-ducklake", "duckdb-extension-sqlite", "duckdb-extension-postgres",
                      "prefect")))
        if old is not None:
            r = subprocess.run([str(old / ".venv/bin/python"), "-c", "import duckdb, prefect; "
                                "print(duckdb.__version__, prefect.__version__)"], capture_output=True, text=True)
            head = subprocess.run(["git", "-C", str(old), "rev-parse", "--short=7", "HEAD"], capture_output=True,
                                  text=True).stdout.strip() if (old / ".git").exists() else \
                (old / ".commit").read_text().strip() if (old / ".commit").exists() else "?"
            say(f"- before: {old} at {head}, duckdb {r.stdout.split()[0]}, prefect {r.stdout.split()[1]}")
        say(f"- after: {REPO} at {subprocess.run(['git', '-C', str(REPO), 'rev-parse', '--short=7', 'HEAD'], capture_output=True, text=True).stdout.strip()}"
            + ("; PostgreSQL catalog: a fresh database per lake on PARTAGE_TEST_PG_URL's server" if pg else
               "; no PARTAGE_TEST_PG_URL: no PostgreSQL rows"))
        how = "the run loop without Prefect (harvest_without_prefect)" if a.plain else \
            "`partage harvest` (Prefect flow, its temporary server included)"
        say(f"- harvests: {how}, fresh process each; {a.datasets} datasets × 1 CSV of 20 rows; "
            f"{a.runs} run(s) per cell, median; load average (1 min) at the start of each cell\n")

        if not a.plain:  # Prefect's database under PREFECT_HOME is made here, not in the first timed run
            with scratch(1) as root:
                harvest(Code("warm-up", NEW_PY, "lake"), root, plain=False)

        say(f"### Harvest of {a.datasets} datasets and commit time per dataset\n")
        say("Wall s of the whole process (median of the runs); commit ms: each dataset's writing calls "
            "(`publish_version` on the first run, `record_sources` when unchanged), every dataset of every run.\n")
        say("| code | load | first run s | unchanged run s | commit ms first run: median | p99 "
            "| commit ms unchanged: median | p99 |")
        say("|---|---:|---:|---:|---:|---:|---:|---:|")
        for code, with_pg in sides(old, pg):
            r = harvest_runs(code, with_pg, a.datasets, a.runs, a.plain)
            say(f"| {code.label} | {', '.join(r['loads'])} | {statistics.median(r['first']):.2f} "  # type: ignore[arg-type]
                f"| {statistics.median(r['second']):.2f} | {ms(r['c_first'])} | {ms(r['c_second'])} |")  # type: ignore[arg-type]

        say(f"\n### A reader holding one connection while a harvest rewrites all {a.reader_datasets} datasets\n")
        say(f"The reader queries `catalog` and one dataset in a loop ({a.pause * 1000:.0f} ms pause), "
            f"{a.idle:.1f} s alone, then during the harvest; one run.\n")
        say("| code | load | reader queries idle | idle p50 ms | idle p99 ms | queries during | during p50 ms "
            "| during p99 ms | reader errors | harvest |")
        say("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for code, with_pg in sides(old, pg):
            r = reader_run(code, with_pg, a.reader_datasets, a.plain, a.pause, a.idle,
                           a.db_wait if code.layout == "old" else None)
            h: Harvest = r["harvest"]  # type: ignore[assignment]
            idle_l, during = r["idle"], r["during"]
            p = (lambda xs, q: f"{pct(xs, q) * 1000:.1f}" if xs else "–")  # noqa: E731
            outcome = (f"{h.wall:.2f} s, {r['updated']} datasets written" if h.error is None else
                       f"**failed** after {h.wall:.1f} s (exit {h.code}): {short(h.error)}")
            say(f"| {code.label} | {r['load']} | {len(idle_l)} | {p(idle_l, 0.5)} | {p(idle_l, 0.99)} | "  # type: ignore[arg-type]
                f"{len(during)} | {p(during, 0.5)} | {p(during, 0.99)} | {r['reader_errors']} | {outcome} |")  # type: ignore[arg-type]

        if a.validate_rows:
            say(f"\n### Validation at {a.validate_rows:,} rows: the pinned DuckDB against DuckDB 2.0.1 "
                f"(bench/validate.py --runs {a.validate_runs} --no-messy, this checkout's code in both)\n")
            say("| Python | load | duckdb | floor s | sorted floor s | Partage s | Partage rows/s | Partage peak MB "
                "| errors found | rows stored |")
            say("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
            results = validation(old, a.validate_rows, a.validate_runs, a.fl_rows)
            for label, _, c in results:
                say(f"| {label} | {c['load']} | {c['duckdb']} | {c.get('floor_s', '?')} | {c.get('sorted_s', '?')} | "
                    f"{c.get('partage_s', '?')} | {c.get('rate', '?')} | {c.get('partage_mb', '?')} | "
                    f"{c.get('errors', '?')} | {c.get('stored', '?')} |")
            if len(results) == 2:
                try:
                    ratio = float(results[0][2]["partage_s"]) / float(results[1][2]["partage_s"])
                    say(f"\nPartage s on DuckDB {results[0][2]['duckdb']} ÷ on {results[1][2]['duckdb']}: {ratio:.2f}×")
                except (KeyError, ValueError):
                    pass
        say(f"\nload average at the end: {load()}; {(dt.datetime.now(dt.timezone.utc) - started).seconds // 60} min")
    finally:
        if pg is not None:
            pg.close()
        remove_prefect_home()
    if a.results:
        add_section(a.results, f"{started:%Y-%m-%d %H:%M} UTC: lake vs old layout (`bench/lake_harvest.py"
                    f"{command_line()}`)", lines)


def command_line() -> str:
    """This run's options for the section's title, without --results and the old code's path."""
    args, skip = [], False
    for x in sys.argv[1:]:
        if skip or x in ("--results", "--old"):
            skip = not skip
            continue
        args.append(x)
    return "".join(f" {x}" for x in args)


def add_section(results: Path, title: str, lines: list[str]) -> None:
    """The newest section goes first, under the file's header, as the file's other sections do."""
    text = results.read_text(encoding="utf-8")
    at = text.find("\n## ")
    section = f"\n## {title}\n\n" + "\n".join(lines) + "\n\n"
    results.write_text(text[:at + 1] + section.lstrip("\n") + text[at + 1:] if at >= 0 else text + section,
                       encoding="utf-8")


if __name__ == "__main__":
    main()
