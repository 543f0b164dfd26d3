"""Publishing: to a real CKAN (started by .ci/run), as DCAT-AP, as Data Packages."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
from rdflib import Graph
from rdflib import namespace as ns

from .conftest import COMMUNES_CSV, COMMUNES_SCHEMA, CatalogBuilder, query

pytestmark = pytest.mark.slow
SCHEMA = "test/communes@1.0"
CKAN_HOME = Path(os.environ.get("CKAN_HOME", Path.home() / ".cache" / "ckan-test"))
DCAT_CHECK = Path(__file__).resolve().parents[2] / "shared" / "ckan" / "dcat-check.py"


@pytest.fixture(scope="session")
def ckan_env() -> dict[str, str]:
    names = ("CKAN_URL", "CKAN_API_TOKEN", "CKAN_ORG")
    if not all(os.environ.get(n) for n in names):
        message = "CKAN_URL / CKAN_API_TOKEN / CKAN_ORG are not set: start CKAN with `make ckan` (.ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but " + message)
        pytest.skip(message)
    return {n: os.environ[n] for n in names}


@pytest.fixture
def ckan_admin(ckan_env: dict[str, str]):
    import ckanapi

    return ckanapi.RemoteCKAN(ckan_env["CKAN_URL"], apikey=ckan_env["CKAN_API_TOKEN"])


@pytest.fixture
def anonymous(ckan_env: dict[str, str]):
    import ckanapi

    return ckanapi.RemoteCKAN(ckan_env["CKAN_URL"])


def three_datasets(hub: CatalogBuilder) -> dict[str, str]:
    """An open, a partners and an internal dataset, each with a unique name on the shared CKAN."""
    tag = uuid.uuid4().hex[:8]
    ids = {access: f"t{tag}-{access}" for access in ("open", "partners", "internal")}
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    hub.file("c.csv", COMMUNES_CSV)
    for access, ds_id in ids.items():
        hub.dataset(ds_id, ["file: ../data/c.csv"], schema=SCHEMA, access=access,
                    extra=f"description: Communes ({access})\nkeywords: [communes, test]\npublisher: Métropole Test\n")
    return ids


def ckan_targets(hub: CatalogBuilder, env: dict[str, str], extra: str = "") -> None:
    (hub.catalog / "_targets.yaml").write_text(
        f"portail:\n  ckan: {env['CKAN_URL']}\n  api_token: env:CKAN_API_TOKEN\n  organization: {env['CKAN_ORG']}\n{extra}",
        encoding="utf-8")


def run_publish(hub: CatalogBuilder, **kwargs):
    from flows.publish import publish

    return publish(catalog=str(hub.catalog), warehouse=str(hub.warehouse), **kwargs)


def purge(admin, names) -> None:
    for name in names:
        try:
            admin.action.dataset_purge(id=name)
        except Exception:
            pass


def test_ckan_access_idempotence_and_one_field_change(
    hub: CatalogBuilder, harvest, ckan_env, ckan_admin, anonymous, caplog: pytest.LogCaptureFixture
) -> None:
    import ckanapi

    ids = three_datasets(hub)
    ckan_targets(hub, ckan_env)
    assert harvest().exit_code == 0
    caplog.set_level(logging.DEBUG)
    try:
        first = run_publish(hub)
        assert first.exit_code == 0, [(i.dataset_id, i.error) for i in first.items]
        actions = {i.dataset_id: i.action for i in first.items}
        assert actions == {ids["open"]: "create", ids["partners"]: "create", ids["internal"]: "skip"}
        assert first.writes["portail"] == 10  # 2 package_create + 2 × 4 resource uploads

        # open: public, with its four resources downloadable byte for byte
        pkg = anonymous.action.package_show(id=ids["open"])
        assert pkg["private"] is False and pkg["title"] == f"Jeu {ids['open']}"
        extras = {e["key"]: e["value"] for e in pkg["extras"]}
        assert extras["partage_schema"] == SCHEMA and json.loads(extras["partage_quality"])["rows"] == 3
        exports_dir = next((hub.warehouse / "exports" / ids["open"]).iterdir())
        local = {p.name: p.read_bytes() for p in exports_dir.iterdir()}
        local["schema.json"] = (hub.warehouse / ids["open"] / exports_dir.name / "schema.json").read_bytes()
        assert len(pkg["resources"]) == 4
        for res in pkg["resources"]:
            body = httpx.get(res["url"], follow_redirects=True, timeout=30).content
            assert hashlib.sha256(body).hexdigest() == res["hash"]
            assert body in local.values()

        # partners: private, invisible to anonymous show and search
        with pytest.raises((ckanapi.NotAuthorized, ckanapi.NotFound)):
            anonymous.action.package_show(id=ids["partners"])
        found = anonymous.action.package_search(fq=f"name:{ids['partners']}", include_private=True)
        assert found["count"] == 0
        assert ckan_admin.action.package_show(id=ids["partners"])["private"] is True

        # internal: never sent
        with pytest.raises(ckanapi.NotFound):
            ckan_admin.action.package_show(id=ids["internal"])

        # unchanged republish: zero writes, metadata_modified untouched
        before = {k: ckan_admin.action.package_show(id=ids[k]) for k in ("open", "partners")}
        second = run_publish(hub)
        assert second.writes["portail"] == 0
        assert {i.action for i in second.items if i.dataset_id != ids["internal"]} == {"unchanged"}
        for k in ("open", "partners"):
            assert ckan_admin.action.package_show(id=ids[k])["metadata_modified"] == before[k]["metadata_modified"]

        # one field changes: exactly that field changes on the portal
        path = hub.catalog / f"{ids['open']}.yaml"
        path.write_text(path.read_text(encoding="utf-8").replace(f"title: Jeu {ids['open']}", "title: Communes de test"),
                        encoding="utf-8")
        third = run_publish(hub)
        (item,) = [i for i in third.items if i.dataset_id == ids["open"]]
        assert item.action == "update" and set(item.changes) == {"title"}
        assert third.writes["portail"] == 1
        after = ckan_admin.action.package_show(id=ids["open"])
        changed = {k for k in after if after[k] != before["open"].get(k)}
        assert changed == {"title", "metadata_modified"}, changed

        token = ckan_env["CKAN_API_TOKEN"]
        assert token not in caplog.text
        assert all(token not in str(r.__dict__) for r in caplog.records)
        assert not any(token.encode() in f.read_bytes() for f in hub.warehouse.rglob("*") if f.is_file())
    finally:
        purge(ckan_admin, ids.values())


def test_ckan_dataset_leaving_the_catalog_is_deleted_after_the_grace_period(
    hub: CatalogBuilder, harvest, ckan_env, ckan_admin
) -> None:
    ids = three_datasets(hub)
    (hub.catalog / f"{ids['partners']}.yaml").unlink()
    (hub.catalog / f"{ids['internal']}.yaml").unlink()
    ckan_targets(hub, ckan_env, "  grace_days: 7\n")
    harvest()
    try:
        run_publish(hub)
        (hub.catalog / f"{ids['open']}.yaml").unlink()
        waiting = run_publish(hub)
        (item,) = waiting.items
        assert item.action == "skip" and "grace period" in item.detail
        assert ckan_admin.action.package_show(id=ids["open"])["state"] == "active"
        ckan_targets(hub, ckan_env, "  grace_days: 0\n")
        gone = run_publish(hub)
        assert [i.action for i in gone.items] == ["delete"] and gone.exit_code == 0
        pkg = ckan_admin.action.package_show(id=ids["open"])  # still there for a sysadmin: deleted, not purged
        assert pkg["state"] == "deleted"
    finally:
        purge(ckan_admin, ids.values())


def test_ckan_dataset_turned_internal_is_taken_down_at_once(
    hub: CatalogBuilder, harvest, ckan_env, ckan_admin, anonymous
) -> None:
    import ckanapi

    ids = three_datasets(hub)
    ckan_targets(hub, ckan_env)
    harvest()
    try:
        run_publish(hub, ids=[ids["open"]])
        assert anonymous.action.package_show(id=ids["open"])["state"] == "active"
        path = hub.catalog / f"{ids['open']}.yaml"
        path.write_text(path.read_text(encoding="utf-8").replace("access: open", "access: internal"), encoding="utf-8")
        (item,) = run_publish(hub, ids=[ids["open"]]).items
        assert item.action == "delete" and item.status == "done"
        with pytest.raises((ckanapi.NotFound, ckanapi.NotAuthorized)):
            anonymous.action.package_show(id=ids["open"])
    finally:
        purge(ckan_admin, ids.values())


def test_ckan_refuses_to_take_over_a_dataset_it_did_not_publish(hub: CatalogBuilder, harvest, ckan_env, ckan_admin) -> None:
    ids = three_datasets(hub)
    ckan_targets(hub, ckan_env)
    harvest()
    ckan_admin.action.package_create(name=ids["open"], title="Someone else's", owner_org=ckan_env["CKAN_ORG"])
    try:
        (item,) = run_publish(hub, ids=[ids["open"]]).items
        assert item.action == "skip" and "not published by Partage" in item.detail
        assert ckan_admin.action.package_show(id=ids["open"])["title"] == "Someone else's"
    finally:
        purge(ckan_admin, ids.values())


def test_unreachable_portal_fails_its_datasets_not_the_run(hub: CatalogBuilder, harvest) -> None:
    ids = three_datasets(hub)
    (hub.catalog / "_targets.yaml").write_text(
        "mort:\n  ckan: http://127.0.0.1:9\n  organization: x\nfichiers:\n  datapackage: public\n", encoding="utf-8")
    harvest()
    os.environ["PARTAGE_RETRY_ATTEMPTS"] = "1"
    try:
        summary = run_publish(hub)
    finally:
        del os.environ["PARTAGE_RETRY_ATTEMPTS"]
    assert summary.exit_code == 1
    assert {i.status for i in summary.items if i.target == "mort" and i.dataset_id != ids["internal"]} == {"failed"}
    assert (hub.root / "public" / ids["open"] / "datapackage.json").is_file()


# -- file targets: no portal needed -----------------------------------------------------------


def file_targets(hub: CatalogBuilder) -> None:
    (hub.catalog / "_targets.yaml").write_text(
        "dcat:\n  dcat: public/catalog\n  base_url: https://donnees.exemple.fr/partage/\n"
        "fichiers:\n  datapackage: public/datasets\n", encoding="utf-8")


def test_dcat_has_the_mandatory_properties_of_every_open_dataset_and_nothing_else(hub: CatalogBuilder, harvest) -> None:
    ids = three_datasets(hub)
    file_targets(hub)
    harvest()
    first = run_publish(hub)
    assert first.exit_code == 0
    for fmt, name in (("turtle", "catalog.ttl"), ("json-ld", "catalog.jsonld")):
        g = Graph().parse(hub.root / "public" / "catalog" / name, format=fmt)
        (catalog,) = list(g.subjects(ns.RDF.type, ns.DCAT.Catalog))
        for prop in (ns.DCTERMS.title, ns.DCTERMS.description, ns.DCTERMS.publisher):
            assert g.value(catalog, prop) is not None, prop
        datasets = list(g.subjects(ns.RDF.type, ns.DCAT.Dataset))
        assert [str(g.value(d, ns.DCTERMS.identifier)) for d in datasets] == [ids["open"]]
        (d,) = datasets
        assert (catalog, ns.DCAT.dataset, d) in g
        for prop in (ns.DCTERMS.title, ns.DCTERMS.description, ns.DCAT.distribution, ns.DCAT.keyword, ns.DCTERMS.publisher,
                     ns.DCAT.contactPoint, ns.DCTERMS.accrualPeriodicity, ns.DCTERMS.conformsTo):
            assert g.value(d, prop) is not None, prop
        dists = list(g.objects(d, ns.DCAT.distribution))
        assert len(dists) == 4
        for dist in dists:
            assert str(g.value(dist, ns.DCAT.accessURL)).startswith("https://donnees.exemple.fr/partage/")
            assert g.value(dist, ns.DCTERMS.license) is not None and g.value(dist, ns.DCTERMS.format) is not None
        text = (hub.root / "public" / "catalog" / name).read_text(encoding="utf-8")
        assert ids["partners"] not in text and ids["internal"] not in text
    again = run_publish(hub)
    assert again.writes == {"dcat": 0, "fichiers": 0}


def test_publishing_one_dataset_to_dcat_keeps_the_others_in_the_catalog_file(hub: CatalogBuilder, harvest) -> None:
    """#23 case 7: `partage publish ID --target dcat` rewrote catalog.ttl with ID alone (and its plan
    said `unchanged`). The others stay as published; one that stopped being open goes at once."""
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    hub.file("c.csv", COMMUNES_CSV)
    for ds_id in ("alpha", "beta", "gamma"):
        hub.dataset(ds_id, ["file: ../data/c.csv"], schema=SCHEMA, access="open",
                    extra=f"description: Communes {ds_id}\nkeywords: [communes]\npublisher: Métropole Test\n")
    file_targets(hub)
    harvest()
    assert run_publish(hub, targets=["dcat"]).exit_code == 0
    ttl = hub.root / "public" / "catalog" / "catalog.ttl"

    def identifiers() -> set[str]:
        g = Graph().parse(ttl, format="turtle")
        return {str(g.value(d, ns.DCTERMS.identifier)) for d in g.subjects(ns.RDF.type, ns.DCAT.Dataset)}

    assert identifiers() == {"alpha", "beta", "gamma"}
    one = run_publish(hub, targets=["dcat"], ids=["alpha"])
    assert [(i.dataset_id, i.action) for i in one.items] == [("alpha", "unchanged")]
    assert one.writes == {"dcat": 0} and identifiers() == {"alpha", "beta", "gamma"}
    hub.dataset("beta", ["file: ../data/c.csv"], schema=SCHEMA, access="internal")  # no harvest: access follows the catalog
    after = run_publish(hub, targets=["dcat"], ids=["alpha"])
    assert ("beta", "delete") in [(i.dataset_id, i.action) for i in after.items]
    assert identifiers() == {"alpha", "gamma"} and "beta" not in ttl.read_text(encoding="utf-8")
    assert query(hub, "SELECT deleted_at IS NOT NULL FROM _partage.publications WHERE dataset_id = 'beta'") == [(True,)]


def test_datapackage_target_validates_with_frictionless(hub: CatalogBuilder, harvest) -> None:
    from frictionless import Package

    ids = three_datasets(hub)
    file_targets(hub)
    harvest()
    run_publish(hub)
    out = hub.root / "public" / "datasets"
    assert sorted(p.name for p in out.iterdir()) == [ids["open"]]
    package = Package(str(out / ids["open"] / "datapackage.json"))
    # the CSV conforms to the published schema (frictionless' Parquet reader needs pandas: checked with DuckDB below)
    report = package.get_resource("data-csv").validate()
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])
    import duckdb

    parquet = out / ids["open"] / f"{ids['open']}.parquet"
    assert duckdb.sql(f"SELECT count(*), min(code_insee) FROM '{parquet}'").fetchall() == [(3, "01001")]
    desc = json.loads((out / ids["open"] / "datapackage.json").read_text())
    assert desc["licenses"][0]["name"] == "etalab-2.0" and desc["resources"][0]["schema"]["primaryKey"] == ["code_insee"]
    rows = list(package.get_resource("data-csv").read_rows())
    assert [r["code_insee"] for r in rows] == ["01001", "2A004", "2B033"]


def test_dry_run_changes_nothing(hub: CatalogBuilder, harvest) -> None:
    three_datasets(hub)
    file_targets(hub)
    harvest()
    summary = run_publish(hub, dry_run=True)
    assert {i.action for i in summary.items} >= {"create"} and summary.writes == {"dcat": 0, "fichiers": 0}
    assert not (hub.root / "public").exists()
    assert query(hub, "SELECT count(*) FROM _partage.publications") == [(0,)]


def test_dcat_output_reads_in_ckanext_dcat(hub: CatalogBuilder, harvest) -> None:
    """The real consumer: ckanext-dcat's RDF parser, as CKAN portals harvest ns.DCAT."""
    python = CKAN_HOME / "venv" / "bin" / "python"
    if not python.exists() or not DCAT_CHECK.exists():
        reason = f"needs the CKAN venv ({python}) and {DCAT_CHECK}"
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but " + reason)
        pytest.skip(reason)
    if subprocess.run([str(python), "-c", "import ckanext.dcat"], capture_output=True).returncode != 0:
        pytest.skip("ckanext-dcat is not installed in the CKAN venv (`make ckan` installs it)")
    ids = three_datasets(hub)
    file_targets(hub)
    harvest()
    run_publish(hub)
    env = {**os.environ, "CKAN_INI": os.environ.get("CKAN_INI", str(CKAN_HOME / "ckan.ini"))}
    for name in ("catalog.ttl", "catalog.jsonld"):
        r = subprocess.run([str(python), str(DCAT_CHECK), str(hub.root / "public" / "catalog" / name)],
                           capture_output=True, text=True, timeout=300, env=env)
        assert r.returncode == 0, r.stderr[-3000:]
        (parsed,) = json.loads(r.stdout)
        assert parsed["name"] == ids["open"] or parsed["title"] == f"Jeu {ids['open']}"
        assert parsed["resources"] == 4 and set(parsed["tags"]) == {"communes", "test"}


def test_ckan_resources_can_be_linked_instead_of_uploaded(hub: CatalogBuilder, harvest, ckan_env, ckan_admin) -> None:
    ids = three_datasets(hub)
    ckan_targets(hub, ckan_env, "  resources: link\n  link_base_url: https://donnees.exemple.fr/partage\n")
    harvest()
    try:
        first = run_publish(hub, ids=[ids["open"]])
        assert first.exit_code == 0 and first.writes["portail"] == 5
        pkg = ckan_admin.action.package_show(id=ids["open"])
        urls = sorted(r["url"] for r in pkg["resources"])
        assert urls == sorted(f"https://donnees.exemple.fr/partage/{ids['open']}/{n}" for n in (
            f"{ids['open']}.csv", f"{ids['open']}.parquet", f"{ids['open']}-schema.json", "validation-report.json"))
        assert all(r.get("url_type") in (None, "") for r in pkg["resources"])
        assert run_publish(hub, ids=[ids["open"]]).writes["portail"] == 0
    finally:
        purge(ckan_admin, ids.values())


def test_a_portal_that_never_answers_times_out(hub: CatalogBuilder, harvest, http_server, monkeypatch) -> None:
    """A CKAN that accepts the connection and says nothing must not hang the run."""
    ids = three_datasets(hub)
    for action in ("package_show", "organization_show"):
        http_server.serve(f"/api/action/{action}", "{}", delay=5)
    (hub.catalog / "_targets.yaml").write_text(
        f"muet:\n  ckan: {http_server.url('')}\n  organization: o\n", encoding="utf-8")
    harvest()
    monkeypatch.setenv("PARTAGE_READ_TIMEOUT", "0.5")
    monkeypatch.setenv("PARTAGE_RETRY_ATTEMPTS", "2")
    import time

    start = time.monotonic()
    summary = run_publish(hub, ids=[ids["open"]])
    assert time.monotonic() - start < 4.5
    (item,) = summary.items
    assert item.status == "failed" and "failed after 2 attempts" in item.error and "Timeout" in item.error
