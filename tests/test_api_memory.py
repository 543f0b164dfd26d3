"""The API on a version copied into memory, against a real uvicorn server on 127.0.0.1.

The shortcuts of the in-memory copy (a dictionary for text columns with few distinct values, so
``__contains`` matches the distinct values; totals taken from an index lookup's rows instead of a
count) must give exactly the rows, order and totals DuckDB computes on the Parquet file itself,
written here without ILIKE: ``contains(lower(col), lower(?))``. The version is published the way a
harvest publishes one (``Warehouse.publish_version``), without Prefect, so the module is quick.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from partage.store.warehouse import Part, Warehouse, new_version_id

from .test_api import free_port, wait_until_serving

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
ROWS = 3000
NAMES = ["Saint-Étienne", "SAINT-DENIS", "été", "ÉTÉ 50%", "a_b", "a\\b", "Œuilly", "L'Île", "Gare de Lyon", "x%y_z"]
SCHEMA = {
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "nom", "type": "string"},
        {"name": "dep", "type": "string", "constraints": {"pattern": "^[0-9]{2}$"}},
        {"name": "n", "type": "integer"},
    ],
    "primaryKey": ["id"],
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, str]]:
    root = tmp_path_factory.mktemp("api-memory")
    wh = Warehouse(root / "warehouse")
    wh.init()
    staged = wh.root / "lieux" / ".staged-0"
    (staged / "data").mkdir(parents=True)
    parquet = staged / "data" / "export.parquet"
    con = duckdb.connect()
    con.execute(f"""COPY (SELECT 'ID' || lpad(i::VARCHAR, 5, '0') AS id,
                            CASE WHEN i % 17 = 0 THEN NULL ELSE list_extract(?::VARCHAR[], (i * 7) % 10 + 1) END AS nom,
                            lpad((i % 40)::VARCHAR, 2, '0') AS dep, i % 5 AS n, 'export' AS _source, i AS _row_number
                     FROM range(1, {ROWS} + 1) t(i)) TO '{parquet}' (FORMAT parquet)""", [NAMES])
    con.close()
    (staged / "schema.json").write_text(json.dumps(SCHEMA))
    version = new_version_id(None)
    wh.publish_version(
        run_id="test", dataset={"id": "lieux", "title": "Lieux", "description": "", "license": "etalab-2.0",
                                "access": "open", "policy": "quarantine", "keywords": []},
        version=version, staged=staged, parts=[Part("export", "data/export.parquet", None, "0" * 64, ROWS, 0, version)],
        columns=SCHEMA["fields"], schema_ref="test/lieux@1", schema_sha256="0" * 64,
        summary={"rows": ROWS, "quarantined": 0}, updates=[], reports=[])
    stored = str(wh.version_dir("lieux", version) / "data" / "export.parquet")
    env = dict(os.environ, PARTAGE_API_CACHE_ROWS="100000", PARTAGE_API_RESPONSE_CACHE_MB="0")
    port = free_port()
    log_path = root / "serve.log"
    log = open(log_path, "w")
    server = subprocess.Popen([str(BIN / "partage"), "serve", "--port", str(port), "--warehouse", str(wh.root)],
                              env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    wait_until_serving(base, server, log, log_path)  # the first catalog snapshot waits for the copy in memory
    try:
        yield httpx.Client(base_url=base, timeout=30), stored
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()
        assert "Traceback" not in log_path.read_text(), log_path.read_text()[-5000:]


def expected(parquet: str, where: str, params: list[Any], order: str = "_row_number") -> list[str]:
    sql = f"SELECT id FROM read_parquet('{parquet}') WHERE {where} ORDER BY {order}"
    return [r[0] for r in duckdb.execute(sql, params).fetchall()]


CASES = [
    ({"nom__contains": "saint"}, "contains(lower(nom), 'saint')", []),
    ({"nom__contains": "ÉTÉ"}, "contains(lower(nom), 'été')", []),
    ({"nom__contains": "50%"}, "contains(nom, '50%')", []),
    ({"nom__contains": "_"}, "contains(nom, '_')", []),
    ({"nom__contains": "\\"}, "contains(nom, '\\')", []),
    ({"nom__contains": "e", "n__less": "2"}, "contains(lower(nom), 'e') AND n <= 2", []),
    ({"nom__contains": "zzz"}, "false", []),
    ({"nom__contains": "l'î", "dep__in": "01,02,03"}, "contains(lower(nom), 'l''î') AND dep IN ('01', '02', '03')", []),
    ({"dep__exact": "07"}, "dep = '07'", []),  # 75 rows: the index lookup fetched them all, no count
    ({"dep__in": "07,08"}, "dep IN ('07', '08')", []),  # 150 rows: over the lookup's 100, counted
    ({"dep__in": "07,08", "nom__contains": "a"}, "dep IN ('07', '08') AND contains(lower(nom), 'a')", []),
    ({"id__exact": "ID00042"}, "id = 'ID00042'", []),
]


@pytest.mark.parametrize(("params", "where", "values"), CASES, ids=[json.dumps(c[0], ensure_ascii=False) for c in CASES])
@pytest.mark.parametrize("page_size", [7, 50])
def test_rows_order_and_totals_match_duckdb(served: tuple[httpx.Client, str], params: dict[str, str], where: str,
                                            values: list[Any], page_size: int) -> None:
    http, parquet = served
    want = expected(parquet, where, values)
    got: list[str] = []
    r = http.get("/datasets/lieux/rows", params={**params, "page_size": page_size})
    assert r.status_code == 200, r.text
    body = r.json()
    while True:
        assert body["meta"]["total"] == len(want), body["meta"]
        got += [row["id"] for row in body["data"]]
        if not body["links"]["next"]:
            break
        body = http.get(body["links"]["next"]).json()
    assert got == want  # same rows, in the version's stored order, each once


def test_a_page_past_the_end_and_a_sorted_page(served: tuple[httpx.Client, str]) -> None:
    http, parquet = served
    want = expected(parquet, "contains(lower(nom), 'gare')", [])
    body = http.get("/datasets/lieux/rows", params={"nom__contains": "GARE", "page": 1000, "page_size": 50}).json()
    assert body["data"] == [] and body["meta"]["total"] == len(want)
    body = http.get("/datasets/lieux/rows", params={"nom__contains": "gare", "sort": "-n,id", "page_size": 10}).json()
    assert [r["id"] for r in body["data"]] == expected(parquet, "contains(lower(nom), 'gare')", [], "n DESC, id")[:10]


def test_pages_read_the_in_memory_table_once(tmp_path: Path) -> None:
    """A page of the in-memory copy is one scan that stops at the page (or one index lookup), not DuckDB's
    late materialization: a rowid semi-join that scans a whole row group again and keeps the index unused."""
    from partage.api.engine import Engine

    parquet = tmp_path / "t.parquet"
    duckdb.execute(f"COPY (SELECT 'ID' || lpad(i::VARCHAR, 6, '0') AS id, i % 7 AS n, 'x' || i AS label "
                   f"FROM range(200000) t(i)) TO '{parquet}' (FORMAT parquet)")
    engine = Engine(threads=1)
    try:
        engine.source(("t", "1"), f"read_parquet('{parquet}')", 200_000, ("id",))
        engine.wait_loaded()
        table = engine.source(("t", "1"), f"read_parquet('{parquet}')", 200_000, ("id",)).relation
        assert table != f"read_parquet('{parquet}')"  # the in-memory copy is ready
        for sql, params in ((f"SELECT * FROM {table} LIMIT 21", []),
                            (f"SELECT * FROM {table} WHERE n = ? LIMIT 21", [3]),
                            (f"SELECT * FROM {table} WHERE id = ? LIMIT 101", ["ID000042"])):
            plan = engine.fetch("EXPLAIN " + sql, params, 10)[1][0][1]
            assert "HASH_JOIN" not in plan.upper().replace(" ", "_") and "SEMI" not in plan.upper(), plan
        # DuckDB picks the index when it runs the scan: only EXPLAIN ANALYZE shows it.
        lookup = engine.fetch(f"EXPLAIN ANALYZE SELECT * FROM {table} WHERE id = ? LIMIT 101", ["ID000042"], 10)[1][0][1]
        assert "Index Scan" in lookup, lookup
        first = engine.fetch(f"EXPLAIN ANALYZE SELECT * FROM {table} LIMIT 21", [], 10)[1][0][1]
        assert "HASH_JOIN" not in first.upper().replace(" ", "_"), first
        assert engine.fetch(f"SELECT * FROM {table} WHERE id = ? LIMIT 101", ["ID000042"], 10)[1] == [("ID000042", 0, "x42")]
    finally:
        engine.close()
