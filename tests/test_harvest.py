"""The harvest flow end to end, under real Prefect, from a real HTTP server into a real DuckDB file."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from partage.store.warehouse import Warehouse

from .conftest import (
    COMMUNES_CSV,
    COMMUNES_SCHEMA,
    CatalogBuilder,
    SHARED_DATA,
    FixtureServer,
    query,
)

pytestmark = pytest.mark.slow

SCHEMA = "test/communes@1.0"


def states(summary) -> dict[str, str]:
    return {s.dataset_id + ":" + s.label.rsplit("/", 1)[-1]: s.state for s in summary.sources}


def reports_count(hub: CatalogBuilder) -> int:
    return query(hub, "SELECT count(*) FROM _partage.reports")[0][0]


def test_second_harvest_of_unchanged_source_downloads_nothing_and_validates_nothing(
    hub: CatalogBuilder, http_server: FixtureServer, harvest
) -> None:
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    url = http_server.serve("/communes.csv", COMMUNES_CSV)
    hub.dataset("communes", [f"url: {url}"], schema=SCHEMA)

    first = harvest()
    assert first.exit_code == 0 and [s.state for s in first.sources] == ["updated"]
    assert reports_count(hub) == 1

    second = harvest()
    assert second.exit_code == 0
    (src,) = second.sources
    assert src.state == "unchanged" and src.layer == "etag" and src.body_bytes == 0
    log = http_server.requests("/communes.csv")
    assert [r.status for r in log] == [200, 304] and log[1].body_bytes == 0
    assert reports_count(hub) == 1  # nothing was validated
    assert query(hub, "SELECT count(*) FROM _partage.versions")[0][0] == 1


def test_changed_file_makes_a_new_version(hub: CatalogBuilder, http_server: FixtureServer, harvest) -> None:
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    url = http_server.serve("/communes.csv", COMMUNES_CSV)
    hub.dataset("communes", [f"url: {url}"], schema=SCHEMA)
    harvest()
    http_server.serve("/communes.csv", COMMUNES_CSV + "01053,Bourg-en-Bresse,41000,23.86,2024-06-01\n")
    second = harvest()
    assert [s.state for s in second.sources] == ["updated"]
    assert query(hub, "SELECT count(*) FROM communes")[0][0] == 4
    versions = query(hub, "SELECT version, row_count FROM _partage.versions ORDER BY version")
    assert [v[1] for v in versions] == [3, 4] and versions[0][0] < versions[1][0]
    # the previous version stays on disk, whole
    old = Warehouse(hub.warehouse).version_dir("communes", versions[0][0])
    assert query(hub, f"SELECT count(*) FROM read_parquet('{old}/data/*.parquet')")[0][0] == 3


def test_same_content_served_again_is_unchanged_by_sha256(hub: CatalogBuilder, http_server: FixtureServer, harvest) -> None:
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    url = http_server.serve("/communes.csv", COMMUNES_CSV, etag=False, last_modified=False)
    hub.dataset("communes", [f"url: {url}"], schema=SCHEMA)
    harvest()
    (src,) = harvest().sources
    assert src.state == "unchanged" and src.layer == "sha256"
    assert reports_count(hub) == 1


def test_500_then_200_source_is_stored(hub: CatalogBuilder, http_server: FixtureServer, harvest) -> None:
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    url = http_server.serve("/communes.csv", COMMUNES_CSV, script=[500])
    hub.dataset("communes", [f"url: {url}"], schema=SCHEMA)
    (src,) = harvest().sources
    assert src.state == "updated" and "2 attempts" in src.reason
    assert [r.status for r in http_server.requests("/communes.csv")] == [500, 200]


def test_a_slow_source_delays_its_own_dataset_only(hub: CatalogBuilder, http_server: FixtureServer, harvest) -> None:
    """#26: datasets were stored in catalog order, so every dataset after a slow source waited for it.
    The run loop stores each dataset once its own sources are in (foreign-key order aside)."""
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    http_server.serve("/slow.csv", COMMUNES_CSV, delay=6)
    http_server.serve("/fast.csv", COMMUNES_CSV)
    hub.dataset("a-lent", [f"url: {http_server.url('/slow.csv')}"], schema=SCHEMA)
    hub.dataset("b-rapide", [f"url: {http_server.url('/fast.csv')}"], schema=SCHEMA)
    summary = harvest()
    assert [d.dataset_id for d in summary.datasets] == ["b-rapide", "a-lent"]  # stored first, though listed second
    assert all(d.version for d in summary.datasets)


def test_404_source_fails_with_its_url_and_the_others_are_stored(hub: CatalogBuilder, http_server: FixtureServer, harvest) -> None:
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    good = http_server.serve("/communes.csv", COMMUNES_CSV)
    missing = http_server.url("/gone.csv")
    hub.dataset("communes", [f"url: {good}", f"url: {missing}"], schema=SCHEMA)
    hub.dataset("autres", [f"url: {missing}"], schema=SCHEMA)
    summary = harvest()
    assert summary.exit_code == 1
    by_label = {(s.dataset_id, s.label): s for s in summary.sources}
    failed = by_label[("communes", missing)]
    assert failed.state == "failed" and missing in failed.reason and "404" in failed.reason
    assert by_label[("communes", good)].state == "updated"
    assert query(hub, "SELECT count(*) FROM communes")[0][0] == 3
    assert query(hub, "SELECT state, reason FROM _partage.sources WHERE dataset_id = 'autres'")[0][0] == "failed"


def test_cp1252_semicolon_file_keeps_accents_and_insee_codes_as_strings(hub: CatalogBuilder, harvest) -> None:
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    text = COMMUNES_CSV.replace(",", ";").replace("15.95", "15,95").replace("82.03", "82,03").replace("19.38", "19,38")
    hub.file("communes.csv", text, encoding="cp1252")
    hub.dataset("communes", ["file: ../data/communes.csv"], schema=SCHEMA, extra="dialect: {decimalChar: ','}\n")
    summary = harvest()
    assert summary.exit_code == 0, summary.sources
    rows = query(hub, "SELECT code_insee, nom, surface_km2 FROM communes ORDER BY _row_number")
    assert rows[0] == ("01001", "L'Abergement-Clémenciat", 15.95)
    assert rows[1][0] == "2A004"
    types = dict(query(hub, "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'main' AND table_name = 'communes'"))
    assert types["code_insee"] == "VARCHAR" and types["population"] == "BIGINT" and types["date_maj"] == "DATE"


CORSE = SHARED_DATA / "datasets" / "covoiturage-corse-latin1"


@pytest.mark.skipif(not CORSE.is_dir(), reason=f"{CORSE} not present (the shared corpus sits beside the repo in CI)")
def test_a_utf8_file_with_latin1_rows_appended_is_read_line_by_line_without_mojibake(
        hub: CatalogBuilder, harvest) -> None:
    """#23 case 2, on a real file: the UTF-8 carpool file of the corpus with some of its rows
    appended again in Latin-1, as another tool would. Read whole as cp1252 it gave
    `Saint-Martin-des-EntrÃ©es` in every row; each line is now read in its own encoding, and the
    harvest line and the report say which."""
    utf8 = (CORSE / "csv_utf8.csv").read_bytes()
    lines = utf8.splitlines(keepends=True)
    appended = [line.decode("utf-8").encode("latin-1") for line in lines[1:] if not line.isascii()][:8]
    assert appended, "the file has accented rows to append"
    hub.file("mixte.csv", utf8 + b"".join(appended))
    hub.dataset("covoiturage", ["file: ../data/mixte.csv"])
    (src,) = harvest().sources
    assert src.state == "updated", src.reason
    assert f"{len(appended)} line(s) in cp1252 among UTF-8 ones" in src.reason and "',' delimiter" in src.reason, src.reason
    got = [r[0] for r in query(hub, "SELECT com_lieu FROM covoiturage ORDER BY _row_number")]
    first = [r[3] for r in csv.reader(io.StringIO(utf8.decode("utf-8-sig")))][1:]
    again = [r[3] for r in csv.reader(io.StringIO(b"".join(appended).decode("latin-1")))]
    assert got == first + again  # every name as written, none as mojibake
    assert any("é" in n for n in again) and not [n for n in got if n and ("Ã" in n or "\ufffd" in n)]
    report = json.loads(query(hub, "SELECT report FROM _partage.reports")[0][0])
    mixed = report["partage"]["dialect"]["mixedEncoding"]
    assert mixed["legacy"] == "cp1252" and mixed["count"] == len(appended) and mixed["lines"][0] == len(lines) + 1


ANTIBES = SHARED_DATA / "datasets" / "aires-livraison-antibes"


@pytest.mark.skipif(not ANTIBES.is_dir(), reason=f"{ANTIBES} not present (the shared corpus sits beside the repo in CI)")
def test_a_spreadsheet_keeps_its_insee_codes_and_dates_without_a_schema(hub: CatalogBuilder, harvest) -> None:
    """#23 case 3, on the real files: the text cell '06004' was stored as BIGINT 6004 and the date
    cell 2023-04-11 as 2023-04-10 22:00:00+00 (frictionless' sampled inference, then a time zone)."""
    name = "antibes_aires_livraison--mr.xlsx"  # (its .xls twin has a blank header label: rejected, as frictionless does)
    hub.file(name, (ANTIBES / name).read_bytes())
    hub.dataset("aires", [f"file: ../data/{name}"])
    (src,) = harvest().sources
    assert src.state == "updated", src.reason
    types = dict(query(hub, "SELECT column_name, data_type FROM information_schema.columns "
                            "WHERE table_schema = 'main' AND table_name = 'aires'"))
    assert types["COLL_INSEE"] == "VARCHAR" and types["ARR_DATE"] == "DATE" and types["ID"] == "VARCHAR"
    rows = query(hub, 'SELECT DISTINCT "COLL_INSEE", "ARR_DATE" FROM aires')
    assert rows == [("06004", dt.date(2023, 4, 11))]


def test_a_cell_over_128_kib_is_data_and_a_nul_label_never_breaks_the_commit(hub: CatalogBuilder, harvest) -> None:
    """#26 item 9: without a schema, a cell over 128 KiB crashed inference (`field larger than field
    limit`) and failed *both* sources of the dataset as an internal error."""
    long = "x" * (200 * 1024)
    hub.file("long.csv", f"id,texte\n1,{long}\n2,court\n")
    hub.file("binaire.csv", b"\xff\xfe\x00\x00")  # read as UTF-16: one label, a NUL
    hub.dataset("textes", ["file: ../data/long.csv"])
    hub.dataset("binaire", ["file: ../data/binaire.csv"])
    summary = harvest()
    got = {s.label.rsplit("/", 1)[-1]: s for s in summary.sources}
    assert got["long.csv"].state == "updated", got["long.csv"].reason
    assert query(hub, "SELECT length(texte) FROM textes ORDER BY _row_number") == [(len(long),), (5,)]
    # a column named NUL made DuckLake's catalog refuse the commit ("internal error"): the name is cleaned
    assert "internal error" not in got["binaire.csv"].reason, got["binaire.csv"].reason


def test_french_dates_and_decimal_commas_are_typed_without_a_schema(hub: CatalogBuilder, harvest) -> None:
    """#23 case 4: without a schema, `15/04/2024` is a DATE and `7,5` a number, and the harvest line says so."""
    rows = "".join(f"{d:02d}/04/2024;{d},5;Commune {d}\n" for d in range(1, 29))
    hub.file("mesures.csv", "date_mesure;taux;nom\n" + rows, encoding="cp1252")
    hub.dataset("mesures", ["file: ../data/mesures.csv"])
    (src,) = harvest().sources
    assert src.state == "updated", src.reason
    assert "date_mesure: date (%d/%m/%Y)" in src.reason and "taux: number with a decimal comma" in src.reason
    assert query(hub, "SELECT date_mesure, taux FROM mesures ORDER BY _row_number LIMIT 1") == [(dt.date(2024, 4, 1), 1.5)]


def test_a_source_reads_with_its_own_dialect_over_the_datasets(hub: CatalogBuilder, harvest) -> None:
    """#25: a partner's cp1252 ';' export beside the metropole's UTF-8 file, in one dataset.
    `dialect:` on a source was refused as an unknown key; only the keys it sets replace the dataset's."""
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    hub.file("metropole.csv", COMMUNES_CSV)
    partner = COMMUNES_CSV.replace(",", ";").replace("01001", "01002")
    for dot in ("15.95", "82.03", "19.38"):
        partner = partner.replace(dot, dot.replace(".", ","))
    partner = partner.replace("2A004", "2A005").replace("2B033", "2B034")
    hub.file("partenaire.csv", partner, encoding="cp1252")
    hub.dataset("communes", ["file: ../data/metropole.csv",
                             "file: ../data/partenaire.csv\n    dialect: {encoding: cp1252, delimiter: ';', decimalChar: ','}"],
                schema=SCHEMA, extra="dialect: {encoding: utf-8}\n")
    summary = harvest()
    assert summary.exit_code == 0, summary.sources
    assert [s.state for s in summary.sources] == ["updated", "updated"]
    assert "read as utf-8, ',' delimiter" in summary.sources[0].reason
    assert "read as cp1252, ';' delimiter" in summary.sources[1].reason
    from partage.catalog import Dialect as DialectConfig
    from partage.pipeline import source_dialect

    merged = source_dialect(DialectConfig(encoding="utf-8", quoteChar="'"), DialectConfig(delimiter=";"))
    assert (merged.encoding, merged.quoteChar, merged.delimiter) == ("utf-8", "'", ";")
    assert query(hub, "SELECT surface_km2 FROM communes WHERE code_insee = '01002'") == [(15.95,)]
    assert query(hub, "SELECT count(*) FROM communes")[0][0] == 6


def test_policy_reject_keeps_the_previous_version(hub: CatalogBuilder, http_server: FixtureServer, harvest) -> None:
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    url = http_server.serve("/communes.csv", COMMUNES_CSV)
    hub.dataset("communes", [f"url: {url}"], schema=SCHEMA, policy="reject")
    harvest()
    http_server.serve("/communes.csv", COMMUNES_CSV + "1053,Bourg,-5,x,2024-06-01\n")
    (src,) = harvest().sources
    assert src.state == "rejected" and "policy 'reject'" in src.reason and "row 5" in src.reason
    assert query(hub, "SELECT count(*) FROM communes")[0][0] == 3
    assert query(hub, "SELECT count(*) FROM _partage.versions")[0][0] == 1
    report = json.loads(query(hub, "SELECT report FROM _partage.reports ORDER BY recorded_at DESC LIMIT 1")[0][0])
    assert report["valid"] is False
    assert {(e["rowNumber"], e["fieldName"], e["type"]) for e in report["tasks"][0]["errors"]} == {
        (5, "code_insee", "constraint-error"), (5, "population", "constraint-error"), (5, "surface_km2", "type-error")}


def test_a_rejected_file_stays_rejected_until_a_new_file_is_accepted(
        hub: CatalogBuilder, http_server: FixtureServer, harvest) -> None:
    """#23 case 1: the same rejected file on the next runs is still `rejected` (not `unchanged`), still
    not ok (exit 1, the catalog view), without being validated again and with the first rejection's
    words; only a new accepted file makes the source ok again."""
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    bad = COMMUNES_CSV + "1053,Bourg,-5,x,2024-06-01\n"
    http_server.serve("/communes.csv", bad)
    hub.dataset("communes", [f"url: {http_server.url('/communes.csv')}"], schema=SCHEMA, policy="reject")
    first = harvest()
    (src,) = first.sources
    assert src.state == "rejected" and not src.repeat and first.exit_code == 1
    n_reports = reports_count(hub)
    for _ in range(2):
        again = harvest()
        (src,) = again.sources
        assert src.state == "rejected" and src.repeat, src
        assert again.exit_code == 1
        assert src.reason.count("still the file rejected earlier") == 1, src.reason
        assert "policy 'reject'" in src.reason and "row 5" in src.reason and "no data of this source" in src.reason
        assert src.report_path and Path(src.report_path).is_file() and json.loads(Path(src.report_path).read_text())["valid"] is False
        assert reports_count(hub) == n_reports  # not validated again
        assert query(hub, "SELECT source_states FROM catalog WHERE id = 'communes'")[0][0] == ["rejected"]
    http_server.serve("/communes.csv", COMMUNES_CSV)
    fixed = harvest()
    assert [s.state for s in fixed.sources] == ["updated"] and fixed.exit_code == 0
    assert [s.state for s in harvest().sources] == ["unchanged"]


def test_policy_quarantine_stores_valid_rows_and_quarantines_the_others(hub: CatalogBuilder, harvest) -> None:
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    hub.file("c.csv", COMMUNES_CSV + "1053,Bourg,41000,23.86,2024-06-01\n01001,Doublon,1,1,2024-01-01\n")
    hub.dataset("communes", ["file: ../data/c.csv"], schema=SCHEMA, policy="quarantine")
    (src,) = harvest().sources
    assert src.state == "updated" and src.rows == 3 and src.quarantined == 2
    q = query(hub, 'SELECT code_insee, nom, _row_number, _errors FROM quarantine."communes" ORDER BY _row_number')
    assert [(r[0], r[2]) for r in q] == [("1053", 5), ("01001", 6)]
    assert json.loads(q[0][3])[0]["type"] == "constraint-error"
    assert json.loads(q[1][3])[0]["type"] == "primary-key"


def test_policy_warn_keeps_constraint_errors_but_quarantines_untypable_rows(hub: CatalogBuilder, harvest) -> None:
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    hub.file("c.csv", COMMUNES_CSV + "1053,Bourg,-3,23.86,2024-06-01\n01053,Bourg,beaucoup,23.86,2024-06-01\n")
    hub.dataset("communes", ["file: ../data/c.csv"], schema=SCHEMA, policy="warn")
    (src,) = harvest().sources
    assert src.state == "updated" and src.rows == 4 and src.quarantined == 1
    assert query(hub, "SELECT population FROM communes WHERE code_insee = '1053'") == [(-3,)]
    assert query(hub, 'SELECT population FROM quarantine."communes"') == [("beaucoup",)]


@pytest.mark.parametrize("policy", ["reject", "quarantine", "warn"])
def test_header_that_does_not_match_the_schema_is_rejected_under_every_policy(hub: CatalogBuilder, harvest, policy: str) -> None:
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    hub.file("c.csv", COMMUNES_CSV.replace("code_insee,nom", "nom,code_insee"))
    hub.dataset("communes", ["file: ../data/c.csv"], schema=SCHEMA, policy=policy)
    (src,) = harvest().sources
    assert src.state == "rejected" and "header" in src.reason
    assert not (hub.warehouse / "communes").exists() or not any(
        p.name[0].isdigit() for p in (hub.warehouse / "communes").iterdir())


def test_binary_garbage_is_rejected_not_crashed(hub: CatalogBuilder, harvest) -> None:
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    hub.file("c.csv", bytes(range(256)) * 50)
    hub.file("ok.csv", COMMUNES_CSV)
    hub.dataset("communes", ["file: ../data/c.csv", "file: ../data/ok.csv"], schema=SCHEMA)
    summary = harvest()
    assert [s.state for s in summary.sources] == ["rejected", "updated"]


def test_gzipped_and_zipped_files_are_read_unpacked_and_a_web_page_is_refused_by_name(
        hub: CatalogBuilder, http_server: FixtureServer, harvest) -> None:
    """data.gouv.fr serves national files as .csv.gz or a zip with one CSV; an expired link answers 200 with
    an HTML page. Read as CSV, all three gave "incorrect label" reports that pointed nowhere useful."""
    import gzip
    import io
    import zipfile

    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    gz = http_server.serve("/communes.csv.gz", gzip.compress(COMMUNES_CSV.encode("cp1252")))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("export/communes.csv", COMMUNES_CSV.replace(",", ";"))
    zipped = http_server.serve("/communes.zip", buffer.getvalue())
    page = http_server.serve("/expired.csv", "<!DOCTYPE html>\n<html><body>Lien expiré</body></html>\n")
    hub.dataset("communes", [f"url: {gz}", f"url: {zipped}", f"url: {page}"], schema=SCHEMA, extra="duplicates: keep\n")
    summary = harvest()
    by_label = {s.label: s for s in summary.sources}
    assert by_label[gz].state == "updated" and by_label[zipped].state == "updated", summary.sources
    assert by_label[page].state == "failed" and "web page (HTML)" in by_label[page].reason and page in by_label[page].reason
    rows = query(hub, "SELECT _source, count(*), min(code_insee) FROM communes GROUP BY 1 ORDER BY 1")
    assert [(n, code) for _, n, code in rows] == [(3, "01001"), (3, "01001")]
    assert not list((hub.warehouse / "communes").glob(".unpacked-*"))  # the unpacked copies are gone


def test_schema_change_revalidates_an_unchanged_file(hub: CatalogBuilder, harvest) -> None:
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    hub.file("c.csv", COMMUNES_CSV)
    hub.dataset("communes", ["file: ../data/c.csv"], schema=SCHEMA)
    harvest()
    stricter = json.loads(json.dumps(COMMUNES_SCHEMA))
    stricter["fields"][2]["constraints"]["minimum"] = 1000
    hub.schema(SCHEMA, stricter)
    (src,) = harvest().sources
    assert src.state == "updated" and "revalidated" in src.reason and src.quarantined == 1


def test_unchanged_sibling_keeps_its_data_when_another_source_changes(hub: CatalogBuilder, harvest) -> None:
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    hub.file("a.csv", COMMUNES_CSV)
    hub.file("b.csv", "code_insee,nom,population,surface_km2,date_maj\n01053,Bourg,41000,23.86,2024-06-01\n")
    hub.dataset("communes", ["file: ../data/a.csv", "file: ../data/b.csv"], schema=SCHEMA)
    harvest()
    hub.file("b.csv", "code_insee,nom,population,surface_km2,date_maj\n01053,Bourg-en-Bresse,41500,23.86,2024-07-01\n")
    summary = harvest()
    assert sorted(s.state for s in summary.sources) == ["unchanged", "updated"]
    assert query(hub, "SELECT count(*), count(DISTINCT _source) FROM communes") == [(4, 2)]
    assert query(hub, "SELECT nom FROM communes WHERE code_insee = '01053'") == [("Bourg-en-Bresse",)]


def test_without_schema_identifiers_are_inferred_as_strings(hub: CatalogBuilder, harvest) -> None:
    hub.file("c.csv", COMMUNES_CSV)
    hub.dataset("communes", ["file: ../data/c.csv"])
    assert harvest().exit_code == 0
    types = dict(query(hub, "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'main' AND table_name = 'communes'"))
    assert types["code_insee"] == "VARCHAR" and types["population"] == "BIGINT" and types["surface_km2"] == "DOUBLE"
    assert query(hub, "SELECT code_insee FROM communes ORDER BY 1")[0] == ("01001",)


def test_unknown_schema_reference_fails_with_the_fix(hub: CatalogBuilder, harvest) -> None:
    hub.file("c.csv", COMMUNES_CSV)
    hub.dataset("communes", ["file: ../data/c.csv"], schema="etalab/schema-inconnu@9.9.9")
    (src,) = harvest().sources
    assert src.state == "failed" and "schema.data.gouv.fr" in src.reason and "schemas" in src.reason


def test_views_comments_and_alias(hub: CatalogBuilder, harvest) -> None:
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    hub.file("c.csv", COMMUNES_CSV)
    hub.dataset("communes-2024", ["file: ../data/c.csv"], schema=SCHEMA)
    harvest()
    assert query(hub, 'SELECT count(*) FROM "communes-2024"') == query(hub, "SELECT count(*) FROM communes_2024") == [(3,)]
    # each dataset is a DuckLake table, commented, with a view under its alias
    assert query(hub, "SELECT comment FROM duckdb_tables() WHERE database_name = 'lake' AND schema_name = 'main' "
                      "AND table_name = 'communes-2024'")[0][0].startswith("Jeu communes-2024")
    assert query(hub, "SELECT count(*) FROM duckdb_views() WHERE database_name = 'lake' AND view_name = 'communes_2024'") == [(1,)]
    comments = dict(query(hub, "SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = 'main' AND table_name = 'communes-2024'"))
    assert comments["code_insee"] == "Code INSEE — Code officiel géographique"


def test_datapackage_describes_the_version(hub: CatalogBuilder, harvest) -> None:
    from frictionless import Package

    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    hub.file("c.csv", COMMUNES_CSV)
    hub.dataset("communes", ["file: ../data/c.csv"], schema=SCHEMA)
    version = harvest().datasets[0].version
    vdir = Warehouse(hub.warehouse).version_dir("communes", version)
    desc = json.loads((vdir / "datapackage.json").read_text())
    Package.from_descriptor(desc)  # a valid Data Package for frictionless itself
    res = desc["resources"][0]
    assert desc["name"] == "communes" and desc["licenses"][0]["name"] == "etalab-2.0"
    assert res["partage:rows"] == 3 and res["schema"]["primaryKey"] == ["code_insee"]
    import hashlib

    assert res["hash"] == "sha256:" + hashlib.sha256((vdir / res["path"]).read_bytes()).hexdigest()
    assert desc["partage:validation"]["valid"] is True and desc["sources"][0]["path"] == "../data/c.csv"
    assert json.loads((vdir / "schema.json").read_text()) == COMMUNES_SCHEMA


def test_missing_partner_drop_fails_clearly(hub: CatalogBuilder, harvest) -> None:
    hub.dataset("communes", ["file: ../data/partenaire/*.csv"])
    (src,) = harvest().sources
    assert src.state == "failed" and "no file matches" in src.reason


def test_credential_from_environment_reaches_the_server_but_not_the_warehouse(
    hub: CatalogBuilder, http_server: FixtureServer, harvest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARTNER_TOKEN", "tok-123-secret")
    url = http_server.serve("/p.csv", COMMUNES_CSV)
    hub.dataset("communes", [f"url: {url}\n    auth: {{bearer: env:PARTNER_TOKEN}}"])
    assert harvest().exit_code == 0
    assert http_server.requests("/p.csv")[0].headers["Authorization"] == "Bearer tok-123-secret"
    for f in hub.warehouse.rglob("*"):
        if f.is_file() and f.suffix in (".json", ".duckdb", ".wal"):
            assert b"tok-123-secret" not in f.read_bytes(), f


def test_unset_credential_fails_that_source_only(hub: CatalogBuilder, http_server: FixtureServer, harvest) -> None:
    url = http_server.serve("/p.csv", COMMUNES_CSV)
    hub.dataset("communes", [f"url: {url}\n    auth: {{bearer: env:PARTAGE_TEST_UNSET_VAR}}"])
    (src,) = harvest().sources
    assert src.state == "failed" and "PARTAGE_TEST_UNSET_VAR" in src.reason
    assert http_server.requests("/p.csv") == []


def test_second_harvest_is_kept_out_while_one_runs(tmp_path: Path) -> None:
    from partage.errors import HarvestRunning

    wh = Warehouse(tmp_path / "wh")
    with wh.harvest_lock(["a", "b"]):
        with pytest.raises(HarvestRunning) as exc:  # one dataset in common is enough
            with Warehouse(tmp_path / "wh").harvest_lock(["b", "c"]):
                pass
        assert "another harvest is running" in str(exc.value) and "'b'" in str(exc.value)
        assert f"pid {os.getpid()}" in str(exc.value)  # who holds it
        with Warehouse(tmp_path / "wh").harvest_lock(["c", "d"]):  # other datasets: side by side
            pass
        with pytest.raises(HarvestRunning, match="another harvest is running"):  # gc needs the whole warehouse
            with Warehouse(tmp_path / "wh").harvest_lock():
                pass
    with wh.harvest_lock():  # released after the first one ended
        with pytest.raises(HarvestRunning, match="partage gc"):  # and a harvest waits for no gc
            with Warehouse(tmp_path / "wh").harvest_lock(["a"]):
                pass
    with wh.harvest_lock(["a"]):
        pass


def test_a_second_harvest_of_the_same_dataset_is_refused_at_once_with_exit_code_3(hub: CatalogBuilder) -> None:
    """#23 case 8: it took 27 s (Prefect's start), printed a traceback and exited 1, the code of "some rejected"."""
    hub.file("c.csv", COMMUNES_CSV)
    hub.dataset("communes", ["file: ../data/c.csv"])
    with Warehouse(hub.warehouse).harvest_lock(["communes"]):
        r = subprocess.run([str(Path(sys.executable).with_name("partage")), "harvest", "--catalog", str(hub.catalog),
                            "--warehouse", str(hub.warehouse)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "another harvest is running" in r.stderr and "'communes'" in r.stderr and "nothing was harvested" in r.stderr
    assert "Traceback" not in r.stdout + r.stderr and "Harvesting" not in r.stdout  # before Prefect was started
    assert not Warehouse(hub.warehouse).exists()


def test_moved_warehouse_views_are_repointed(hub: CatalogBuilder, harvest) -> None:
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    hub.file("c.csv", COMMUNES_CSV)
    hub.dataset("communes", ["file: ../data/c.csv"], schema=SCHEMA)
    harvest()
    moved = hub.root / "ailleurs"
    hub.warehouse.rename(moved)
    hub.warehouse.mkdir()
    moved.rename(hub.warehouse / "nested")
    hub.warehouse = hub.warehouse / "nested"
    summary = harvest()
    assert [s.state for s in summary.sources] == ["unchanged"]
    assert query(hub, "SELECT count(*) FROM communes") == [(3,)]
    assert query(hub, "SELECT comment FROM duckdb_columns() WHERE schema_name = 'main' AND table_name = 'communes' AND column_name = 'code_insee'")[0][0]


def test_failure_inside_the_commit_leaves_the_previous_version_visible(
    hub: CatalogBuilder, harvest, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    hub.file("c.csv", COMMUNES_CSV)
    hub.dataset("communes", ["file: ../data/c.csv"], schema=SCHEMA)
    harvest()
    hub.file("c.csv", COMMUNES_CSV + "01053,Bourg-en-Bresse,41000,23.86,2024-06-01\n")

    def boom(*args, **kwargs):
        raise RuntimeError("disk full while switching the view")

    monkeypatch.setattr(Warehouse, "_write_tables", staticmethod(boom))
    (src,) = harvest().sources
    assert src.state == "failed" and "disk full" in src.reason and "previous version is kept" in src.reason
    assert query(hub, "SELECT count(*) FROM communes") == [(3,)]
    assert query(hub, "SELECT count(*) FROM _partage.versions") == [(1,)]
    monkeypatch.undo()
    (src,) = harvest().sources
    assert src.state == "updated"  # the content was never recorded as validated, so it is taken again
    assert query(hub, "SELECT count(*) FROM communes") == [(4,)]


def test_transient_failure_is_retried_by_prefect_then_recorded(hub: CatalogBuilder, http_server: FixtureServer, harvest) -> None:
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    url = http_server.serve("/down.csv", COMMUNES_CSV, script=[503] * 50)
    ok = http_server.serve("/ok.csv", COMMUNES_CSV)
    hub.dataset("communes", [f"url: {url}", f"url: {ok}"], schema=SCHEMA)
    summary = harvest()
    states = {s.label: s for s in summary.sources}
    assert states[url].state == "failed" and "503" in states[url].reason
    assert states[ok].state == "updated"
    # the fetcher's own attempts (4), for the first run of the task and each of its 2 Prefect retries
    assert len(http_server.requests("/down.csv")) == 12


def test_run_artifacts_show_what_happened(hub: CatalogBuilder, http_server: FixtureServer, harvest) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    hub.file("c.csv", COMMUNES_CSV + "1053,Bourg,41000,23.86,2024-06-01\n")
    hub.dataset("communes-q", ["file: ../data/c.csv", f"url: {http_server.url('/absent.csv')}"], schema=SCHEMA)
    harvest()
    with get_client(sync_client=True) as client:
        table = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["harvest-summary"])),
                                      limit=1, sort="CREATED_DESC")[0]
        md = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["quality-communes-q"])),
                                   limit=1, sort="CREATED_DESC")[0]
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    by_state = {r["state"] for r in rows if r["dataset"] == "communes-q"}
    assert by_state == {"updated", "failed"}
    assert "404" in next(r["reason"] for r in rows if r["state"] == "failed")
    assert "| 5 | code_insee | constraint-error |" in md.data and "quarantine" in md.data


def test_every_table_schema_type_is_stored_typed(hub: CatalogBuilder, harvest) -> None:
    fields = [("s", "string", None), ("i", "integer", None), ("n", "number", None), ("b", "boolean", None),
              ("d", "date", None), ("df", "date", "%d/%m/%Y"), ("t", "time", None), ("dt", "datetime", None),
              ("y", "year", None), ("ym", "yearmonth", None), ("du", "duration", None), ("gp", "geopoint", None),
              ("gpa", "geopoint", "array"), ("gj", "geojson", None), ("o", "object", None), ("a", "array", None),
              ("any", "any", None)]
    hub.schema("test/types@1", {"fields": [{"name": n, "type": t, **({"format": f} if f else {})} for n, t, f in fields]})
    header = ",".join(n for n, _, _ in fields)
    good = ('x,3,1.5,true,2024-01-02,02/01/2024,10:30:00,2024-01-02T10:00:00+02:00,2024,2024-03,P1DT2H,"2.3,48.8",'
            '"[2.3, 48.8]","{""type"":""Point"",""coordinates"":[2.3,48.8]}","{""k"":1}","[1,2]",w')
    too_big = good.replace(",3,", ",99999999999999999999,", 1)
    hub.file("t.csv", "\n".join([header, good, too_big, ",,,,,,,,,,,,,,,,"]) + "\n")
    hub.dataset("types", ["file: ../data/t.csv"], schema="test/types@1", policy="warn")
    (src,) = harvest().sources
    assert src.state == "updated" and src.rows == 1 and src.quarantined == 2
    row = query(hub, "SELECT i, n, b, d, df, t, y, ym, du, gp.lon, gpa.lat, json_extract(gj, '$.type'), "
                     "timezone('UTC', dt) FROM types")[0]
    assert row[:12] == (3, 1.5, True, dt.date(2024, 1, 2), dt.date(2024, 1, 2), dt.time(10, 30), 2024, "2024-03",
                        "P1DT2H", 2.3, 48.8, '"Point"')
    assert str(row[12]).startswith("2024-01-02 08:00:00")
    errors = [json.loads(r[0]) for r in query(hub, 'SELECT _errors FROM quarantine."types" ORDER BY _row_number')]
    assert errors[0][0]["type"] == "partage-cast-error" and errors[0][0]["field"] == "i"
    assert errors[1][0]["type"] == "blank-row"


def test_awkward_identifiers_are_quoted_everywhere(hub: CatalogBuilder, harvest) -> None:
    """Column names an SQL parser would trip on, from the schema all the way to the published CSV."""
    from partage.publish.exports import exports

    names = ["select", 'a"b', "été 2024", "l'année", "x;y"]
    hub.schema("test/odd@1", {"fields": [{"name": n, "type": "integer", "title": f"titre de {n}"} for n in names]})
    hub.file("odd.csv", ",".join(f'"{n}"' if '"' not in n else '"a""b"' for n in names) + "\n1,2,3,4,5\n")
    hub.dataset("select", ["file: ../data/odd.csv"], schema="test/odd@1")
    (src,) = harvest().sources
    assert src.state == "updated", src.reason
    assert query(hub, 'SELECT "select", "a""b", "été 2024", "l\'année", "x;y" FROM "select"') == [(1, 2, 3, 4, 5)]
    comments = dict(query(hub, "SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = 'main' AND table_name = 'select'"))
    assert comments['a"b'] == 'titre de a"b' and comments["l'année"] == "titre de l'année"
    from partage.store.warehouse import Warehouse

    wh = Warehouse(hub.warehouse)
    info = wh.latest_version_info("select")
    csv = next(f for f in exports(wh, info) if f.role == "data-csv")
    assert csv.path.read_text(encoding="utf-8").splitlines() == ['select,"a""b",été 2024,l\'année,x;y', "1,2,3,4,5"]


def test_catalog_view_lists_every_dataset(hub: CatalogBuilder, http_server: FixtureServer, harvest) -> None:
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    hub.file("c.csv", COMMUNES_CSV)
    hub.dataset("communes", ["file: ../data/c.csv"], schema=SCHEMA, access="partners")
    hub.dataset("perdu", [f"url: {http_server.url('/perdu.csv')}"])
    harvest()
    rows = query(hub, "SELECT id, access, license, rows, source_states, latest_version IS NOT NULL, "
                      "json_extract(quality, '$.valid') FROM catalog ORDER BY id")
    assert rows == [("communes", "partners", "etalab-2.0", 3, ["updated"], True, "true"),
                    ("perdu", "open", "etalab-2.0", None, ["failed"], False, None)]


def test_history_view_reads_a_dataset_as_of_a_version_or_a_date(hub: CatalogBuilder, harvest) -> None:
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    hub.file("c.csv", COMMUNES_CSV)
    hub.dataset("communes", ["file: ../data/c.csv"], schema=SCHEMA)
    v1 = harvest().datasets[0].version
    hub.file("c.csv", COMMUNES_CSV.replace("73000", "74000") + "01053,Bourg-en-Bresse,41000,23.86,2024-06-01\n")
    v2 = harvest().datasets[0].version
    assert v1 < v2
    counts = dict(query(hub, 'SELECT _version, count(*) FROM history."communes" GROUP BY 1'))
    assert counts == {v1: 3, v2: 4}
    as_of_v1 = query(hub, 'SELECT population FROM history."communes" WHERE _version = ? AND code_insee = \'2A004\'', [v1])
    assert as_of_v1 == [(73000,)]
    created_v1 = query(hub, "SELECT created_at FROM _partage.versions WHERE version = ?", [v1])[0][0]
    as_of_date = query(hub, """
        SELECT count(*) FROM history."communes"
        WHERE _version = (SELECT max(version) FROM _partage.versions
                          WHERE dataset_id = 'communes' AND created_at <= ?)""", [created_v1])
    assert as_of_date == [(3,)]
