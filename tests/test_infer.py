"""Schema inference for sources without a schema: whole columns, identifiers stay strings."""

from __future__ import annotations

from pathlib import Path

import pytest

from partage.dialect import detect
from partage.validate import infer_schema


def infer(tmp_path: Path, text: str) -> dict[str, str]:
    p = tmp_path / "f.csv"
    p.write_text(text, encoding="utf-8")
    return {f["name"]: f["type"] for f in infer_schema(p, detect(p))["fields"]}


def test_types_are_inferred_over_the_whole_column(tmp_path: Path) -> None:
    rows = "\n".join(f"{i},{i}.5,true,2024-01-0{i % 9 + 1}" for i in range(1, 5000)) + "\n5000,abc,false,2024-01-01\n"
    types = infer(tmp_path, "n,x,b,d\n" + rows)
    assert types == {"n": "integer", "x": "string", "b": "boolean", "d": "date"}


@pytest.mark.parametrize(
    ("column", "values"),
    [
        ("commune", ["01001", "01002"]),  # leading zero
        ("commune", ["2A004", "75056"]),  # Corsica
        ("code_insee", ["92012", "92004"]),  # digits only, but the name says it is a code
        ("siren", ["213100027", "200046977"]),
        ("code_postal", ["75001", "92100"]),
    ],
)
def test_identifiers_stay_strings(tmp_path: Path, column: str, values: list[str]) -> None:
    types = infer(tmp_path, f"{column},population\n" + "\n".join(f"{v},{i}" for i, v in enumerate(values)) + "\n")
    assert types == {column: "string", "population": "integer"}


def test_empty_column_is_a_string(tmp_path: Path) -> None:
    assert infer(tmp_path, "a,b\n1,\n2,\n") == {"a": "integer", "b": "string"}


def test_french_dates_and_decimal_commas_are_inferred_over_the_whole_column(tmp_path: Path) -> None:
    """#23 case 4: `15/04/2024`, `2019/06/25` and `7,5` were left as text without a schema."""
    p = tmp_path / "f.csv"
    rows = [f"{d:02d}/04/2024;2019/06/{d:02d};{d},5;{d}" for d in range(1, 29)]
    p.write_text("le;depuis;taux;n\n" + "\n".join(rows) + "\n", encoding="utf-8")
    fields = {f["name"]: f for f in infer_schema(p, detect(p))["fields"]}
    assert fields["le"] == {"name": "le", "type": "date", "format": "%d/%m/%Y"}
    assert fields["depuis"] == {"name": "depuis", "type": "date", "format": "%Y/%m/%d"}
    assert fields["taux"] == {"name": "taux", "type": "number", "decimalChar": ","}
    assert fields["n"] == {"name": "n", "type": "integer"}


@pytest.mark.parametrize("odd", ["31/02/2024", "2024-04-15", "n.c.", "7.5"])
def test_a_single_value_of_another_form_keeps_the_column_text(tmp_path: Path, odd: str) -> None:
    p = tmp_path / "f.csv"
    p.write_text("x\n" + "\n".join(["15/04/2024"] * 50 + [odd] + ["16/04/2024"]) + "\n", encoding="utf-8")
    assert infer_schema(p, detect(p))["fields"] == [{"name": "x", "type": "string"}]


def test_opendatasoft_points_stay_text(tmp_path: Path) -> None:
    """Latitude first in geo_point_2d, longitude first in Table Schema's geopoint: never guessed."""
    p = tmp_path / "f.csv"
    p.write_text('geo_point_2d\n"48.85,2.35"\n"43.7,7.25"\n', encoding="utf-8")
    assert infer_schema(p, detect(p))["fields"] == [{"name": "geo_point_2d", "type": "string"}]
