"""Portal sources (ckan, udata, ods, dcat) against a real HTTP server on 127.0.0.1 serving small
self-written portal answers: listing, paging and its guard, identity, gone resources, layered
change detection, failures that stay in their source."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from partage.catalog import load_catalog
from partage.errors import PortalError, TerminalFetchError
from partage.sources import expand
from partage.sources.portal import PageGuard, canonical_url

from .conftest import COMMUNES_CSV, COMMUNES_SCHEMA, CatalogBuilder, FixtureServer, query

SCHEMA = "test/communes@1.0"
JSON = {"content_type": "application/json"}
MORE = "01053,Bourg-en-Bresse,41000,23.86,2024-06-01\n"


def entry(hub: CatalogBuilder, ds_id: str):
    return load_catalog(hub.catalog).entries[ds_id]


def ckan_answer(packages: list[dict[str, Any]], count: int | None = None) -> str:
    return json.dumps({"help": "", "success": True,
                       "result": {"count": len(packages) if count is None else count, "results": packages}})


def ckan_package(name: str, resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": f"id-{name}", "name": name, "metadata_modified": "2024-01-01T00:00:00", "resources": resources}


def ckan_resource(server: FixtureServer, rid: str, path: str, fmt: str = "CSV", **extra: Any) -> dict[str, Any]:
    return {"id": rid, "url": server.url(path), "format": fmt, "state": "active", "last_modified": None, **extra}


def serve_ckan(server: FixtureServer, packages: list[dict[str, Any]]) -> str:
    server.serve("/ckan/api/action/package_search", ckan_answer(packages), **JSON)
    return server.url("/ckan")


# -- canonical URLs and the paging guard (no network) ---------------------------------------


@pytest.mark.parametrize("a, b", [
    ("HTTPS://Data.Example.org:443/f.csv?b=2&a=1", "https://data.example.org/f.csv?a=1&b=2"),
    ("https://x.org/f.csv?utm_source=mail&_=1712345", "https://x.org/f.csv"),
    ("https://x.org/f.csv?token=SECRET&v=2#top", "https://x.org/f.csv?v=2"),
    ("http://x.org:80", "http://x.org/"),
])
def test_canonical_url_drops_volatile_and_secret_parameters(a: str, b: str) -> None:
    assert canonical_url(a) == b


def test_page_guard_stops_a_repeated_page_and_names_the_url() -> None:
    guard = PageGuard("https://portal.example/api")
    guard.page("https://portal.example/api?page=1", b"page one", ["a", "b"])
    with pytest.raises(PortalError, match=r"portal.example/api\?page=2.*same page again"):
        guard.page("https://portal.example/api?page=2", b"page one", ["a", "b"])


def test_page_guard_stops_pages_that_only_repeat_items() -> None:
    guard = PageGuard("https://portal.example/api")
    guard.page("u1", b"1", ["a", "b"])
    with pytest.raises(PortalError, match="only repeats items"):
        guard.page("u2", b"2 (another timestamp)", ["b", "a"])


def test_page_guard_stops_an_ever_growing_offset(monkeypatch) -> None:
    monkeypatch.setenv("PARTAGE_MAX_PAGES", "5")
    guard = PageGuard("https://portal.example/api")
    with pytest.raises(PortalError, match="more than 5 pages"):
        for i in range(10):
            guard.page(f"https://portal.example/api?offset={i}", str(i).encode(), [str(i)])


# -- listing each kind ------------------------------------------------------------------------


def test_ckan_lists_resources_of_the_wanted_format_with_identity(hub: CatalogBuilder, http_server: FixtureServer) -> None:
    pkgs = [ckan_package("communes", [ckan_resource(http_server, "r1", "/files/communes.csv", size=120),
                                      ckan_resource(http_server, "r2", "/files/notice.pdf", fmt="PDF")]),
            ckan_package("epci", [ckan_resource(http_server, "r3", "/files/epci.csv", fmt="csv")])]
    base = serve_ckan(http_server, pkgs)
    hub.dataset("c", [f"ckan: {base}\n    organization: metropole\n    tags: [communes]\n    formats: [CSV]"])
    resources, failures = expand(entry(hub, "c"))
    assert failures == []
    assert sorted(r.remote_id for r in resources) == ["r1", "r3"]
    assert {r.remote_size for r in resources} == {120, None}
    (call,) = http_server.requests("/ckan/api/action/package_search")
    assert 'organization:"metropole"' in call.path.replace("%3A", ":").replace("%22", '"')
    assert call.headers["User-Agent"].startswith("Partage/")


def test_udata_schema_keeps_only_resources_declaring_it_across_pages(hub: CatalogBuilder, http_server: FixtureServer) -> None:
    def ds(i: int, declared: bool) -> dict[str, Any]:
        schema = {"name": "etalab/schema-irve-statique", "version": "2.3.1"} if declared else None
        return {"id": f"d{i}", "resources": [
            {"id": f"r{i}", "url": http_server.url(f"/irve/{i}.csv"), "format": "csv", "schema": schema,
             "last_modified": "2024-05-01T00:00:00", "filesize": 10},
            {"id": f"doc{i}", "url": http_server.url(f"/irve/{i}.pdf"), "format": "pdf", "schema": None}]}

    page2 = http_server.url("/api/1/datasets/?schema=etalab%2Fschema-irve-statique&page=2&page_size=100")
    http_server.serve("/api/1/datasets/?page=2", json.dumps({"data": [ds(3, True)], "next_page": None}), **JSON)
    http_server.serve("/api/1/datasets/", json.dumps({"data": [ds(1, True), ds(2, False)], "next_page": page2}), **JSON)
    hub.dataset("irve", [f"udata: {http_server.url('')}\n    schema: etalab/schema-irve-statique"])
    resources, failures = expand(entry(hub, "irve"))
    assert failures == []
    assert sorted(r.remote_id for r in resources) == ["r1", "r3"]
    first = http_server.requests("/api/1/datasets/")[0].path
    assert "schema=etalab%2Fschema-irve-statique" in first


def test_ods_falls_back_to_v20_and_asks_for_stable_exports(hub: CatalogBuilder, http_server: FixtureServer) -> None:
    meta = {"dataset": {"dataset_id": "bornes", "has_records": True,
                        "metas": {"default": {"modified": "2024-01-01T00:00:00+00:00",
                                              "data_processed": "2024-02-01T00:00:00+00:00"}}}, "links": []}
    http_server.serve("/api/v2/catalog/datasets/bornes", json.dumps(meta), **JSON)
    hub.dataset("b", [f"ods: {http_server.url('')}\n    dataset: bornes"])
    (res,), failures = expand(entry(hub, "b"))
    assert failures == []
    assert [r.status for r in http_server.requests("/api/explore/v2.1/catalog/datasets/bornes")] == [404]
    assert res.location.startswith(http_server.url("/api/v2/catalog/datasets/bornes/exports/csv?"))
    assert "use_labels_for_header=false" in res.location and "timezone=UTC" in res.location
    assert res.remote_modified == "2024-02-01T00:00:00+00:00"


def test_ods_v21_dataset_export_in_parquet(hub: CatalogBuilder, http_server: FixtureServer) -> None:
    meta = {"dataset_id": "bornes", "metas": {"default": {"modified": "2024-01-01T00:00:00+00:00"}}}
    http_server.serve("/api/explore/v2.1/catalog/datasets/bornes", json.dumps(meta), **JSON)
    hub.dataset("b", [f"ods: {http_server.url('')}\n    dataset: bornes\n    formats: [parquet]"])
    (res,), _ = expand(entry(hub, "b"))
    assert "/api/explore/v2.1/catalog/datasets/bornes/exports/parquet?" in res.location
    assert res.remote_modified == "2024-01-01T00:00:00+00:00"


TTL_PAGE = """@prefix dcat: <http://www.w3.org/ns/dcat#> . @prefix dct: <http://purl.org/dc/terms/> .
@prefix hydra: <http://www.w3.org/ns/hydra/core#> .
<{base}/ds/{n}> a dcat:Dataset ; dct:title "Jeu {n}" ; dct:modified "2024-0{n}-01" ;
   dcat:distribution <{base}/dist/{n}> , <{base}/dist/{n}-pdf> .
<{base}/dist/{n}> a dcat:Distribution ; dcat:downloadURL <{base}/files/{n}.csv> ; dct:format "CSV" ; dcat:byteSize "42" .
<{base}/dist/{n}-pdf> a dcat:Distribution ; dcat:accessURL <{base}/files/{n}.pdf> ; dcat:mediaType <http://www.iana.org/assignments/media-types/application/pdf> .
{next}"""


def test_dcat_turtle_follows_hydra_pages(hub: CatalogBuilder, http_server: FixtureServer) -> None:
    base = http_server.url("")
    nxt = f'<{base}/catalog.ttl> hydra:next <{base}/catalog.ttl?page=2> .'
    http_server.serve("/catalog.ttl?page=2", TTL_PAGE.format(base=base, n=2, next=""), content_type="text/turtle")
    http_server.serve("/catalog.ttl", TTL_PAGE.format(base=base, n=1, next=nxt), content_type="text/turtle")
    hub.dataset("d", [f"dcat: {base}/catalog.ttl\n    formats: [csv]"])
    resources, failures = expand(entry(hub, "d"))
    assert failures == []
    assert sorted(r.location for r in resources) == [f"{base}/files/1.csv", f"{base}/files/2.csv"]
    assert {r.remote_size for r in resources} == {42}
    assert sorted(r.remote_modified for r in resources) == ["2024-01-01", "2024-02-01"]


def test_dcat_page_pointing_to_itself_is_stopped(hub: CatalogBuilder, http_server: FixtureServer) -> None:
    base = http_server.url("")
    http_server.serve("/catalog.ttl", TTL_PAGE.format(base=base, n=1, next=f"<{base}/catalog.ttl> hydra:next <{base}/catalog.ttl?p=x> ."),
                      content_type="text/turtle")
    hub.dataset("d", [f"dcat: {base}/catalog.ttl"])
    resources, (failure,) = expand(entry(hub, "d"))
    assert resources == [] and failure.state == "failed"
    assert "same page again" in failure.reason and "catalog.ttl" in failure.reason


def test_portal_answering_html_fails_with_the_fix(hub: CatalogBuilder, http_server: FixtureServer) -> None:
    http_server.serve("/site/api/1/datasets/", "<!DOCTYPE html><html><body>Accueil</body></html>", content_type="text/html")
    hub.dataset("h", [f"udata: {http_server.url('/site')}\n    q: irve"])
    _, (failure,) = expand(entry(hub, "h"))
    assert "HTML page instead of JSON" in failure.reason and "/site/api/1/datasets/" in failure.reason


def test_redirect_of_a_portal_to_a_file_url_is_refused(hub: CatalogBuilder, http_server: FixtureServer) -> None:
    from partage.fetch import get_document

    http_server.serve("/catalog.rdf", "", redirect="file:///etc/passwd")
    with pytest.raises(TerminalFetchError, match="only http"):
        get_document(http_server.url("/catalog.rdf"))


def test_requests_per_host_are_limited(http_server: FixtureServer, tmp_path: Path, monkeypatch) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from partage.fetch import get_document

    monkeypatch.setenv("PARTAGE_HOST_CONCURRENCY", "2")
    for i in range(6):
        http_server.serve(f"/slow/{i}", "x", delay=0.3)
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda i: get_document(http_server.url(f"/slow/{i}")), range(6)))
    assert len(http_server.requests("/slow/0")) == 1 and http_server.max_in_flight == 2


# -- harvests under Prefect -------------------------------------------------------------------


def body_requests(server: FixtureServer, prefix: str) -> list[tuple[str, int, int]]:
    return [(r.path, r.status, r.body_bytes) for r in server.log if r.path.startswith(prefix)]


@pytest.mark.slow
def test_ckan_harvest_then_unchanged_reharvest_downloads_no_body(hub: CatalogBuilder, http_server: FixtureServer, harvest) -> None:
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    http_server.serve("/files/a.csv", COMMUNES_CSV)
    http_server.serve("/files/b.csv", COMMUNES_CSV.replace("Ajaccio", "Aiacciu"))
    base = serve_ckan(http_server, [ckan_package("a", [ckan_resource(http_server, "ra", "/files/a.csv")]),
                                    ckan_package("b", [ckan_resource(http_server, "rb", "/files/b.csv")])])
    hub.dataset("communes", [f"ckan: {base}\n    formats: [CSV]"], schema=SCHEMA, extra="duplicates: keep  # the same communes in every file\n")
    first = harvest()
    assert first.exit_code == 0 and [s.state for s in first.sources] == ["updated", "updated"]
    assert query(hub, "SELECT count(*), count(DISTINCT _source) FROM communes")[0] == (6, 2)
    assert query(hub, "SELECT code_insee FROM communes WHERE nom = 'Aiacciu'") == [("2A004",)]
    second = harvest()
    assert [(s.state, s.layer, s.body_bytes) for s in second.sources] == [("unchanged", "etag", 0)] * 2
    assert [st for _, st, _ in body_requests(http_server, "/files/")] == [200, 200, 304, 304]
    assert query(hub, "SELECT count(*) FROM _partage.versions")[0][0] == 1
    rows = query(hub, "SELECT remote_id, origin IS NOT NULL, layer FROM _partage.sources ORDER BY remote_id")
    assert rows == [("ra", True, "etag"), ("rb", True, "etag")]


@pytest.mark.slow
def test_resource_that_disappears_is_gone_with_a_date_and_stays_in_history(
    hub: CatalogBuilder, http_server: FixtureServer, harvest
) -> None:
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    http_server.serve("/files/a.csv", COMMUNES_CSV)
    http_server.serve("/files/b.csv", "code_insee,nom,population,surface_km2,date_maj\n" + MORE)
    ra, rb = ckan_resource(http_server, "ra", "/files/a.csv"), ckan_resource(http_server, "rb", "/files/b.csv")
    base = serve_ckan(http_server, [ckan_package("a", [ra, rb])])
    hub.dataset("communes", [f"ckan: {base}"], schema=SCHEMA)
    harvest()
    assert query(hub, "SELECT count(*) FROM communes")[0][0] == 4
    serve_ckan(http_server, [ckan_package("a", [ra])])
    second = harvest()
    assert second.exit_code == 0
    assert sorted(s.state for s in second.sources) == ["gone", "unchanged"]
    (gone,) = query(hub, "SELECT state, gone_since IS NOT NULL, reason FROM _partage.sources WHERE remote_id = 'rb'")
    assert gone[:2] == ("gone", True) and "no longer listed" in gone[2]
    assert query(hub, "SELECT count(*) FROM communes")[0][0] == 3
    assert query(hub, "SELECT count(*) FROM history.communes WHERE nom = 'Bourg-en-Bresse'")[0][0] == 1
    from typer.testing import CliRunner

    from partage.cli import app

    shown = CliRunner().invoke(app, ["status", "communes", "--sources", "--warehouse", str(hub.warehouse)],
                               env={"COLUMNS": "250"})
    assert shown.exit_code == 0
    import datetime as dt

    assert f"gone since {dt.datetime.now(dt.UTC):%Y-%m-%d}" in shown.output and "etag" in shown.output
    assert "rb" in shown.output and "no longer listed" in shown.output
    # it comes back: the same key, no longer gone
    serve_ckan(http_server, [ckan_package("a", [ra, rb])])
    third = harvest()
    assert "gone" not in [s.state for s in third.sources]
    assert query(hub, "SELECT state, gone_since FROM _partage.sources WHERE remote_id = 'rb'")[0][1] is None
    assert query(hub, "SELECT count(*) FROM _partage.sources")[0][0] == 2


@pytest.mark.slow
def test_changed_remote_id_or_url_is_mapped_not_duplicated(hub: CatalogBuilder, http_server: FixtureServer, harvest) -> None:
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    http_server.serve("/files/a.csv", COMMUNES_CSV)
    http_server.serve("/files/a-v2.csv", COMMUNES_CSV)
    base = serve_ckan(http_server, [ckan_package("a", [ckan_resource(http_server, "ra", "/files/a.csv")])])
    hub.dataset("communes", [f"ckan: {base}"], schema=SCHEMA)
    harvest()
    (key,) = [r[0] for r in query(hub, "SELECT source_key FROM _partage.sources")]
    serve_ckan(http_server, [ckan_package("a", [ckan_resource(http_server, "ra-new", "/files/a.csv?_=123")])])
    assert [s.source_key for s in harvest().sources] == [key]  # new id, same canonical URL
    serve_ckan(http_server, [ckan_package("a", [ckan_resource(http_server, "ra-new", "/files/a-v2.csv")])])
    (src,) = harvest().sources  # same id, new URL
    assert src.source_key == key and src.state == "unchanged" and src.layer == "sha256"
    assert query(hub, "SELECT count(*), min(state) FROM _partage.sources") == [(1, "unchanged")]


@pytest.mark.slow
def test_portal_modified_date_decides_when_the_server_gives_no_validators(
    hub: CatalogBuilder, http_server: FixtureServer, harvest
) -> None:
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    meta = {"dataset_id": "communes", "metas": {"default": {"data_processed": "2024-02-01T00:00:00+00:00"}}}
    http_server.serve("/api/explore/v2.1/catalog/datasets/communes", json.dumps(meta), **JSON)
    export = "/api/explore/v2.1/catalog/datasets/communes/exports/csv"
    http_server.serve(export, COMMUNES_CSV.replace(",", ";"), etag=False, last_modified=False)
    hub.dataset("communes", [f"ods: {http_server.url('')}\n    dataset: communes"], schema=SCHEMA)
    assert [s.state for s in harvest().sources] == ["updated"]
    (src,) = harvest().sources
    assert (src.state, src.layer, src.body_bytes) == ("unchanged", "portal-modified", 0)
    assert len(http_server.requests(export)) == 1  # not even asked
    meta["metas"]["default"]["data_processed"] = "2024-03-01T00:00:00+00:00"
    http_server.serve("/api/explore/v2.1/catalog/datasets/communes", json.dumps(meta), **JSON)
    http_server.serve(export, (COMMUNES_CSV + MORE).replace(",", ";"), etag=False, last_modified=False)
    (src,) = harvest().sources
    assert src.state == "updated" and query(hub, "SELECT count(*) FROM communes")[0][0] == 4
    assert query(hub, "SELECT code_insee FROM communes ORDER BY code_insee")[0] == ("01001",)


@pytest.mark.slow
def test_looping_html_and_silent_portals_fail_clearly_while_the_others_finish(
    hub: CatalogBuilder, http_server: FixtureServer, harvest, monkeypatch
) -> None:
    monkeypatch.setenv("PARTAGE_READ_TIMEOUT", "0.5")
    monkeypatch.setenv("PARTAGE_RETRY_ATTEMPTS", "1")
    monkeypatch.setenv("PARTAGE_TASK_RETRIES", "0")
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    loop = http_server.url("/loop/api/1/datasets/?page=2")
    http_server.serve("/loop/api/1/datasets/", json.dumps({"data": [{"id": "x", "resources": []}], "next_page": loop}), **JSON)
    http_server.serve("/html/api/action/package_search", "<html><body>Portail</body></html>", content_type="text/html")
    http_server.serve("/silent/catalog.ttl", "", delay=3)
    http_server.serve("/good.csv", COMMUNES_CSV)
    hub.dataset("loops", [f"udata: {http_server.url('/loop')}\n    organization: o\n    q: x"], schema=SCHEMA)
    hub.dataset("html", [f"ckan: {http_server.url('/html')}"], schema=SCHEMA)
    hub.dataset("silent", [f"dcat: {http_server.url('/silent/catalog.ttl')}"], schema=SCHEMA)
    hub.dataset("good", [f"url: {http_server.url('/good.csv')}"], schema=SCHEMA)
    summary = harvest()
    by_ds = {d.dataset_id: d.sources for d in summary.datasets}
    assert [s.state for s in by_ds["good"]] == ["updated"]
    assert query(hub, "SELECT count(*) FROM good")[0][0] == 3
    (loops,), (html,), (silent,) = by_ds["loops"], by_ds["html"], by_ds["silent"]
    assert loops.state == "failed" and "same page again" in loops.reason and "/loop/api/1/datasets/" in loops.reason
    assert html.state == "failed" and "HTML page instead of JSON" in html.reason
    assert silent.state == "failed" and "timed out" in silent.reason and "/silent/catalog.ttl" in silent.reason
    assert summary.exit_code == 1


@pytest.mark.slow
@pytest.mark.parametrize("runner", ["prefect", "plain"])
def test_a_portal_outage_keeps_the_portals_rows_beside_a_changed_file(hub: CatalogBuilder, http_server: FixtureServer,
                                                                      monkeypatch, request, runner: str) -> None:
    """Issue #22's data loss: without Prefect the sources were planned before their records were read, so
    the portal's resources were marked gone and the new version lost their rows (2 rows instead of 5)."""
    from partage.pipeline import harvest_without_prefect

    monkeypatch.setenv("PARTAGE_RETRY_ATTEMPTS", "1")
    monkeypatch.setenv("PARTAGE_TASK_RETRIES", "0")
    run = request.getfixturevalue("harvest") if runner == "prefect" else \
        (lambda: harvest_without_prefect(hub.catalog, hub.warehouse))
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    http_server.serve("/files/a.csv", COMMUNES_CSV)
    base = serve_ckan(http_server, [ckan_package("a", [ckan_resource(http_server, "ra", "/files/a.csv")])])
    header = COMMUNES_CSV.splitlines()[0]
    hub.file("local.csv", f"{header}\n01002,Ambérieux,1200,3.5,2024-01-01\n")
    hub.dataset("communes", [f"ckan: {base}", "file: ../data/local.csv"], schema=SCHEMA)
    run()
    assert query(hub, "SELECT count(*) FROM communes")[0][0] == 4
    http_server.serve("/ckan/api/action/package_search", "down", script=[500] * 5)
    hub.file("local.csv", f"{header}\n01002,Ambérieux,1200,3.5,2024-01-01\n01004,Ambérieu-en-Bugey,14000,24.6,2024-01-01\n")
    summary = run()
    assert summary.exit_code == 1  # the portal could not be listed: said, not hidden
    assert query(hub, "SELECT count(*) FROM communes")[0][0] == 5  # 3 kept from the portal + 2 from the file
    assert query(hub, "SELECT count(*) FROM _partage.sources WHERE state = 'gone'")[0][0] == 0


@pytest.mark.slow
def test_portal_that_cannot_be_listed_keeps_its_resources_data(hub: CatalogBuilder, http_server: FixtureServer, harvest,
                                                              monkeypatch) -> None:
    monkeypatch.setenv("PARTAGE_RETRY_ATTEMPTS", "1")
    monkeypatch.setenv("PARTAGE_TASK_RETRIES", "0")
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    http_server.serve("/files/a.csv", COMMUNES_CSV)
    base = serve_ckan(http_server, [ckan_package("a", [ckan_resource(http_server, "ra", "/files/a.csv")])])
    hub.dataset("communes", [f"ckan: {base}"], schema=SCHEMA)
    harvest()
    http_server.serve("/ckan/api/action/package_search", "down", script=[500] * 5)
    summary = harvest()
    states = sorted((s.state, s.reason.split(":")[0]) for s in summary.sources)
    assert [s for s, _ in states] == ["failed", "failed"]
    assert any(r.startswith("not checked") for _, r in states)
    assert query(hub, "SELECT count(*) FROM communes")[0][0] == 3  # still the old data, not gone
    assert query(hub, "SELECT count(*) FROM _partage.sources WHERE state = 'gone'")[0][0] == 0
    http_server.routes["/ckan/api/action/package_search"].script.clear()
    serve_ckan(http_server, [ckan_package("a", [ckan_resource(http_server, "ra", "/files/a.csv")])])
    assert [s.state for s in harvest().sources] == ["unchanged"]
    assert query(hub, "SELECT count(*) FROM _partage.sources")[0][0] == 1  # the portal's failure row went away


@pytest.mark.slow
def test_partner_url_with_basic_and_header_auth_from_env(hub: CatalogBuilder, http_server: FixtureServer, harvest,
                                                         monkeypatch) -> None:
    monkeypatch.setenv("PARTNER_PASS", "s3cr3t-pass")
    monkeypatch.setenv("PARTNER_KEY", "k3y-value")
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    url = http_server.serve("/partner.csv", COMMUNES_CSV)
    hub.dataset("p", [f"url: {url}\n    auth: {{basic: {{username: metro, password: env:PARTNER_PASS}}, headers: {{X-Api-Key: env:PARTNER_KEY}}}}"],
                schema=SCHEMA, access="partners")
    assert harvest().exit_code == 0
    (req,) = http_server.requests("/partner.csv")
    import base64

    assert req.headers["Authorization"] == "Basic " + base64.b64encode(b"metro:s3cr3t-pass").decode()
    assert req.headers["X-Api-Key"] == "k3y-value"
    dump = json.dumps(query(hub, "SELECT * FROM _partage.sources"), default=str) + json.dumps(
        query(hub, "SELECT * FROM _partage.source_events"), default=str)
    assert "s3cr3t" not in dump and "k3y-value" not in dump


def test_a_portals_link_to_a_web_page_is_skipped_with_the_formats_fix(hub: CatalogBuilder, http_server: FixtureServer,
                                                                      harvest) -> None:
    """#23 case 5: a map viewer a portal lists beside the data is not a failure of the data, and its
    URL is not in the catalog to fix: `skipped`, with the `formats:` fix; the run exits 0."""
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    http_server.serve("/files/a.csv", COMMUNES_CSV)
    http_server.serve("/viewer", "<!DOCTYPE html><html><body>Carte</body></html>", content_type="text/html")
    base = serve_ckan(http_server, [ckan_package("a", [ckan_resource(http_server, "ra", "/files/a.csv"),
                                                       ckan_resource(http_server, "rv", "/viewer", fmt="")])])
    hub.dataset("communes", [f"ckan: {base}"], schema=SCHEMA)
    summary = harvest()
    states = {s.label.rsplit("/", 1)[-1]: s for s in summary.sources}
    assert states["a.csv"].state == "updated" and states["viewer"].state == "skipped", summary.sources
    reason = states["viewer"].reason
    assert "web page" in reason and "formats:" in reason and "fix the source's URL in the catalog" not in reason
    assert summary.exit_code == 0
    assert query(hub, "SELECT count(*) FROM communes")[0][0] == 3
    assert query(hub, "SELECT state FROM _partage.sources WHERE remote_id = 'rv'") == [("skipped",)]


def test_a_url_in_the_catalog_answering_html_still_fails_naming_the_catalog_fix(hub: CatalogBuilder,
                                                                              http_server: FixtureServer, harvest) -> None:
    url = http_server.serve("/login", "<html><body>Connexion</body></html>", content_type="text/html")
    hub.dataset("p", [f"url: {url}"])
    (src,) = harvest().sources
    assert src.state == "failed" and "fix the source's URL in the catalog" in src.reason


def test_a_refused_credential_is_not_told_to_add_auth(hub: CatalogBuilder, http_server: FixtureServer, harvest,
                                                      monkeypatch) -> None:
    """#23 case 5: a 401 on a source that already sends `auth:` says the credential was refused."""
    monkeypatch.setenv("PARTNER_TOKEN", "expired-token-value")
    http_server.serve("/with-auth.csv", COMMUNES_CSV, script=[401] * 5)
    http_server.serve("/no-auth.csv", COMMUNES_CSV, script=[401] * 5)
    hub.dataset("avec", [f"url: {http_server.url('/with-auth.csv')}\n    auth: {{bearer: env:PARTNER_TOKEN}}"],
                access="partners")
    hub.dataset("sans", [f"url: {http_server.url('/no-auth.csv')}"])
    got = {s.dataset_id: s for s in harvest().sources}
    assert got["avec"].state == "failed" and "refused the credential" in got["avec"].reason
    assert "add 'auth:'" not in got["avec"].reason and "expired-token-value" not in got["avec"].reason
    assert got["sans"].state == "failed" and "add 'auth:'" in got["sans"].reason


@pytest.mark.parametrize("source, message", [
    ("url: https://x.org/a.csv\n    organization: metropole", "organization: not used by a 'url' source"),
    ("dcat: https://x.org/catalog.ttl\n    dataset: abc", "dataset: not used by a 'dcat' source"),
    ("ckan: https://x.org\n    schema: etalab/schema-irve-statique", "schema: not used by a 'ckan' source"),
    ("ckan: data.example.org", "ckan must be the portal's http(s) address"),
    ("ckan: https://admin:hunter2@data.example.org", "ckan must not embed a password"),  # #26: echoed and stored before
    ("url: https://metro:hunter2@x.org/a.csv", "url must not embed a password"),
    ("file: s3://bucket/x/*.csv\n    auth: {bearer: env:T}", "auth does not apply to 'file' sources"),
])
def test_catalog_refuses_filters_a_kind_does_not_use(hub: CatalogBuilder, source: str, message: str) -> None:
    from partage.errors import CatalogError

    hub.dataset("x", [source])
    with pytest.raises(CatalogError) as e:
        load_catalog(hub.catalog)
    assert message in str(e.value) and "x.yaml" in str(e.value) and "hunter2" not in str(e.value)
