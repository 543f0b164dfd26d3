"""The API's engine pieces that need no server: token store, query time limit, query building."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from partage.api.catalog_cache import Column
from partage.api.engine import Engine, QueryTimeout
from partage.api.query import build
from partage.api.tokens import TokenStore
from partage.errors import ApiQueryError, TokenStoreError


def test_a_query_past_its_time_limit_is_interrupted() -> None:
    engine = Engine()
    start = time.monotonic()
    with pytest.raises(QueryTimeout, match="longer than 0.3 s"):
        engine.fetch("SELECT count(*) FROM range(100000000000) a", [], 0.3)
    assert time.monotonic() - start < 5
    # The cursor is usable again afterwards, and a quick query is not interrupted.
    assert engine.fetch("SELECT 42 AS x", [], 0.3) == (["x"], [(42,)])


def test_token_store_hashes_and_rereads(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    store = TokenStore(str(path))
    token, entry = store.add("métropole", "partners")
    assert token.startswith("ptg_") and len(token) > 40
    assert token not in path.read_text() and entry.sha256 in path.read_text()
    assert store.level_of(token) == "partners"
    assert store.level_of(token + "x") is None and store.level_of("") is None and store.level_of(None) is None
    other = TokenStore(str(path))  # another process (the server) sees tokens added later
    token2, _ = store.add("équipe", "internal")
    assert other.level_of(token2) == "internal"
    with pytest.raises(TokenStoreError, match="exists"):
        store.add("équipe", "partners")
    with pytest.raises(TokenStoreError, match="allowed|one of"):
        store.add("x", "admin")
    path.write_text(json.dumps({"tokens": [{"name": "x", "level": "root", "sha256": "00"}]}))
    with pytest.raises(TokenStoreError, match="level 'root'"):
        TokenStore(str(path)).entries()


def test_token_store_from_an_environment_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    file_store = TokenStore(str(tmp_path / "t.json"))
    token, entry = file_store.add("svc", "internal")
    monkeypatch.setenv("API_TOKENS", json.dumps({"tokens": [entry.__dict__]}))
    store = TokenStore("env:API_TOKENS")
    assert store.level_of(token) == "internal"
    with pytest.raises(TokenStoreError, match="only reads"):
        store.revoke("svc")


COLUMNS = (Column("code", "VARCHAR", {"type": "string"}), Column("n", "BIGINT", {"type": "integer"}),
           Column('a"b', "DOUBLE", {"type": "number"}), Column("_source", "VARCHAR", None),
           Column("_row_number", "BIGINT", None))


def test_values_are_parameters_and_identifiers_are_quoted() -> None:
    q, page, _ = build([("code__exact", "x'; DROP TABLE t; --"), ('a"b__less', "1,5"), ("n__in", "1,2")], COLUMNS,
                       max_page_size=50)
    sql, params = q.sql("t", limit=page.page_size)
    assert "DROP" not in sql and '"a""b" <= ?' in sql and '"n" IN (?, ?)' in sql
    assert params == ["x'; DROP TABLE t; --", 1.5, 1, 2, 20]
    assert sql.endswith(" LIMIT ?")  # no OFFSET 0: it would keep DuckDB from using an index
    assert q.sql("t", limit=20, offset=40)[1][-2:] == [20, 40]


@pytest.mark.parametrize("params", [[("n__exact", "1.5")], [("x__exact", "1")], [("page_size", "500")],
                                    [("n__in", ",".join(["1"] * 501))], [("page", "2"), ("page", "3")]])
def test_bad_queries_raise_with_the_vocabulary(params: list[tuple[str, str]]) -> None:
    with pytest.raises(ApiQueryError, match=r"__exact|not a valid integer value for column 'n'"):
        build(params, COLUMNS, max_page_size=50)


# -- the in-memory copy's dictionaries (``__contains`` on text columns with few distinct values) --------

NAMES = ["Saint-Étienne", "SAINT-DENIS", "été", "ÉTÉ 50%", "a_b", "a\\b", "Œuilly", "L'Île", "", "x%y_z"]


def _table(path: Path, rows: int = 4000) -> str:
    import duckdb

    con = duckdb.connect()
    con.execute("CREATE TABLE names AS SELECT unnest(?::VARCHAR[]) AS nom, generate_subscripts(?::VARCHAR[], 1) AS k",
                [NAMES, NAMES])
    con.execute(f"""COPY (SELECT 'ID' || lpad(i::VARCHAR, 6, '0') AS id,
                            CASE WHEN i % 17 = 0 THEN NULL ELSE (SELECT nom FROM names WHERE k = i % {len(NAMES)} + 1) END AS nom,
                            'unique ' || i::VARCHAR AS libre, i % 5 AS n, 'export' AS _source, i AS _row_number
                     FROM range(?) t(i)) TO '{path}' (FORMAT parquet)""", [rows])
    con.close()
    return f"read_parquet('{path}')"


COLS = (Column("id", "VARCHAR", {"type": "string"}), Column("nom", "VARCHAR", {"type": "string"}),
        Column("libre", "VARCHAR", {"type": "string"}), Column("n", "BIGINT", {"type": "integer"}),
        Column("_source", "VARCHAR", None), Column("_row_number", "BIGINT", None))


@pytest.mark.parametrize("needle", ["saint", "ÉTÉ", "été", "50%", "_", "\\", "%", "a_b", "œ", "l'î", "zzz", "e"])
def test_dictionary_contains_finds_the_rows_ilike_finds_in_the_same_order(tmp_path: Path, needle: str) -> None:
    relation = _table(tmp_path / "t.parquet")
    engine = Engine(threads=1)
    engine.source(("d", "v1"), relation, 4000)
    engine.wait_loaded()
    memory = engine.source(("d", "v1"), relation, 4000)
    # `nom` (10 values) has a dictionary; `libre` and `id` (all distinct) and `_source` (Partage's) do not.
    assert set(memory.dictionaries) == {"nom"}
    for extra in ([], [("n__less", "2")], [("libre__contains", "1")], [("nom__sort", "desc")]):
        q, _, _ = build([("nom__contains", needle), *extra], COLS, max_page_size=50)
        # The expectation, independently of ILIKE and its escapes: a case-insensitive substring test.
        filters = " AND ".join(["contains(lower(nom), lower(?))"] + [
            {"n__less": "n <= 2", "libre__contains": "contains(libre, '1')", "nom__sort": "true"}[k] for k, _ in extra])
        expected = engine.fetch(f"SELECT count(*) FROM {relation} WHERE {filters}", [needle], 10)[1]
        listed = engine.matches(memory, q, 10)  # the matching codes, as a bound list
        assert list(listed) == [0]
        for matches, says in ((listed, "list_contains" if listed[0] else "false"), ({}, "SELECT code FROM")):
            for offset in (0, 40):
                sql, params = q.sql(memory, limit=50, offset=offset, matches=matches)
                assert says in sql and (says == "false" or "__partage_code_" in sql)
                got = engine.fetch(sql, params, 10)
                want = engine.fetch(*q.sql(relation, limit=50, offset=offset), 10)
                assert got == want
            assert engine.fetch(*q.count_sql(memory, matches), 10)[1] == expected
    engine.close()


def test_dropped_versions_take_their_dictionaries_along(tmp_path: Path) -> None:
    relation = _table(tmp_path / "t.parquet", 400)
    engine = Engine(threads=1)
    engine.source(("d", "v1"), relation, 400)
    engine.wait_loaded()
    assert engine.source(("d", "v1"), relation, 400).dictionaries
    engine.retain(set())
    engine.wait_loaded()
    time.sleep(0.2)
    assert engine.fetch("SELECT count(*) FROM duckdb_tables()", [], 5)[1] == [(0,)]
    engine.close()


def test_many_matching_values_take_the_semi_join(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from partage.api import engine as engine_module

    monkeypatch.setattr(engine_module, "MAX_LISTED_CODES", 1)
    relation = _table(tmp_path / "t.parquet", 400)
    engine = Engine(threads=1)
    engine.source(("d", "v1"), relation, 400)
    engine.wait_loaded()
    memory = engine.source(("d", "v1"), relation, 400)
    q, _, _ = build([("nom__contains", "saint")], COLS, max_page_size=50)  # Saint-Étienne, SAINT-DENIS
    assert engine.matches(memory, q, 10) == {}
    q, _, _ = build([("nom__contains", "denis")], COLS, max_page_size=50)
    assert len(engine.matches(memory, q, 10)[0]) == 1
    engine.close()
