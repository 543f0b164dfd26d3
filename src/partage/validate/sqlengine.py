"""Run a compiled schema over a CSV file in DuckDB: errors, typed Parquet, quarantine.

One read of the CSV: DuckDB's reader copies the cells' text, in file order, to a
Parquet file in the run's temp dir (not a table: memory stays flat with the file's
size); the compiled expressions then run on it in parallel, each row carrying its
place in the file, and write per cell its text, its typed value where SQL decides
it, a flag where it does not, and per row the errors SQL found (one mostly-NULL
column). The distinct undecided values are then judged by frictionless and their
verdicts joined back; the checks that need the whole file (unique, primary key,
foreign keys) read the typed values, and the sorted Parquet write reads them once
more. Cell semantics come from :mod:`.compiler`; this module owns the file
handling and the report.

A header that differs from the schema is paired with its fields by frictionless' own
``Header`` (see ``_match_header``). Files whose *row numbering* DuckDB cannot reproduce
(ragged rows, blank lines, lone carriage returns), or that are not CSV, raise
:class:`~.compiler.Unsupported`: frictionless-py then validates them, and the engine
logs the feature's name.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .compiler import Unsupported
from .sqlscan import MEMORY_LIMIT
from .sqlstate import Outcome, Output, Reference, ScanChoice
from .sqlwrite import WriteRun

__all__ = ["MEMORY_LIMIT", "Outcome", "Output", "Reference", "ScanChoice", "SqlValidation"]


class SqlValidation(WriteRun):
    """One validation run: a DuckDB database in a temp dir, dropped at the end. Its stages: see :mod:`.sqlstate`."""

    def run(self, out: Output | None = None) -> Outcome:
        """Validate, then write what the policy keeps. The report's ``partage_engine.phases`` says where
        the seconds went (scan, oracle, whole-file checks, report, write): the figures a data team needs
        to tell a slow file from a slow machine, and the benchmark prints."""
        started = time.monotonic()
        phases: dict[str, float] = {}

        def timed(name: str, step: Callable[[], Any]) -> Any:
            t0 = time.monotonic()
            try:
                return step()
            finally:
                phases[name] = round(time.monotonic() - t0, 3)

        labels, read, feeds = timed("read_header", self._source)
        lines: list[tuple[int, int]] = []  # read beside the scan, whose ordered writer leaves part of a core free
        check = threading.Thread(target=lambda: lines.append(self._quote_space_lines()), daemon=True)
        check.start()
        try:
            rows = timed("scan", lambda: self._scan(read, feeds))
            timed("oracle", self._oracles)
        finally:
            check.join()
        if not lines or self._spaces_by_quotes(lines[0]):
            raise Unsupported("a space beside a quote, outside the quotes (DuckDB's reader drops it, Python's csv keeps it)",
                              reread=True)
        timed("checks", self._collect_errors)
        report = timed("report", lambda: self._report(labels, rows, started))
        report.descriptor["partage_engine"]["phases"] = phases  # the same dict: "write" lands in it below
        if out is None or report.file_errors or (report.error_count and out.policy == "reject"):
            return Outcome(report)
        stored, quarantined = timed("write", lambda: self._write(out))
        return Outcome(report, stored, quarantined)
