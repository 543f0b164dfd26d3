"""The DuckDB engine of the store: a connection with DuckLake and its companions loaded offline.

DuckDB must never download an extension at run time (machines without internet, pinned versions):
each extension comes from its PyPI package (``duckdb-extension-ducklake``, ``-sqlite``,
``-postgres``, ``-httpfs``), of exactly the version of ``duckdb``, and is loaded from the package's
directory. Two of them carry a file name that differs from the name their entry point was built
under (``sqlite`` is ``sqlite_scanner``, ``postgres`` is ``postgres_scanner``): DuckDB derives the
entry point from the file name, so those are linked under their internal name in a per-user cache
directory first. Autoloading and autoinstalling stay off, so a missing extension fails at
:func:`connect` with the package to install, not later with a download attempt.

The two functions the store builds on:

- :func:`connect` gives a connection with every extension loaded (and an S3 secret from the
  usual ``AWS_*`` environment when one is set);
- :func:`attach_sql` renders the ``ATTACH`` statement of a lake from its catalog URL and data path;
  :func:`prepare_catalog` is called once before, so a SQLite catalog is in WAL mode.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import duckdb

from ..errors import DuckDBExtensionMissing, LakeLocationError

__all__ = ["EXTENSIONS", "Extension", "attach_sql", "connect", "extension_path", "postgres_connection", "prepare_catalog",
           "s3_secret_sql"]


@dataclass(frozen=True)
class Extension:
    """One DuckDB extension shipped as a PyPI package."""

    name: str  # the file's name in its package
    package: str  # the PyPI distribution that ships it
    internal: str  # the name its entry point was built under (the file must carry it)

    @property
    def module(self) -> str:
        return self.package.replace("-", "_")


EXTENSIONS: tuple[Extension, ...] = (
    Extension("ducklake", "duckdb-extension-ducklake", "ducklake"),
    Extension("sqlite", "duckdb-extension-sqlite", "sqlite_scanner"),
    Extension("postgres", "duckdb-extension-postgres", "postgres_scanner"),
    Extension("httpfs", "duckdb-extension-httpfs", "httpfs"),
)

OFFLINE_CONFIG: dict[str, str | bool] = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


def _link_dir(source: Path) -> Path:
    """Where the renamed link to ``source`` lives: per user (XDG cache), per DuckDB version and per
    installation (a hash of the package's path), so two virtualenvs never repoint each other's links."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = hashlib.sha256(str(source.parent.resolve()).encode()).hexdigest()[:12]
    return cache / "partage" / "duckdb-extensions" / f"v{duckdb.__version__}" / key


def extension_path(ext: Extension) -> Path:
    """The file DuckDB must LOAD for ``ext``: the package's own file, or a link to it under its internal name.

    Raises :class:`DuckDBExtensionMissing` naming the package when it is not installed for this DuckDB version.
    """
    spec = importlib.util.find_spec(ext.module)
    version = f"v{duckdb.__version__}"
    roots = list(spec.submodule_search_locations or []) if spec else []
    found = [p for r in roots if (p := Path(r) / "extensions" / version / f"{ext.name}.duckdb_extension").is_file()]
    if not found:
        raise DuckDBExtensionMissing(
            f"the DuckDB extension {ext.name!r} for DuckDB {duckdb.__version__} is not installed "
            f"(Python package {ext.package}=={duckdb.__version__}); run `make install` in the Partage checkout "
            f"(or `pip install {ext.package}=={duckdb.__version__}`)"
        )
    source = found[0]
    if ext.internal == ext.name:
        return source
    link = _link_dir(source) / f"{ext.internal}.duckdb_extension"
    if link.is_symlink() and link.resolve() == source.resolve():
        return link
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.{os.getpid()}")  # replaced atomically: processes start at once
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(source)
    os.replace(tmp, link)
    return link


def _literal(value: str) -> str:
    """A SQL string literal (DuckDB's ATTACH and CREATE SECRET take no bound parameters)."""
    return "'" + value.replace("'", "''") + "'"


def s3_secret_sql(env: Mapping[str, str]) -> str | None:
    """The ``CREATE SECRET`` for ``s3://`` data paths, from the environment botocore and s3fs read.

    ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``), ``AWS_REGION`` or
    ``AWS_DEFAULT_REGION``, and ``AWS_ENDPOINT_URL`` for an S3-compatible store (MinIO, Garage,
    Scaleway, moto): its host:port becomes the endpoint, path-style URLs, SSL as its scheme says.
    None when no key is set (then DuckDB's own defaults apply, e.g. public buckets).
    The statement carries the secret: never log it.
    """
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        return None
    parts = [f"KEY_ID {_literal(key)}", f"SECRET {_literal(secret)}"]
    if token := env.get("AWS_SESSION_TOKEN"):
        parts.append(f"SESSION_TOKEN {_literal(token)}")
    if region := env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"):
        parts.append(f"REGION {_literal(region)}")
    if endpoint := env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"):
        url = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        parts += [f"ENDPOINT {_literal(url.netloc)}", "URL_STYLE 'path'", f"USE_SSL {str(url.scheme == 'https').lower()}"]
    return f"CREATE OR REPLACE TEMPORARY SECRET partage_s3 (TYPE s3, {', '.join(parts)})"


def connect(database: str = ":memory:", *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with DuckLake, SQLite, PostgreSQL and httpfs loaded from their packages, offline.

    ``database`` is DuckDB's own database (in memory by default: the lake is ATTACHed, see
    :func:`attach_sql`). Nothing is ever downloaded; a missing extension package raises
    :class:`DuckDBExtensionMissing` with the fix. When ``AWS_ACCESS_KEY_ID`` is set, a temporary S3
    secret is created from the environment (:func:`s3_secret_sql`) so ``s3://`` data paths work.
    """
    paths = [extension_path(ext) for ext in EXTENSIONS]  # all checked before anything is opened
    con = duckdb.connect(database, read_only=read_only, config=OFFLINE_CONFIG)
    try:
        for path in paths:
            con.execute(f"LOAD {_literal(str(path))}")
        if sql := s3_secret_sql(os.environ):
            con.execute(sql)
    except BaseException:
        con.close()
        raise
    return con


def _catalog(catalog_url: str) -> str:
    """The part after ``ducklake:``: ``sqlite:/abs/path`` or ``postgres:<connection string>``."""
    if catalog_url.startswith(("postgresql://", "postgres://")):
        return f"postgres:{catalog_url}"
    if catalog_url.startswith("postgres:"):
        return catalog_url
    if catalog_url.startswith("sqlite:"):
        return f"sqlite:{Path(catalog_url.removeprefix('sqlite:')).expanduser().absolute()}"
    if "://" not in catalog_url and catalog_url.endswith((".sqlite", ".db")):
        return f"sqlite:{Path(catalog_url).expanduser().absolute()}"
    raise LakeLocationError(
        f"the lake's catalog {catalog_url!r} is neither a SQLite file nor a PostgreSQL database: write "
        "sqlite:/path/catalog.sqlite or postgresql://user:password@host:port/dbname"
    )


def postgres_connection(catalog_url: str) -> str | None:
    """The libpq string or URI of a PostgreSQL catalog (what ``ATTACH … (TYPE postgres)`` takes), None for SQLite."""
    catalog = _catalog(catalog_url)
    return catalog.removeprefix("postgres:") if catalog.startswith("postgres:") else None


def prepare_catalog(catalog_url: str) -> None:
    """Make a SQLite catalog file (and its directory) in WAL mode, before its first ATTACH; no-op for PostgreSQL.

    Why: DuckLake leaves SQLite in its default rollback-journal mode, where a reader that holds a
    transaction open (an analyst's session) makes every writer's commit wait 5 s and fail with
    "database is locked". In WAL mode (persistent in the file) readers never block a commit.
    Two writers whose transactions overlap still cannot both commit on SQLite: the later one fails
    with "database is locked" and succeeds when retried (PostgreSQL retries that case itself).
    """
    catalog = _catalog(catalog_url)
    if not catalog.startswith("sqlite:"):
        return
    path = Path(catalog.removeprefix("sqlite:"))
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA journal_mode=WAL")
    finally:
        con.close()


def attach_sql(catalog_url: str, data_path: str, *, alias: str = "lake") -> str:
    """The ``ATTACH`` statement of a DuckLake lake, for :func:`connect`'s connections and any DuckDB client.

    ``catalog_url`` says where the lake's metadata lives:

    - ``sqlite:/path/catalog.sqlite`` (or a bare path ending ``.sqlite``/``.db``): an embedded SQLite
      file, nothing to install, several local processes;
    - ``postgres:<libpq string>`` or ``postgresql://user:password@host:port/dbname``: a PostgreSQL
      database, for several machines.

    ``data_path`` is where the Parquet files go: a local directory (made absolute) or ``s3://bucket/prefix``.
    Raises :class:`LakeLocationError` for anything else. The statement may carry the catalog's
    password (from the URL): never log it.
    """
    if not alias.isidentifier():
        raise LakeLocationError(f"the lake's alias {alias!r} must be a plain SQL identifier (letters, digits, _)")
    catalog = _catalog(catalog_url)
    if data_path.startswith("s3://"):
        data = data_path
    elif "://" in data_path:
        raise LakeLocationError(f"the lake's data path {data_path!r} must be a local directory or s3://bucket/prefix")
    else:
        data = str(Path(data_path).expanduser().absolute())
    data = data.rstrip("/") + "/"
    return f"ATTACH {_literal('ducklake:' + catalog)} AS {alias} (DATA_PATH {_literal(data)})"
