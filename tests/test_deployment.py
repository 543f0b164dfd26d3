"""prefect.yaml for real: a `prefect server` on 127.0.0.1, `prefect deploy`, a process worker, one run."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import REPO

pytestmark = pytest.mark.slow

PREFECT = str(Path(sys.executable).parent / "prefect")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_API_URL=f"http://127.0.0.1:{port}/api", PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            time.sleep(0.5)
        else:
            pytest.fail("prefect server did not start in 120 s")
        yield env["PREFECT_API_URL"], env
    finally:
        _stop(server)
        log.close()


def test_nightly_deployment_runs_on_a_worker(tmp_path: Path, prefect_server: tuple[str, dict[str, str]]) -> None:
    api, env = prefect_server
    project = tmp_path / "project"
    for name in ("catalog", "schemas", "demo", "flows"):
        shutil.copytree(REPO / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "prefect.yaml", project / "prefect.yaml")
    env = {**env, "PARTAGE_HOME": str(project)}
    run = lambda *args: subprocess.run([PREFECT, *args], cwd=project, env=env, capture_output=True, text=True, timeout=180)  # noqa: E731

    created = run("work-pool", "create", "partage", "--type", "process")
    assert created.returncode == 0, created.stdout + created.stderr
    deployed = run("--no-prompt", "deploy", "--all")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr

    deployments = httpx.post(f"{api}/deployments/filter", json={}).json()
    (dep,) = deployments
    assert dep["name"] == "harvest-nightly" and dep["entrypoint"] == "flows/harvest.py:harvest"
    (sched,) = dep["schedules"]
    assert sched["schedule"]["cron"] == "0 3 * * *" and sched["schedule"]["timezone"] == "Europe/Paris"

    worker_log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen([PREFECT, "worker", "start", "--pool", "partage"], cwd=project, env=env,
                              stdout=worker_log, stderr=subprocess.STDOUT)
    try:
        started = run("deployment", "run", "harvest/harvest-nightly")
        assert started.returncode == 0, started.stdout + started.stderr
        state = None
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            runs = httpx.post(f"{api}/flow_runs/filter", json={"limit": 5}).json()
            state = runs[0]["state_type"] if runs else None
            if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                break
            time.sleep(1)
        assert state == "COMPLETED", (tmp_path / "worker.log").read_text()[-4000:]
    finally:
        _stop(worker)
        worker_log.close()

    import duckdb

    con = duckdb.connect(str(project / "warehouse" / "partage.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM bornes_irve").fetchone() == (11,)
        assert con.execute("SELECT count(*) FROM _partage.runs WHERE finished_at IS NOT NULL").fetchone() == (1,)
    finally:
        con.close()
