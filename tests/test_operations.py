"""Operations pieces that need no server: schedule groups, run summaries, the CLI's early Prefect server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from partage.catalog import load_catalog
from partage.pipeline import DatasetOutcome, HarvestSummary, SourceOutcome
from partage.scheduling import schedule_groups
from partage.summaries import artifact_key, dataset_markdown, needs_attention, run_table

from .conftest import CatalogBuilder, copy_demo


def test_datasets_sharing_a_cron_share_a_schedule(hub: CatalogBuilder) -> None:
    hub.dataset("a", ["file: a.csv"], extra="schedule: '0 3 * * *'\n")
    hub.dataset("b", ["file: b.csv"])
    hub.dataset("c", ["file: c.csv"], extra="schedule: '30 6 * * 1'\ntimezone: America/Cayenne\n")
    groups = schedule_groups(load_catalog(hub.catalog))
    assert [(g.cron, g.timezone, g.ids) for g in groups] == [
        ("0 3 * * *", "Europe/Paris", ("a", "b")), ("30 6 * * 1", "America/Cayenne", ("c",))]
    assert len({g.slug for g in groups}) == 2


def test_artifact_keys_are_what_prefect_accepts() -> None:
    assert artifact_key("quality", "Bornes_IRVE 2024") == "quality-bornes-irve-2024"


def test_markdown_lists_first_errors_and_escapes_pipes() -> None:
    s = SourceOutcome("d", "k", "partner.csv", "updated", "3 rows stored, 1 quarantined", quarantined=1, errors=1,
                      first_errors=({"row": 4, "field": "x", "type": "constraint-error", "message": "a | b"},),
                      report_path="/w/d/v/reports/k.json")
    d = DatasetOutcome("d", [s, SourceOutcome("d", "k2", "ok.csv", "unchanged", "same")], version="v1", rows=3, quarantined=1)
    assert needs_attention(d)
    md = dataset_markdown(d)
    assert "| 4 | x | constraint-error | a \\| b |" in md and "/w/d/v/reports/k.json" in md and "ok.csv" not in md
    rows = run_table(HarvestSummary("r", [d]))
    assert [r["state"] for r in rows] == ["updated", "unchanged"]


@pytest.mark.slow
def test_cli_falls_back_to_prefects_own_server(tmp_path: Path) -> None:
    """If the early server does not answer in time, the command runs again the ordinary way."""
    root = copy_demo(tmp_path / "repo")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PARTAGE_EARLY_SERVER_TIMEOUT": "0",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    r = subprocess.run([sys.executable, "-m", "partage.cli", "harvest"], cwd=root, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 1, r.stdout + r.stderr  # the demo's rejected partner file
    assert "3 updated, 0 unchanged, 1 rejected, 0 failed" in r.stdout


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


@pytest.mark.slow
def test_early_server_does_not_outlive_a_killed_cli(tmp_path: Path) -> None:
    import os
    import signal
    import time

    root = copy_demo(tmp_path / "repo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_URL")}
    cli = subprocess.Popen([sys.executable, "-m", "partage.cli", "harvest"], cwd=root, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    servers: list[int] = []
    while time.monotonic() < deadline and not servers:
        servers = _children(cli.pid)
        time.sleep(0.05)
    assert servers, "the CLI started no server"
    cli.send_signal(signal.SIGKILL)
    cli.wait()
    def alive(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(alive(p) for p in servers):
        time.sleep(0.1)
    assert not [p for p in servers if alive(p)], "the server outlived the CLI"
