"""The lake's address and this process's DuckDB instance attached to it.

:mod:`.engine` loads the pinned extensions offline and renders the ATTACH statement; this module
names a lake (:class:`LakeSpec`: its catalog and its data path) and keeps, per process, one
DuckDB instance with the lake attached, because loading the extensions costs ~0.3 s while a
cursor on an open instance costs ~1 ms (each cursor is its own transaction context).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb

from ..errors import WarehouseError
from .engine import EXTENSIONS, attach_sql, connect, extension_path, prepare_catalog

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
        return re.sub(r"(password=)\S+", r"\1***", re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", self.catalog))

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


def load_sql() -> list[str]:
    """The LOAD statement of each extension, for a DuckDB client that opens the lake (attach.sql)."""
    return ["LOAD '" + str(extension_path(e)).replace("'", "''") + "';" for e in EXTENSIONS]


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
        con = connect()
        try:
            con.execute(lake.attach_sql(read_only=read_only))
        except duckdb.Error as e:
            con.close()
            raise WarehouseError(f"cannot open the lake {lake.safe} (data in {lake.data_path}): "
                                 f"{str(e).splitlines()[0]}") from None
        _instances[key] = con
        return con


def forget(lake: LakeSpec) -> None:
    """Close this process's instances of ``lake`` (tests that delete a lake)."""
    with _lock:
        for key in [k for k in _instances if k[0] == lake]:
            _instances.pop(key).close()
