"""Start Prefect's temporary API server early, so its boot overlaps ours.

With no PREFECT_API_URL, Prefect starts a temporary server the moment a flow
runs: the CLI process first imports Prefect's whole server package (~3 s
here), then launches the server, which imports it again and boots (~3.5 s),
and only then does the flow start. Launching that same server process (same
command and settings as Prefect's own ``SubprocessASGIServer``) before the CLI
imports anything lets both happen at once on a two-core machine, and spares the
CLI the server import. It is still Prefect's own server, ephemeral mode, same
database under PREFECT_HOME. If anything goes wrong, Prefect's own mechanism
takes over. This module must not import Prefect.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM if the CLI dies, even by SIGKILL, so no server is left behind."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class EarlyServer:
    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.url: str | None = None

    def start(self) -> bool:
        # Prefect's own temporary server (the fallback, or PARTAGE_EARLY_SERVER=0) gives up after 20 s
        # by default: a busy two-core machine boots it in 10-25 s. Two minutes, unless the user says.
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
        if os.environ.get("PREFECT_API_URL") or os.environ.get("PARTAGE_EARLY_SERVER", "1") == "0":
            return False
        if "prefect" in sys.modules:  # already imported: it has read its settings, the address would be ignored
            return False
        spec = importlib.util.find_spec("prefect")
        if spec is None or not spec.submodule_search_locations:
            return False
        app_dir = Path(list(spec.submodule_search_locations)[0]).parent
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--app-dir", str(app_dir), "--factory",
             "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "error", "--lifespan", "on"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent,
        )
        self.url = f"http://127.0.0.1:{port}/api"
        # Set now, before Prefect is imported (it reads its settings once, at import), so the CLI's
        # imports overlap the server's boot. Stopped at exit, after Prefect's own exit hooks have
        # flushed their logs and events (atexit runs the latest registered first).
        os.environ["PREFECT_API_URL"] = self.url
        atexit.register(self.stop)
        return True

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until the server answers. If it never does, run the command again without it,
        so Prefect starts its own temporary server as usual."""
        if self.process is None or self.url is None:
            return False
        import httpx

        timeout = timeout if timeout is not None else float(os.environ.get("PARTAGE_EARLY_SERVER_TIMEOUT", 120))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        env["PARTAGE_EARLY_SERVER"] = "0"
        os.execve(sys.executable, [sys.executable, "-m", "partage.cli", *sys.argv[1:]], env)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
            if self.url and os.environ.get("PREFECT_API_URL") == self.url:
                del os.environ["PREFECT_API_URL"]
