"""The lake's address and this process's DuckDB instance attached to it.

:mod:`.engine` loads the pinned extensions offline and renders the ATTACH statement; this module
names a lake (:class:`LakeSpec`: its catalog and its data path) and keeps, per process, one
DuckDB instance with the lake attached, because loading the extensions costs ~0.3 s while a
cursor on an open instance costs ~1 ms (each cursor is its own transaction context).
"""

from __future__ import annotations

import random
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb

from ..errors import WarehouseError
from .engine import EXTENSIONS, attach_sql, connect, extension_path, postgres_connection, prepare_catalog

LAKE = "lake"  # the name the lake is attached under, in every connection Partage opens and in attach.sql

CatalogKind = Literal["sqlite", "postgres"]


@dataclass(frozen=True)
class LakeSpec:
    """Where the lake's catalog and data files are.

    ``catalog`` is ``sqlite:/abs/path.sqlite`` (the default: one file in the warehouse, nothing to
    install) or a PostgreSQL database (``postgresql://…`` or ``postgres:<libpq string>``) for several
    machines; ``data_path`` a local directory or an ``s3://`` prefix."""

    catalog: str
    data_path: str

    @property
    def kind(self) -> CatalogKind:
        return "postgres" if self.catalog.startswith(("postgres:", "postgresql:", "postgres://")) else "sqlite"

    @property
    def sqlite_file(self) -> Path | None:
        return Path(self.catalog.removeprefix("sqlite:")) if self.kind == "sqlite" else None

    @property
    def safe(self) -> str:
        """The catalog address without its password, for messages and logs."""
        return redact(self.catalog)

    def attach_sql(self, *, read_only: bool = False) -> str:
        """The ATTACH statement of this lake (also written into ``attach.sql`` for analysts)."""
        sql = attach_sql(self.catalog, self.data_path, alias=LAKE).replace("ATTACH ", "ATTACH IF NOT EXISTS ", 1)
        # The data path is the one this warehouse has now: a moved or re-mounted warehouse keeps
        # working (DuckLake stores data files relative to it).
        options = ", OVERRIDE_DATA_PATH true" + (", READ_ONLY" if read_only else "")
        return sql[:-1] + options + ");"

    def prepare(self) -> None:
        """Create the catalog's file in WAL mode and the data directory (see engine.prepare_catalog)."""
        prepare_catalog(self.catalog)
        if not self.data_path.startswith("s3://"):
            Path(self.data_path).mkdir(parents=True, exist_ok=True)


def redact(text: str) -> str:
    """``text`` with any PostgreSQL password (``user:pw@`` of a URI, ``password=`` of a libpq string) masked."""
    return re.sub(r"(password=)\S+", r"\1***", re.sub(r"(://[^:/@\s]+:)[^@\s]+@", r"\1***@", text))


def load_sql() -> list[str]:
    """The LOAD statement of each extension, for a DuckDB client that opens the lake (attach.sql)."""
    return ["LOAD '" + str(extension_path(e)).replace("'", "''") + "';" for e in EXTENSIONS]


_instances: dict[tuple[LakeSpec, bool], duckdb.DuckDBPyConnection] = {}
_lock = threading.Lock()


INIT_LOCK = 0x7061727461676531  # the advisory lock's key ("partage1"), per database: serialises first ATTACHes
INIT_LOCK_WAIT = 120.0  # seconds a process waits for another one's first ATTACH before it gives up
_GUARD = "partage_attach_guard"  # the plain PostgreSQL attachment that holds the lock


def instance(lake: LakeSpec, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """This process's DuckDB instance with ``lake`` attached (created once; callers take cursors)."""
    key = (lake, read_only)
    with _lock:
        con = _instances.get(key)
        if con is not None:
            return con
        if not read_only:
            lake.prepare()
        con = connect()
        try:
            _attach(con, lake, read_only)
        except duckdb.Error as e:
            con.close()
            raise WarehouseError(f"cannot open the lake {lake.safe} (data in {lake.data_path}): "
                                 f"{redact(str(e).splitlines()[0])}") from None
        except BaseException:
            con.close()
            raise
        _instances[key] = con
        return con


def _attach(con: duckdb.DuckDBPyConnection, lake: LakeSpec, read_only: bool) -> None:
    """ATTACH the lake; on PostgreSQL, one process of the whole cluster at a time.

    Why: the first ATTACH of an empty PostgreSQL catalog creates DuckLake's metadata tables, and
    two processes doing it at once (two workers started together on a fresh database) race: the
    loser fails on ``CREATE TABLE ducklake_metadata`` (measured: 3 of 4 processes failed, every
    time). So each ATTACH of a PostgreSQL catalog first takes a transaction-scoped advisory lock
    (``pg_try_advisory_xact_lock``) on the catalog's database, through the postgres extension, and
    holds it until its ATTACH is done; the next process then finds the tables made and complete.

    Why a lock and not retrying the failed ATTACH: a retry relies on the text of an error DuckLake
    does not promise, and on the loser seeing either no tables or all of them — a catalog whose
    creation is half done (or made by a newer DuckLake) would be read as it is. With the lock no
    process ever sees a catalog being created, whatever DuckLake does inside its ATTACH, and the
    cost is one small PostgreSQL transaction per process start (~5 ms). The lock is taken inside a
    DuckDB transaction because the extension's connection pool resets a pooled session between
    statements (a session-level ``pg_advisory_lock`` would be gone at once); a transaction pins
    one connection, and PostgreSQL releases the lock when it ends, or when the process dies.
    """
    con.execute("SET enable_progress_bar = false")  # a wait here is not a query to show progress of
    dsn = postgres_connection(lake.catalog)
    if dsn is None:
        con.execute(lake.attach_sql(read_only=read_only))
        return
    con.execute(f"ATTACH {_literal(dsn)} AS {_GUARD} (TYPE postgres)")
    guard = con.cursor()
    try:
        guard.execute("BEGIN")
        deadline = time.monotonic() + INIT_LOCK_WAIT
        take = f"SELECT * FROM postgres_query('{_GUARD}', 'SELECT pg_try_advisory_xact_lock({INIT_LOCK})')"
        while not guard.execute(take).fetchone()[0]:  # type: ignore[index]
            if time.monotonic() > deadline:
                raise WarehouseError(
                    f"cannot open the lake {lake.safe}: another process has been opening it for {INIT_LOCK_WAIT:.0f} s "
                    f"(it holds PostgreSQL advisory lock {INIT_LOCK} in that database); if no Partage process is "
                    "starting, look for it in pg_locks / pg_stat_activity and end that session, then run this again")
            time.sleep(0.02 + random.random() * 0.05)
        con.execute(lake.attach_sql(read_only=read_only))
    finally:
        try:
            guard.execute("ROLLBACK")  # ends the PostgreSQL transaction: the lock is released
        except duckdb.Error:
            pass
        guard.close()
        con.execute(f"DETACH {_GUARD}")


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def forget(lake: LakeSpec) -> None:
    """Close this process's instances of ``lake`` (tests that delete a lake)."""
    with _lock:
        for key in [k for k in _instances if k[0] == lake]:
            _instances.pop(key).close()
