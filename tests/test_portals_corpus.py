"""Recorded answers of real portals (../shared/data/portals) served from 127.0.0.1 at the paths
our clients ask for, their resource URLs rewritten to that server: what is discovered, and,
with real French files of ../shared/data/datasets served as the resources, what is stored."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from partage.catalog import load_catalog
from partage.sources import expand

from .conftest import SHARED_DATA, CatalogBuilder, FixtureServer, query

pytestmark = [pytest.mark.corpus, pytest.mark.skipif(not (SHARED_DATA / "portals").is_dir(),
                                                     reason="../shared/data/portals is absent (the shared corpus)")]
PORTALS = SHARED_DATA / "portals"
JSON = {"content_type": "application/json"}


def recorded(rel: str, rewrite: dict[str, str]) -> str:
    text = (PORTALS / rel).read_text(encoding="utf-8")
    for old, new in rewrite.items():
        text = text.replace(old, new)
    return text


def exvcr_body(rel: str, rewrite: dict[str, str]) -> str:
    """The response body of an ExVCR cassette's first interaction, rewritten."""
    body = json.loads((PORTALS / rel).read_text(encoding="utf-8"))[0]["response"]["body"]
    for old, new in rewrite.items():
        body = body.replace(old, new)
    return body


def expanded(hub: CatalogBuilder, ds_id: str):
    return expand(load_catalog(hub.catalog).entries[ds_id])


def csv_rows(path: Path, encoding: str, delimiter: str) -> int:
    with path.open(encoding=encoding, newline="") as f:
        return sum(1 for row in csv.reader(f, delimiter=delimiter) if any(c.strip() for c in row)) - 1


# -- CKAN ---------------------------------------------------------------------------------------


def test_ckan_birmingham_package_search_lists_every_xls_resource(hub: CatalogBuilder, http_server: FixtureServer) -> None:
    base = http_server.url("")
    body = recorded("ckan/birmingham-package_search.json", {"https://data.birmingham.gov.uk": base})
    page = json.loads(body)
    http_server.serve("/api/action/package_search", body, **JSON)
    page["result"]["results"] = []  # the portal has nothing past the recorded page
    http_server.serve("/api/action/package_search?start=10", json.dumps(page), **JSON)
    hub.dataset("achats", [f"ckan: {base}\n    organization: birmingham-city-council\n    formats: [XLS]"])
    resources, failures = expanded(hub, "achats")
    assert failures == []
    # declared XLS, or no format declared and an .xls file
    expected = {r["id"] for p in page_results(body) for r in p["resources"]
                if r["format"] == "XLS" or (not r["format"] and r["url"].lower().endswith(".xls"))}
    assert {r.remote_id for r in resources} == expected and len(expected) >= 52
    assert all(r.location.startswith(base + "/dataset/") for r in resources)
    assert [q.path.split("start=")[1] for q in http_server.requests("/api/action/package_search")] == ["0", "10"]


def page_results(body: str) -> list[dict]:
    return json.loads(body)["result"]["results"]


def test_dkan_package_show_answering_a_list_is_read(hub: CatalogBuilder, http_server: FixtureServer) -> None:
    base = http_server.url("")
    body = recorded("ckan/dkan-hautsdefrance-package_show.json", {"https://geocatalogue.hautsdefrance.fr": base})
    http_server.serve("/api/action/package_show", body, **JSON)
    hub.dataset("hdf", [f"ckan: {base}\n    dataset: antennes-regionales"])
    resources, failures = expanded(hub, "hdf")
    assert failures == []
    ids = {r["id"] for r in json.loads(body)["result"][0]["resources"]}
    assert {r.remote_id for r in resources} == ids
    (xlsx,) = [r for r in resources if r.location.startswith(base)]
    assert xlsx.auth is None


# -- udata --------------------------------------------------------------------------------------


def datagouv_page(base: str) -> str:
    """data.gouv.fr's 15 real datasets (udata fixtures) as an API v1 search page."""
    raw = json.loads(recorded("udata/datagouv-fixtures-results.json", {"https://static.data.gouv.fr": base}))
    return json.dumps({"data": [{**d["dataset"], "resources": d["resources"]} for d in raw["datasets"]],
                       "next_page": None, "page": 1, "total": len(raw["datasets"])})


@pytest.mark.slow
def test_udata_schema_consolidation_stores_the_irve_resource(hub: CatalogBuilder, http_server: FixtureServer, harvest) -> None:
    base = http_server.url("")
    page = datagouv_page(base)
    http_server.serve("/api/1/datasets/", page, **JSON)
    (irve,) = [r for d in json.loads(page)["data"] for r in d["resources"]
               if (r.get("schema") or {}).get("name") == "etalab/schema-irve-statique"]
    real = SHARED_DATA / "datasets" / "irve-consolidation-2019" / "bornes-IRVE.csv"
    http_server.serve(irve["url"][len(base):], real.read_bytes())
    hub.dataset("irve", [f"udata: {base}\n    schema: etalab/schema-irve-statique"])
    summary = harvest()
    (src,) = summary.sources
    assert src.state == "updated", src.reason
    assert query(hub, "SELECT count(*) FROM irve")[0][0] == csv_rows(real, "utf-8", ";")
    assert query(hub, "SELECT remote_id FROM _partage.sources") == [(irve["id"],)]
    again = harvest()
    assert [(s.state, s.body_bytes) for s in again.sources] == [("unchanged", 0)]


def test_udata_organization_datasets_as_a_bare_list(hub: CatalogBuilder, http_server: FixtureServer) -> None:
    base = http_server.url("")
    rel = "udata/transport-site-exvcr/client__datasets__organization-datasets-1.json"
    body = exvcr_body(rel, {})
    http_server.serve("/api/1/organizations/538346d6a3a72906c7ec5c36/datasets/", body, **JSON)
    hub.dataset("org", [f"udata: {base}\n    organization: 538346d6a3a72906c7ec5c36"])
    resources, failures = expanded(hub, "org")
    assert failures == []
    want = {r["id"] for d in json.loads(body) for r in d["resources"] if r["url"].startswith("http")}
    assert {r.remote_id for r in resources} == want and want


def test_udata_one_dataset_by_slug(hub: CatalogBuilder, http_server: FixtureServer) -> None:
    base = http_server.url("")
    body = exvcr_body("udata/transport-site-exvcr/client__datasets__one-0.json", {})
    slug = "horaires-et-arrets-du-reseau-irigo-format-gtfs"
    http_server.serve(f"/api/1/datasets/{slug}/", body, **JSON)
    hub.dataset("irigo", [f"udata: {base}\n    dataset: {slug}"])
    resources, failures = expanded(hub, "irigo")
    assert failures == []
    assert {r.remote_id for r in resources} == {r["id"] for r in json.loads(body)["resources"]}
    assert all(r.remote_modified for r in resources)


# -- Opendatasoft -------------------------------------------------------------------------------


@pytest.mark.slow
def test_ods_v20_dataset_export_stores_a_latin1_semicolon_file(hub: CatalogBuilder, http_server: FixtureServer, harvest) -> None:
    base = http_server.url("")
    listing = json.loads(recorded("ods/data.economie.gouv.fr/catalog_datasets.json", {"https://data.economie.gouv.fr": base}))
    (entry,) = [d for d in listing["datasets"] if d["dataset"]["dataset_id"] == "france-relance-donnees-agregees"]
    http_server.serve("/api/v2/catalog/datasets/france-relance-donnees-agregees", json.dumps(entry), **JSON)
    real = SHARED_DATA / "datasets" / "covoiturage-corse-latin1" / "csv_latin1.csv"
    export = "/api/v2/catalog/datasets/france-relance-donnees-agregees/exports/csv"
    http_server.serve(export, real.read_bytes(), etag=False, last_modified=False)
    hub.dataset("relance", [f"ods: {base}\n    dataset: france-relance-donnees-agregees"])
    first = harvest()
    assert [s.state for s in first.sources] == ["updated"], first.sources[0].reason
    (ask,) = http_server.requests(export)
    assert "use_labels_for_header=false" in ask.path and "timezone=UTC" in ask.path
    assert query(hub, "SELECT count(*) FROM relance")[0][0] == csv_rows(real, "latin-1", ";")
    assert ("2A004",) in query(hub, "SELECT insee FROM relance")
    (src,) = harvest().sources
    assert (src.state, src.layer, src.body_bytes) == ("unchanged", "portal-modified", 0)
    assert len(http_server.requests(export)) == 1


def test_ods_dataset_without_records_lists_its_attachments(hub: CatalogBuilder, http_server: FixtureServer) -> None:
    base = http_server.url("")
    body = recorded("ods/data.economie.gouv.fr/catalog_dataset_fantoir.json", {"https://data.economie.gouv.fr": base})
    http_server.serve("/api/v2/catalog/datasets/fichier-fantoir-des-voies-et-lieux-dits", body, **JSON)
    hub.dataset("fantoir", [f"ods: {base}\n    dataset: fichier-fantoir-des-voies-et-lieux-dits\n    formats: [zip]"])
    resources, failures = expanded(hub, "fantoir")
    assert failures == []
    atts = [a["id"] for a in json.loads(body)["dataset"]["attachments"] if a["mimetype"] == "application/zip"]
    assert sorted(r.location for r in resources) == sorted(
        f"{base}/api/v2/catalog/datasets/fichier-fantoir-des-voies-et-lieux-dits/attachments/{a}" for a in atts)


def test_ods_v20_catalog_whose_next_link_never_ends_is_stopped(hub: CatalogBuilder, http_server: FixtureServer) -> None:
    base = http_server.url("")
    body = recorded("ods/data.economie.gouv.fr/catalog_datasets.json", {"https://data.economie.gouv.fr": base})
    http_server.serve("/api/v2/catalog/datasets", body, **JSON)  # answers the recorded page whatever the offset
    hub.dataset("eco", [f"ods: {base}\n    q: retraite"])
    resources, (failure,) = expanded(hub, "eco")
    assert resources == []
    assert "same page again" in failure.reason and "/api/v2/catalog/datasets" in failure.reason


# -- DCAT ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_dcat_rdfxml_catalog_stores_its_csv_distribution(hub: CatalogBuilder, http_server: FixtureServer, harvest) -> None:
    base = http_server.url("")
    http_server.serve("/catalog.rdf", recorded("dcat/ckanext-dcat-examples/dcat__catalog.rdf", {"https://data.some.org": base}),
                      content_type="application/rdf+xml")
    real = SHARED_DATA / "datasets" / "covoiturage-corse-latin1" / "csv_utf8.csv"
    http_server.serve("/the/actual/catalog/datasets/1/resources/1.csv", real.read_bytes())
    hub.dataset("cat", [f"dcat: {base}/catalog.rdf\n    formats: [CSV]"])
    summary = harvest()
    (src,) = summary.sources
    assert src.state == "updated", src.reason
    assert query(hub, "SELECT count(*) FROM cat")[0][0] == csv_rows(real, "utf-8", ";")


def test_dcat_jsonld_hydra_paged_collection(hub: CatalogBuilder, http_server: FixtureServer) -> None:
    base = http_server.url("")
    rewrite = {"http://data.test.org": base}
    http_server.serve("/catalog.jsonld?page=2", recorded("dcat/udata-harvest-tests/paged-collection-2.jsonld", rewrite),
                      content_type="application/ld+json")
    http_server.serve("/catalog.jsonld", recorded("dcat/udata-harvest-tests/paged-collection-1.jsonld", rewrite),
                      content_type="application/ld+json")
    hub.dataset("paged", [f"dcat: {base}/catalog.jsonld"])
    resources, failures = expanded(hub, "paged")
    assert failures == []
    assert sorted(r.location for r in resources) == [f"{base}/datasets/{i}/resources/1/file.json" for i in range(1, 5)]


@pytest.mark.parametrize("rel, fmt", [
    ("dcat/data.economie.gouv.fr-catalog_exports.rdf", "csv"),
    ("dcat/udata-harvest-tests/catalog.xml", None),
    ("dcat/udata-harvest-tests/flat.jsonld", None),
    ("dcat/ckanext-dcat-examples/dcat__catalog.rdf", "csv"),
    ("dcat/udata-harvest-tests/bnodes.jsonld", None),
])
def test_dcat_catalogs_list_every_distribution(rel: str, fmt: str | None, hub: CatalogBuilder, http_server: FixtureServer) -> None:
    from rdflib import Graph

    data = (PORTALS / rel).read_bytes()
    name = "/catalog" + Path(rel).suffix
    http_server.serve(name, data, content_type="application/octet-stream")
    hub.dataset("c", [f"dcat: {http_server.url(name)}" + (f"\n    formats: [{fmt}]" if fmt else "")])
    resources, failures = expanded(hub, "c")
    assert failures == []
    g = Graph().parse(data=data, format={".ttl": "turtle", ".jsonld": "json-ld"}.get(Path(rel).suffix, "xml"))
    q = """SELECT DISTINCT ?u WHERE { ?d a dcat:Dataset ; dcat:distribution ?x .
             OPTIONAL { ?x dcat:downloadURL ?dl } OPTIONAL { ?x dcat:accessURL ?al }
             OPTIONAL { ?x dct:format ?f } OPTIONAL { ?x dcat:mediaType ?m } BIND(COALESCE(?dl, ?al) AS ?u) FILTER(BOUND(?u)) FORMAT }"""
    q = q.replace("FORMAT", f'FILTER(LCASE(STR(?f)) = "{fmt}" || STRENDS(LCASE(STR(?m)), "/{fmt}"))' if fmt else "")
    want = {str(r[0]).strip() for r in g.query(q, initNs={"dcat": "http://www.w3.org/ns/dcat#", "dct": "http://purl.org/dc/terms/"})
            if str(r[0]).startswith("http")}
    assert {r.location for r in resources} == want and want


def test_dcat_turtle_with_an_unbound_prefix_fails_naming_the_line(hub: CatalogBuilder, http_server: FixtureServer) -> None:
    """ckanext-dcat's own example uses a prefix it never declares: a real-world broken catalog."""
    http_server.serve("/dataset.ttl", (PORTALS / "dcat/ckanext-dcat-examples/dcat__dataset.ttl").read_bytes(),
                      content_type="text/turtle")
    hub.dataset("c", [f"dcat: {http_server.url('/dataset.ttl')}"])
    resources, (failure,) = expanded(hub, "c")
    assert resources == [] and failure.state == "failed"
    assert "/dataset.ttl: not readable as turtle RDF" in failure.reason and "line 158" in failure.reason
