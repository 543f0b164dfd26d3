"""The real schema.data.gouv.fr examples of ../shared/data: `partage validate` gives frictionless' verdict.

Skipped, with the reason, when ../shared/data is not beside the repository.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from partage.cli import app

from .conftest import SHARED_DATA

pytestmark = [
    pytest.mark.corpus,
    pytest.mark.skipif(not (SHARED_DATA / "schemas").is_dir(), reason=f"{SHARED_DATA} not present (the shared corpus sits beside the repo in CI)"),
]

EXAMPLES = sorted((SHARED_DATA / "schemas").rglob("exemple-valide*.csv")) + sorted(
    (SHARED_DATA / "schemas").rglob("exemple-valide*.xlsx"))


def frictionless_verdict(data: Path, schema: Path) -> str:
    """What frictionless-py itself says, with its own detection: valid, invalid, or could-not."""
    from frictionless import FrictionlessException, Resource, Schema

    try:
        descriptor = Schema.from_descriptor(json.loads(schema.read_text(encoding="utf-8")))
        report = Resource(path=data.name, basepath=str(data.parent), schema=descriptor).validate(limit_errors=0)
    except FrictionlessException:
        return "could-not"
    return "valid" if report.valid else "invalid"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: str(p.relative_to(SHARED_DATA / "schemas")))
def test_cli_verdict_matches_frictionless(example: Path) -> None:
    schema = example.parent / "schema.json"
    expected = frictionless_verdict(example, schema)
    result = CliRunner().invoke(app, ["validate", str(example), "--schema", str(schema), "--json"])
    got = {0: "valid", 1: "invalid", 2: "could-not"}.get(result.exit_code, f"exit {result.exit_code}")
    assert got == expected, result.output[-2000:]
    if got != "could-not":
        report = json.loads(result.stdout)
        assert report["valid"] is (expected == "valid")


def _manifest_csvs(prefix: str = "") -> list[dict]:
    path = SHARED_DATA / "manifest.json"
    if not path.is_file():
        return []
    files = json.loads(path.read_text(encoding="utf-8"))["files"]
    return [f for f in files if f.get("encoding") and f.get("delimiter") and f["path"].startswith(prefix)]


SAME_ENCODING = {"iso-8859-1": {"cp1252", "latin-1"}, "cp1252": {"cp1252"}, "utf-8": {"utf-8"},
                 "utf-8-sig": {"utf-8-sig"}, "ascii": {"utf-8"}}


@pytest.mark.parametrize("entry", _manifest_csvs(), ids=lambda f: f["path"])
def test_dialect_detection_matches_the_manifest(entry: dict) -> None:
    from partage.dialect import detect

    if entry["encoding"] not in SAME_ENCODING:
        pytest.skip(f"{entry['encoding']} is not an encoding French portals use; detection covers UTF-8, cp1252, Latin-1")
    d = detect(SHARED_DATA / entry["path"])
    assert d.encoding in SAME_ENCODING.get(entry["encoding"], {entry["encoding"]})
    assert d.delimiter == entry["delimiter"]


@pytest.mark.parametrize("entry", _manifest_csvs("datasets/"), ids=lambda f: f["path"])
def test_real_dataset_is_stored_whole_without_schema(entry: dict, tmp_path: Path) -> None:
    """Every real file lands with all its rows; inferred types never turn codes into numbers."""
    from partage.catalog import load_catalog
    from partage.pipeline import acquire_source, plan, store_dataset
    from partage.store.warehouse import Warehouse

    src = SHARED_DATA / entry["path"]
    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "reel.yaml").write_text(
        f"id: reel\ntitle: Réel\nlicense: etalab-2.0\naccess: open\npolicy: warn\nsources:\n  - file: {src}\n", encoding="utf-8")
    entry_ = load_catalog(tmp_path / "catalog").entries["reel"]
    wh = Warehouse(tmp_path / "wh")
    wh.init()
    resources, failures = plan(entry_)
    outcome = store_dataset(entry_, [acquire_source(r, wh) for r in resources] + failures, wh, run_id="t")
    (s,) = outcome.sources
    assert s.state == "updated", s.reason
    assert (s.rows or 0) + (s.quarantined or 0) == entry["data_rows"]
    with wh.connect(read_only=True) as con:
        types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'main' AND table_name = 'reel'").fetchall())
        for name, kind in types.items():
            if any(k in name.lower() for k in ("insee", "siren", "siret", "postal", "code_commune")):
                assert kind == "VARCHAR", (name, kind)
