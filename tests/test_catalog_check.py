"""`partage catalog check`: every problem of every file in one run, each with the fix (#25).

One table of cases: a catalog file (or two), the fragments every reported problem must carry,
and the warnings expected. A case passes only if *all* its problems come out of a single check.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from typer.testing import CliRunner

from partage.catalog import check_catalog, known_licenses
from partage.cli import app

from .conftest import CatalogBuilder

GOOD = """\
id: {id}
title: Bornes
license: etalab-2.0
access: open
sources:
  - url: https://example.org/bornes.csv
"""

SCHEMA = {"fields": [{"name": "id", "type": "string"}]}


@dataclass(frozen=True)
class Case:
    name: str
    files: dict[str, str]  # dataset id -> YAML text ({id} is replaced by the id)
    problems: list[list[str]]  # each inner list: fragments one single problem must all contain
    warnings: list[list[str]] = field(default_factory=list)
    environ: dict[str, str] = field(default_factory=dict)


CASES = [
    Case("valid", {"bornes": GOOD}, []),
    Case("three misspelt keys come out together, each with the right key",
         {"bornes": GOOD.replace("license:", "licence:") + "polcy: reject\nshedule: '0 3 * * *'\n"},
         [["licence", "unknown key", "did you mean 'license'"],
          ["polcy", "unknown key", "did you mean 'policy'"],
          ["shedule", "unknown key", "did you mean 'schedule'"],
          ["license", "required key is missing"]]),
    Case("a misspelt value gets the closest allowed one",
         {"bornes": GOOD.replace("access: open", "access: opne") + "policy: quarantaine\nduplicates: lattest\n"},
         [["access", "'opne'", "did you mean 'open'"],
          ["policy", "did you mean 'quarantine'"],
          ["duplicates", "did you mean 'latest'"]]),
    Case("a misspelt source key",
         {"bornes": GOOD.replace("  - url:", "  - ulr:")},
         [["sources[0]", "ulr", "unknown key", "did you mean 'url'"]]),
    Case("misspelt nested keys: dialect, auth",
         {"bornes": GOOD.replace("bornes.csv", "bornes.csv\n    auth: {barer: env:T}") + "dialect: {delimeter: ';'}\n"},
         [["dialect.delimeter", "did you mean 'delimiter'"],
          ["sources[0].auth.barer", "did you mean 'bearer'"]]),
    Case("an unknown licence names the list, and the closest one",
         {"bornes": GOOD.replace("etalab-2.0", "etalab2")},
         [["license", "'etalab2'", "did you mean 'etalab-2.0'", "odc-odbl", "cc-by-4.0"]]),
    Case("licence ids are case-insensitive (CC-BY-4.0)",
         {"bornes": GOOD.replace("etalab-2.0", "CC-BY-4.0")}, []),
    Case("a schema version cut short says which one is cached",
         {"bornes": GOOD + "schema: etalab/schema-lieux-covoiturage@0.3\n"},
         [["schema", "@0.3", "did you mean @0.3.0", "partage schemas add"]]),
    Case("a cached schema resolves", {"bornes": GOOD + "schema: etalab/schema-lieux-covoiturage@0.3.0\n"}, []),
    Case("a schema misspelt gets the cached name",
         {"bornes": GOOD + "schema: etalab/schema-lieux-covoitrage@0.3.0\n"},
         [["schema", "did you mean etalab/schema-lieux-covoiturage"]]),
    Case("a schema file that does not exist",
         {"bornes": GOOD + "schema: schemas/nowhere.json\n"},
         [["schema", "nowhere.json", "file not found"]]),
    Case("every file is checked: two files, two problems",
         {"a": GOOD.replace("access: open", "access: public"), "b": GOOD + "polcy: warn\n"},
         [["a.yaml", "access", "'public'"], ["b.yaml", "polcy", "did you mean 'policy'"]]),
    Case("a credential variable not set is a warning, not a problem",
         {"bornes": GOOD.replace("bornes.csv", "bornes.csv\n    auth: {bearer: env:PARTNER_TOKEN}")},
         [], [["sources[0].auth.bearer", "env:PARTNER_TOKEN", "PARTNER_TOKEN is not set"]]),
    Case("a credential variable set: no warning",
         {"bornes": GOOD.replace("bornes.csv", "bornes.csv\n    auth: {bearer: env:PARTNER_TOKEN}")},
         [], [], {"PARTNER_TOKEN": "x"}),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_catalog_check(case: Case, hub: CatalogBuilder) -> None:
    hub.schema("etalab/schema-lieux-covoiturage@0.3.0", SCHEMA)
    for ds_id, text in case.files.items():
        hub.entry(ds_id, text.replace("{id}", ds_id))
    result = check_catalog(hub.catalog, schemas_dir=hub.schemas, environ=case.environ)
    for expected, found, kind in ((case.problems, result.problems, "problem"), (case.warnings, result.warnings, "warning")):
        for fragments in expected:
            assert any(all(f in p for f in fragments) for p in found), f"no {kind} with {fragments} in {found}"
        assert len(found) == len(expected), f"{kind}s: {found}"


def test_the_licence_list_is_the_documented_one() -> None:
    from .conftest import REPO

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for name in known_licenses():
        assert f"`{name}`" in readme, f"licence {name} missing from the README's list"


def test_cli_reports_problems_and_warnings(hub: CatalogBuilder) -> None:
    hub.entry("bornes", GOOD.replace("{id}", "bornes").replace("bornes.csv", "bornes.csv\n    auth: {bearer: env:PARTAGE_TEST_UNSET_TOKEN}"))
    runner = CliRunner()
    ok = runner.invoke(app, ["catalog", "check", "--catalog", str(hub.catalog), "--schemas", str(hub.schemas)])
    assert ok.exit_code == 0, ok.output
    assert "PARTAGE_TEST_UNSET_TOKEN is not set" in ok.output and "1 warning(s)" in ok.output
    hub.entry("other", GOOD.replace("{id}", "other") + "polcy: warn\nshedule: x\n")
    bad = runner.invoke(app, ["catalog", "check", "--catalog", str(hub.catalog), "--schemas", str(hub.schemas)])
    assert bad.exit_code == 2
    assert "polcy" in bad.output and "shedule" in bad.output and "2 problem(s)" in bad.output
