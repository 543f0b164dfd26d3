"""Where row queries run: an in-memory DuckDB with the lake attached read-only.

A version's rows are the dataset's lake table at the snapshot that committed it (DuckLake time
travel, see ``catalog_cache.relation_of``). Reading the lake costs a few ms a query (its
catalog, then the Parquet footers), so the versions being served are
copied into in-memory tables by a background thread, within a row budget
(``PARTAGE_API_CACHE_ROWS``), least recently used first out; primary-key
columns and code-like columns (a ``pattern`` constraint) get an ART index for
point lookups. Until a version's table is ready, or when it does not fit the
budget, its queries read the lake directly: same rows, slower.
Versions are immutable, so a table never needs refreshing.

Page queries run one thread each (``threads=1``): the API runs a few of them at once on its own
query threads (see :mod:`partage.api.app`), and with 16 requests in flight on 2 cores, splitting
each small query over DuckDB's worker threads only added scheduling and made the quick queries
wait behind the slow ones' tasks. Exports, long scans of the Parquet files, have their own DuckDB
with every core.

One cursor per thread. Each query has a deadline: a watchdog thread interrupts
the cursor past it (DuckDB stops at its next check and raises
``InterruptException``), which the API answers with a clear 503.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import duckdb
import pyarrow as pa

from ..errors import WarehouseError
from ..store.warehouse import ident
from .lru import LRU
from .query import Matches, RowQuery, Source

log = logging.getLogger("partage.api")

# A text column gets a dictionary (see query.Source) when it has at most 1/DICTIONARY_RATIO as many
# distinct values as rows: below that, matching the distinct values saves little over every row.
DICTIONARY_RATIO = 4
MAX_DICTIONARIES = 16
CODE_PREFIX = "__partage_code_"
MAX_LISTED_CODES = 256  # more matching values than this: a semi-join with the dictionary (a long list is slow)
UNCODED = ("_source", "_source_version")  # Partage's own columns: a handful of values, nobody searches them


class QueryTimeout(Exception):
    """A query ran past its deadline and was interrupted."""


class Watchdog:
    """Interrupts cursors whose deadline passed. One thread for all queries.

    It looks at the deadlines every TICK seconds rather than being woken by each new query: a
    wake-up per query (a page takes about a millisecond) cost a thread switch and a GIL hand-off
    each time. A query is therefore interrupted at most TICK seconds after its deadline.
    """

    TICK = 0.25

    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []
        self._live: dict[int, duckdb.DuckDBPyConnection] = {}
        self._ids = itertools.count()
        self._cond = threading.Condition()
        threading.Thread(target=self._run, name="partage-query-watchdog", daemon=True).start()

    def arm(self, cursor: duckdb.DuckDBPyConnection, seconds: float) -> int:
        key = next(self._ids)
        with self._cond:
            self._live[key] = cursor
            heapq.heappush(self._heap, (time.monotonic() + seconds, key))
        return key

    def disarm(self, key: int) -> bool:
        """True if the query finished in time (it was not interrupted)."""
        with self._cond:
            return self._live.pop(key, None) is not None

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][1] not in self._live:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait(self.TICK)
                    continue
                deadline, key = self._heap[0]
                delay = deadline - time.monotonic()
                if delay > 0:
                    self._cond.wait(min(delay, self.TICK))
                    continue
                heapq.heappop(self._heap)
                cursor = self._live.pop(key, None)
                if cursor is not None:
                    cursor.interrupt()


def _database(lake: str | None, threads: int | None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB; with ``lake`` (its read-only ATTACH statement), the lake attached under
    ``lake`` too, its extensions loaded offline (versions are read by time travel, see CatalogCache)."""
    if lake is None:
        return duckdb.connect(":memory:", config={"threads": threads} if threads else {})
    from ..store.engine import connect

    db = connect()
    try:
        if threads:
            db.execute(f"SET threads = {int(threads)}")
        db.execute(lake)
    except duckdb.Error as e:  # the statement may hold the catalog's password: not in the message
        db.close()
        raise WarehouseError(f"the API cannot open the lake: {str(e).splitlines()[0]}") from None
    except BaseException:
        db.close()
        raise
    return db


class Engine:
    def __init__(self, threads: int | None = 1, cache_rows: int = 20_000_000,
                 register: Callable[[duckdb.DuckDBPyConnection], None] | None = None, lake: str | None = None):
        """``lake``: the lake's read-only ATTACH statement, when the relations served are time travel on
        its tables (``partage serve``); None for relations over files only."""
        self._db = _database(lake, threads)
        self._exports = _database(lake, None)
        for db in (self._db, self._exports):
            if register is not None:  # an object-store warehouse: its fsspec filesystem
                register(db)
            # Parquet footers are read once per file, not once per query (the files never change).
            db.execute("SET GLOBAL parquet_metadata_cache = true")
        # Late materialization turns a page (`... LIMIT 21`) into a rowid semi-join with a second scan
        # of a whole row group, and `WHERE code = ? LIMIT 21` into one that cannot use the ART index:
        # a page took 3x the CPU (1M rows: 0.95 ms instead of 0.3 ms). Pages are small, so it buys
        # nothing here. (`late_materialization_max_rows = 0` does not turn it off in DuckDB 2.0.)
        self._db.execute("SET GLOBAL disabled_optimizers = 'late_materialization'")
        self._local = threading.local()
        self._watchdog = Watchdog()
        self._matches = LRU(8 * 1024 * 1024)  # (dictionary table, pattern) -> codes, or None: too many
        self.cache_rows = cache_rows
        self._tables: OrderedDict[tuple[str, str], tuple[Source, int]] = OrderedDict()  # key -> (source, rows)
        self._pending: set[tuple[str, str]] = set()
        self._tables_lock = threading.Lock()
        self._names = itertools.count()
        self._queue: queue.Queue[tuple[tuple[str, str], str, int, tuple[str, ...]]] = queue.Queue()
        threading.Thread(target=self._loader, name="partage-version-loader", daemon=True).start()

    # -- the in-memory copies of versions ----------------------------------------------

    def source(self, key: tuple[str, str], relation: str, rows: int, indexed: tuple[str, ...] | list[str] = ()) -> Source:
        """What to read a version from: its in-memory table if ready, else its relation over the
        Parquet files (and ask for the table to be made)."""
        with self._tables_lock:
            hit = self._tables.get(key)
            if hit is not None:
                self._tables.move_to_end(key)
                return hit[0]
            if key not in self._pending and 0 < rows <= self.cache_rows:
                self._pending.add(key)
                self._queue.put((key, relation, rows, tuple(indexed)))
        return Source(relation)

    def retain(self, keys: set[tuple[str, str]]) -> None:
        """Drop the tables of versions no longer stored (removed by retention)."""
        with self._tables_lock:
            gone = [k for k in self._tables if k not in keys]
            names = [self._tables.pop(k)[0].relation for k in gone]
        for name in names:
            self._queue.put((("", name), "", -1, ()))  # the loader thread drops it

    def forget(self, key: tuple[str, str]) -> None:
        """A table was dropped under a query: do not offer it again."""
        with self._tables_lock:
            self._tables.pop(key, None)

    def wait_loaded(self, timeout: float = 60.0) -> None:
        """Block until the loader has nothing left to do (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._tables_lock:
                if not self._pending and not self._queue.unfinished_tasks:
                    return
            time.sleep(0.02)

    def _loader(self) -> None:
        # Copying a version takes seconds of one core: let the page queries have the CPU first. On
        # Linux a thread has its own nice value; elsewhere this is skipped.
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (AttributeError, OSError):
            pass
        cur = self._db.cursor()
        while True:
            item = self._queue.get()
            try:
                self._load(cur, *item)
            finally:
                self._queue.task_done()

    def _load(self, cur: duckdb.DuckDBPyConnection, key: tuple[str, str], relation: str, rows: int,
              indexed: tuple[str, ...]) -> None:
        if rows < 0:
            self._drop(cur, key[1])
            return
        name = f"v{next(self._names)}"
        try:
            t = time.perf_counter()
            source = self._copy(cur, name, relation, rows)
            for col in indexed:
                cur.execute(f"CREATE INDEX {ident(name + '_' + col)} ON {name} ({ident(col)})")
            log.info("version %s/%s in memory (%d rows, %d index(es), %d dictionar(ies)) in %.2f s", key[0],
                     key[1], rows, len(indexed), len(source.dictionaries), time.perf_counter() - t)
        except duckdb.Error as e:  # removed by retention meanwhile, unreadable...: read where it is
            log.warning("version %s/%s is not copied into memory, its queries read the lake: %s", key[0], key[1], e)
            self._drop(cur, name)
            with self._tables_lock:
                self._pending.discard(key)
            return
        drop = []
        with self._tables_lock:
            self._pending.discard(key)
            self._tables[key] = (source, rows)
            while sum(r for _, r in self._tables.values()) > self.cache_rows and len(self._tables) > 1:
                _, (old, _) = self._tables.popitem(last=False)
                drop.append(old.relation)
        for old_name in drop:
            self._drop(cur, old_name)

    def _copy(self, cur: duckdb.DuckDBPyConnection, name: str, relation: str, rows: int) -> Source:
        """Copy a version into table ``name``, in the version's stored order, with a dictionary
        (:class:`Source`) for each text column having at most a quarter as many distinct values as rows."""
        cur.execute(f"CREATE TABLE {name}_raw AS SELECT * FROM {relation}")
        described = cur.execute(f"DESCRIBE {name}_raw").fetchall()
        text = [r[0] for r in described if str(r[1]).upper() == "VARCHAR" and r[0] not in UNCODED]
        coded: list[str] = []
        if text:
            approx = cur.execute("SELECT " + ", ".join(f"approx_count_distinct({ident(c)})" for c in text)
                                 + f" FROM {name}_raw").fetchall()[0]
            taken = {r[0] for r in described}
            coded = [c for c, n in zip(text, approx, strict=True) if n * DICTIONARY_RATIO <= rows][:MAX_DICTIONARIES]
            coded = [c for i, c in enumerate(coded) if f"{CODE_PREFIX}{i}" not in taken]
        dictionaries: dict[str, tuple[str, str]] = {}
        joins = []
        for i, col in enumerate(coded):
            table, code = f"{name}_d{i}", f"{CODE_PREFIX}{i}"
            cur.execute(f"CREATE TABLE {table} AS SELECT (row_number() OVER (ORDER BY value))::UINTEGER AS code, value "
                        f"FROM (SELECT DISTINCT {ident(col)} AS value FROM {name}_raw WHERE {ident(col)} IS NOT NULL)")
            joins.append((table, col, code))
            dictionaries[col] = (table, code)
        if joins:
            # Joined, then put back in the stored order (rowid of the plain copy): pages without a sort
            # come in that order.
            codes = ", ".join(f"{t}.code AS {ident(code)}" for t, _, code in joins)
            on = " ".join(f"LEFT JOIN {t} ON {name}_raw.{ident(col)} = {t}.value" for t, col, _ in joins)
            cur.execute(f"CREATE TABLE {name} AS SELECT {name}_raw.*, {codes} FROM {name}_raw {on} "
                        f"ORDER BY {name}_raw.rowid")
            cur.execute(f"DROP TABLE {name}_raw")
        else:
            cur.execute(f"ALTER TABLE {name}_raw RENAME TO {name}")
        return Source(name, dictionaries)

    def _drop(self, cur: duckdb.DuckDBPyConnection, name: str) -> None:
        """Drop a version's table, its dictionaries, and a half-made copy."""
        extra = [r[0] for r in cur.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'memory' AND schema_name = 'main' "
            "AND (table_name = ? OR table_name LIKE ? ESCAPE '\\')", [f"{name}_raw", f"{name}\\_d%"]).fetchall()]
        for table in [name, *extra]:
            cur.execute(f"DROP TABLE IF EXISTS {ident(table)}")

    def matches(self, source: Source, q: RowQuery, timeout: float) -> Matches:
        """For each ``__contains`` on a column with a dictionary, the codes of the matching values, when
        there are at most MAX_LISTED_CODES (cached per dictionary and pattern: versions never change)."""
        out: dict[int, list[int]] = {}
        for i, c in enumerate(q.where):
            if c.contains is None or c.contains not in source.dictionaries:
                continue
            table = source.dictionaries[c.contains][0]
            key = (table, c.params[0])
            hit = self._matches.get(key)
            if hit is None:
                rows = self.fetch(f"SELECT code FROM {table} WHERE value ILIKE ? ESCAPE '\\' ORDER BY code LIMIT ?",
                                  [c.params[0], MAX_LISTED_CODES + 1], timeout)[1]
                hit = ([r[0] for r in rows],) if len(rows) <= MAX_LISTED_CODES else (None,)
                self._matches.put(key, hit, 64 + 8 * len(rows))
            if hit[0] is not None:
                out[i] = hit[0]
        return out

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._local.cursor = self._db.cursor()
        return cur

    def fetch(self, sql: str, params: list[Any], timeout: float) -> tuple[list[str], list[tuple[Any, ...]]]:
        cur = self._cursor()
        key = self._watchdog.arm(cur, timeout)
        try:
            result = cur.execute(sql, params)
            rows = result.fetchall()
            names = [d[0] for d in result.description or []]
        except duckdb.InterruptException:
            self._watchdog.disarm(key)
            raise QueryTimeout(f"the query took longer than {timeout:g} s") from None
        except BaseException:
            if not self._watchdog.disarm(key):
                raise QueryTimeout(f"the query took longer than {timeout:g} s") from None
            raise
        if not self._watchdog.disarm(key):
            # Interrupted just as it finished: the result is whole, keep it.
            pass
        return names, rows

    def stream(self, sql: str, params: list[Any], timeout: float,
               rows_per_batch: int = 50_000) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """Start a query and stream its result. The query starts here, so a bad value fails before the
        response does; the batches come from its own cursor (a streaming response may hop threads)."""
        cur = self._exports.cursor()
        key = self._watchdog.arm(cur, timeout)
        try:
            reader: pa.RecordBatchReader = cur.execute(sql, params).to_arrow_reader(rows_per_batch)
        except BaseException as e:
            finished = self._watchdog.disarm(key)
            cur.close()
            if isinstance(e, duckdb.InterruptException) or not finished:
                raise QueryTimeout(f"the export took longer than {timeout:g} s") from None
            raise

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                while True:
                    try:
                        batch = reader.read_next_batch()
                    except StopIteration:
                        return
                    yield batch
            finally:
                self._watchdog.disarm(key)
                cur.close()

        return reader.schema, batches()

    def close(self) -> None:
        self._db.close()
        self._exports.close()

