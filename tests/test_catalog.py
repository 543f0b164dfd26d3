"""The catalog is the data team's interface: every problem named with its file, key and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from partage.catalog import load_catalog
from partage.cli import app
from partage.errors import CatalogError

from .conftest import REPO, CatalogBuilder

GOOD = """
id: bornes
title: Bornes
license: etalab-2.0
access: open
sources:
  - url: https://example.org/bornes.csv
"""


def problems_of(hub: CatalogBuilder) -> list[str]:
    with pytest.raises(CatalogError) as exc:
        load_catalog(hub.catalog)
    return exc.value.problems


def test_repository_demo_catalog_loads() -> None:
    cat = load_catalog(REPO / "catalog")
    assert {"bornes-irve", "lieux-mediation-numerique"} <= set(cat.entries)
    assert cat.entries["bornes-irve"].dataset.policy == "quarantine"
    assert "metropole-ckan" in cat.targets


def test_defaults_are_applied(hub: CatalogBuilder) -> None:
    hub.entry("bornes", GOOD)
    ds = load_catalog(hub.catalog).entries["bornes"].dataset
    assert ds.policy == "quarantine" and ds.timezone == "Europe/Paris" and ds.schema_ is None
    assert ds.sources[0].kind == "url"


def test_invalid_yaml_names_file_and_line(hub: CatalogBuilder) -> None:
    hub.entry("bornes", "id: bornes\ntitle: [unclosed\n")
    (problem,) = problems_of(hub)
    assert "bornes.yaml" in problem and "line" in problem and "invalid YAML" in problem


def test_bad_access_names_key_and_allowed_values(hub: CatalogBuilder) -> None:
    hub.entry("bornes", GOOD.replace("access: open", "access: public"))
    (problem,) = problems_of(hub)
    assert "bornes.yaml" in problem and "access" in problem
    for allowed in ("open", "partners", "internal"):
        assert allowed in problem


def test_bad_policy_names_allowed_values(hub: CatalogBuilder) -> None:
    hub.entry("bornes", GOOD + "policy: drop\n")
    (problem,) = problems_of(hub)
    assert "policy" in problem and "reject" in problem and "quarantine" in problem and "warn" in problem


def test_literal_credential_is_refused_and_never_echoed(hub: CatalogBuilder) -> None:
    secret = "s3cr3t-t0ken-value"
    hub.entry("bornes", GOOD.replace("bornes.csv", f"bornes.csv\n    auth: {{bearer: {secret}}}"))
    (problem,) = problems_of(hub)
    assert "sources[0].auth.bearer" in problem and "env:NAME" in problem and "prefect-secret:NAME" in problem
    assert secret not in problem


def test_credential_reference_is_accepted(hub: CatalogBuilder) -> None:
    hub.entry("bornes", GOOD.replace("bornes.csv", "bornes.csv\n    auth: {bearer: env:PARTNER_TOKEN}"))
    assert load_catalog(hub.catalog).entries["bornes"].dataset.sources[0].auth.bearer == "env:PARTNER_TOKEN"


def test_password_in_url_is_refused(hub: CatalogBuilder) -> None:
    hub.entry("bornes", GOOD.replace("https://example.org", "https://user:pw@example.org"))
    (problem,) = problems_of(hub)
    assert "password" in problem and "pw@" not in problem


def test_unknown_key_lists_allowed_keys(hub: CatalogBuilder) -> None:
    hub.entry("bornes", GOOD + "polcy: reject\n")
    (problem,) = problems_of(hub)
    assert "polcy" in problem and "unknown key" in problem and "policy" in problem


def test_custom_x_keys_are_allowed(hub: CatalogBuilder) -> None:
    hub.entry("bornes", GOOD + "x-owner: équipe data\n")
    assert "bornes" in load_catalog(hub.catalog).entries


def test_id_must_match_file_name(hub: CatalogBuilder) -> None:
    hub.entry("autre", GOOD)
    (problem,) = problems_of(hub)
    assert "autre.yaml" in problem and "does not match the file name" in problem


def test_source_needs_exactly_one_kind(hub: CatalogBuilder) -> None:
    hub.entry("bornes", GOOD.replace("  - url: https://example.org/bornes.csv",
                                     "  - url: https://example.org/a.csv\n    file: a.csv\n  - name: rien"))
    found = problems_of(hub)
    assert any("sources[0]" in p and "found: url, file" in p for p in found)
    assert any("sources[1]" in p and "found: none" in p for p in found)


def test_every_file_and_problem_reported_at_once(hub: CatalogBuilder) -> None:
    hub.entry("a", GOOD.replace("id: bornes", "id: a").replace("access: open", "access: nope"))
    hub.entry("b", GOOD.replace("id: bornes", "id: b").replace("license: etalab-2.0\n", ""))
    found = problems_of(hub)
    assert any("a.yaml" in p and "access" in p for p in found)
    assert any("b.yaml" in p and "license" in p and "missing" in p for p in found)


def test_ids_colliding_as_sql_names_are_refused(hub: CatalogBuilder) -> None:
    hub.entry("a-b", GOOD.replace("id: bornes", "id: a-b"))
    hub.entry("a_b", GOOD.replace("id: bornes", "id: a_b"))
    (problem,) = problems_of(hub)
    assert "a_b" in problem and "SQL" in problem


def test_targets_need_credential_references(hub: CatalogBuilder) -> None:
    hub.entry("bornes", GOOD)
    (hub.catalog / "_targets.yaml").write_text("portail:\n  ckan: https://ckan.example\n  api_token: abcdef123\n")
    (problem,) = problems_of(hub)
    assert "_targets.yaml" in problem and "api_token" in problem and "abcdef123" not in problem


def test_bad_cron_schedule(hub: CatalogBuilder) -> None:
    hub.entry("bornes", GOOD + "schedule: every night\n")
    (problem,) = problems_of(hub)
    assert "schedule" in problem and "cron" in problem


def test_missing_catalog_directory(tmp_path: Path) -> None:
    with pytest.raises(CatalogError) as exc:
        load_catalog(tmp_path / "nowhere")
    assert "PARTAGE_CATALOG" in str(exc.value)


def test_cli_catalog_check_exit_codes(hub: CatalogBuilder) -> None:
    runner = CliRunner()
    hub.entry("bornes", GOOD)
    ok = runner.invoke(app, ["catalog", "check", "--catalog", str(hub.catalog)])
    assert ok.exit_code == 0 and "1 dataset(s)" in ok.output
    hub.entry("bornes", GOOD.replace("access: open", "access: secret"))
    bad = runner.invoke(app, ["catalog", "check", "--catalog", str(hub.catalog)])
    assert bad.exit_code == 2 and "access" in bad.output


def test_ckan_link_mode_needs_a_base_url(hub: CatalogBuilder) -> None:
    hub.entry("bornes", GOOD)
    (hub.catalog / "_targets.yaml").write_text("p:\n  ckan: https://ckan.example\n  organization: o\n  resources: link\n")
    (problem,) = problems_of(hub)
    assert "_targets.yaml" in problem and "link_base_url" in problem


def test_catalog_is_a_reserved_id(hub: CatalogBuilder) -> None:
    hub.entry("catalog", GOOD.replace("id: bornes", "id: catalog"))
    (problem,) = problems_of(hub)
    assert "reserved" in problem
