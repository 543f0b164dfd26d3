"""Random schemas and random corruptions of real examples: the SQL engine finds frictionless' errors.

The hand-picked traps of ``test_validate_sql`` cover what we thought of; these draw what we did not:
schemas built at random from the Table Schema spec (every type, formats, constraints, missing values,
decimal/group characters, true/false values, composite keys) filled with plausible and broken values,
and the official examples of schema.data.gouv.fr with cells broken at random. Both found real parity
bugs (a bad uuid in a primary key, naive and aware times compared as equal, NaN repeated).
"""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import SHARED_DATA
from .test_validate_sql import _corpus_pairs, compare, no_engine_failure, write  # noqa: F401 - the fixture applies here too

NASTY = ["", " ", "NA", "-", "0", "-0", "+1", "1e3", "١٢", "true", "TRUE", "oui", "01", "2024-02-30", "2024-1-5",
         "2024-01-01T00:00:00", "12:00", "24:00:00", "1,5", "1 000", "1.000,5", "é", "x" * 120, 'a"b', "2A004", "NaN",
         "-Infinity", "[1, 2]", "{}", '{"lon": 1, "lat": 2}', "P1D", "2024-03", "0999", "99999999999999999999",
         "3.14159265358979323846", ".5", "5.", "1_000", "a@b.fr", "http://x.y", "2.35, 48.85", "[2.35,48.85]", "181, 0",
         "12345678901234", " x", "x ", "\u00a0", "ß", "Ⅻ", "²", "1e400", "?"]


def _field(rnd: random.Random, i: int) -> tuple[dict[str, Any], list[str]]:
    """A random field descriptor and values that are plausible for it (some valid, some not)."""
    kind = rnd.choice(["string", "string", "integer", "number", "boolean", "date", "datetime", "time", "year",
                       "yearmonth", "geopoint", "any", "duration"])
    f: dict[str, Any] = {"name": f"f{i}", "type": kind}
    c: dict[str, Any] = {}
    if kind == "string":
        fmt = rnd.choice(["default"] * 5 + ["email", "uri", "uuid", "binary"])
        if fmt != "default":
            f["format"] = fmt
        if rnd.random() < .3:
            c["pattern"] = rnd.choice(["[0-9]{5}", "[A-Z]{2}[0-9]+", "(oui|non)", "(2[AB]|[0-9]{2})", ".*"])
        if rnd.random() < .2:
            c["minLength"] = rnd.randint(0, 4)
        if rnd.random() < .2:
            c["maxLength"] = rnd.randint(3, 12)
        if rnd.random() < .2:
            c["enum"] = rnd.sample(["a", "b", "Accès libre", "oui", "non", "01001", "2A004"], 3)
        values = ["abc", "01001", "2A004", "oui", "non", "a", "b", "Accès libre", "FR12", "x@y.fr", "http://a.fr/b",
                  "828e1140-523c-4a41-b466-ab1b64a4a4bd", "aGVsbG8=", "AB123"]
    elif kind in ("integer", "number"):
        if rnd.random() < .3:
            f["bareNumber"] = False
        if kind == "number" and rnd.random() < .4:
            f["decimalChar"] = rnd.choice([",", "."])
        if kind == "number" and rnd.random() < .2:
            f["groupChar"] = rnd.choice([" ", "'"])
        if rnd.random() < .3:
            c["minimum"] = rnd.choice([0, 1, -5])
        if rnd.random() < .3:
            c["maximum"] = rnd.choice([10, 100, 1000, 90, 0.1])
        values = ["1", "2", "3", "42", "-1", "0", "1000", "3.5", "2,5", "1 000", "1e3", "007", " 4", "12%", "€5"]
        if kind == "number":  # coordinates exported with every digit, and numbers a hair from a bound
            values += ["5.34272020620408", "-0.57918000000000001", "45,954232106707123", "89.99999999999999999",
                       "90.00000000000000001", "0.10000000000000001", "0.09999999999999999", "-0.0000000000000000001",
                       "9999999999.999999999", "1" * 39, "1" * 41]
    elif kind == "boolean":
        if rnd.random() < .3:
            f["trueValues"], f["falseValues"] = ["oui", "Oui", "1"], ["non", "Non", "0"]
        values = ["true", "false", "True", "FALSE", "oui", "non", "1", "0", "yes"]
    elif kind == "date":
        fmt = rnd.choice(["default", "default", "any", "%d/%m/%Y", "%Y%m%d"])
        if fmt != "default":
            f["format"] = fmt
        if rnd.random() < .2:
            c["minimum"] = "2000-01-01"
        values = ["2024-01-05", "2024-1-5", "05/01/2024", "20240105", "2024-02-30", "1999-12-31", "5 janvier 2024"]
    elif kind == "datetime":
        fmt = rnd.choice(["default", "default", "any", "%d/%m/%Y %H:%M"])
        if fmt != "default":
            f["format"] = fmt
        values = ["2024-03-10T10:20:00Z", "2024-03-10T10:20:00+01:00", "2024-03-10T10:20:00", "2024-03-10 10:20:00",
                  "10/03/2024 10:20", "2024-03-10", "2024-03-10T09:20:00Z"]
    elif kind == "time":
        values = ["10:20:00", "10:20", "24:00:00", "10:20:00Z", "11:20:00+01:00", "1020"]
    elif kind == "year":
        if rnd.random() < .3:
            c["minimum"] = 2000
        values = ["2024", "1999", "24", "02024", "-100"]
    elif kind == "yearmonth":
        values = ["2024-03", "2024-3", "2024-13", "202403"]
    elif kind == "geopoint":
        fmt = rnd.choice(["default", "array", "object"])
        if fmt != "default":
            f["format"] = fmt
        values = ["2.35, 48.85", "2.35,48.85", "[2.35, 48.85]", '{"lon": 2.35, "lat": 48.85}', "200, 10", "abc",
                  "[02.35, 48.85]", "02.35, 48.85", "5.34272020620408, 45.954232106707",
                  "[5.34272020620408, 45.954232106707]", "179.99999999999999999, 0", "180.00000000000000000001, 0",
                  "[-179.999999999999999999999, 89.99999999999999999999]"]
    elif kind == "duration":
        values = ["P1D", "PT1H", "P1Y2M", "1 day", "P"]
    else:
        values = ["x", "1", ""]
    if rnd.random() < .3:
        c["required"] = True
    if rnd.random() < .15:
        c["unique"] = True
    if rnd.random() < .1:
        f["missingValues"] = ["", "NA", "-"]
    if c:
        f["constraints"] = c
    return f, values


SHIFTED = ["12 rue de la Paix", "Jean Dupont", "FR*A12*P1", '{"a": 1}', "2024-01-05T10:00:00", "5.3, 45.9", "[5.3, 45.9]",
           "oui", "1,5", "-", "05/01/2024", "2024-01-05", "10:20", "Accès libre", "01001", "x@y.fr", '"12"', "null", "7.0"]


def _break(value: str, rnd: random.Random, row: list[str]) -> str:
    k = rnd.randrange(11)
    if k == 10:  # the value of another column: a header shifted by one
        return rnd.choice(SHIFTED)
    if k == 0:
        return " " + value
    if k == 1:
        return value + " "
    if k == 2 and value:
        i = rnd.randrange(len(value))
        return value[:i] + value[i + 1:]
    if k == 3 and value:
        i = rnd.randrange(len(value))
        return value[:i] + rnd.choice("aZ9.,-+ é_/:") + value[i + 1:]
    if k == 4:
        return value.upper() if rnd.random() < .5 else value.lower()
    if k == 5:
        return value.replace(".", ",") if "." in value else value.replace(",", ".")
    if k == 6:
        return rnd.choice(row)
    if k == 7:
        return ""
    return rnd.choice(NASTY)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rnd=st.randoms(use_true_random=False))
def test_random_schemas_give_frictionless_errors(tmp_path: Path, rnd: random.Random) -> None:
    from frictionless import FrictionlessException, Schema

    fields, pools = zip(*[_field(rnd, i) for i in range(rnd.randint(1, 7))])
    schema: dict[str, Any] = {"fields": list(fields)}
    if rnd.random() < .3:
        schema["missingValues"] = rnd.choice([["", "NA"], ["-"], ["", "n/a", "N/A"]])
    if rnd.random() < .35:
        schema["primaryKey"] = [fields[0]["name"]] if rnd.random() < .6 or len(fields) == 1 else \
            [f["name"] for f in fields[:2]]
    try:
        Schema.from_descriptor(schema)
    except FrictionlessException:
        return  # a descriptor frictionless refuses is refused before validation (resolve_schema)
    rows = [[rnd.choice(pool) for pool in pools] for _ in range(rnd.randint(1, 25))]
    for _ in range(rnd.randint(0, 8)):
        row = rnd.choice(rows)
        c = rnd.randrange(len(row))
        row[c] = _break(row[c], rnd, row)
    if rnd.random() < .3:
        rows.append(list(rows[0]))  # a repeated row: primary key and unique errors
    compare(write(tmp_path / "random.csv", [[f["name"] for f in fields], *rows], sep=rnd.choice([",", ";"])), schema)


@settings(max_examples=40, deadline=None)
@given(rnd=st.randoms(use_true_random=False))
def test_every_value_sql_decides_gets_frictionless_verdict(rnd: random.Random) -> None:
    """Cell by cell, thousands of values a second: where the compiled SQL says it decides a value (its
    ``fast`` test), its type verdict, failed constraints and typed value are frictionless' ``read_cell``'s.
    The file-level tests above see a few values per field; this one found the leading zero a geopoint
    array refuses (JSON), which they had missed."""
    import duckdb
    from frictionless import Field, FrictionlessException

    from partage.validate.compiler import Unsupported, canonical, compile_field

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for i in range(8):
        desc, values = _field(rnd, i)
        desc.setdefault("missingValues", [""])
        try:
            reader = Field.from_descriptor(desc)
            plan = compile_field(i, desc, [""], "UTC")
        except (FrictionlessException, Unsupported):
            continue
        cells = sorted({_break(rnd.choice(values), rnd, values) for _ in range(60)} | set(values))
        fast = plan.fast.replace("__V__", "v")
        checks = [(name, pred.replace("__T__", "t").replace("__V__", "v")) for name, pred in plan.checks]
        failed = "[" + ", ".join(f"CASE WHEN coalesce({pred}, false) THEN {name!r} END" for name, pred in checks) + "]"
        rows = con.execute(f"SELECT v, t, list_filter({failed}, lambda x: x IS NOT NULL) FROM (SELECT v, CASE WHEN "
                           f"coalesce({fast}, false) THEN {plan.cast.replace('__V__', 'v')} END AS t FROM unnest(?) u(v) "
                           f"WHERE coalesce({fast}, false))", [cells]).fetchall()
        for value, typed, ours in rows:
            if value in plan.missing:
                continue
            theirs, notes = reader.read_cell(value)
            notes = notes or {}
            assert (typed is None) == ("type" in notes), (desc, value, typed, notes)
            if typed is None:
                continue
            assert sorted(ours) == sorted(k for k in notes if k != "type"), (desc, value, ours, notes)
            expected = con.execute(f"SELECT {plan.from_canon} FROM (SELECT ?::VARCHAR AS canon)",
                                   [canonical(plan.type, theirs)]).fetchall()[0][0]
            assert typed == expected, (desc, value, typed, theirs)
        # the values SQL calls type errors without a canonical form (a shifted column, another date format)
        invalid = plan.invalid.replace("__V__", "v")
        for (value,) in con.execute(f"SELECT v FROM unnest(?) u(v) WHERE NOT coalesce({fast}, false) "
                                    f"AND coalesce({invalid}, false)", [cells]).fetchall():
            if value not in plan.missing:
                assert "type" in (reader.read_cell(value)[1] or {}), (desc, value)


def _corpus_example(index: int) -> tuple[Path, dict[str, Any]] | None:
    from frictionless import FrictionlessException, Schema

    pairs = _corpus_pairs()
    example, schema_path = pairs[index % len(pairs)]
    schema = json.loads(schema_path.read_text(encoding="utf-8-sig"))
    try:
        Schema.from_descriptor(schema)
    except FrictionlessException:
        return None
    return example, schema


@pytest.mark.corpus
@pytest.mark.skipif(not (SHARED_DATA / "schemas").is_dir(), reason=f"{SHARED_DATA} not present (the shared corpus)")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index=st.integers(0, 10_000), rnd=st.randoms(use_true_random=False))
def test_corpus_examples_broken_at_random_give_frictionless_errors(tmp_path: Path, index: int,
                                                                    rnd: random.Random) -> None:
    """schema.data.gouv.fr's own examples, with cells broken, rows repeated or blanked, in their encoding."""
    from partage.dialect import detect

    case = _corpus_example(index)
    if case is None:
        return
    example, schema = case
    dialect = detect(example)
    rows = list(csv.reader(io.StringIO(example.read_bytes().decode(dialect.encoding)), delimiter=dialect.delimiter))
    if len(rows) < 2:
        return
    header, body = rows[0], [r for r in rows[1:201] if r]
    for _ in range(rnd.randint(1, 12)):
        at = rnd.randrange(len(body))
        op = rnd.random()
        if op < .08:
            body.insert(rnd.randrange(len(body) + 1), list(body[at]))
        elif op < .1:
            body.insert(rnd.randrange(len(body) + 1), [""] * len(header))
        else:
            c = rnd.randrange(len(body[at]))
            body[at][c] = _break(body[at][c], rnd, body[at])
    encoding = "utf-8" if dialect.encoding.lower().replace("-", "").replace("_", "") == "utf8sig" else dialect.encoding
    try:
        path = write(tmp_path / example.name, [header, *body], sep=dialect.delimiter, encoding=encoding)
    except UnicodeEncodeError:  # a broken cell the file's codec cannot hold
        path = write(tmp_path / example.name, [header, *body], sep=dialect.delimiter)
    compare(path, schema)
