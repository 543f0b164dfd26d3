"""prefect.yaml for real: a `prefect server` on 127.0.0.1, `prefect deploy`, a process worker, a harvest run
and the publish run its completion triggers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .conftest import PREFECT, REPO, stop_process

pytestmark = pytest.mark.slow


def test_nightly_deployment_runs_on_a_worker(tmp_path: Path, prefect_server: tuple[str, dict[str, str]], http_server) -> None:
    """Deploy, limit, schedule, alert; a harvest with one failing source; the publish it triggers."""
    api, env = prefect_server
    project = tmp_path / "project"
    for name in ("catalog", "schemas", "demo", "flows"):
        shutil.copytree(REPO / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "prefect.yaml", project / "prefect.yaml")
    (project / "catalog" / "_targets.yaml").write_text("public:\n  datapackage: warehouse/public\n", encoding="utf-8")
    missing = http_server.url("/disparu.csv")
    (project / "catalog" / "alerte.yaml").write_text(
        f"id: alerte\ntitle: Source disparue\nlicense: etalab-2.0\naccess: open\nschedule: '30 6 * * 1'\n"
        f"sources:\n  - url: {missing}\n", encoding="utf-8")
    env = {**env, "PARTAGE_HOME": str(project)}
    run = lambda *args: subprocess.run([PREFECT, *args], cwd=project, env=env, capture_output=True, text=True, timeout=180)  # noqa: E731

    created = run("work-pool", "create", "partage", "--type", "process")
    assert created.returncode == 0, created.stdout + created.stderr
    deployed = run("--no-prompt", "deploy", "--all")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    limit = run("global-concurrency-limit", "create", "partage-warehouse", "--limit", "1")
    assert limit.returncode == 0, limit.stdout + limit.stderr
    partage = lambda *args: subprocess.run([sys.executable, "-m", "partage.cli", *args], cwd=project, env=env,  # noqa: E731
                                           capture_output=True, text=True, timeout=180)

    # per-dataset schedules, from the catalog
    sched = partage("schedules", "--apply")
    assert sched.returncode == 0, sched.stdout + sched.stderr

    # alerts: an automation notifying through a webhook block, here a server on 127.0.0.1
    hook = http_server.url("/alerte")
    block = subprocess.run([sys.executable, "-c",
        "from prefect.blocks.notifications import CustomWebhookNotificationBlock as B\n"
        f"B(name='partage', url='{hook}', json_data={{'text': '{{{{subject}}}}: {{{{body}}}}'}}, allow_private_urls=True)"
        ".save('partage-alerts', overwrite=True)"], env=env, capture_output=True, text=True, timeout=120)
    assert block.returncode == 0, block.stderr[-2000:]
    alerts = partage("alerts", "--block", "custom-webhook/partage-alerts")
    assert alerts.returncode == 0, alerts.stdout + alerts.stderr

    deployments = {d["name"]: d for d in httpx.post(f"{api}/deployments/filter", json={}).json()}
    assert set(deployments) == {"harvest-nightly", "publish-after-harvest"}
    dep = deployments["harvest-nightly"]
    assert dep["entrypoint"] == "flows/harvest.py:harvest"
    scheduled = {(x["schedule"]["cron"], x["schedule"]["timezone"]): sorted(x["parameters"]["ids"]) for x in dep["schedules"]}
    assert scheduled == {("0 3 * * *", "Europe/Paris"): ["bornes-irve", "lieux-mediation-numerique"],
                         ("30 6 * * 1", "Europe/Paris"): ["alerte"]}

    worker_log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen([PREFECT, "worker", "start", "--pool", "partage"], cwd=project, env=env,
                              stdout=worker_log, stderr=subprocess.STDOUT)
    try:
        started = run("deployment", "run", "harvest/harvest-nightly")
        assert started.returncode == 0, started.stdout + started.stderr
        # the harvest runs, then its completion triggers the publish deployment
        states: dict[str, str] = {}
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            runs = httpx.post(f"{api}/flow_runs/filter", json={"limit": 10}).json()
            # the scheduler may add the cron's next (SCHEDULED) runs of the same deployment: the run
            # this test started is the one that left SCHEDULED
            states = {r["deployment_id"]: r["state_type"]
                      for r in sorted(runs, key=lambda r: r["state_type"] != "SCHEDULED")}
            done = [states.get(deployments[n]["id"]) for n in ("harvest-nightly", "publish-after-harvest")]
            if any(s in ("FAILED", "CRASHED", "CANCELLED") for s in done) or done == ["COMPLETED", "COMPLETED"]:
                break
            time.sleep(1)
        assert states.get(deployments["harvest-nightly"]["id"]) == "COMPLETED", (tmp_path / "worker.log").read_text()[-4000:]
        assert states.get(deployments["publish-after-harvest"]["id"]) == "COMPLETED", (tmp_path / "worker.log").read_text()[-4000:]
    finally:
        stop_process(worker)
        worker_log.close()

    from partage.store.warehouse import Warehouse

    with Warehouse(project / "warehouse").connect(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM bornes_irve").fetchone() == (11,)
        assert con.execute("SELECT count(*) FROM _partage.runs WHERE finished_at IS NOT NULL").fetchone() == (1,)
    assert (project / "warehouse" / "public" / "bornes-irve" / "datapackage.json").is_file()

    # the run's artifacts say what happened, the failure included
    arts = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"key": {"any_": ["harvest-summary"]}}}).json()
    (table,) = arts
    rows = json.loads(table["data"]) if isinstance(table["data"], str) else table["data"]
    failed = [r for r in rows if r["state"] == "failed"]
    assert [r["dataset"] for r in failed] == ["alerte"] and "404" in failed[0]["reason"]
    assert {r["state"] for r in rows if r["dataset"] == "bornes-irve"} == {"updated"}
    md = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"key": {"any_": ["quality-bornes-irve"]}}}).json()
    assert md and "constraint-error" in md[0]["data"]

    # and the automation sent the alert to the webhook
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not http_server.posted:
        time.sleep(1)
    assert http_server.posted, "no alert reached the webhook"
    path, body = http_server.posted[0]
    assert path == "/alerte" and b"alerte" in body and b"failed" in body
