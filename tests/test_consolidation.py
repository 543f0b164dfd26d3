"""Several sources, one table: provenance per row, and the rule for a key claimed by several sources."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from partage.pipeline import harvest_without_prefect
from partage.publish.exports import exports
from partage.store.warehouse import Warehouse

from .conftest import CatalogBuilder, query

SCHEMA = "test/bornes@1.0"
BORNES: dict[str, Any] = {
    "fields": [
        {"name": "id_pdc", "type": "string", "constraints": {"required": True}},
        {"name": "operateur", "type": "string"},
        {"name": "puissance", "type": "number"},
    ],
    "primaryKey": ["id_pdc"],
}


def setup(hub: CatalogBuilder, rule: str | None, a: str, b: str, schema: dict[str, Any] = BORNES) -> None:
    hub.schema(SCHEMA, schema)
    hub.file("a/bornes.csv", a)
    hub.file("b/bornes.csv", b)
    extra = f"duplicates: {rule}\n" if rule else ""
    hub.dataset("bornes", ["file: ../data/a/bornes.csv", "file: ../data/b/bornes.csv"], schema=SCHEMA, extra=extra)


def run(hub: CatalogBuilder):
    return harvest_without_prefect(hub.catalog, hub.warehouse)


def rows(hub: CatalogBuilder) -> dict[str, tuple[str, str]]:
    """id -> (operateur, source label's folder)."""
    out = {}
    for pk, op, src in query(hub, 'SELECT id_pdc, operateur, _source FROM main."bornes"'):
        assert pk not in out, f"{pk} appears twice in the view"
        out[pk] = (op, src)
    return out


A = "id_pdc,operateur,puissance\nFR001,alpha,22\nFR002,alpha,50\nFR003,alpha,7.4\n"
B = "id_pdc,operateur,puissance\nFR003,beta,11\nFR004,beta,150\n"


def test_first_source_wins_and_the_duplicate_is_reported(hub: CatalogBuilder) -> None:
    setup(hub, None, A, B)
    summary = run(hub)
    (d,) = summary.datasets
    assert d.version and d.rows == 4
    assert "1 primary-key value(s) in several sources" in d.message and "first-source" in d.message
    got = rows(hub)
    assert sorted(got) == ["FR001", "FR002", "FR003", "FR004"]
    assert got["FR003"][0] == "alpha"  # the first source listed in the catalog wins
    (dup,) = query(hub, 'SELECT id_pdc, operateur, _source, _row_number, _kept_source, _kept_row_number '
                        'FROM duplicates."bornes"')
    assert dup[0] == "FR003" and dup[1] == "beta" and dup[3] == 2  # row numbers count the header as 1
    assert dup[4] == got["FR003"][1] and dup[5] == 4
    (v_rows, v_summary), = query(hub, "SELECT row_count, summary FROM _partage.versions")
    info = json.loads(v_summary)["duplicates"]
    assert v_rows == 4 and info["rule"] == "first-source" and info["keys"] == 1 and info["dropped"] == 1
    assert info["by_source"] == {dup[2]: 1}
    # the catalog view and the exports agree with the view
    assert query(hub, "SELECT rows FROM catalog WHERE id = 'bornes'") == [(4,)]
    wh = Warehouse(hub.warehouse)
    info_v = wh.latest_version_info("bornes")
    assert info_v is not None
    csv = next(f for f in exports(wh, info_v) if f.role == "data-csv")
    lines = csv.path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 5 and sum("FR003" in line for line in lines) == 1


def test_latest_rule_follows_the_source_that_changed_last(hub: CatalogBuilder) -> None:
    setup(hub, "latest", A, B)
    run(hub)
    assert rows(hub)["FR003"][0] == "alpha"  # same version: ties go by catalog order
    hub.file("b/bornes.csv", B.replace("beta,11", "beta,22"))
    second = run(hub)
    assert second.datasets[0].version
    got = rows(hub)
    assert got["FR003"][0] == "beta" and len(got) == 4
    # provenance: each row says in which version its source's data arrived
    versions = [v for (v,) in query(hub, "SELECT version FROM _partage.versions ORDER BY version")]
    prov = dict(query(hub, 'SELECT operateur, min(_source_version) FROM main."bornes" GROUP BY operateur'))
    assert prov == {"alpha": versions[0], "beta": versions[1]}
    # history keeps each version as it was shown, the rule applied per version
    hist = dict(query(hub, "SELECT _version || ':' || id_pdc, operateur FROM history.\"bornes\" WHERE id_pdc = 'FR003'"))
    assert hist == {f"{versions[0]}:FR003": "alpha", f"{versions[1]}:FR003": "beta"}


def test_keep_rule_keeps_every_row_and_still_reports(hub: CatalogBuilder) -> None:
    setup(hub, "keep", A, B)
    (d,) = run(hub).datasets
    assert d.rows == 5 and "all rows kept" in d.message
    assert query(hub, "SELECT count(*) FROM main.\"bornes\" WHERE id_pdc = 'FR003'") == [(2,)]
    assert query(hub, 'SELECT count(*) FROM duplicates."bornes"') == [(1,)]


def test_composite_key_and_no_duplicates_means_no_duplicates_view(hub: CatalogBuilder) -> None:
    schema = dict(BORNES, primaryKey=["id_pdc", "operateur"])
    setup(hub, None, A, B, schema)  # FR003 alpha / FR003 beta differ on the composite key
    (d,) = run(hub).datasets
    assert d.rows == 5 and "several sources" not in d.message
    assert query(hub, "SELECT count(*) FROM duckdb_views() WHERE schema_name = 'duplicates'") == [(0,)]
    assert not list(hub.warehouse.glob("bornes/*/duplicates.parquet"))


def test_a_rule_change_revalidates_and_applies(hub: CatalogBuilder) -> None:
    setup(hub, None, A, B)
    run(hub)
    assert rows(hub)["FR003"][0] == "alpha"
    setup(hub, "keep", A, B)
    # rewriting the same bytes must not matter: the rule is part of what a version depends on
    for name in ("a/bornes.csv", "b/bornes.csv"):
        os.utime(hub.data / name, (1, 1))
    (d,) = run(hub).datasets
    assert d.version and d.rows == 5


@pytest.mark.parametrize("rule", ["first", "newest"])
def test_unknown_rule_is_a_clear_catalog_error(hub: CatalogBuilder, rule: str) -> None:
    from partage.catalog import load_catalog
    from partage.errors import CatalogError

    setup(hub, rule, A, B)
    with pytest.raises(CatalogError) as exc:
        load_catalog(hub.catalog)
    text = str(exc.value)
    assert "duplicates" in text and "first-source" in text and "latest" in text
