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
    assert params == ["x'; DROP TABLE t; --", 1.5, 1, 2, 20, 0]


@pytest.mark.parametrize("params", [[("n__exact", "1.5")], [("x__exact", "1")], [("page_size", "500")],
                                    [("n__in", ",".join(["1"] * 501))], [("page", "2"), ("page", "3")]])
def test_bad_queries_raise_with_the_vocabulary(params: list[tuple[str, str]]) -> None:
    with pytest.raises(ApiQueryError, match=r"__exact|not a valid integer value for column 'n'"):
        build(params, COLUMNS, max_page_size=50)
