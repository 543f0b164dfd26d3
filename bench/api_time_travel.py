"""What the API pays to read a past version (``version=`` / ``as_of=``): its Parquet parts, or DuckLake time travel.

    .venv/bin/python bench/api_time_travel.py [--rows 1000000] [--runs 30]

Builds a warehouse in a temporary directory with two versions of a generated IRVE-like dataset
(``bornes-big``, landed through ``Warehouse.publish_version``, the transaction a harvest makes; the
second version changes ``nbre_pdc`` on every row), then reads the **first** version both ways, on
one thread as the API's query threads do:

- ``parquet``: the version's parts by ``warehouse.version_relation`` in a plain in-memory DuckDB
  (the API's engine: ``parquet_metadata_cache``, late materialization off);
- ``time travel``: ``lake.main."bornes-big" AT (VERSION => snapshot)`` in a DuckDB with the lake
  attached read-only (DuckLake, its SQLite catalog).

For each: a filtered page, a sorted page, a filtered count (median of --runs, after 3 warm-ups),
and the copy of the whole version into an in-memory table (what the API does for each version it
serves; once). Then checks that both give the same rows (EXCEPT ALL both ways is empty).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))
from api import GEN, SCHEMA  # noqa: E402
from machine import describe  # noqa: E402

QUERIES = {
    "filtered page (code = ?, LIMIT 21)": "SELECT * FROM {r} WHERE code_insee_commune = '2A017' LIMIT 21",
    "sorted page (ORDER BY, OFFSET 40)": "SELECT * FROM {r} ORDER BY puissance_nominale, _source, _row_number "
                                         "LIMIT 21 OFFSET 40",
    "filtered count": "SELECT count(*) FROM {r} WHERE nbre_pdc = 3",
}


def land(wh, rows: int, generation: int) -> str:  # noqa: ANN001
    import duckdb

    from partage.store.warehouse import Part, new_version_id

    staged = wh.root / "bornes-big" / f".staging-{generation}"
    (staged / "data").mkdir(parents=True)
    gen = GEN.replace("(i % 8 + 1)::BIGINT", f"((i + {generation}) % 8 + 1)::BIGINT")
    con = duckdb.connect()
    con.execute(gen.replace("{path}", str(staged / "data" / "export.parquet")), [rows])
    con.close()
    (staged / "schema.json").write_text(json.dumps(SCHEMA))
    last = max(wh.snapshots("bornes-big"), default=None) if wh.exists() else None
    v = new_version_id(last)
    wh.publish_version(
        run_id="bench", dataset={"id": "bornes-big", "title": "Bornes", "description": "bench", "license": "etalab-2.0",
                                 "access": "open", "policy": "quarantine", "keywords": []},
        version=v, staged=staged, parts=[Part("export", "data/export.parquet", None, "0" * 64, rows, 0, v)],
        columns=SCHEMA["fields"], schema_ref="bench/bornes@1", schema_sha256="0" * 64,
        summary={"rows": rows, "quarantined": 0}, updates=[], reports=[])
    return v


def timed(con, sql: str, runs: int) -> float:  # noqa: ANN001
    for _ in range(3):
        con.execute(sql).fetchall()
    xs = []
    for _ in range(runs):
        t = time.perf_counter()
        con.execute(sql).fetchall()
        xs.append(time.perf_counter() - t)
    return statistics.median(xs) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()

    import duckdb

    from partage.store import metadata
    from partage.store.engine import connect
    from partage.store.warehouse import Warehouse, version_relation

    with tempfile.TemporaryDirectory(prefix="partage-bench-tt-") as tmp:
        wh = Warehouse(Path(tmp) / "warehouse")
        wh.init()
        t = time.perf_counter()
        old = land(wh, args.rows, 0)
        land(wh, args.rows, 1)
        built = time.perf_counter() - t
        entry = next(e for e in metadata.history(wh, "bornes-big") if e.version.version == old)
        assert entry.snapshot_id is not None
        v = entry.version

        files = duckdb.connect(":memory:", config={"threads": 1})
        files.execute("SET GLOBAL parquet_metadata_cache = true")
        files.execute("SET GLOBAL disabled_optimizers = 'late_materialization'")
        parquet_rel = version_relation(wh.location(v.dataset_id, v.version), v.parts, v.summary)

        lake = connect()
        lake.execute("SET threads = 1")
        lake.execute(wh.lake.attach_sql(read_only=True))
        travel_rel = f'(SELECT * FROM lake.main."bornes-big" AT (VERSION => {entry.snapshot_id}))'

        table = []
        for label, q in QUERIES.items():
            a = timed(files, q.format(r=parquet_rel), args.runs)
            b = timed(lake, q.format(r=travel_rel), args.runs)
            table.append((label, a, b))
        copies = []
        for con, rel in ((files, parquet_rel), (lake, travel_rel)):
            con.execute("SET threads = 2")
            t = time.perf_counter()
            con.execute(f"CREATE TEMP TABLE copy AS SELECT * FROM {rel}")
            copies.append((time.perf_counter() - t) * 1000)
        same = lake.execute(f"SELECT (SELECT count(*) FROM (SELECT * FROM {parquet_rel} EXCEPT ALL "
                            f"SELECT * FROM {travel_rel})) + (SELECT count(*) FROM (SELECT * FROM {travel_rel} "
                            f"EXCEPT ALL SELECT * FROM {parquet_rel}))").fetchone()[0]
        rows = lake.execute(f"SELECT count(*) FROM {travel_rel}").fetchone()[0]

    print(describe(("duckdb", "duckdb-extension-ducklake", "pyarrow")))
    print(f"- data: {args.rows:,} rows per version, 2 versions (built in {built:.1f} s); the first one read; "
          f"median of {args.runs} runs, 1 thread (the copy: 2 threads)\n")
    print("| query on the older version | Parquet parts (ms) | DuckLake time travel (ms) | ratio |")
    print("|---|---:|---:|---:|")
    for label, a, b in table:
        print(f"| {label} | {a:.2f} | {b:.2f} | {b / a:.1f}× |")
    a, b = copies
    print(f"| copy into memory (once per version served) | {a:.0f} | {b:.0f} | {b / a:.1f}× |")
    print(f"\nsame rows both ways: {'yes' if same == 0 else f'NO ({same} rows differ)'} ({rows:,} rows)")


if __name__ == "__main__":
    main()
