"""`partage schemas add/list/update --check` against a loopback mirror of schema.data.gouv.fr (#25).

The mirror serves the corpus' copy of the real catalog (`schemas/_catalog/schemas.json`) unchanged and,
at the paths schema.data.gouv.fr uses, the real schema files the corpus holds; nothing else (404).
"""

from __future__ import annotations

import hashlib
import json

import pytest
from typer.testing import CliRunner

from partage.catalog import check_catalog
from partage.cli import app
from partage.errors import SchemaError
from partage.schemas import add_schema, check_updates, list_cached, resolve_schema

from .conftest import SHARED_DATA, CatalogBuilder, FixtureServer

CORPUS = SHARED_DATA / "schemas"
# schema.data.gouv.fr path -> the corpus file that is a copy of it (SOURCES.md)
MIRRORED = {
    "/schemas/etalab/schema-irve-statique/2.2.0/schema-statique.json": "irve-statique/versions/2.2.0/schema.json",
    "/schemas/etalab/schema-irve-statique/2.3.0/schema-statique.json": "irve-statique/versions/2.3.0/schema.json",
    "/schemas/etalab/schema-lieux-covoiturage/0.2.0/schema.json": "lieux-covoiturage/versions/0.2.0/schema.json",
    "/schemas/etalab/schema-lieux-covoiturage/0.3.0/schema.json": "lieux-covoiturage/schema.json",
}

pytestmark = pytest.mark.skipif(not (CORPUS / "_catalog" / "schemas.json").is_file(),
                                reason="the corpus ../shared/data/schemas is absent")


@pytest.fixture
def mirror(http_server: FixtureServer) -> str:
    http_server.serve("/schemas.json", (CORPUS / "_catalog" / "schemas.json").read_bytes(), content_type="application/json")
    for path, corpus_file in MIRRORED.items():
        http_server.serve(path, (CORPUS / corpus_file).read_bytes(), content_type="application/json")
    return http_server.url("").rstrip("/")


def test_add_fetches_the_irve_file_by_its_real_name_with_its_sha256(mirror: str, hub: CatalogBuilder,
                                                                    http_server: FixtureServer) -> None:
    outcome = add_schema("etalab/schema-irve-statique@2.3.0", hub.schemas, mirror)
    assert outcome.state == "added"
    body = (CORPUS / MIRRORED["/schemas/etalab/schema-irve-statique/2.3.0/schema-statique.json"]).read_bytes()
    path = hub.schemas / "etalab" / "schema-irve-statique" / "2.3.0" / "schema.json"
    assert path.read_bytes() == body  # byte for byte
    meta = json.loads((path.parent / "source.json").read_text())
    assert meta["sha256"] == hashlib.sha256(body).hexdigest() == outcome.cached.sha256
    assert meta["url"] == "https://schema.data.gouv.fr/schemas/etalab/schema-irve-statique/2.3.0/schema-statique.json"
    assert [r.path for r in http_server.log] == ["/schemas.json", "/schemas/etalab/schema-irve-statique/2.3.0/schema-statique.json"]
    # the resolver reads what was added, and the catalog check accepts the pin
    assert resolve_schema("etalab/schema-irve-statique@2.3.0", schemas_dir=hub.schemas).origin == str(path)
    hub.dataset("bornes", ["url: https://example.org/b.csv"], schema="etalab/schema-irve-statique@2.3.0")
    assert check_catalog(hub.catalog, schemas_dir=hub.schemas, environ={}).problems == []
    # a second add is a no-op that says so
    assert add_schema("etalab/schema-irve-statique@2.3.0", hub.schemas, mirror).state == "unchanged"


@pytest.mark.parametrize(("ref", "fragments"), [
    ("etalab/schema-lieux-covoiturage@0.3", ["version 0.3 is not published", "did you mean @0.3.1?", "0.2.8"]),
    ("etalab/schema-lieux-covoitrage@0.3.0", ["not in schema.data.gouv.fr's catalog", "etalab/schema-lieux-covoiturage"]),
    ("etalab/schema-irve@2.3.0", ["datapackage", "not a Table Schema", "schema-irve-statique"]),
    ("etalab/schema-irve-statique@2.3.1", ["HTTP 404", "PARTAGE_SCHEMA_BASE_URL"]),  # not in the mirror
    ("irve", ["expected publisher/name@version"]),
])
def test_add_refusals_say_why(ref: str, fragments: list[str], mirror: str, hub: CatalogBuilder) -> None:
    with pytest.raises(SchemaError) as exc:
        add_schema(ref, hub.schemas, mirror)
    for f in fragments:
        assert f in str(exc.value)
    assert list_cached(hub.schemas) == []


def test_a_cached_version_that_changed_upstream_is_refused(mirror: str, hub: CatalogBuilder) -> None:
    hub.schema("etalab/schema-lieux-covoiturage@0.3.0", {"fields": [{"name": "id_lieu", "type": "string"}]})
    with pytest.raises(SchemaError, match="differs from"):
        add_schema("etalab/schema-lieux-covoiturage@0.3.0", hub.schemas, mirror)


def test_update_check_names_newer_versions_and_changed_files(mirror: str, hub: CatalogBuilder,
                                                              http_server: FixtureServer) -> None:
    add_schema("etalab/schema-lieux-covoiturage@0.2.0", hub.schemas, mirror)
    add_schema("etalab/schema-irve-statique@2.2.0", hub.schemas, mirror)
    http_server.serve("/schemas/etalab/schema-irve-statique/2.2.0/schema-statique.json", b'{"fields": []}')
    found = {u.name: u for u in check_updates(hub.schemas, mirror)}
    assert found["etalab/schema-lieux-covoiturage"].newer[-1] == "0.3.1"
    assert "0.3.0" in found["etalab/schema-lieux-covoiturage"].newer
    assert found["etalab/schema-irve-statique"].changed == ("2.2.0",)
    runner = CliRunner()
    r = runner.invoke(app, ["schemas", "update", "--check", "--schemas", str(hub.schemas)],
                      env={"PARTAGE_SCHEMA_BASE_URL": mirror})
    assert r.exit_code == 1, r.output
    assert "0.3.1 published" in r.output and "differs from the cache" in r.output
    assert {c.ref for c in list_cached(hub.schemas)} == {"etalab/schema-lieux-covoiturage@0.2.0",
                                                        "etalab/schema-irve-statique@2.2.0"}  # --check wrote nothing


def test_cli_add_then_list(mirror: str, hub: CatalogBuilder) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["schemas", "add", "etalab/schema-lieux-covoiturage@0.3.0", "--schemas", str(hub.schemas),
                            "--from", mirror])
    assert r.exit_code == 0, r.output
    assert "added" in r.output and "schema: etalab/schema-lieux-covoiturage@0.3.0" in r.output
    listed = runner.invoke(app, ["schemas", "list", "--schemas", str(hub.schemas)])
    assert "etalab/schema-lieux-covoiturage@0.3.0" in listed.output and "schema.data.gouv.fr" in listed.output
    bad = runner.invoke(app, ["schemas", "add", "etalab/nope@1.0.0", "--schemas", str(hub.schemas), "--from", mirror])
    assert bad.exit_code == 1 and "not in schema.data.gouv.fr's catalog" in bad.output


def test_base_url_must_be_http(hub: CatalogBuilder, monkeypatch: pytest.MonkeyPatch) -> None:
    from partage.schemas import schema_base_url

    monkeypatch.setenv("PARTAGE_SCHEMA_BASE_URL", "file:///etc")
    with pytest.raises(SchemaError, match="http"):
        schema_base_url()
    assert schema_base_url("http://127.0.0.1:1/") == "http://127.0.0.1:1"
