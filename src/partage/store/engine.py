"""The pinned DuckDB engine and the lake's address: extensions from packages, never downloaded.

DuckLake, and the drivers of its catalog (SQLite, PostgreSQL) and of object storage (httpfs),
are DuckDB extensions. DuckDB fetches extensions from the internet on first use, which many
hubs (behind a proxy, or offline) cannot do, and which would let a run pick up an unpinned
binary. Partage installs them as PyPI packages of the same version as DuckDB
(``duckdb-extension-*``, locked in ``uv.lock``) and LOADs each file from its package directory;
automatic install and load are switched off, so nothing is ever downloaded.

Loading the extensions costs ~0.3 s, so a process keeps one DuckDB instance per lake with the
lake attached, and hands out cursors (each its own transaction context, ~1 ms).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb

from ..errors import WarehouseError

LAKE = "lake"  # the name the lake is attached under, in every connection Partage opens and in attach.sql

# The extension, the package that ships it, and the name DuckDB's loader wants for its file (the
# sqlite and postgres extensions register under their historical "*_scanner" names).
_EXTENSIONS: dict[str, tuple[str, str]] = {
    "ducklake": ("duckdb_extension_ducklake", "ducklake"),
    "sqlite": ("duckdb_extension_sqlite", "sqlite_scanner"),
    "postgres": ("duckdb_extension_postgres", "postgres_scanner"),
    "httpfs": ("duckdb_extension_httpfs", "httpfs"),
}

CatalogKind = Literal["sqlite", "postgres"]


class ExtensionMissing(WarehouseError):
    """A DuckDB extension package is not installed: the message names it and the fix."""


def extension_file(name: str) -> Path:
    """The extension's file, under the name DuckDB's loader expects (linked into a cache dir if needed)."""
    package, internal = _EXTENSIONS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ExtensionMissing(
            f"the DuckDB extension '{name}' is not installed (package {package.replace('_', '-')}=="
            f"{duckdb.__version__}); run `make install`, which installs it from uv.lock")
    base = Path(next(iter(spec.submodule_search_locations))) / "extensions" / f"v{duckdb.__version__}"
    found = sorted(base.glob("*.duckdb_extension"))
    if not found:
        raise ExtensionMissing(
            f"{package} has no extension for DuckDB {duckdb.__version__} under {base}: the extension packages "
            "must have DuckDB's exact version; run `make install` (uv.lock pins them together)")
    if found[0].name == f"{internal}.duckdb_extension":
        return found[0]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "partage" / "duckdb-extensions" \
        / f"v{duckdb.__version__}"
    target = cache / f"{internal}.duckdb_extension"
    if not target.is_file() or target.stat().st_size != found[0].stat().st_size:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.{os.getpid()}")
        shutil.copyfile(found[0], tmp)
        os.replace(tmp, target)
    return target


def load_sql(names: tuple[str, ...]) -> list[str]:
    """The LOAD statements for these extensions (for a connection or for attach.sql)."""
    return [f"LOAD {_quote(str(extension_file(n)))};" for n in names]


@dataclass(frozen=True)
class LakeSpec:
    """Where the lake's catalog and data files are.

    ``catalog`` is ``sqlite:/abs/path.sqlite`` (the default: one file beside the warehouse, nothing
    to install) or ``postgres:<libpq connection string or URI>`` (several machines); ``data_path``
    a local directory or an ``s3://`` prefix."""

    catalog: str
    data_path: str

    @property
    def kind(self) -> CatalogKind:
        return "postgres" if self.catalog.startswith(("postgres:", "postgresql:")) else "sqlite"

    @property
    def extensions(self) -> tuple[str, ...]:
        names: tuple[str, ...] = ("ducklake", "postgres" if self.kind == "postgres" else "sqlite")
        return names + (("httpfs",) if self.data_path.startswith("s3://") else ())

    @property
    def safe(self) -> str:
        """The catalog address without its password, for messages and logs."""
        return re.sub(r"(password=)\S+", r"\1***", re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", self.catalog))

    def attach_sql(self, *, read_only: bool = False, alias: str = LAKE) -> str:
        """The ATTACH statement of this lake (also written into ``attach.sql`` for analysts)."""
        catalog = self.catalog.replace("postgresql:", "postgres:", 1) if self.kind == "postgres" else self.catalog
        options = [f"DATA_PATH {_quote(self.data_path.rstrip('/') + '/')}"]
        if read_only:
            options.append("READ_ONLY")
        return f"ATTACH IF NOT EXISTS {_quote('ducklake:' + catalog)} AS {alias} ({', '.join(options)});"

    def prepare(self) -> None:
        """Create what the catalog needs before DuckLake opens it: for SQLite, the file in WAL mode.

        In SQLite's default journal mode a reader's open transaction (an analyst's DuckDB session
        inside BEGIN, a BI tool) makes every commit fail with "database is locked"; in WAL mode
        readers never block the writer and see the new snapshot at their next transaction
        (measured: tests/test_lake.py). WAL is a property of the file, so this is done once."""
        if self.kind != "sqlite":
            return
        path = Path(self.catalog.removeprefix("sqlite:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(path) as db:
            if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                db.execute("PRAGMA journal_mode=WAL")
        if not self.data_path.startswith("s3://"):
            Path(self.data_path).mkdir(parents=True, exist_ok=True)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def s3_secret_sql() -> str | None:
    """An S3 secret from the usual environment (AWS_*), for a lake whose data lives in object storage."""
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if not (key or endpoint):
        return None
    parts = ["TYPE s3"]
    if key and secret:
        parts += [f"KEY_ID {_quote(key)}", f"SECRET {_quote(secret)}"]
    if os.environ.get("AWS_SESSION_TOKEN"):
        parts.append(f"SESSION_TOKEN {_quote(os.environ['AWS_SESSION_TOKEN'])}")
    parts.append(f"REGION {_quote(os.environ.get('AWS_DEFAULT_REGION') or os.environ.get('AWS_REGION') or 'us-east-1')}")
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        parts += [f"ENDPOINT {_quote(host.rstrip('/'))}", "URL_STYLE 'path'",
                  f"USE_SSL {'true' if scheme == 'https' else 'false'}"]
    return f"CREATE OR REPLACE SECRET partage_s3 ({', '.join(parts)});"


_instances: dict[tuple[LakeSpec, bool], duckdb.DuckDBPyConnection] = {}
_lock = threading.Lock()


def instance(lake: LakeSpec, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """This process's DuckDB instance with ``lake`` attached (created once; callers take cursors)."""
    key = (lake, read_only)
    with _lock:
        con = _instances.get(key)
        if con is not None:
            return con
        if not read_only:
            lake.prepare()
        con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False,
                                     "allow_unsigned_extensions": False})
        try:
            for statement in load_sql(lake.extensions):
                con.execute(statement)
            if "httpfs" in lake.extensions and (secret := s3_secret_sql()):
                con.execute(secret)
            con.execute(lake.attach_sql(read_only=read_only))
        except duckdb.Error as e:
            con.close()
            raise WarehouseError(f"cannot open the lake {lake.safe} (data in {lake.data_path}): {e}") from None
        _instances[key] = con
        return con


def forget(lake: LakeSpec) -> None:
    """Close this process's instances of ``lake`` (tests that delete a lake, a fork that must not share it)."""
    with _lock:
        for key in [k for k in _instances if k[0] == lake]:
            _instances.pop(key).close()
