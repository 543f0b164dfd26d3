"""How fast analysts can read the warehouse: scans, lookups and pages over a stored dataset.

    .venv/bin/python bench/warehouse_scan.py [--rows 1000000] [--runs 5]   (or: make bench-warehouse)

Generates a seeded IRVE-like CSV (two operators' files, ids in random order),
harvests it with the engine into a fresh warehouse, then times typical analyst
queries on the dataset's view (`main."bornes"`: the union of the parts, the
per-row `_source_version`, the consolidation anti-join) — each in a fresh
read-only connection, as `partage sql` or a BI tool would — against the same
rows written unsorted, to show what sorting by the primary key buys:
row-group min/max statistics let DuckDB skip most of the file for key lookups.

Prints the machine, the versions and a table (median of the runs, ms).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

SCHEMA = {
    "fields": [
        {"name": "id_pdc_itinerance", "type": "string", "constraints": {"required": True}},
        {"name": "nom_operateur", "type": "string"},
        {"name": "code_insee_commune", "type": "string"},
        {"name": "puissance_nominale", "type": "number"},
        {"name": "nbre_pdc", "type": "integer"},
        {"name": "gratuit", "type": "boolean"},
        {"name": "date_mise_en_service", "type": "date"},
        {"name": "coordonneesXY", "type": "geopoint", "format": "array"},
    ],
    "primaryKey": ["id_pdc_itinerance"],
}


def generate(path: Path, rows: int, seed: int, operator: str, offset: int) -> None:
    rng = random.Random(seed)
    ids = list(range(offset, offset + rows))
    rng.shuffle(ids)  # producers rarely send files in key order
    with open(path, "w", encoding="utf-8") as f:
        f.write("id_pdc_itinerance,nom_operateur,code_insee_commune,puissance_nominale,nbre_pdc,gratuit,"
                "date_mise_en_service,coordonneesXY\n")
        for i in ids:
            dep = rng.choice(["01", "2A", "2B", "13", "69", "75", "97"])
            f.write(f"FRA{i:09d},{operator},{dep}{rng.randrange(1000):03d},{rng.choice([7.4, 22, 50, 150])},"
                    f"{rng.randrange(1, 12)},{rng.choice(['true', 'false'])},20{rng.randrange(10, 25)}-0{rng.randrange(1, 10)}-1{rng.randrange(10)},"
                    f"\"[{rng.uniform(-5, 9):.5f}, {rng.uniform(41, 51):.5f}]\"\n")


def timed(db: Path, sql: str, params: list, runs: int) -> tuple[float, int]:
    times, n = [], 0
    for _ in range(runs):
        t0 = time.perf_counter()
        con = duckdb.connect(str(db), read_only=True)
        try:
            n = len(con.execute(sql, params).fetchall())
        finally:
            con.close()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    from partage.pipeline import harvest_without_prefect

    with tempfile.TemporaryDirectory(prefix="partage-bench-") as tmp:
        root = Path(tmp)
        (root / "schemas/bench/bornes/1.0").mkdir(parents=True)
        (root / "schemas/bench/bornes/1.0/schema.json").write_text(json.dumps(SCHEMA))
        (root / "catalog").mkdir()
        (root / "data").mkdir()
        half = args.rows // 2
        generate(root / "data/a.csv", half, 1, "alpha", 0)
        generate(root / "data/b.csv", args.rows - half, 2, "beta", half)
        (root / "catalog/bornes.yaml").write_text(
            "id: bornes\ntitle: Bornes (bench)\nlicense: etalab-2.0\naccess: open\nschema: bench/bornes@1.0\n"
            "sources:\n  - file: ../data/a.csv\n  - file: ../data/b.csv\n")
        t0 = time.perf_counter()
        summary = harvest_without_prefect(root / "catalog", root / "warehouse")
        store_s = time.perf_counter() - t0
        assert summary.exit_code == 0, [s.reason for s in summary.sources]
        db = root / "warehouse/partage.duckdb"
        csv_mb = sum(p.stat().st_size for p in (root / "data").glob("*.csv")) / 1024**2
        parquet = sorted((root / "warehouse/bornes").glob("*/data/*.parquet"))
        pq_mb = sum(p.stat().st_size for p in parquet) / 1024**2

        # the same rows, unsorted, behind a view of the same shape, for comparison
        unsorted = root / "unsorted.parquet"
        con = duckdb.connect()
        files = ", ".join(f"'{p}'" for p in parquet)
        con.execute(f"COPY (SELECT * FROM read_parquet([{files}]) ORDER BY hash(_row_number, _source)) "
                    f"TO '{unsorted}' (FORMAT parquet, COMPRESSION zstd)")
        row_groups = con.execute(f"SELECT count(DISTINCT row_group_id) FROM parquet_metadata('{parquet[0]}')").fetchall()[0][0]
        con.close()
        con = duckdb.connect(str(db))
        con.execute(f"CREATE VIEW main.bornes_unsorted AS SELECT * FROM read_parquet('{unsorted}')")
        con.close()

        probe = f"FRA{args.rows // 3:09d}"
        lo, hi = f"FRA{args.rows // 2:09d}", f"FRA{args.rows // 2 + args.rows // 100:09d}"
        queries = [
            ("count(*)", "SELECT count(*) FROM {v}", []),
            ("lookup by primary key", "SELECT * FROM {v} WHERE id_pdc_itinerance = ?", [probe]),
            ("key range (1 % of rows)", "SELECT count(*), avg(puissance_nominale) FROM {v} WHERE id_pdc_itinerance BETWEEN ? AND ?", [lo, hi]),
            ("filter on a non-key column", "SELECT count(*) FROM {v} WHERE code_insee_commune = '2A004'", []),
            ("group by department", "SELECT left(code_insee_commune, 2) d, count(*), avg(puissance_nominale) FROM {v} GROUP BY d", []),
            ("geopoint to lon/lat, bbox", "SELECT count(*) FROM {v} WHERE coordonneesXY.lon BETWEEN 2 AND 3 AND coordonneesXY.lat BETWEEN 48 AND 49", []),
            ("first page of 50 by key", "SELECT * FROM {v} ORDER BY id_pdc_itinerance LIMIT 50", []),
            ("full scan, every column", "SELECT * FROM {v}", []),
        ]
        print(describe())
        print(f"- dataset: {args.rows:,} rows in 2 sources; CSV {csv_mb:.1f} MiB -> Parquet {pq_mb:.1f} MiB (zstd, "
              f"{row_groups} row group(s) in the first part); harvest (validate + store) {store_s:.1f} s")
        print(f"- each query in a fresh read-only connection to partage.duckdb; median of {args.runs} runs\n")
        print("| query | view `main.bornes` ms | same rows unsorted ms | rows returned |\n|---|---:|---:|---:|")
        for name, sql, params in queries:
            a, n = timed(db, sql.format(v='main."bornes"'), params, args.runs)
            b, _ = timed(db, sql.format(v="main.bornes_unsorted"), params, args.runs)
            print(f"| {name} | {a:.1f} | {b:.1f} | {n:,} |")
        full, _ = timed(db, 'SELECT * FROM main."bornes"', [], 1)
        print(f"\nfull scan rate: {args.rows / (full / 1000):,.0f} rows/s (every column materialised in Python)")


if __name__ == "__main__":
    main()
