"""The command line: exit codes and output of validate, sql, status, history, harvest."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from partage.cli import app

from .conftest import (
    COMMUNES_CSV,
    COMMUNES_SCHEMA,
    REPO,
    CatalogBuilder,
    FixtureServer,
    copy_demo,
)

runner = CliRunner()


@pytest.fixture
def schema_file(tmp_path: Path) -> Path:
    p = tmp_path / "schema.json"
    p.write_text(json.dumps(COMMUNES_SCHEMA), encoding="utf-8")
    return p


def write(tmp_path: Path, text: str | bytes, name: str = "c.csv") -> Path:
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return p


def test_validate_valid_file_exits_0(tmp_path: Path, schema_file: Path) -> None:
    r = runner.invoke(app, ["validate", str(write(tmp_path, COMMUNES_CSV)), "--schema", str(schema_file)])
    assert r.exit_code == 0, r.output
    assert "valid" in r.output and "3 rows" in r.output


def test_validate_invalid_file_exits_1_and_names_row_and_field(tmp_path: Path, schema_file: Path) -> None:
    r = runner.invoke(app, ["validate", str(write(tmp_path, COMMUNES_CSV + "1053,Bourg,1,1,2024-01-01\n")),
                            "--schema", str(schema_file)])
    assert r.exit_code == 1
    assert "code_insee" in r.output and "constraint-error" in r.output and "5" in r.output


def test_validate_json_has_frictionless_shape(tmp_path: Path, schema_file: Path) -> None:
    r = runner.invoke(app, ["validate", str(write(tmp_path, COMMUNES_CSV + "01053,Bourg,x,1,2024-01-01\n")),
                            "--schema", str(schema_file), "--json"])
    assert r.exit_code == 1
    report = json.loads(r.stdout)
    assert report["valid"] is False and report["stats"]["errors"] == 1
    (err,) = report["tasks"][0]["errors"]
    assert (err["type"], err["rowNumber"], err["fieldName"]) == ("type-error", 5, "population")


def test_validate_cp1252_semicolon_with_decimal_comma(tmp_path: Path, schema_file: Path) -> None:
    text = COMMUNES_CSV.replace(",", ";").replace("15.95", "15,95").replace("82.03", "82,03").replace("19.38", "19,38")
    path = write(tmp_path, text.encode("cp1252"))
    plain = runner.invoke(app, ["validate", str(path), "--schema", str(schema_file)])
    assert plain.exit_code == 1 and "surface_km2" in plain.output
    comma = runner.invoke(app, ["validate", str(path), "--schema", str(schema_file), "--decimal-char", ","])
    assert comma.exit_code == 0, comma.output
    assert "cp1252" in comma.output


def test_validate_could_not_validate_exits_2(tmp_path: Path, schema_file: Path) -> None:
    missing = runner.invoke(app, ["validate", str(tmp_path / "nope.csv"), "--schema", str(schema_file)])
    assert missing.exit_code == 2 and "no such file" in missing.output
    bad_schema = write(tmp_path, '{"fields": [{"name": "a", "type": "entier"}]}', "bad.json")
    r = runner.invoke(app, ["validate", str(write(tmp_path, "a\n1\n")), "--schema", str(bad_schema)])
    assert r.exit_code == 2 and "entier" in r.output


def test_validate_empty_file_is_reported_not_crashed(tmp_path: Path, schema_file: Path) -> None:
    r = runner.invoke(app, ["validate", str(write(tmp_path, b"")), "--schema", str(schema_file), "--json"])
    assert r.exit_code in (1, 2)
    assert json.loads(r.stdout)["valid"] is False


def test_validate_reads_a_gzipped_file_and_refuses_a_web_page_by_name(tmp_path: Path, schema_file: Path) -> None:
    import gzip

    gz = runner.invoke(app, ["validate", str(write(tmp_path, gzip.compress(COMMUNES_CSV.encode()), "c.csv.gz")),
                             "--schema", str(schema_file)])
    assert gz.exit_code == 0 and "3 rows" in gz.output, gz.output
    page = runner.invoke(app, ["validate", str(write(tmp_path, "<!doctype html><html><p>Erreur 404</p></html>", "p.csv")),
                               "--schema", str(schema_file)])
    assert page.exit_code == 2 and "web page (HTML)" in page.output


def test_validate_url(tmp_path: Path, schema_file: Path, http_server: FixtureServer) -> None:
    url = http_server.serve("/c.csv", COMMUNES_CSV)
    r = runner.invoke(app, ["validate", url, "--schema", str(schema_file)])
    assert r.exit_code == 0, r.output


def test_validate_schema_by_reference_from_local_cache(tmp_path: Path) -> None:
    hub = CatalogBuilder(tmp_path / "hub")
    hub.schema("test/communes@1.0", COMMUNES_SCHEMA)
    r = runner.invoke(app, ["validate", str(write(tmp_path, COMMUNES_CSV)), "--schema", "test/communes@1.0",
                            "--schemas", str(hub.schemas)])
    assert r.exit_code == 0, r.output
    missing = runner.invoke(app, ["validate", str(write(tmp_path, COMMUNES_CSV)), "--schema", "test/communes@2.0",
                                  "--schemas", str(hub.schemas)])
    assert missing.exit_code == 2 and "test/communes@2.0 is not in the local schema cache" in missing.output
    assert "partage schemas add test/communes@2.0" in missing.output  # the fix, with the cached versions named


@pytest.fixture
def harvested(prefect_harness: None, hub: CatalogBuilder) -> CatalogBuilder:
    hub.schema("test/communes@1.0", COMMUNES_SCHEMA)
    hub.file("c.csv", COMMUNES_CSV)
    hub.dataset("communes", ["file: ../data/c.csv"], schema="test/communes@1.0")
    r = runner.invoke(app, ["harvest", "--catalog", str(hub.catalog), "--warehouse", str(hub.warehouse)])
    assert r.exit_code == 0, r.output
    assert "updated" in r.output and "communes" in r.output
    return hub


def test_sql_answers_and_is_read_only(harvested: CatalogBuilder) -> None:
    wh = str(harvested.warehouse)
    r = runner.invoke(app, ["sql", "SELECT count(*) AS n FROM communes", "--warehouse", wh, "--format", "json"])
    assert r.exit_code == 0 and json.loads(r.stdout) == [{"n": 3}]
    bad = runner.invoke(app, ["sql", "SELECT * FROM nope", "--warehouse", wh])
    assert bad.exit_code == 2 and "SQL error" in bad.output
    write_attempt = runner.invoke(app, ["sql", "DROP VIEW communes", "--warehouse", wh])
    assert write_attempt.exit_code == 2 and "read-only" in write_attempt.output.lower()
    csv_out = runner.invoke(app, ["sql", "SELECT code_insee FROM communes ORDER BY 1", "--warehouse", wh, "--format", "csv"])
    assert csv_out.stdout.splitlines() == ["code_insee", "01001", "2A004", "2B033"]


def test_status_and_history(harvested: CatalogBuilder) -> None:
    wh = str(harvested.warehouse)
    s = runner.invoke(app, ["status", "--sources", "--warehouse", wh])
    assert s.exit_code == 0 and "communes" in s.output and "updated" in s.output
    h = runner.invoke(app, ["history", "communes", "--warehouse", wh])
    assert h.exit_code == 0 and "test/communes@1.0" in h.output


def test_history_gives_each_version_its_snapshot_and_the_sql_that_reads_it_by_time_travel(
        harvested: CatalogBuilder) -> None:
    hub, wh = harvested, str(harvested.warehouse)
    bourg = "01053,Bourg-en-Bresse,41000,23.86,2024-01-01\n"
    for csv in (COMMUNES_CSV.replace("73000", "73001"), COMMUNES_CSV.replace("73000", "73002") + bourg):
        hub.file("c.csv", csv)
        r = runner.invoke(app, ["harvest", "--catalog", str(hub.catalog), "--warehouse", wh])
        assert r.exit_code == 0 and "updated" in r.output, r.output
    j = runner.invoke(app, ["history", "communes", "--warehouse", wh, "--json"])
    assert j.exit_code == 0, j.output
    entries = json.loads(j.stdout)  # newest first
    assert len(entries) == 3 and len({e["snapshot_id"] for e in entries}) == 3
    assert [e["rows"] for e in entries] == [4, 3, 3] and all(e["snapshot_time"] for e in entries)
    shown = runner.invoke(app, ["history", "communes", "--warehouse", wh])
    assert shown.exit_code == 0 and all(e["version"] in shown.output for e in entries), shown.output
    printed = [line.strip().removesuffix(";") for line in shown.output.splitlines() if line.strip().startswith("SELECT")]
    oldest = entries[-1]
    assert printed == [f'SELECT * FROM lake.main."communes" AT (VERSION => {oldest["snapshot_id"]})'] == [oldest["sql"]]
    for entry, (rows, ajaccio) in zip(reversed(entries), [(3, 73000), (3, 73001), (4, 73002)]):
        travel = printed[0].replace(f"=> {oldest['snapshot_id']})", f"=> {entry['snapshot_id']})")
        r = runner.invoke(app, ["sql", f"SELECT count(*) AS n, max(population) FILTER (WHERE code_insee = '2A004') AS p, "
                                       f"min(_source_version) AS since FROM ({travel})", "--warehouse", wh, "--format", "json"])
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout) == [{"n": rows, "p": ajaccio, "since": entry["version"]}]
    none = runner.invoke(app, ["history", "nope", "--warehouse", wh, "--json"])  # #23 case 9: an error, not "no version yet"
    assert none.exit_code == 2 and "no dataset 'nope'" in none.output and "partage status" in none.output


def test_a_dataset_removed_from_the_catalog_is_gone_not_failing_forever(hub: CatalogBuilder) -> None:
    """#23 case 9: a dataset deleted from the catalog stayed "not ok" in status and the catalog view."""
    wh = str(hub.warehouse)
    hub.file("c.csv", COMMUNES_CSV)
    hub.dataset("communes", ["file: ../data/c.csv"])
    hub.dataset("ancien", ["file: ../data/c.csv"])
    assert runner.invoke(app, ["harvest", "--catalog", str(hub.catalog), "--warehouse", wh]).exit_code == 0
    (hub.catalog / "ancien.yaml").unlink()
    r = runner.invoke(app, ["harvest", "--catalog", str(hub.catalog), "--warehouse", wh])
    assert r.exit_code == 0, r.output
    status = runner.invoke(app, ["status", "--warehouse", wh, "--sources"])
    flat = " ".join(status.output.split())
    assert status.exit_code == 0 and "removed from the catalog" in flat, status.output
    from partage.store import metadata
    from partage.store.warehouse import Warehouse

    rows = {r.id: r for r in metadata.dataset_statuses(Warehouse(wh))}
    assert rows["ancien"].not_ok == 0 and rows["ancien"].latest_version is not None
    view = runner.invoke(app, ["sql", "SELECT id, source_states FROM catalog ORDER BY id", "--warehouse", wh,
                               "--format", "json"])
    assert json.loads(view.stdout) == [{"id": "ancien", "source_states": ["gone"]},
                                       {"id": "communes", "source_states": ["unchanged"]}]
    history = runner.invoke(app, ["history", "ancien", "--warehouse", wh, "--json"])
    assert history.exit_code == 0 and len(json.loads(history.stdout)) == 1  # its version is kept
    again = runner.invoke(app, ["harvest", "--catalog", str(hub.catalog), "--warehouse", wh])
    assert again.exit_code == 0
    events = runner.invoke(app, ["sql", "SELECT count(*) AS n FROM _partage.source_events WHERE dataset_id = 'ancien' "
                                        "AND state = 'gone'", "--warehouse", wh, "--format", "json"])
    assert json.loads(events.stdout) == [{"n": 1}]  # marked once, not every night


def test_status_without_warehouse(tmp_path: Path) -> None:
    r = runner.invoke(app, ["status", "--warehouse", str(tmp_path / "none")])
    assert r.exit_code == 0 and "partage harvest" in r.output


def test_harvest_bad_catalog_exits_2_and_touches_nothing(hub: CatalogBuilder) -> None:
    hub.entry("x", "id: x\ntitle: X\n")
    r = runner.invoke(app, ["harvest", "--catalog", str(hub.catalog), "--warehouse", str(hub.warehouse)])
    assert r.exit_code == 2 and "x.yaml" in r.output and "sources" in r.output
    assert not hub.warehouse.exists()


def test_harvest_unknown_id_exits_2(hub: CatalogBuilder) -> None:
    hub.dataset("communes", ["file: c.csv"])
    r = runner.invoke(app, ["harvest", "nope", "--catalog", str(hub.catalog), "--warehouse", str(hub.warehouse)])
    assert r.exit_code == 2 and "unknown dataset" in r.output and "communes" in r.output


@pytest.mark.slow
def test_demo_runs_twice_from_a_fresh_copy(tmp_path: Path) -> None:
    """What `make demo` does, in real processes: first run stores and rejects, the second reads nothing
    again, and the partner file rejected on purpose is still rejected (#23 case 1: not `unchanged`)."""
    root = copy_demo(tmp_path / "repo")
    partage = [sys.executable, "-m", "partage.cli"]
    env_args = {"cwd": root, "capture_output": True, "text": True, "timeout": 300}
    first = subprocess.run(partage + ["harvest"], **env_args)
    assert first.returncode == 1, first.stdout + first.stderr  # the demo's partner file is rejected on purpose
    assert "quarantined" in first.stdout and "rejected" in first.stdout and "updated" in first.stdout
    second = subprocess.run(partage + ["harvest"], **env_args)
    assert second.returncode == 1, second.stdout + second.stderr
    assert "0 updated, 3 unchanged, 1 rejected, 0 failed" in second.stdout
    assert "still the file rejected earlier" in " ".join(second.stdout.split()), second.stdout
    count = subprocess.run(partage + ["sql", "select count(*) as n from bornes_irve", "--format", "csv"], **env_args)
    assert count.returncode == 0 and count.stdout.splitlines() == ["n", "11"]
    assert (root / "warehouse" / "lake.sqlite").is_file() and (root / "warehouse" / "attach.sql").is_file()
    assert not (REPO / "catalog" / "warehouse").exists()
