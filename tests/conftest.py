"""Shared fixtures: a real HTTP server on 127.0.0.1, a Prefect test harness, catalog builders."""

from __future__ import annotations

import email.utils
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

# Before Prefect is imported anywhere: quick retries, no telemetry, quiet logs.
os.environ.setdefault("PARTAGE_RETRY_BACKOFF", "0.01")
os.environ.setdefault("PARTAGE_TASK_RETRY_DELAY", "0")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


# -- a real HTTP server ------------------------------------------------------------


@dataclass
class Logged:
    method: str
    path: str
    status: int
    body_bytes: int
    headers: dict[str, str]


@dataclass
class Route:
    body: bytes
    etag: bool = True
    last_modified: bool = True
    script: list[int] = field(default_factory=list)  # statuses to answer first (e.g. [500]) before the body
    delay: float = 0.0
    redirect: str | None = None
    trickle: float = 0.0  # seconds between 100-byte pieces of the body
    mtime: float = field(default_factory=time.time)
    content_type: str = "text/csv"


class FixtureServer:
    """Serves in-memory files with ETag/Last-Modified and conditional GET; logs every request."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}  # by path, or by path?query to answer one query only
        self.log: list[Logged] = []
        self.in_flight = 0
        self.max_in_flight = 0  # the most GETs of delayed routes in progress at once (per-host limits)
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:  # noqa: N802
                route = server.match(self.path)
                headers = {k: v for k, v in self.headers.items()}
                status, body, extra = 404, b"not found", {}
                if route is not None:
                    if route.delay:  # requests waiting here at once are requests the client sent at once
                        with server._lock:
                            server.in_flight += 1
                            server.max_in_flight = max(server.max_in_flight, server.in_flight)
                        time.sleep(route.delay)
                        with server._lock:
                            server.in_flight -= 1
                    with server._lock:
                        scripted = route.script.pop(0) if route.script else None
                    if scripted is not None:
                        status, body = scripted, f"scripted {scripted}".encode()
                    elif route.redirect is not None:
                        status, body, extra = 302, b"", {"Location": route.redirect}
                    else:
                        etag = '"' + hashlib.sha256(route.body).hexdigest()[:16] + '"'
                        lm = email.utils.formatdate(route.mtime, usegmt=True)
                        if route.etag:
                            extra["ETag"] = etag
                        if route.last_modified:
                            extra["Last-Modified"] = lm
                        inm = self.headers.get("If-None-Match")
                        ims = self.headers.get("If-Modified-Since")
                        not_modified = (route.etag and inm == etag) or (
                            not inm and route.last_modified and ims
                            and email.utils.parsedate_to_datetime(ims).timestamp() >= int(route.mtime)
                        )
                        status, body = (304, b"") if not_modified else (200, route.body)
                with server._lock:  # logged before answering, so the client never sees a response before its log
                    server.log.append(Logged("GET", self.path, status, len(body), headers))
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", route.content_type if route is not None else "text/plain")
                self.end_headers()
                if route is not None and route.trickle and status == 200:
                    for i in range(0, len(body), 100):
                        self.wfile.write(body[i:i + 100])
                        self.wfile.flush()
                        time.sleep(route.trickle)
                else:
                    self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802  (webhooks: record the body, answer 200)
                route = server.routes.get(self.path.split("?")[0])
                if route is not None and route.delay:  # an API that stops answering
                    time.sleep(route.delay)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with server._lock:
                    server.log.append(Logged("POST", self.path, 200, len(body), dict(self.headers.items())))
                    server.posted.append((self.path, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.posted: list[tuple[str, bytes]] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def match(self, target: str) -> Route | None:
        """The route for a request: one whose path matches and whose query parameters (if it has
        any) are all in the request's, the most specific first; else the route of the bare path."""
        from urllib.parse import parse_qsl, urlsplit

        path, query = urlsplit(target).path, set(parse_qsl(urlsplit(target).query, keep_blank_values=True))
        best: tuple[int, Route] | None = None
        for key, route in list(self.routes.items()):
            if "?" not in key:
                continue
            kpath, kquery = key.split("?", 1)
            wanted = set(parse_qsl(kquery, keep_blank_values=True))
            if kpath == path and wanted <= query and (best is None or len(wanted) > best[0]):
                best = (len(wanted), route)
        return best[1] if best else self.routes.get(path)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def serve(self, path: str, body: bytes | str, **options: Any) -> str:
        data = body.encode("utf-8") if isinstance(body, str) else body
        old = self.routes.get(path)
        mtime = time.time() if old is None or old.body != data else old.mtime
        if old is not None and old.body != data:
            mtime = max(mtime, old.mtime + 1)  # HTTP dates have 1 s resolution
        self.routes[path] = Route(data, mtime=mtime, **options)
        return self.url(path)

    def requests(self, path: str) -> list[Logged]:
        return [r for r in self.log if r.path.split("?")[0] == path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def http_server() -> Iterator[FixtureServer]:
    server = FixtureServer()
    yield server
    server.close()


# -- Prefect -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect database and ephemeral server for the whole session (it takes ~15 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


# -- a real Prefect server ----------------------------------------------------------------

PREFECT = str(Path(sys.executable).parent / "prefect")


def stop_process(proc: subprocess.Popen) -> None:
    """Stop a server or worker this test started (SIGINT, then SIGKILL after 15 s)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """`prefect server start` on 127.0.0.1 with its own PREFECT_HOME: its API URL, and the environment
    (no other PREFECT_* variable) for the CLI, workers and flow runs that talk to it."""
    import httpx

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
        stop_process(server)
        log.close()


# -- catalogs ----------------------------------------------------------------------


class CatalogBuilder:
    """Writes a catalog directory with its schemas/ beside it, like the repository's layout."""

    def __init__(self, root: Path):
        self.root = root
        self.catalog = root / "catalog"
        self.schemas = root / "schemas"
        self.data = root / "data"
        self.warehouse = root / "warehouse"
        for d in (self.catalog, self.schemas, self.data):
            d.mkdir(parents=True, exist_ok=True)

    def schema(self, ref: str, descriptor: dict[str, Any]) -> str:
        import json

        publisher_name, version = ref.split("@")
        path = self.schemas / publisher_name / version / "schema.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(descriptor, ensure_ascii=False), encoding="utf-8")
        return ref

    def entry(self, dataset_id: str, yaml_text: str) -> Path:
        path = self.catalog / f"{dataset_id}.yaml"
        path.write_text(textwrap.dedent(yaml_text).lstrip(), encoding="utf-8")
        return path

    def dataset(self, dataset_id: str, sources: list[str], *, schema: str | None = None, policy: str = "quarantine",
                access: str = "open", extra: str = "") -> Path:
        lines = [f"id: {dataset_id}", f"title: Jeu {dataset_id}", "license: etalab-2.0", f"access: {access}",
                 f"policy: {policy}"]
        if schema:
            lines.append(f"schema: {schema}")
        lines.append("sources:")
        lines += [f"  - {s}" for s in sources]
        return self.entry(dataset_id, "\n".join(lines) + "\n" + textwrap.dedent(extra))

    def file(self, name: str, content: bytes | str, encoding: str = "utf-8") -> Path:
        path = self.data / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
        return path


@pytest.fixture
def hub(tmp_path: Path) -> CatalogBuilder:
    return CatalogBuilder(tmp_path / "hub")


def run_harvest(hub: CatalogBuilder, ids: list[str] | None = None):
    from flows.harvest import harvest

    return harvest(catalog=str(hub.catalog), warehouse=str(hub.warehouse), ids=ids)


def query(hub: CatalogBuilder, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    from partage.store.warehouse import Warehouse

    with Warehouse(hub.warehouse).connect(read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def copy_demo(dest: Path) -> Path:
    """The repository's demo (catalog, schemas, demo data) copied to ``dest``."""
    for name in ("catalog", "schemas", "demo"):
        shutil.copytree(REPO / name, dest / name)
    return dest


# -- a schema most tests share -------------------------------------------------------

COMMUNES_SCHEMA: dict[str, Any] = {
    "fields": [
        {"name": "code_insee", "title": "Code INSEE", "description": "Code officiel géographique", "type": "string",
         "constraints": {"required": True, "pattern": "^([013-9][0-9]|2[AB1-9])[0-9]{3}$"}},
        {"name": "nom", "title": "Nom de la commune", "type": "string", "constraints": {"required": True}},
        {"name": "population", "type": "integer", "constraints": {"minimum": 0}},
        {"name": "surface_km2", "type": "number"},
        {"name": "date_maj", "type": "date"},
    ],
    "primaryKey": ["code_insee"],
}

COMMUNES_CSV = (
    "code_insee,nom,population,surface_km2,date_maj\n"
    "01001,L'Abergement-Clémenciat,832,15.95,2024-01-01\n"
    "2A004,Ajaccio,73000,82.03,2024-01-01\n"
    "2B033,Bastia,48000,19.38,2024-01-01\n"
)


@pytest.fixture
def harvest(prefect_harness: None, hub: CatalogBuilder):
    """Run the real Prefect harvest flow on the test hub's catalog."""

    def _run(ids: list[str] | None = None):
        return run_harvest(hub, ids)

    return _run


# -- services the lake needs: a PostgreSQL catalog, an S3 object store -----------------


def unavailable(reason: str) -> None:
    """Skip a test whose service is missing, with the reason; under CI=true that is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail("CI=true but " + reason)
    pytest.skip(reason)


@pytest.fixture
def pg_catalog_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test's DuckLake catalog, as a postgresql:// URL.

    The server is `scripts/postgres-server.sh` (`make pg`; `make test` starts it and exports
    PARTAGE_TEST_PG_URL). The database is dropped after the test, even with connections left open.
    """
    base = os.environ.get("PARTAGE_TEST_PG_URL")
    if not base:
        unavailable("PARTAGE_TEST_PG_URL is not set: run `make pg` and export it from ~/.cache/partage-pg/pg.env "
                    "(make test does both)")
    from partage.store.engine import connect

    name = f"lake_{uuid.uuid4().hex[:12]}"
    con = connect()
    try:
        con.execute("ATTACH '" + base.replace("'", "''") + "' AS pg (TYPE postgres)")
    except Exception as e:  # noqa: BLE001 (any failure to reach the server is the same skip)
        con.close()
        unavailable(f"PostgreSQL at PARTAGE_TEST_PG_URL does not answer ({type(e).__name__}); run `make pg`")
    con.execute(f"CALL postgres_execute('pg', 'CREATE DATABASE {name}', use_transaction := false)")
    try:
        yield urlunsplit(urlsplit(base)._replace(path=f"/{name}"))
    finally:
        con.execute(f"CALL postgres_execute('pg', 'DROP DATABASE IF EXISTS {name} WITH (FORCE)', use_transaction := false)")
        con.close()


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:PORT
    key_id: str = "partage-test"
    secret: str = "partage-test"
    region: str = "us-east-1"


@dataclass(frozen=True)
class S3Bucket:
    server: S3Server
    name: str

    @property
    def url(self) -> str:
        return f"s3://{self.name}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's standalone S3 server (`moto[server]`) in its own process on 127.0.0.1, for the session.

    A process of its own, not a thread: the tests' writers (DuckDB's httpfs, s3fs, subprocesses)
    reach it as they would MinIO or Scaleway, and its request handling never waits on the test's GIL.
    """
    try:
        import moto.server  # noqa: F401
    except ImportError as e:
        unavailable(f"moto[server] is needed for the S3 tests (make install): {e}")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"moto's S3 server did not start on 127.0.0.1:{port}") from None
                time.sleep(0.1)
        yield S3Server(f"http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture
def s3_bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Bucket:
    """A new, empty bucket on the session's S3 server, with the AWS_* environment pointing at it
    (boto3, s3fs and :func:`partage.store.engine.connect` all read it)."""
    import boto3

    for k, v in {"AWS_ENDPOINT_URL": s3_server.endpoint, "AWS_ACCESS_KEY_ID": s3_server.key_id,
                 "AWS_SECRET_ACCESS_KEY": s3_server.secret, "AWS_DEFAULT_REGION": s3_server.region}.items():
        monkeypatch.setenv(k, v)
    bucket = S3Bucket(s3_server, f"partage-{uuid.uuid4().hex[:12]}")
    boto3.client("s3", endpoint_url=s3_server.endpoint).create_bucket(Bucket=bucket.name)
    return bucket
