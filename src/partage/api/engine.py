"""Where row queries run: in-memory DuckDB over the Parquet files of one version.

One in-memory database (so the Parquet metadata cache is shared) and one cursor
per thread; nothing here opens ``partage.duckdb``. Each query has a deadline: a
watchdog thread interrupts the cursor past it (DuckDB stops at its next check and
raises ``InterruptException``), which the API answers with a clear 503.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Iterator
from typing import Any

import duckdb
import pyarrow as pa


class QueryTimeout(Exception):
    """A query ran past its deadline and was interrupted."""


class Watchdog:
    """Interrupts cursors whose deadline passed. One thread for all queries, woken only when needed."""

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
            if self._heap[0][1] == key:
                self._cond.notify()
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
                    self._cond.wait()
                    continue
                deadline, key = self._heap[0]
                delay = deadline - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                heapq.heappop(self._heap)
                cursor = self._live.pop(key, None)
                if cursor is not None:
                    cursor.interrupt()


class Engine:
    def __init__(self, threads: int | None = None):
        config: dict[str, Any] = {"threads": threads} if threads else {}
        self._db = duckdb.connect(":memory:", config=config)
        # Parquet footers are read once per file, not once per query (the files never change).
        self._db.execute("SET parquet_metadata_cache = true")
        self._local = threading.local()
        self._watchdog = Watchdog()

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
        cur = self._db.cursor()
        key = self._watchdog.arm(cur, timeout)
        try:
            reader = cur.execute(sql, params).to_arrow_reader(rows_per_batch)
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
