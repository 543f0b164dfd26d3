"""Harvesting a real CKAN 2.11 (started by .ci/run): an organization with uploaded CSV resources,
a private dataset read with a token, one resource edited between two harvests."""

from __future__ import annotations

import io
import os
import uuid

import pytest

from .conftest import COMMUNES_CSV, COMMUNES_SCHEMA, CatalogBuilder, query

pytestmark = pytest.mark.slow
SCHEMA = "test/communes@1.0"


@pytest.fixture
def ckan_admin():
    if not (os.environ.get("CKAN_URL") and os.environ.get("CKAN_API_TOKEN")):
        message = "CKAN_URL / CKAN_API_TOKEN are not set: start CKAN with `make ckan` (.ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but " + message)
        pytest.skip(message)
    import ckanapi

    return ckanapi.RemoteCKAN(os.environ["CKAN_URL"], apikey=os.environ["CKAN_API_TOKEN"])


@pytest.fixture
def organization(ckan_admin):
    """A fresh organization with two public datasets and a private one, each with an uploaded CSV
    (and a PDF that the format filter leaves out); purged afterwards."""
    tag = uuid.uuid4().hex[:8]
    org = ckan_admin.action.organization_create(name=f"harvest-{tag}", title=f"Harvest test {tag}")
    made: dict[str, dict] = {}
    try:
        for name, private, csv in (("a", False, COMMUNES_CSV),
                                   ("b", False, COMMUNES_CSV.replace("Bastia", "Bastìa")),
                                   ("p", True, COMMUNES_CSV.replace("Ajaccio", "Aiacciu"))):
            pkg = ckan_admin.action.package_create(name=f"harvest-{tag}-{name}", owner_org=org["id"], private=private)
            made[name] = ckan_admin.action.resource_create(
                package_id=pkg["id"], name=f"{name}.csv", format="CSV", upload=(f"{name}.csv", io.BytesIO(csv.encode())))
            ckan_admin.action.resource_create(package_id=pkg["id"], name="notice", format="PDF",
                                              upload=("notice.pdf", io.BytesIO(b"%PDF-1.4 not data")))
        yield org["name"], made
    finally:
        for name in ("a", "b", "p"):
            try:
                ckan_admin.action.dataset_purge(id=f"harvest-{tag}-{name}")
            except Exception:
                pass
        ckan_admin.action.organization_purge(id=org["id"])


def test_real_ckan_harvest_then_one_edited_resource_makes_exactly_one_new_version(
    hub: CatalogBuilder, harvest, ckan_admin, organization
) -> None:
    org, made = organization
    url = os.environ["CKAN_URL"]
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    hub.dataset("communes", [f"ckan: {url}\n    organization: {org}\n    formats: [CSV]\n    auth: {{bearer: env:CKAN_API_TOKEN}}"],
                schema=SCHEMA, access="partners", extra="duplicates: keep  # the same communes in every file\n")
    hub.dataset("public", [f"ckan: {url}\n    organization: {org}\n    formats: [CSV]"], schema=SCHEMA, extra="duplicates: keep  # the same communes in every file\n")

    first = harvest()
    assert first.exit_code == 0, [s.reason for s in first.sources]
    by_ds = {d.dataset_id: d for d in first.datasets}
    assert sorted(s.state for s in by_ds["communes"].sources) == ["updated"] * 3
    assert len(by_ds["public"].sources) == 2  # without the token, the private dataset is not listed
    assert query(hub, "SELECT count(*) FROM communes")[0][0] == 9
    assert query(hub, "SELECT count(*) FROM communes WHERE nom = 'Aiacciu'")[0][0] == 1
    assert query(hub, "SELECT DISTINCT length(code_insee) FROM communes") == [(5,)]
    remote_ids = {r[0] for r in query(hub, "SELECT remote_id FROM _partage.sources WHERE dataset_id = 'communes'")}
    assert remote_ids == {r["id"] for r in made.values()}
    token = os.environ["CKAN_API_TOKEN"]
    for table in ("_partage.sources", "_partage.source_events"):
        assert token not in str(query(hub, f"SELECT * FROM {table}"))

    ckan_admin.action.resource_patch(id=made["b"]["id"], upload=(
        "b.csv", io.BytesIO((COMMUNES_CSV + "01053,Bourg-en-Bresse,41000,23.86,2024-06-01\n").encode())))
    second = harvest()
    assert second.exit_code == 0
    sources = {d.dataset_id: d for d in second.datasets}["communes"].sources
    changed = [s for s in sources if s.state == "updated"]
    same = [s for s in sources if s.state == "unchanged"]
    assert len(changed) == 1 and len(same) == 2
    assert all(s.body_bytes == 0 and s.layer in ("etag", "last-modified") for s in same)
    versions = query(hub, "SELECT count(*) FROM _partage.versions WHERE dataset_id = 'communes'")[0][0]
    assert versions == 2
    assert query(hub, "SELECT count(*) FROM communes")[0][0] == 10
