"""Crash safety: a harvest killed with SIGKILL at any point of a store leaves the warehouse whole.

Each trial changes a source, starts a real harvest process (the engine, no
Prefect, so that it starts in about a second) and kills it with SIGKILL —
either at a named point of the store (``partage.faults``: after the raw file
is written, after validation, once staged, before and after the rename,
inside the transaction, after the views are repointed, after the commit) or
after a random delay. Then, from a fresh process's point of view:

* the warehouse opens, read-only;
* every view returns exactly the previous version's rows or the new one's —
  never a mix, never a missing file — and it is the previous one for every
  kill before the commit;
* no view refers to a staging directory, every recorded version's files exist;
* ``partage gc`` (itself killed once in a while) removes every leftover, and
  the next harvest picks up what the killed one did not finish.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from partage.catalog import load_catalog
from partage.gc import collect_garbage
from partage.store.warehouse import Warehouse

from .conftest import CatalogBuilder

pytestmark = pytest.mark.slow

SCHEMA = "test/compteurs@1.0"
SCHEMA_DESC = {
    "fields": [
        {"name": "id", "type": "string", "constraints": {"required": True}},
        {"name": "gen", "type": "integer"},
        {"name": "valeur", "type": "number", "decimalChar": ","},
        {"name": "code_insee", "type": "string"},
    ],
    "primaryKey": ["id"],
}
ROWS = 1500
STAGES = ["raw-written", "validated", "staged", "before-rename", "renamed", "in-transaction",
          "views-repointed", "committed"]
BEFORE_COMMIT = set(STAGES) - {"committed"}
CHILD = ("import sys\nfrom partage.pipeline import harvest_without_prefect as h\n"
         "sys.exit(h(sys.argv[1], sys.argv[2]).exit_code)")
GC_CHILD = ("import sys\nfrom partage.catalog import load_catalog\nfrom partage.gc import collect_garbage\n"
            "from partage.store.warehouse import Warehouse\n"
            "collect_garbage(Warehouse(sys.argv[2]), load_catalog(sys.argv[1]))")


def content(prefix: str, gen: int) -> str:
    lines = ["id;gen;valeur;code_insee"]
    lines += [f"{prefix}{i:05d};{gen};{i},{gen % 10};{'2A004' if i % 2 else '01001'}" for i in range(ROWS)]
    return "\n".join(lines) + "\n"


def expected(hub: CatalogBuilder) -> list[tuple[str, int]]:
    """What the view must show once everything on disk is harvested: (id, gen) pairs."""
    out = []
    for name in ("a.csv", "b.csv"):
        for line in (hub.data / name).read_text(encoding="utf-8").splitlines()[1:]:
            i, gen, _, _ = line.split(";")
            out.append((i, int(gen)))
    return sorted(out)


def shown(wh: Warehouse) -> list[tuple[str, int]]:
    with wh.connect(read_only=True, wait=10) as con:
        return sorted(con.execute('SELECT id, gen FROM main."compteurs"').fetchall())


def check_whole(wh: Warehouse) -> None:
    """Everything a reader can reach is consistent and complete."""
    with wh.connect(read_only=True, wait=10) as con:
        for (sql,) in con.execute("SELECT sql FROM duckdb_views() WHERE NOT internal").fetchall():
            assert ".staging-" not in sql
        versions = con.execute("SELECT dataset_id, version, path, row_count FROM _partage.versions").fetchall()
        for ds, version, path, row_count in versions:
            assert Path(path).is_dir(), f"{ds} {version}: recorded but its directory is missing"
            n = con.execute(f'SELECT count(*) FROM history."{ds}" WHERE _version = ?', [version]).fetchall()[0][0]
            assert n == row_count
        latest = con.execute("SELECT max(version) FROM _partage.versions WHERE dataset_id = 'compteurs'").fetchall()[0][0]
        main = con.execute('SELECT count(*) FROM main."compteurs"').fetchall()[0][0]
        hist = con.execute('SELECT count(*) FROM history."compteurs" WHERE _version = ?', [latest]).fetchall()[0][0]
        assert main == hist
        assert con.execute("SELECT count(*) FROM main.other").fetchall()[0][0] == 3


def leftovers(wh: Warehouse) -> list[Path]:
    with wh.connect(read_only=True, wait=10) as con:
        known = {(d, v) for d, v in con.execute("SELECT dataset_id, version FROM _partage.versions").fetchall()}
    out = [p for p in (wh.root / "compteurs").iterdir() if p.name.startswith(".staging-")
           or (p.name[0].isdigit() and ("compteurs", p.name) not in known)]
    tmp = wh.raw.tmp
    return out + (sorted(tmp.iterdir()) if tmp.is_dir() else [])


def start(hub: CatalogBuilder, code: str, crash_at: str | None = None) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.pop("PARTAGE_CRASH_AT", None)
    if crash_at:
        env["PARTAGE_CRASH_AT"] = crash_at
    return subprocess.Popen([sys.executable, "-c", code, str(hub.catalog), str(hub.warehouse)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_sigkill_at_every_stage_of_a_store_never_shows_a_partial_version(hub: CatalogBuilder) -> None:
    hub.schema(SCHEMA, SCHEMA_DESC)
    hub.file("a.csv", content("A", 0))
    hub.file("b.csv", content("B", 0))
    hub.file("other.csv", "id;gen;valeur;code_insee\nX;0;1,5;2B033\nY;0;2;01001\nZ;0;3;97411\n")
    hub.dataset("compteurs", ["file: ../data/a.csv", "file: ../data/b.csv"], schema=SCHEMA)
    hub.dataset("other", ["file: ../data/other.csv"], schema=SCHEMA)
    wh = Warehouse(hub.warehouse)
    catalog = load_catalog(hub.catalog)

    t0 = time.monotonic()
    first = start(hub, CHILD)
    assert first.wait(120) == 0, first.stderr.read().decode()[-2000:] if first.stderr else ""
    cold_run = time.monotonic() - t0
    assert shown(wh) == expected(hub)

    # Random delays are drawn against how long a warm harvest takes, measured on
    # the runs that finished on their own or were killed at "committed": the cold
    # first run (imports, caches) can be twice as long, and delays scaled to it
    # would mostly miss.
    finished: list[float] = []
    rng = random.Random(20261122)
    plan: list[tuple[str | None, bool]] = [(s, False) for s in STAGES for _ in range(4)]
    plan += [(None, True) for _ in range(22)]
    rng.shuffle(plan)
    outcomes: dict[str, int] = {}
    gc_kills = 0

    def random_kills() -> int:
        return sum(v for k, v in outcomes.items() if k.startswith("random: killed"))

    def trial(gen: int, stage: str | None, random_kill: bool) -> None:
        nonlocal gc_kills
        which = "a.csv" if gen % 2 else "b.csv"
        hub.file(which, content(which[0].upper(), gen))
        before, after = shown(wh), expected(hub)
        delay = None
        if random_kill:
            typical = sorted(finished)[len(finished) // 2] if finished else cold_run
            delay = rng.uniform(0.2, 1.15) * typical
        t0 = time.monotonic()
        proc = start(hub, CHILD, stage)
        if delay is not None:
            try:
                proc.wait(delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
        code = proc.wait(120)
        stderr = proc.stderr.read().decode() if proc.stderr else ""
        killed = code == -signal.SIGKILL
        assert killed or code == 0, f"trial {gen} ({stage or f'after {delay:.2f}s'}): exit {code}\n{stderr[-2000:]}"
        if not killed or stage == "committed":
            finished.append(time.monotonic() - t0)
        now_shown = shown(wh)
        label = stage or ("random: finished first" if not killed else
                          "random: killed, new version shown" if now_shown == after != before else
                          "random: killed, previous version kept")
        outcomes[label] = outcomes.get(label, 0) + 1
        assert now_shown in (before, after), f"trial {gen} ({label}): the view shows neither version"
        if stage in BEFORE_COMMIT:
            assert now_shown == before, f"trial {gen}: killed at {stage}, before the commit, yet the new rows show"
        if stage == "committed" or not killed:
            assert now_shown == after
        check_whole(wh)

        left = leftovers(wh)
        if left and gen % 3 == 0:  # kill the clean-up itself once in a while
            g = start(hub, GC_CHILD, "gc-removing")
            gc_code = g.wait(120)
            assert gc_code == -signal.SIGKILL, g.stderr.read().decode()[-2000:] if g.stderr else ""
            gc_kills += 1
            check_whole(wh)
        collect_garbage(wh, catalog)
        assert leftovers(wh) == [], f"trial {gen} ({label}): gc left {leftovers(wh)}"
        assert shown(wh) == now_shown
        check_whole(wh)

    for gen, (stage, random_kill) in enumerate(plan, start=1):
        trial(gen, stage, random_kill)
    # A loaded machine can make the harvests of the plan finish before their
    # random kills; add random trials (bounded) until a few kills really landed.
    total = len(plan)
    while random_kills() < 5 and total < len(plan) + 30:
        total += 1
        trial(total, None, True)

    # the next harvest completes what the killed ones left undone
    last = start(hub, CHILD)
    assert last.wait(120) == 0
    assert shown(wh) == expected(hub)
    check_whole(wh)
    print(f"\nSIGKILL trials: {total} (+{gc_kills} kills of gc); outcomes: {dict(sorted(outcomes.items()))}")
    assert total >= 50 and random_kills() >= 5
