"""Foreign keys: a self-reference judged like frictionless-py, and keys to another dataset of the warehouse.

Self-references are compared with frictionless-py itself (same rows, same error types). Keys to
another resource are compared with frictionless-py validating the same two files as a data
package: the SQL engine reads the other dataset's rows as the warehouse stores them (typed Parquet).
The harvest tests then run the whole chain: order of datasets, revalidation, clear failures.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from partage.dialect import detect
from partage.validate import Reference, validate

from .conftest import COMMUNES_CSV, COMMUNES_SCHEMA, CatalogBuilder, query
from .test_validate_sql import engine_of, key, no_engine_failure, write  # noqa: F401 - the fixture guards every test

TREE: dict[str, Any] = {
    "fields": [
        {"name": "id", "type": "integer"},
        {"name": "parent", "type": "integer"},
        {"name": "code", "type": "string", "constraints": {"pattern": "[A-Z]{2}"}},
        {"name": "parent_code", "type": "string"},
        {"name": "weight", "type": "number", "constraints": {"maximum": 10}},
    ],
    "foreignKeys": [
        {"fields": "parent", "reference": {"resource": "", "fields": "id"}},
        {"fields": ["parent_code", "parent"], "reference": {"resource": "", "fields": ["code", "id"]}},
    ],
}
TREE_HEADER = [f["name"] for f in TREE["fields"]]


def compare_fk(path: Path, schema: dict[str, Any]) -> Any:
    dialect = detect(path)
    sql = validate(path, schema, dialect)
    ref = validate(path, schema, dialect, engine="frictionless")
    assert engine_of(sql) == "duckdb"
    assert Counter(map(key, sql.errors)) == Counter(map(key, ref.errors)), path
    mine = sorted((e["rowNumber"], e["note"]) for e in sql.errors if e["type"] == "foreign-key")
    theirs = sorted((e["rowNumber"], e["note"]) for e in ref.errors if e["type"] == "foreign-key")
    assert mine == theirs  # word for word: values as frictionless prints them ("3", not "03")
    assert sql.errors_by_type == ref.errors_by_type
    json.dumps(sql.descriptor)  # the report stays JSON
    return sql


def test_self_reference_reads_typed_values_like_frictionless(tmp_path: Path) -> None:
    rows = [TREE_HEADER,
            ["1", "", "AA", "", "1"],
            ["2", "01", "BB", "AA", "2"],       # "01" is the integer 1: found
            ["03", "2", "CC", "BB", "3"],       # id "03" is 3
            ["4", "3", "DD", "CC", "11"],       # weight breaks a constraint: the row still counts in the lookup
            ["5", "9", "EE", "", "1"],          # 9 is the last row's id; (None, 9) is nowhere
            ["x", "1", "FF", "AA", "1"],        # id is a type error: looked up as missing
            ["6", "x", "GG", "AA", "1"],        # parent type error: key (AA, None) is checked, and missing
            ["7", "4", "HH", "ZZ", "1"],        # composite key (ZZ, 4) misses, the single one is found
            ["8", "", "II", "", ""],            # both keys all missing: not checked
            ["", "", "", "", ""],               # blank row: only that error
            ["9", "8", "jj", "II", "1"]]        # a pattern error on the lookup side still leaves "jj" typed
    sql = compare_fk(write(tmp_path / "tree.csv", rows), TREE)
    assert sorted(e["rowNumber"] for e in sql.errors if e["type"] == "foreign-key") == [6, 8, 9]


def test_composite_key_with_a_missing_cell_must_be_found_with_it_missing(tmp_path: Path) -> None:
    schema = {"fields": [{"name": "a", "type": "string"}, {"name": "b", "type": "integer"},
                         {"name": "ra", "type": "string"}, {"name": "rb", "type": "integer"}],
              "missingValues": ["", "NA"],
              "foreignKeys": [{"fields": ["ra", "rb"], "reference": {"resource": "", "fields": ["a", "b"]}}]}
    rows = [["a", "b", "ra", "rb"], ["x", "NA", "x", ""], ["y", "1", "y", "NA"], ["z", "2", "NA", "2"],
            ["2A004", "3", "2A004", "3"], ["01001", "4", "1001", "4"]]
    sql = compare_fk(write(tmp_path / "c.csv", rows), schema)
    assert [e["rowNumber"] for e in sql.errors] == [3, 4, 6]


def test_integer_key_finds_a_number_and_never_a_string(tmp_path: Path) -> None:
    schema = {"fields": [{"name": "n", "type": "number"}, {"name": "s", "type": "string"},
                         {"name": "i", "type": "integer"}, {"name": "j", "type": "integer"}],
              "foreignKeys": [{"fields": "i", "reference": {"resource": "", "fields": "n"}},
                              {"fields": "j", "reference": {"resource": "", "fields": "s"}}]}
    rows = [["n", "s", "i", "j"], ["1.0", "1", "1", "1"], ["2.5", "2", "2", ""], ["3", "x", "3", "3"]]
    sql = compare_fk(write(tmp_path / "n.csv", rows), schema)
    assert Counter(e["rowNumber"] for e in sql.errors) == Counter({2: 1, 3: 1, 4: 1})


def test_number_keys_compare_as_decimals_not_as_their_doubles(tmp_path: Path) -> None:
    """999.99999999999999999 and 1000 are one double and two Decimals: frictionless does not find the one
    among the other. Found by the random-schema fuzzer once its numbers had more than 15 digits."""
    schema = {"fields": [{"name": "n", "type": "number"}, {"name": "ref", "type": "number"},
                         {"name": "i", "type": "integer"}],
              "foreignKeys": [{"fields": "ref", "reference": {"resource": "", "fields": "n"}},
                              {"fields": "i", "reference": {"resource": "", "fields": "n"}}]}
    rows = [["n", "ref", "i"], ["1000", "999.99999999999999999", "1000"], ["0.1", "0.10000000000000001", ""],
            ["2.5", "1000.0", ""], ["-0", "0", "0"], ["7", "7.000", "7"]]
    sql = compare_fk(write(tmp_path / "d.csv", rows), schema)
    assert sorted(e["rowNumber"] for e in sql.errors) == [2, 3]


def test_a_key_named_after_the_dataset_is_a_self_reference(tmp_path: Path) -> None:
    path = write(tmp_path / "arbres.csv", [["id", "parent"], ["1", ""], ["2", "1"], ["3", "7"]])
    schema = {"fields": [{"name": "id", "type": "integer"}, {"name": "parent", "type": "integer"}],
              "foreignKeys": [{"fields": "parent", "reference": {"resource": "arbres", "fields": "id"}}]}
    sql = compare_fk(path, schema)
    assert [(e["rowNumber"], e["type"]) for e in sql.errors] == [(4, "foreign-key")]


FK_CORRUPTIONS = st.sampled_from(["", "x", "0", "07", "99", "3.0", " 4", "NA"])


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(breaks=st.lists(st.tuples(st.integers(0, 29), st.sampled_from(["id", "parent", "code", "parent_code"]),
                                 FK_CORRUPTIONS), min_size=1, max_size=15))
def test_random_corruptions_of_keys_give_frictionless_errors(tmp_path: Path, breaks: list[Any]) -> None:
    codes = [f"{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(30)]
    rows = [[str(i + 1), str(i // 2) if i else "", codes[i], codes[i // 2 - 1] if i > 1 else "", "1"] for i in range(30)]
    for r, field, value in breaks:
        rows[r][TREE_HEADER.index(field)] = value
    compare_fk(write(tmp_path / "h.csv", [TREE_HEADER] + rows), TREE)


# -- keys to another dataset ---------------------------------------------------------------------------

COMMUNES_REF = {"fields": [{"name": "code", "type": "string"}, {"name": "nom", "type": "string"},
                           {"name": "pop", "type": "integer"}]}
EQUIPEMENTS = {
    "fields": [{"name": "id", "type": "integer"}, {"name": "commune", "type": "string"},
               {"name": "pop", "type": "integer"}],
    "foreignKeys": [{"fields": "commune", "reference": {"resource": "communes", "fields": "code"}},
                    {"fields": ["commune", "pop"], "reference": {"resource": "communes", "fields": ["code", "pop"]}}],
}


def _parquet_reference(tmp_path: Path, csv_path: Path) -> Reference:
    """The referenced rows as the warehouse stores them: typed Parquet (here written by DuckDB from the CSV)."""
    out = tmp_path / "communes.parquet"
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * FROM read_csv('{csv_path}', header=true, all_varchar=false, "
                "types={'code': 'VARCHAR', 'pop': 'BIGINT'})) TO '" + str(out) + "' (FORMAT parquet)")
    relation = f"read_parquet('{out}')"
    columns = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()}
    con.close()
    return Reference(relation, columns)


def test_key_to_another_dataset_finds_what_frictionless_finds_in_a_package(tmp_path: Path) -> None:
    from frictionless import Package, Resource, Schema

    communes = write(tmp_path / "communes.csv", [["code", "nom", "pop"], ["01001", "L'Abergement", "832"],
                                                  ["2A004", "Ajaccio", "73000"], ["75056", "Paris", "2100000"]])
    equip = write(tmp_path / "equipements.csv", [["id", "commune", "pop"], ["1", "01001", "832"], ["2", "1001", "832"],
                                                  ["3", "2A004", "073000"], ["4", "2a004", "73000"], ["5", "", ""],
                                                  ["6", "75056", ""], ["7", "x", "abc"]])
    ref = _parquet_reference(tmp_path, communes)
    sql = validate(equip, EQUIPEMENTS, detect(equip), references={"communes": ref})
    assert engine_of(sql) == "duckdb"
    package = Package(resources=[
        Resource(name="communes", path="communes.csv", basepath=str(tmp_path), schema=Schema.from_descriptor(COMMUNES_REF)),
        Resource(name="equipements", path="equipements.csv", basepath=str(tmp_path),
                 schema=Schema.from_descriptor(EQUIPEMENTS))], basepath=str(tmp_path))
    theirs = package.get_resource("equipements").validate(limit_errors=0)
    expected = Counter((e.row_number, e.type) for e in theirs.tasks[0].errors)
    assert Counter((e["rowNumber"], e["type"]) for e in sql.errors) == expected
    assert sorted(e["note"] for e in sql.errors if e["type"] == "foreign-key") == \
        sorted(e.note for e in theirs.tasks[0].errors if e.type == "foreign-key")
    assert [expected[(r, "foreign-key")] for r in range(2, 9)] == [0, 2, 0, 2, 0, 1, 2]


def test_key_to_a_dataset_the_validation_cannot_read_is_reported_as_not_checked(tmp_path: Path) -> None:
    equip = write(tmp_path / "equipements.csv", [["id", "commune", "pop"], ["1", "01001", "832"]])
    sql = validate(equip, EQUIPEMENTS, detect(equip))
    assert engine_of(sql) == "duckdb" and sql.valid
    assert any("not checked" in w and "communes" in w for w in sql.descriptor["warnings"])


def test_malformed_foreign_keys_name_the_property(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path / "m.csv", [["a", "b"], ["1", "2"]])
    bad = {"fields": [{"name": "a", "type": "integer"}, {"name": "b", "type": "integer"}],
           "foreignKeys": [{"fields": ["a", "b"], "reference": {"resource": "", "fields": "a"}}]}
    with caplog.at_level("INFO", logger="partage.validate"):
        validate(path, bad, detect(path))
    assert "foreignKeys[0]: 2 field(s) refer to 1 field(s)" in caplog.text


# -- in the harvest -------------------------------------------------------------------------------------

EQUIP_SCHEMA = {
    "fields": [{"name": "id", "type": "integer"}, {"name": "code_insee", "type": "string"},
               {"name": "nom", "type": "string"}],
    "primaryKey": ["id"],
    "foreignKeys": [{"fields": "code_insee", "reference": {"resource": "communes", "fields": "code_insee"}}],
}


@pytest.mark.slow
def test_harvest_checks_keys_against_the_referenced_dataset_and_revalidates_when_it_changes(
        hub: CatalogBuilder, harvest) -> None:
    hub.schema("test/communes@1.0", COMMUNES_SCHEMA)
    hub.schema("test/equipements@1.0", EQUIP_SCHEMA)
    hub.file("c.csv", COMMUNES_CSV)
    hub.file("e.csv", "id,code_insee,nom\n1,01001,Piscine\n2,2A004,Stade\n3,75056,Mairie de Paris\n4,,Sans commune\n")
    # the referencing dataset comes first in the catalog's order: the harvest stores communes first
    hub.dataset("aa-equipements", ["file: ../data/e.csv"], schema="test/equipements@1.0")
    hub.dataset("communes", ["file: ../data/c.csv"], schema="test/communes@1.0")
    summary = harvest()
    assert [d.dataset_id for d in summary.datasets] == ["communes", "aa-equipements"]
    equip = next(s for s in summary.sources if s.dataset_id == "aa-equipements")
    assert equip.state == "updated" and equip.rows == 3 and equip.quarantined == 1
    q = query(hub, 'SELECT code_insee, _errors FROM quarantine."aa-equipements"')
    assert q[0][0] == "75056" and json.loads(q[0][1])[0]["type"] == "foreign-key"

    # Paris joins the communes: the unchanged equipment file is revalidated against the new version
    hub.file("c.csv", COMMUNES_CSV + "75056,Paris,2100000,105.4,2024-01-01\n")
    summary = harvest()
    equip = next(s for s in summary.sources if s.dataset_id == "aa-equipements")
    assert equip.state == "updated" and "foreign keys point to" in equip.reason
    assert equip.rows == 4 and equip.quarantined == 0
    assert query(hub, 'SELECT count(*) FROM "aa-equipements"') == [(4,)]


@pytest.mark.slow
def test_harvest_fails_a_key_to_an_unknown_dataset_with_the_fix(hub: CatalogBuilder, harvest) -> None:
    hub.schema("test/equipements@1.0", EQUIP_SCHEMA)
    hub.file("e.csv", "id,code_insee,nom\n1,01001,Piscine\n")
    hub.dataset("equipements", ["file: ../data/e.csv"], schema="test/equipements@1.0")
    (src,) = harvest().sources
    assert src.state == "failed"
    assert "dataset 'communes'" in src.reason and "harvest it first" in src.reason


def test_quarantine_lists_each_rows_errors_in_frictionless_order(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from partage.validate import validate_and_type

    schema = {**TREE, "primaryKey": ["id"]}
    rows = [TREE_HEADER, ["1", "", "AA", "", "1"], ["1", "7", "BB", "", "12"], ["2", "1", "CC", "AA", "x"]]
    path = write(tmp_path / "q.csv", rows)
    res = validate_and_type(path, schema, detect(path), policy="quarantine", source_key="src",
                            data_path=tmp_path / "d.parquet", quarantine_path=tmp_path / "q.parquet")
    assert engine_of(res.report) == "duckdb" and (res.rows, res.quarantined) == (1, 2)
    table = pq.read_table(tmp_path / "q.parquet")
    assert table.schema.field("id").type == "string" and table.column("_row_number").to_pylist() == [3, 4]
    assert table.column("parent").to_pylist() == ["7", "1"]  # as received
    errors = [json.loads(e) for e in table.column("_errors").to_pylist()]
    assert [[e["type"] for e in row] for row in errors] == [
        ["constraint-error", "primary-key", "foreign-key", "foreign-key"], ["type-error"]]
    assert errors[0][0]["field"] == "weight" and errors[0][2]["field"] == "parent"
    assert errors[0][3]["field"] == "parent_code, parent"
