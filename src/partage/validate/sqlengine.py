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

import codecs
import csv
import io
import itertools
import json
import logging
import re
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ..dialect import Dialect
from ..filefacts import file_facts
from ..warehouse import ident
from .compiler import (
    CONSTRAINT_ORDER,
    JSON_KINDS,
    FieldPlan,
    ForeignKey,
    SchemaPlan,
    Unsupported,
    code_kind,
    compile_schema,
    exact_number_key,
    json_key,
    oracle,
    re2_pattern,
    sql_in,
    sql_str,
)
from .report import STORED_ERRORS_LIMIT, Report

log = logging.getLogger("partage.validate")

_CHUNK = 1 << 22
NOT_NULL_STR = "\x01"  # DuckDB's nullstr: a byte no text cell holds, so '' stays ''
MEMORY_LIMIT = "600MB"
SCAN_MEMORY_LIMIT = "1GB"  # the ordered one-pass scan: enough for its writer to use both cores (see _scan_narrow)
SCAN_COMPRESSION = "uncompressed"  # a temp file read back at once: compressing it cost more CPU than the bytes (A/B: 3 of 3)
GROUP_FIELDS = 24
LONGEST_IN_LIST = 64  # longer enums keep DuckDB's hash join, and the two-step scan
MAX_FIELDS = 1000
MAX_LINE = 2 << 20  # longer records go to frictionless-py; DuckDB sizes its CSV buffers on this (16 MB lines: 256 MB blocks)


@dataclass(frozen=True)
class Reference:
    """Another dataset a foreign key points to: a SQL relation of its stored rows, and its columns' SQL types.

    ``attach`` lets the validation's own DuckDB connection read where the rows are (an object store)."""

    relation: str
    columns: dict[str, str]
    attach: Callable[[duckdb.DuckDBPyConnection], None] | None = field(default=None, compare=False)


_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE", "DECIMAL")


def _comparable(a: str, b: str) -> bool:
    """Would Python's ``==`` on frictionless' values of these SQL types ever be true? (1 == Decimal('1.0'), 1 != '1')"""
    def family(t: str) -> str:
        t = t.upper()
        return "number" if t.startswith(_NUMERIC) else t
    return family(a) == family(b)


@dataclass
class Output:
    """Where validate_and_type wants rows written, and which rows the policy keeps."""

    policy: str
    source_key: str
    data_path: Path
    quarantine_path: Path
    data_schema: pa.Schema
    quarantine_schema: pa.Schema


@dataclass
class Outcome:
    report: Report
    rows: int = 0
    quarantined: int = 0


def _transcode(path: Path, encoding: str, tmp: Path) -> Path:
    """cp1252 (or another codec DuckDB lacks) -> UTF-8, streamed in chunks: memory stays flat."""
    out = tmp / "utf8.csv"
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    with open(path, "rb") as src, open(out, "wb") as dst:
        while chunk := src.read(_CHUNK):
            dst.write(decoder.decode(chunk).encode("utf-8"))
        dst.write(decoder.decode(b"", final=True).encode("utf-8"))
    return out


def _header(path: Path, encoding: str, dialect: Dialect, skip_initial_space: bool = False) -> list[str]:
    with open(path, encoding=encoding, newline="", errors="strict") as f:
        head = f.read(1 << 20)
    reader = csv.reader(io.StringIO(head), delimiter=dialect.delimiter, quotechar=dialect.quote_char,
                        skipinitialspace=skip_initial_space)
    try:
        for row in reader:
            return row
    except csv.Error as e:  # a carriage return alone in the header's first 1 MB, a NUL byte...
        raise Unsupported(f"a header Python's csv cannot read ({e})", reread=True) from None  # frictionless' own reading may
    raise Unsupported("empty file")


def _frictionless_skips_initial_space(path: Path, encoding: str, delimiter: str) -> bool:
    """Does frictionless-py read this file with ``skipInitialSpace``?

    It sniffs the option on its first 100 lines even when the delimiter is given (a header without
    any delimiter, a single column, says yes), then drops the spaces that start a cell. Its reading is
    the reference, so the SQL engine must know."""
    try:
        with open(path, encoding=encoding, newline="", errors="replace") as f:
            sample = "".join(itertools.islice(f, 100))
        return bool(csv.Sniffer().sniff(sample, delimiter).skipinitialspace)
    except (csv.Error, OSError):
        return False


def _starts_with_space(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4).removeprefix(codecs.BOM_UTF8)[:1] == b" "


def _found(path: Path, needles: list[bytes]) -> set[bytes]:
    """Which of these byte strings the file holds, in one streamed read (a needle cut by a chunk boundary is still found)."""
    keep = max(len(n) for n in needles) - 1
    tail, found = b"", set[bytes]()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            window = tail + chunk
            found.update(n for n in needles if n in window)
            tail = window[-keep:] if keep else b""
    return found


def _duck_encoding(encoding: str) -> str | None:
    enc = codecs.lookup(encoding).name
    return {"utf-8": "utf-8", "utf-8-sig": "utf-8", "ascii": "utf-8", "iso8859-1": "latin-1", "latin-1": "latin-1"}.get(enc)


def _compare_aux(kind: str, canon: str | None) -> str | None:
    """For the whole-file checks' keys: a time's comparison key ('n'/'a' + microseconds, aware ones in UTC),
    a datetime's 'n' (naive) or 'a' (aware) — Python never finds a naive value equal to an aware one."""
    import datetime as dt

    if canon is None or kind not in ("time", "datetime"):
        return None
    try:
        value = dt.time.fromisoformat(canon) if kind == "time" else dt.datetime.fromisoformat(canon)
    except ValueError:
        return None
    offset = value.utcoffset()
    if kind == "datetime":
        return "n" if offset is None else "a"
    assert isinstance(value, dt.time)
    us = ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond
    return f"n{us}" if offset is None else f"a{us - offset // dt.timedelta(microseconds=1)}"


def _beyond(typed: Any) -> str | None:
    """An integer frictionless read that a BIGINT cannot hold: its digits, the key the unique and
    primary-key checks compare (the stored value is NULL; frictionless keeps the int)."""
    if isinstance(typed, int) and not isinstance(typed, bool) and not -(2**63) <= typed < 2**63:
        return str(typed)
    return None


def _pattern_works(con: duckdb.DuckDBPyConnection, pattern: str) -> bool:
    try:
        con.execute(f"SELECT regexp_full_match('', {sql_str(pattern)})").fetchall()
        return True
    except duckdb.Error:
        return False


def _header_row_stays_first(widths: list[int]) -> bool:
    """Does frictionless-py keep the first row as the header, given its sample rows' widths?

    Without a header option, its detector takes for the header the first of its 100 sample rows whose
    width is within 10 % of their rounded mean width (the first row when none is). A file DuckDB reads
    strictly has one width; one with empty lines (width 0) or rows of other widths may not: a comment
    line above the header, or a header, one row and five empty lines, make another row "the header".
    Such files go to frictionless-py, whose reading is the reference."""
    if not widths:
        return True
    mean = round(sum(widths) / len(widths))
    drift = max(round(mean * 0.1), 1)
    fits = [mean - drift <= w <= mean + drift for w in widths]
    return fits[0] or not any(fits)


SAMPLE_ROWS = 100  # frictionless' default detector sample
MAX_INLINE_GAPS = 64
MAX_EXTRA_CELLS = 64  # a row longer than the header by more: frictionless-py (and its guard, validate/ragged.py)
RAGGED_ATTEMPTS = 4  # empty lines in more places than this between the rows: their shifts are joined


def _writes_in_order(con: duckdb.DuckDBPyConnection, copy: str) -> bool:
    """Will DuckDB write this COPY's rows in the order its source reads them?

    With preserve_insertion_order it plans a BATCH_COPY_TO_FILE when the source pipeline keeps
    batch order; when it cannot (a join in the pipeline), it silently plans a plain, parallel,
    unordered COPY_TO_FILE. Its EXPLAIN says which."""
    plan = con.execute(f"EXPLAIN (FORMAT json) {copy}").fetchall()
    return [str(node.get("name", "")).strip() for node in json.loads(plan[0][1])] == ["BATCH_COPY_TO_FILE"]


def _numbered(path: Path, column: str) -> str:
    """A Parquet file written in file order, each row with its place in it (0-based) as ``column``."""
    return (f"(SELECT file_row_number AS {column}, * EXCLUDE (file_row_number) "
            f"FROM read_parquet({sql_str(str(path))}, file_row_number = true))")


class SqlValidation:
    """One validation run: a DuckDB database in a temp dir, dropped at the end."""

    def __init__(self, path: Path, descriptor: dict[str, Any], dialect: Dialect, *, timezone: str,
                 tmp_root: Path | None = None, references: Mapping[str, Reference] | None = None,
                 name: str | None = None, origin: Path | None = None, blank_rows: tuple[int, ...] | None = None):
        """``origin``, ``blank_rows``: ``path`` is a copy of ``origin`` as frictionless reads it, without its
        blank rows, whose row numbers these are (validate/reread.py)."""
        self.path = path
        self.origin = origin or path  # the file the report names
        self.rewritten = blank_rows is not None
        self._blank_rows = blank_rows or ()
        self.descriptor = descriptor
        self.dialect = dialect
        self.timezone = timezone
        self.name = name  # the dataset's own name: a foreign key to it is a self-reference, as in frictionless
        self.references = dict(references or {})
        self.warnings: list[str] = []
        self._fl_schema: Any = None  # frictionless' Schema, built only to print foreign-key notes
        self.plan: SchemaPlan = self._compile(descriptor)
        self.header_errors: list[dict[str, Any]] = []  # frictionless' label errors, when the header differs
        self.tmp = Path(tempfile.mkdtemp(prefix="partage-sqlv-", dir=tmp_root))
        self.con: duckdb.DuckDBPyConnection | None = None
        self.oracle_values = 0
        self.wide = False
        self.groups = 1
        self.judged: list[int] = []  # typed fields with values frictionless decided
        self.big_ints: set[int] = set()  # integer fields with values beyond 64 bits (see _key)
        self.text_type_errors: list[int] = []  # text fields (uuid, email...) with values frictionless calls type errors
        self.ends_with_lf = True
        self.empty_lines: tuple[int, ...] | None = ()  # the file's empty lines (their index), see FileFacts
        self.empty_rids: set[int] = set()  # the blank rows they make, by rid (row number - 2)
        self.header_feeds = 0
        self.ragged = False  # rows of another width than the header's: read with their cells padded (see _scan)
        self.extra = 0  # columns read past the fields, for the cells of longer rows
        self.parallel = True
        self._read_options = ""
        self._trim = False
        self.multiline = False  # line feeds inside quoted cells
        self._skip = False  # frictionless sniffs skipInitialSpace (see _frictionless_skips_initial_space)
        self._cells_source = ""
        self._text: tuple[Path, str] = (path, "utf-8")  # the file DuckDB reads, and its encoding for DuckDB
        self.scan_mode = "tables"  # wide files; narrow ones: "one-pass" or "two-step" (see _scan_narrow)

    def _compile(self, descriptor: dict[str, Any]) -> SchemaPlan:
        plan = compile_schema(descriptor, self.timezone)
        for fk in list(plan.foreign_keys):
            if not self._is_self(fk) and fk.resource not in self.references:
                plan.foreign_keys.remove(fk)
                self.warnings.append(f"the foreign key {', '.join(fk.fields)} -> {fk.resource} "
                                     f"({', '.join(fk.ref_fields)}) was not checked: no dataset '{fk.resource}' "
                                     "in the warehouse (harvest it, or pass --warehouse)")
        return plan

    def _match_header(self, labels: list[str]) -> list[str]:
        """Pair the labels with the schema's fields as frictionless does; return its labels.

        frictionless strips each label, then its ``Header`` pairs them with the fields (by position under
        the default ``fieldsMatch: exact``, by name otherwise), gives a label without a field an ``any``
        field named after it, drops the fields without a label, and reports each difference (extra,
        missing, incorrect, duplicate, blank labels). The rows are then judged against those expected
        fields. The same expected fields are compiled here, so a file whose header differs (a renamed,
        added or missing column: a quarter of the corpus' real files) is judged in SQL; its label errors
        come first in the report, as in frictionless'."""
        from frictionless import FrictionlessException, Schema
        from frictionless.table import fields_match
        from frictionless.table.header import Header

        from .header import HEADER_COST, header_cost

        stripped = [label.strip() for label in labels]  # frictionless' stringify_label
        names = [p.name for p in self.plan.fields]
        if stripped == names:
            return stripped
        if header_cost(stripped, names) > HEADER_COST:
            raise Unsupported("a header thousands of labels off the schema")
        schema = Schema.from_descriptor(self.descriptor)
        declared = schema.fields_match if schema.has_defined("fields_match") else None
        header = Header(stripped, fields=schema.fields, row_numbers=[1], ignore_case=False,
                        fields_match=fields_match.resolve(declared, schema_sync=False))
        try:
            paired = header.get_expected_fields()
        except FrictionlessException as e:
            raise Unsupported(f"a header frictionless cannot pair with the fields ({e})") from None
        self.header_errors = [e.to_descriptor() for e in header.errors]
        by_name = {str(f.get("name")): f for f in self.descriptor.get("fields", []) if isinstance(f, dict)}
        # a paired field keeps the schema's own descriptor; a label without a field gets frictionless' `any` one
        fields = [by_name[f.name] if f.name in by_name and f.to_descriptor() == schema.get_field(f.name).to_descriptor()
                  else f.to_descriptor() for f in paired]
        expected = [str(f["name"]) for f in fields]
        descriptor = {**self.descriptor, "fields": fields}
        keys = self.descriptor.get("primaryKey")
        pk = [keys] if isinstance(keys, str) else list(keys or [])
        if pk and not set(pk) <= set(expected):
            descriptor.pop("primaryKey")  # frictionless checks the key only when every field of it has a label
        kept = []
        for fk in self.descriptor.get("foreignKeys") or []:
            mine = fk.get("fields") if isinstance(fk, dict) else None
            mine = [mine] if isinstance(mine, str) else list(mine or [])
            if not set(mine) <= set(expected):
                continue  # nor a foreign key whose fields lack one
            ref = fk.get("reference") or {}
            theirs = ref.get("fields")
            theirs = [theirs] if isinstance(theirs, str) else list(theirs or [])
            if (not ref.get("resource") or ref.get("resource") == self.name) and not set(theirs) <= set(expected):
                raise Unsupported("a self-reference to fields the header lacks")
            kept.append(fk)
        if "foreignKeys" in descriptor:
            descriptor["foreignKeys"] = kept
        self.descriptor = descriptor
        self.warnings.clear()
        self.plan = self._compile(descriptor)
        return stripped

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- reading ---------------------------------------------------------------

    def _source(self) -> tuple[list[str], str, int]:
        """Check the file and header; return the labels, the SQL that reads the cells as text, and the line feeds."""
        d = self.dialect
        if d.format != "csv":
            raise Unsupported(f"format '{d.format}'")
        if self.path.stat().st_size == 0:
            raise Unsupported("empty file")
        if len(d.delimiter) != 1 or len(d.quote_char or '"') != 1:
            raise Unsupported("multi-character delimiter or quote")
        source = self.path
        duck_enc = _duck_encoding(d.encoding)
        if duck_enc is None:
            try:
                source = _transcode(self.path, d.encoding, self.tmp)
            except (UnicodeDecodeError, LookupError) as e:
                raise Unsupported(f"encoding '{d.encoding}' ({e})") from None
            duck_enc = "utf-8"
        text_encoding = "utf-8-sig" if duck_enc == "utf-8" else "latin-1"
        # (a rewritten copy holds the cells as frictionless read them: spaces already dropped)
        skip = self._skip = not self.rewritten and _frictionless_skips_initial_space(source, text_encoding, d.delimiter)
        try:
            labels = _header(source, text_encoding, d, skip)
        except UnicodeDecodeError:
            raise Unsupported(f"bytes that are not {d.encoding}") from None
        q = d.quote_char or '"'
        delim, quote = d.delimiter.encode(), q.encode()
        # with skipInitialSpace, frictionless drops the spaces starting a cell, and a quote after them
        # still opens a quoted cell: DuckDB's reader cannot do the latter, so such files go to frictionless
        starts, quoted = [delim + b" ", b"\n ", b"\r "], [b" " + quote, quote + b" "]
        found = _found(source, starts + quoted) if skip else set()
        trim = skip and (_starts_with_space(source) or bool(found.intersection(starts)))
        if trim and found.intersection(quoted):
            raise Unsupported("spaces before a quoted cell, with skipInitialSpace (sniffed by frictionless)", reread=True)
        header_feeds = sum(label.count("\n") for label in labels)  # quoted labels' line feeds: not line ends
        labels = self._match_header(labels)
        # a single-byte codec's transcoding keeps every \n and \r where it was: the facts of the download (already
        # read by dialect detection) hold; a multi-byte one (UTF-16...) needs the transcoded file's
        single_byte = codecs.lookup(d.encoding).name.startswith(("cp", "iso8859", "latin", "mac"))
        facts = file_facts(self.path if source == self.path or single_byte else source)
        if facts.lone_cr:  # old Mac line ends are line ends to Python's csv: the rewritten copy has none
            raise Unsupported("carriage-return line ends or carriage returns inside cells", reread=not self.rewritten)
        if facts.quotes % 2 and q == '"' and not self.rewritten:
            # a quote never closed: Python's csv reads the rest of the file into that cell, DuckDB's reader
            # may drop it (a last row one cell short, without a word)
            raise Unsupported("an odd number of quotes (one is never closed)", reread=True)
        self.ends_with_lf = facts.ends_with_lf
        self.empty_lines, self.header_feeds = facts.empty_lines, header_feeds
        if self.rewritten:  # the copy has no empty line: the original's blank rows, as lines (row - 1)
            self.empty_lines = tuple(row - 1 for row in self._blank_rows)
        self._text = (source, duck_enc)
        # in memory, spilling to the temp dir past memory_limit: faster than a database file, same bound on RSS
        con = self.con = duckdb.connect()
        con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        con.execute(f"SET temp_directory = {sql_str(str(self.tmp / 'spill'))}")
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        con.execute("SET preserve_insertion_order = true")  # results keep the file's row order
        self._read_options = (f"delim={sql_str(d.delimiter)}, quote={sql_str(q)}, escape={sql_str(q)}, "
                              f"nullstr={sql_str(NOT_NULL_STR)}, strict_mode=true, encoding={sql_str(duck_enc)}, "
                              f"max_line_size={MAX_LINE}")
        self._trim = trim
        return labels, self._read(), facts.line_feeds - header_feeds

    def _read(self) -> str:
        """The SQL reading the file's cells as text: c0... for the fields, then ``self.extra`` more for the
        cells of rows longer than the header (read only once a row of another width was met, see _scan)."""
        source, _ = self._text
        width = len(self.plan.fields) + self.extra
        columns = "{" + ", ".join(f"{sql_str(f'c{i}')}: 'VARCHAR'" for i in range(width)) + "}"
        # a short row's absent cells are NULL, an empty cell '' (nullstr is a string no file holds)
        ragged = f", null_padding=true, parallel={'true' if self.parallel else 'false'}" if self.ragged else ", null_padding=false"
        read = (f"read_csv({sql_str(str(source))}, header=true, auto_detect=false, columns={columns}, "
                f"{self._read_options}{ragged})")
        if self._trim:
            read = f"(SELECT {', '.join(f'ltrim(c{i}, {sql_str(chr(32))}) AS c{i}' for i in range(width))} FROM {read})"
        return read

    def _scan(self, read: str, feeds: int) -> int:
        """Read the file once: per cell its text, its typed value and its errors when SQL decides it.

        The scan is written to a Parquet file in the run's tmp dir, not to a table: memory stays flat
        whatever the file's size (a 5M-row table spills and every later pass reads it back from the
        spill), and the later passes read only the columns they need. Narrow schemas (the usual case)
        are checked on a Parquet copy of the text (below, why); wide ones are first read into ``raw``
        and scanned in groups of fields (one SELECT over hundreds of columns' checks exhausts DuckDB's
        memory), joined back by row. A file with rows of another width than the header's is read again,
        padded (see _read_ragged); one with empty lines gets them back as blank rows (see _empty_rows).
        """
        con = self.con
        assert con is not None
        plans = self.plan.fields
        for p in plans:  # a pattern RE2 cannot compile: frictionless judges that field's values
            if "pattern" in p.notes and not _pattern_works(con, re2_pattern(p.descriptor["constraints"]["pattern"])):
                p.fast = "false"
                p.checks = [c for c in p.checks if c[0] != "pattern"]
        if len(plans) > MAX_FIELDS:  # DuckDB reserves memory per column: 10,000 columns exhaust it
            raise Unsupported(f"more than {MAX_FIELDS} columns ({len(plans)})")
        groups = [plans[s:s + GROUP_FIELDS] for s in range(0, len(plans), GROUP_FIELDS)]
        self.groups = len(groups)
        self.wide = len(groups) > 1
        scan_file = self.tmp / "scan0.parquet"
        for attempt in range(RAGGED_ATTEMPTS):
            try:
                if not self.wide:
                    self._scan_narrow(plans, read, scan_file)
                else:
                    # wide files are short (hundreds of columns come with few rows): tables, joined by row
                    con.execute(f"CREATE TABLE raw AS SELECT * FROM {read}")
                    for g, group in enumerate(groups):
                        con.execute(f"CREATE TABLE scan{g} AS {self._scan_sql(group, 'raw', blank=False, rid=True, g=g)}")
                    con.execute("DROP TABLE raw")
                break
            except duckdb.OutOfMemoryException:
                raise
            except duckdb.Error as e:  # the CSV reader's: ragged rows, bad bytes, an endless line
                if self.wide or attempt == RAGGED_ATTEMPTS - 1 or not self._read_ragged(str(e)):
                    first = str(e).splitlines()[0][:160]
                    # a quote DuckDB reads otherwise than Python's csv (never closed, inside an unquoted cell...)
                    quoting = not self.rewritten and not any(
                        m in str(e) for m in ("Expected Number of Columns", "Maximum line size", "Invalid unicode"))
                    raise Unsupported(f"irregular CSV rows ({first})", reread=quoting) from None
                read = self._read()
        if not self.wide:
            con.execute(f"CREATE VIEW cells AS SELECT * FROM {self._cells_source}")
        else:
            joined = "scan0" + "".join(f" JOIN scan{g} USING (rid)" for g in range(1, len(groups)))
            con.execute(f"CREATE VIEW cells AS SELECT * FROM {joined}")
        rows = con.execute("SELECT count(*) FROM " + ("scan0" if self.wide else f"read_parquet({sql_str(str(scan_file))})")
                           ).fetchall()[0][0]
        ends = rows + 1 if self.ends_with_lf else rows
        empty = self.empty_lines
        if self.rewritten:  # its blank rows are known: the copy's line feeds are its records' and cells' own
            if feeds != ends and feeds != ends + self._feeds_in_cells():
                raise Unsupported("row numbering of the rewritten copy")
            if empty:
                if self.wide or not rows:
                    raise Unsupported("blank lines in a file of more than 1,000 columns, or without any row")
                self._empty_rows(rows, empty)
                rows += len(empty)
        elif feeds != ends or empty:
            if empty and feeds == ends + len(empty):  # empty lines, and no line feed inside a cell (see below)
                if self.wide or self.header_feeds or empty[0] == 0 or not rows:
                    # (a header then only empty lines: frictionless' header detection skips one of them, at times)
                    raise Unsupported("blank lines in a file of more than 1,000 columns, in or before its header, "
                                      "or without any row")
                self._empty_rows(rows, empty)
                rows += len(empty)
            elif empty is None or feeds != ends + self._feeds_in_cells() or (empty and feeds == ends):
                # (between multi-line cells: frictionless' reading, rewritten without them, numbers them)
                raise Unsupported("blank lines (row numbering)", reread=not self.wide)
            else:
                self.multiline = True
        if (self.ragged or self.empty_rids) and not _header_row_stays_first(self._sample_widths()):
            raise Unsupported("rows of other widths or blank lines that frictionless' header detection takes for the header")
        if not self.wide:
            con.execute("CREATE TABLE blanks AS SELECT rid FROM cells WHERE _blank")
        else:
            blank = " AND ".join(f"({self._missing(p, f'v{p.index}')})" for p in plans)
            con.execute(f"CREATE TABLE blanks AS SELECT rid FROM cells WHERE {blank}")
        return rows

    def _empty_rows(self, records: int, empty: tuple[int, ...]) -> None:
        """Put the file's empty lines in ``cells`` as the blank rows frictionless reads, and number the
        records after them as it does (a blank line at the end of an export is common; one in the middle
        shifts every row number after it).

        DuckDB's reader skips an empty line, Python's csv reads it as a row without cells, which frictionless
        reports as a ``blank-row`` (and, under a primary key, one whose cells are all None). The empty lines
        are those of the file's bytes; the caller made sure none is inside a quoted cell: the file then has
        exactly one line feed per record, header and empty line. (In a cell, a run of k line feeds makes
        k - 1 such pairs but k line feeds, so any cell with a line feed breaks that count.)"""
        con = self.con
        assert con is not None
        # the k-th empty line (0-based), line L, is row L + 1: the records from L - 1 - k on come after it
        steps = Counter(line - 1 - k for k, line in enumerate(empty))
        firsts, shifts, total = [], [], 0
        for first in sorted(steps):
            total += steps[first]
            if first < records:  # empty lines after the last record (the usual case) shift no row
                firsts.append(first)
                shifts.append(total)
        self.empty_rids = {line - 1 for line in empty}
        con.register("_empty", pa.table({"rid": pa.array(sorted(self.empty_rids), pa.int64())}))
        con.register("_gaps", pa.table({"f": pa.array(firsts, pa.int64()), "s": pa.array(shifts, pa.int64())}))
        try:
            con.execute("CREATE TABLE empty_rows AS SELECT rid FROM _empty")
            con.execute("CREATE TABLE gaps AS SELECT f, s FROM _gaps")
        finally:
            con.unregister("_empty")
            con.unregister("_gaps")
        records_sql = self._cells_source
        if len(firsts) > MAX_INLINE_GAPS:  # many places: a join (every later pass pays for it)
            records_sql = (f"(SELECT c.* EXCLUDE (rid), c.rid + coalesce(g.s, 0) AS rid FROM {self._cells_source} c "
                           "ASOF LEFT JOIN gaps g ON c.rid >= g.f)")
        elif firsts:  # a few: the shift is a sum of comparisons, which keeps the scans' plans as they are
            shift = " + ".join(f"CASE WHEN rid >= {f} THEN {n} ELSE 0 END"
                               for f, n in zip(firsts, [b - a for a, b in zip([0, *shifts], shifts)]))
            records_sql = f"(SELECT * REPLACE (rid + {shift} AS rid) FROM {self._cells_source})"
        unjudged = "".join(f", false AS x{p.index}" for p in self.plan.fields if self._has_oracle(p))
        con.execute(f"CREATE OR REPLACE VIEW cells AS SELECT * FROM {records_sql} "
                    f"UNION ALL BY NAME SELECT rid, true AS _blank{unjudged} FROM empty_rows")

    def _sample_widths(self) -> list[int]:
        """The widths of frictionless' sample rows: the file's first 100, read as its csv reader reads them."""
        path, _ = self._text
        d = self.dialect
        encoding = "utf-8-sig" if self._text[1] == "utf-8" else "latin-1"
        with open(path, encoding=encoding, newline="", errors="replace") as f:
            reader = csv.reader(f, delimiter=d.delimiter, quotechar=d.quote_char, skipinitialspace=self._skip)
            try:
                widths = [len(row) for row in itertools.islice(reader, SAMPLE_ROWS)]
            except csv.Error as e:
                raise Unsupported(f"a row Python's csv cannot read ({e})") from None
        for row in self._blank_rows:  # a rewritten copy's blank rows, back in their places
            if row <= SAMPLE_ROWS:
                widths.insert(row - 1, 0)
        return widths[:SAMPLE_ROWS]

    def _read_ragged(self, error: str) -> bool:
        """After the reader met a row of another width than the header's: read again, with the missing
        cells of short rows as NULL and room for the extra cells of long ones. False: not that error, or
        rows far wider than the header (a wrong delimiter...: frictionless-py, and validate/ragged.py's guard).

        frictionless reports each absent cell (``missing-cell``) and each extra one (``extra-cell``) and
        judges the others; the strict read stays the rule, since most files are regular and padding
        costs DuckDB's parallel read of quoted line feeds."""
        if "parallel scanner does not support null_padding" in error and self.parallel:
            self.parallel = False  # quoted line feeds and padding: DuckDB reads them on one thread
            return True
        found = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", error)
        if found is None:
            return False
        n, cells = len(self.plan.fields), int(found.group(2))
        if cells > n + MAX_EXTRA_CELLS or (self.ragged and cells <= n + self.extra):
            return False
        self.ragged = True
        # room for this row and rows a little longer (a file with short rows often has long ones: one read less)
        self.extra = min(max(self.extra, 2 * (cells - n) + 2, 4), MAX_EXTRA_CELLS)
        log.debug("rows of another width than the header's: read again with %d extra column(s)", self.extra)
        return True

    def _spaces_by_quotes(self) -> bool:
        """Does a line hold a space beside a quote, outside the quotes? (``"a" ;``, ``"a" "b"``, ``; "a"``)

        DuckDB's reader drops a space after a closing quote, or a single one before an opening quote,
        and reads a quote after such a space as opening the cell again, all without a word; Python's
        csv, frictionless' reader, keeps them in the cell (``a ``, ``a "b"``, `` "a"``). Such a file goes
        to frictionless-py. One streamed read of the lines, on its own connection and one thread, while
        the oracle's Python work leaves a core free. The test is by line, so a few files without the
        trap go there too (an inch mark then a space in an unquoted cell, ``5" disk``): slower, same verdict."""
        if self.rewritten:  # every cell quoted by Python's csv writer: no space beside a quote outside the quotes
            return False
        path, encoding = self._text
        q = self.dialect.quote_char or '"'
        hexq, hexd = f"\\x{{{ord(q):x}}}", f"\\x{{{ord(self.dialect.delimiter):x}}}"
        # a closing quote (an odd run of quotes after text: not the doubled ones of `""Les Pins"" Nord`) or an
        # empty quoted cell, then a space; or one space, then an opening quote (not `, ""b`, a doubled quote
        # inside quoted JSON: {""a"": 1, ""b"": 2})
        pattern = (f"[^{hexq}{hexd}\\r\\n]{hexq}({hexq}{hexq})* |(^|{hexd})({hexq}{hexq})+ |"
                   f"(^|{hexd}) {hexq}([^{hexq}]|{hexq}{hexq}|{hexq}({hexd}|\\r|$))")
        if self.multiline:  # a line may start inside a cell, and then with its closing quote (`""" ;`)
            pattern += f"|^{hexq}({hexq}{hexq})* "
        sep = "chr(31) || chr(30) || chr(29) || chr(28)"  # no real file's delimiter: each line is one cell
        con = duckdb.connect()
        try:
            con.execute("SET threads = 1")
            con.execute("SET memory_limit = '200MB'")
            found = con.execute(
                f"SELECT count(*) FROM read_csv({sql_str(str(path))}, columns={{'l': 'VARCHAR'}}, header=false, "
                f"delim={sep}, quote='', escape='', strict_mode=false, auto_detect=false, null_padding=true, "
                f"encoding={sql_str(encoding)}, max_line_size={MAX_LINE}) "
                f"WHERE (contains(l, {sql_str(q + ' ')}) OR contains(l, {sql_str(' ' + q)})) "
                f"AND regexp_matches(l, {sql_str(pattern)})").fetchall()[0][0]
            return bool(found)
        except duckdb.Error as e:
            log.debug("line check failed (%s): the file goes to frictionless-py", e)
            return True
        finally:
            con.close()

    def _feeds_in_cells(self) -> int:
        """The line feeds inside quoted cells (a multi-line address or comment).

        frictionless numbers records, not lines, and DuckDB's reader reads such cells as Python's csv
        does: the row numbers hold. The file's line feeds are then its records plus these; any other
        surplus is a blank line, which DuckDB skips and frictionless reports as a row."""
        con = self.con
        assert con is not None
        texts = [f"v{p.index}" for p in self.plan.fields] + [f"xe{j}" for j in range(self.extra)]
        counts = " + ".join(f"coalesce(sum(length({v}) - length(replace({v}, chr(10), ''))), 0)" for v in texts)
        return int(con.execute(f"SELECT {counts} FROM cells").fetchall()[0][0])

    def _scan_narrow(self, plans: list[FieldPlan], read: str, scan_file: Path) -> None:
        """Scan a narrow file: in one ordered pass when DuckDB keeps the file's order, else in two.

        A row's number is its place in the file, and DuckDB's CSV reader does not give it. An ordered
        COPY (preserve_insertion_order) writes the rows in file order only if the plan is a plain
        pipeline DuckDB can keep in batch order: with a join in it (the optimizer turns an IN list of 5+
        constants into a MARK join; hence ``in_clause`` is disabled here) it plans an unordered COPY,
        silently. So the plan is checked, not assumed. The Parquet row number of the scan file is then
        the row's place. The ordered writer runs on one thread unless a quarter of the memory limit
        holds a batch per thread and column (4 MB each), so this one streaming pass gets
        ``SCAN_MEMORY_LIMIT``.

        Otherwise two steps: the text is copied in file order (a plain scan), and the checks run on
        that copy in parallel, carrying its row number along."""
        con = self.con
        assert con is not None
        # an IN list evaluated as such compares each value with every constant: fine for an enum of a
        # few dozen values, not for thousands (a list of communes), which keep their hash join
        longest = max([len(p.descriptor.get("constraints", {}).get("enum") or []) for p in plans]
                      + [len(p.missing) for p in plans])
        con.execute(f"SET disabled_optimizers = '{'in_clause' if longest <= LONGEST_IN_LIST else ''}'")
        try:
            copy = (f"COPY ({self._scan_sql(plans, read, blank=True)}) TO {sql_str(str(scan_file))} "
                    f"(FORMAT parquet, COMPRESSION {SCAN_COMPRESSION})")
            if _writes_in_order(con, copy):
                con.execute(f"SET memory_limit = '{SCAN_MEMORY_LIMIT}'")
                try:
                    con.execute(copy)
                finally:
                    con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
                self.scan_mode = "one-pass"
                self._cells_source = _numbered(scan_file, "rid")
                return
        finally:
            con.execute("SET disabled_optimizers = ''")
        log.debug("scan in two steps: DuckDB would not write the one-pass scan in file order")
        text_file = self.tmp / "text.parquet"
        con.execute(f"COPY (SELECT * FROM {read}) TO {sql_str(str(text_file))} "
                    f"(FORMAT parquet, COMPRESSION {SCAN_COMPRESSION})")
        numbered = _numbered(text_file, "rowid")
        con.execute("SET preserve_insertion_order = false")
        try:
            con.execute(f"COPY ({self._scan_sql(plans, numbered, blank=True, rid=True)}) TO "
                        f"{sql_str(str(scan_file))} (FORMAT parquet, COMPRESSION {SCAN_COMPRESSION})")
        finally:
            con.execute("SET preserve_insertion_order = true")
        text_file.unlink()
        self.scan_mode = "two-step"
        self._cells_source = f"read_parquet({sql_str(str(scan_file))})"

    def _scan_sql(self, group: list[FieldPlan], source: str, *, blank: bool, rid: bool = False, g: int = 0) -> str:
        """The SELECT of one scan: v<i> the text, t<i> the typed value where SQL decides it, x<i> true where
        it does not (frictionless will), and _e<g> the errors SQL found in the row, as 'field:code,code;...'
        (one mostly-NULL column rather than one per field: a NULL VARCHAR still costs 16 bytes a row)."""
        inner, middle, outer, kept, errs = [], [], [], [], []
        n = len(self.plan.fields)
        for p in group:
            i = p.index
            col = f"c{i}"
            # a short row's absent cell (NULL, see _read) is None to frictionless: missing, whatever missingValues say
            missing = f"({col} IS NULL OR {self._missing(p, col)})" if self.ragged else self._missing(p, col)
            inner.append(f"{col} AS v{i}, {missing} AS m{i}, coalesce({self._on(p.fast, col)}, false) AS f{i}")
            middle.append(f"v{i}, m{i}, f{i}, CASE WHEN f{i} THEN {self._on(p.cast, f'v{i}')} END AS tf{i}")
            checks = ", ".join(
                f"CASE WHEN coalesce({pred.replace('__T__', f'tf{i}').replace('__V__', f'v{i}')}, false) THEN {sql_str(name)} END"
                for name, pred in sorted(p.checks, key=lambda c: CONSTRAINT_ORDER.index(c[0])))
            fast_errs = f"CASE WHEN tf{i} IS NULL THEN 'type' ELSE nullif(concat_ws(',', {checks}), '') END" if checks \
                else f"CASE WHEN tf{i} IS NULL THEN 'type' END"
            required = "'required'" if p.required else "NULL"
            outer.append(f"v{i}, CASE WHEN m{i} THEN {required} WHEN f{i} THEN {fast_errs} END AS e{i}")
            kept.append(f"v{i}")
            errs.append(f"'{i}:' || e{i}")
            if not self._identity(p):
                outer.append(f"CAST(CASE WHEN f{i} AND NOT m{i} THEN tf{i} END AS {p.target}) AS t{i}")
                kept.append(f"t{i}")
            if self._has_oracle(p):
                outer.append(f"NOT m{i} AND NOT f{i} AS x{i}")
                kept.append(f"x{i}")
        if self.ragged:  # after the fields' errors, frictionless' missing-cell or extra-cell ones (codes: see _collect_errors)
            errs += [f"CASE WHEN v{p.index} IS NULL THEN '{n + p.index}:missing-cell' END" for p in group]
            for j in range(self.extra):  # the extra cells' text, for the report's cells
                inner.append(f"c{n + j} AS xe{j}")
                for part in (middle, outer, kept):
                    part.append(f"xe{j}")
                errs.append(f"CASE WHEN xe{j} IS NOT NULL THEN '{n + j}:extra-cell' END")
        if blank:
            outer.append(" AND ".join(f"m{p.index}" for p in group) + " AS _blank")
            kept.append("_blank")
        if rid:  # wide files: groups are joined back by the row's place in `raw`
            for part in (inner, middle, outer, kept):
                part.insert(0, "rowid AS rid" if part is inner else "rid")
        kept.append(f"nullif(concat_ws(';', {', '.join(errs)}), '') AS _e{g}")
        return (f"SELECT {', '.join(kept)} FROM (SELECT {', '.join(outer)} FROM (SELECT {', '.join(middle)} FROM "
                f"(SELECT {', '.join(inner)} FROM {source})))")

    def _holder(self, p: FieldPlan) -> str:
        """The relation holding a field's scan columns (all of a group's fields share it)."""
        return self._group_relation(p.index // GROUP_FIELDS)

    def _group_relation(self, g: int) -> str:
        return f"scan{g}" if self.wide else "cells"

    @staticmethod
    def _identity(p: FieldPlan) -> bool:
        """A text field whose typed value is its text (when not missing): no typed column to store."""
        return p.cast == "__V__"

    def _is_self(self, fk: ForeignKey) -> bool:
        return not fk.resource or fk.resource == self.name

    # -- checks ----------------------------------------------------------------

    def _oracles(self) -> None:
        """Judge with frictionless every distinct value SQL did not decide, and store the verdicts."""
        con = self.con
        assert con is not None
        todo = [p for p in self.plan.fields if self._has_oracle(p)]
        if not todo:
            return
        # one scan (per group of fields) collects, for every field, the distinct values SQL did not decide
        found: list[Any] = []
        for g in range(self.groups):
            part = [p for p in todo if p.index // GROUP_FIELDS == g]
            if part:
                lists = ", ".join(f"list(DISTINCT v{p.index}) FILTER (WHERE x{p.index})" for p in part)
                found += con.execute(f"SELECT {lists} FROM {self._holder(part[0])}").fetchall()[0]
        for p, values in zip(todo, found):
            values = values or []
            judge = oracle(p.descriptor, self.plan.missing)
            pattern = p.descriptor.get("constraints", {}).get("pattern")
            rows: dict[str, list[Any]] = {"v": [], "canon": [], "errs": [], "cast_err": [], "aux": []}
            full = re.compile(pattern) if pattern else None
            for value in values:
                canon, errs, cast_err, typed, fl_notes = judge(value)
                if full is not None and errs != ["type"]:
                    # the spec's reading of `pattern` (whole value), not frictionless' re.match("^P$") — docs/validation.md
                    errs = [e for e in errs if e != "pattern"]
                    if not full.fullmatch(value):
                        errs.append("pattern")
                    errs.sort(key=lambda e: CONSTRAINT_ORDER.index(e) if e in CONSTRAINT_ORDER else 99)
                errs = [p.code(e, fl_notes.get(e)) for e in errs]  # and where frictionless' own note is kept
                rows["v"].append(value)
                rows["canon"].append(canon)
                rows["errs"].append(errs)
                rows["cast_err"].append(cast_err)
                rows["aux"].append(exact_number_key(typed) if p.type == "number" else json_key(typed)
                                   if p.type in JSON_KINDS else _beyond(typed) if p.type == "integer"
                                   else _compare_aux(p.type, canon))
            self.oracle_values += len(values)
            if p.type == "integer" and any(a is not None for a in rows["aux"]):
                self.big_ints.add(p.index)
            codes = [",".join(e + (["cast"] if c else [])) or None for e, c in zip(rows["errs"], rows["cast_err"])]
            table = pa.table({"v": pa.array(rows["v"], pa.string()), "canon": pa.array(rows["canon"], pa.string()),
                              "errs": pa.array(codes, pa.string()),
                              "aux": pa.array(rows["aux"], pa.string())})
            con.register(f"_o{p.index}", table)
            canon = p.from_canon
            con.execute(f"CREATE TABLE o{p.index} AS SELECT v, {canon} AS t, errs, aux FROM _o{p.index}")
            con.unregister(f"_o{p.index}")
            if values and not self._identity(p):
                self.judged.append(p.index)
            elif self._identity(p) and any(c is not None and code_kind(c) == "type" for c in codes):
                self.text_type_errors.append(p.index)
            if values:
                log.debug("field %s: %d distinct value(s) judged by frictionless", p.name, len(values))

    @staticmethod
    def _on(expr: str, col: str) -> str:
        """Put a column in place of the compiler's placeholder ``v``."""
        return expr.replace("__V__", col)

    @staticmethod
    def _missing(p: FieldPlan, col: str) -> str:
        if not p.missing:
            return "false"
        return sql_in(col, [sql_str(m) for m in p.missing])

    def _has_oracle(self, p: FieldPlan) -> bool:
        return p.fast != "true"

    def _judged(self) -> None:
        """The view ``typed``: every row's typed values t<i>, frictionless' joined in for the values it decided.

        A text field's typed value is its text, except where frictionless calls it a type error (a bad uuid
        or e-mail): then it is NULL, as frictionless' cell is None, so that the primary key, unique and
        foreign-key checks see what frictionless sees ("cells composing the primary keys are all None")."""
        con = self.con
        assert con is not None
        cols, joins = [], []
        for p in self.plan.fields:
            i = p.index
            if self._identity(p):
                bad = ""
                if i in self.text_type_errors:
                    bad = f" AND NOT (c.x{i} AND c.v{i} IN (SELECT v FROM o{i} WHERE split_part(errs, '.', 1) = 'type'))"
                cols.append(f"CASE WHEN NOT ({self._missing(p, f'c.v{i}')}){bad} THEN c.v{i} END AS t{i}")
            elif i in self.judged:
                joins.append(f" LEFT JOIN o{i} ON c.x{i} AND o{i}.v = c.v{i}")
                cols.append(f"CASE WHEN c.x{i} THEN o{i}.t ELSE c.t{i} END AS t{i}")
            else:
                cols.append(f"c.t{i}")
            if i in self.big_ints:  # see _key: an integer beyond the column's range keeps its digits
                cols.append(f"CASE WHEN c.x{i} THEN o{i}.aux END AS cx{i}")
            if p.type == "number":  # see _key: a Decimal the double does not hold exactly keeps its digits
                cols.append(f"CASE WHEN c.x{i} THEN {f'o{i}.aux' if i in self.judged else 'NULL'} END AS cx{i}")
            if p.type in JSON_KINDS:  # see _key: a JSON value's identity, members in any order
                cols.append(f"CASE WHEN c.x{i} THEN {f'o{i}.aux' if i in self.judged else 'NULL'} END AS ck{i}")
            if p.type in ("time", "datetime"):
                # Python's == on times and datetimes: a naive value never equals an aware one, aware ones
                # compare in UTC; the key says which it is ('n'/'a') before the instant
                judged = f"o{i}.aux" if i in self.judged else "NULL"
                if p.type == "time":
                    cols.append(f"CASE WHEN c.x{i} THEN {judged} END AS ck{i}")
                else:
                    fmt = p.descriptor.get("format", "default")
                    fast = f"length(c.v{i}) > 19" if fmt == "default" else ("true" if "%z" in str(fmt) else "false")
                    cols.append(f"CASE WHEN c.x{i} THEN {judged} ELSE CASE WHEN {fast} THEN 'a' ELSE 'n' END END AS cm{i}")
        keys = [f"CASE WHEN t{p.index} IS NOT NULL THEN cm{p.index} || epoch_us(t{p.index}) END AS ck{p.index}"
                for p in self.plan.fields if p.type == "datetime"]
        keys += [f"CASE WHEN t{p.index} IS NOT NULL THEN coalesce(cx{p.index}, printf('%.17g', t{p.index} + 0.0)) END AS ck{p.index}"
                 for p in self.plan.fields if p.type == "number"]
        keys += [f"coalesce(CAST(t{i} AS VARCHAR), cx{i}) AS ck{i}" for i in sorted(self.big_ints)]
        con.execute(f"CREATE VIEW typed AS SELECT *{''.join(', ' + k for k in keys)} FROM "
                    f"(SELECT c.rid, {', '.join(cols)} FROM cells c{''.join(joins)})")

    def _collect_errors(self) -> None:
        """The table ``errs``: for every row with an error, its codes ('<field>:<code>', ordered as frictionless)."""
        con = self.con
        assert con is not None
        plans = self.plan.fields
        self._judged()
        con.execute("CREATE TABLE long (rid BIGINT, fi INTEGER, pos INTEGER, code VARCHAR)")

        def insert(select: str) -> None:  # select: rows of (rid, fi, codes) -> one row per code, in order
            con.execute(f"INSERT INTO long SELECT rid, fi, unnest(range(len(string_split(codes, ',')))), "
                        f"unnest(string_split(codes, ',')) FROM ({select})")

        for g in range(self.groups):  # what SQL found during the scan
            insert(f"SELECT rid, CAST(split_part(fe, ':', 1) AS INTEGER) AS fi, split_part(fe, ':', 2) AS codes FROM "
                   f"(SELECT rid, unnest(string_split(_e{g}, ';')) AS fe FROM {self._group_relation(g)} "
                   f"WHERE _e{g} IS NOT NULL)")
        for p in plans:  # frictionless' verdicts on the values SQL left to it
            if self._has_oracle(p):
                i = p.index
                insert(f"SELECT c.rid, {i} AS fi, o.errs AS codes FROM {self._holder(p)} c JOIN "
                       f"(SELECT v, errs FROM o{i} WHERE errs IS NOT NULL) o ON c.x{i} AND o.v = c.v{i}")
        # a blank row has that one error, whatever its cells say (frictionless replaces them)
        con.execute("DELETE FROM long WHERE rid IN (SELECT rid FROM blanks)")
        con.execute("INSERT INTO long SELECT rid, -1, 0, 'blank-row' FROM blanks")
        # unique constraints and the primary key: on typed values, like frictionless' in-memory sets;
        # a hash aggregate finds the repeated values first, so only their rows are ordered. Order in a row
        # (fi): the fields' errors [0, n), missing or extra cells [n, row_checks), then these
        n = len(plans)
        row_checks = n + max(n, self.extra)
        for p in plans:
            if p.unique:
                t = self._key(p)
                con.execute(
                    f"INSERT INTO long SELECT rid, {row_checks + p.index}, 0, 'unique:{p.index}:' || prev FROM (SELECT rid, "
                    f"lag(rid) OVER (PARTITION BY {t} ORDER BY rid) AS prev FROM typed WHERE {t} IN "
                    f"(SELECT {t} FROM typed WHERE {t} IS NOT NULL{self._no_nan([p])} GROUP BY 1 HAVING count(*) > 1)) "
                    "WHERE prev IS NOT NULL"
                )
        if self.plan.primary_key:
            pks = sorted((p for p in plans if p.name in self.plan.primary_key),
                         key=lambda p: self.plan.primary_key.index(p.name))
            typed = [self._key(p) for p in pks]
            allnull = " AND ".join(f"{t} IS NULL" for t in typed)
            keys = ", ".join(f"{t} AS k{j}" for j, t in enumerate(typed))
            same = " AND ".join(f"d.k{j} IS NOT DISTINCT FROM s.k{j}" for j in range(len(typed)))
            kparts = ", ".join(f"k{j}" for j in range(len(typed)))
            con.execute(
                f"INSERT INTO long SELECT rid, {row_checks + n}, 0, 'pk:' || prev FROM (SELECT rid, lag(rid) OVER "
                f"(PARTITION BY {kparts} ORDER BY rid) AS prev FROM (SELECT rid, {keys} FROM typed WHERE NOT ({allnull})) s "
                f"SEMI JOIN (SELECT {keys} FROM typed WHERE NOT ({allnull}){self._no_nan(pks)} GROUP BY ALL "
                f"HAVING count(*) > 1) d ON {same}) WHERE prev IS NOT NULL"
            )
            con.execute(f"INSERT INTO long SELECT rid, {row_checks + n}, 0, 'pk:none' FROM typed WHERE {allnull}")
        for k, fk in enumerate(self.plan.foreign_keys):
            self._foreign_key(k, fk, row_checks + n + 1 + k)
        # codes: '<field>:<code>', 'missing-cell:<field>', 'extra-cell:<j>' (the j-th cell past the fields),
        # '-1:blank-row', and the row checks' own
        order, cuts = self._row_order(row_checks)
        con.execute(
            f"CREATE TABLE errs AS SELECT rid, list(CASE WHEN fi >= 0 AND fi < {n} THEN fi || ':' || code "
            f"WHEN fi >= {n} AND fi < {row_checks} THEN code || ':' || (fi - {n}) "
            f"WHEN fi = -1 THEN '-1:blank-row' ELSE code END ORDER BY {order}, pos) AS errs FROM long{cuts} GROUP BY rid"
        )

    def _row_order(self, row_checks: int) -> tuple[str, str]:
        """The order of a row's errors in frictionless' report: (ORDER BY key, a join giving ``cut``).

        frictionless reads a row's cells lazily: its unique checks read the unique fields' cells (schema
        order), its primary-key check the key's, its foreign-key checks theirs, and each cell read adds that
        cell's errors. The first of these checks to find an error reads the whole row (the other fields in
        order, then missing or extra cells), and the checks' own errors follow. So the fields these checks
        read before the row's first check error come first, in the order they were read."""
        plans = self.plan.fields
        n = len(plans)
        index = {p.name: p.index for p in plans}
        read: list[int] = []  # the fields the checks read, in order
        cut_of: dict[int, int] = {}  # a check's fi -> how many of them were read when it found an error

        def reads(names: Any, fi: int) -> None:
            for name in names:
                if name in index and index[name] not in read:
                    read.append(index[name])
            cut_of[fi] = len(read)

        for p in plans:
            if p.unique:
                reads([p.name], row_checks + p.index)
        if self.plan.primary_key:
            reads(self.plan.primary_key, row_checks + n)
        for k, fk in enumerate(self.plan.foreign_keys):
            reads(fk.fields, row_checks + n + 1 + k)
        if not read:
            return "fi", ""
        place = "CASE fi " + " ".join(f"WHEN {f} THEN {k}" for k, f in enumerate(read)) + f" ELSE {n} END"
        cases = " ".join(f"WHEN {fi} THEN {cut}" for fi, cut in cut_of.items())
        cuts = (f" LEFT JOIN (SELECT rid AS cut_rid, min(CASE fi {cases} END) AS cut FROM long WHERE fi >= {row_checks} "
                f"GROUP BY rid) ON cut_rid = rid")
        read_first = f"fi >= 0 AND fi < {n} AND {place} < coalesce(cut, {len(read)})"
        return f"CASE WHEN {read_first} THEN {place} ELSE {len(read)} + fi END", cuts

    def _foreign_key(self, k: int, fk: ForeignKey, fi: int) -> None:
        """Rows whose key is not among the referenced values: frictionless' lookup, as an anti-join.

        As in frictionless, a key whose cells are all missing (or type errors) is not checked, a partly
        missing one must be found with the same cells missing, and a self-reference looks among every row
        of the file, invalid ones included (their typed cells; a type error counts as missing)."""
        con = self.con
        assert con is not None
        by_name = {p.name: p for p in self.plan.fields}
        mine = [f"t{by_name[f].index}" for f in fk.fields]
        if self._is_self(fk):
            mine = [self._fk_key(by_name[f]) for f in fk.fields]
            theirs, source = [self._fk_key(by_name[f]) for f in fk.ref_fields], "typed"
            pairs = [_comparable(by_name[a].target, by_name[b].target) for a, b in zip(fk.fields, fk.ref_fields)]
        else:
            ref = self.references[fk.resource]
            if ref.attach is not None:
                ref.attach(con)
            theirs, source = [ident(f) for f in fk.ref_fields], ref.relation
            pairs = [_comparable(by_name[a].target, ref.columns[b]) for a, b in zip(fk.fields, fk.ref_fields)]
        keys = ", ".join(f"{t} AS k{j}" for j, t in enumerate(theirs))
        unset = " AND ".join(f"{t} IS NULL" for t in theirs)
        same = " AND ".join(f"s.{m} IS NOT DISTINCT FROM l.k{j}" for j, m in enumerate(mine))
        checked = f"SELECT rid, {', '.join(mine)} FROM typed WHERE NOT ({' AND '.join(f'{m} IS NULL' for m in mine)})"
        if all(pairs):
            con.execute(f"INSERT INTO long SELECT s.rid, {fi}, 0, 'fk:{k}' FROM ({checked}) s ANTI JOIN "
                        f"(SELECT DISTINCT {keys} FROM {source} WHERE NOT ({unset})) l ON {same}")
        else:  # a text key against numbers (or the like): Python never finds '1' == 1, nor does this
            con.execute(f"INSERT INTO long SELECT s.rid, {fi}, 0, 'fk:{k}' FROM ({checked}) s")

    def _key(self, p: FieldPlan) -> str:
        """The column unique and primary-key checks compare, as frictionless' sets compare Python values:
        the typed value; for times and datetimes a key that keeps the distinction between naive and aware
        values; for numbers the double's 17 digits (-0 as 0), or the Decimal's own digits when the double
        does not hold it exactly (more than 15 significant digits: frictionless keeps them apart); for JSON
        values (object, array, geojson, list) their identity as JSON values (``json_key``); for an integer
        field with values beyond 64 bits (stored NULL), their digits."""
        if p.type in ("time", "datetime", "number", *JSON_KINDS) or p.index in self.big_ints:
            return f"ck{p.index}"
        return f"t{p.index}"

    def _fk_key(self, p: FieldPlan) -> str:
        """A self-reference's key: the typed value (numbers as doubles, which compare with integers as Python
        does); times, datetimes and JSON values as ``_key``."""
        return f"t{p.index}" if p.type in ("number", "integer", "year") else self._key(p)

    @staticmethod
    def _no_nan(fields: list[FieldPlan]) -> str:
        """frictionless' dicts never find a NaN again (Decimal('NaN') != Decimal('NaN')): no repeat among them."""
        return "".join(f" AND NOT coalesce(isnan(t{p.index}), false)" for p in fields if p.target == "DOUBLE")

    def _typed_values(self, names: tuple[str, ...] | list[str], cells: list[Any]) -> list[Any]:
        """These cells as frictionless types them: its foreign-key notes and unique errors print ``str()`` of them."""
        from frictionless import FrictionlessException, Schema

        if self._fl_schema is None:
            try:
                self._fl_schema = Schema.from_descriptor(self.descriptor)
            except FrictionlessException as e:  # its notes need its reading of the cells
                raise Unsupported(f"a schema frictionless-py reports as invalid ({e})") from None
        out = []
        for name in names:
            p = next(p for p in self.plan.fields if p.name == name)
            text = cells[p.index] if p.index < len(cells) else None  # a short row's absent cell: None
            value, _notes = self._fl_schema.get_field(name).read_cell(text) \
                if text is not None and text not in p.missing else (None, {})
            out.append(value)
        return out

    # -- report ----------------------------------------------------------------

    def _report(self, labels: list[str], rows: int, started: float) -> Report:
        from frictionless import errors as ferr

        con = self.con
        assert con is not None
        plans = self.plan.fields
        counts: Counter[str] = Counter()
        total = 0
        invalid_rows = 0
        for kind, n in con.execute(
            # '<field>:<code>' for a cell, '-1:blank-row', and 'pk:…', 'unique:…', 'fk:…' for the whole-file checks
            "SELECT k, count(*) FROM (SELECT CASE WHEN split_part(x, ':', 1) IN ('pk', 'unique', 'fk', 'missing-cell', "
            "'extra-cell') "
            "THEN split_part(x, ':', 1) ELSE split_part(split_part(x, ':', 2), '.', 1) END AS k FROM (SELECT unnest(errs) AS x FROM errs)) "
            "WHERE k <> 'cast' GROUP BY k"
        ).fetchall():
            key = {"blank-row": "blank-row", "unique": "unique-error", "pk": "primary-key", "fk": "foreign-key",
                   "missing-cell": "missing-cell", "extra-cell": "extra-cell"}.get(
                kind, "type-error" if kind == "type" else "constraint-error")
            counts[key] += n
            total += n
        for e in self.header_errors:  # frictionless' label errors come first, then the rows'
            counts[e["type"]] += 1
            total += 1
        invalid_rows = con.execute(
            "SELECT count(*) FROM errs WHERE len(list_filter(errs, lambda x: split_part(x, ':', 2) <> 'cast')) > 0"
        ).fetchall()[0][0]
        texts = [f"r.v{p.index}" for p in plans] + [f"r.xe{j}" for j in range(self.extra)]
        first = con.execute(
            f"SELECT e.rid, e.errs, [{', '.join(texts)}] FROM errs e JOIN cells r ON r.rid = e.rid "
            f"ORDER BY e.rid LIMIT {STORED_ERRORS_LIMIT}"
        ).fetchall()
        stored: list[dict[str, Any]] = list(self.header_errors[:STORED_ERRORS_LIMIT])
        for rid, codes, cells in first:
            if len(stored) >= STORED_ERRORS_LIMIT:
                break
            row_number = rid + 2
            if None in cells:  # the cells Python's csv read: none in an empty line, fewer in a short row
                cells = cells[:cells.index(None)]
            for code in codes:
                head, _, rest = code.partition(":")
                if head == "fk":
                    fk = self.plan.foreign_keys[int(rest)]
                    values = self._typed_values(fk.fields, cells)
                    err: ferr.RowError = ferr.ForeignKeyError(note=fk.note(values), cells=cells, row_number=row_number,
                                               field_names=list(fk.fields),
                                               field_cells=["" if v is None else str(v) for v in values],
                                               reference_name=fk.resource, reference_field_names=list(fk.ref_fields))
                elif head in ("unique", "pk"):
                    if head == "pk":
                        note = 'cells composing the primary keys are all "None"' if rest == "none" else \
                            f"the same as in the row at position {int(rest) + 2}"
                        err = ferr.PrimaryKeyError(note=note, cells=cells, row_number=row_number)
                    else:
                        idx, _, prev = rest.partition(":")
                        p = plans[int(idx)]
                        err = ferr.UniqueError(note=f"the same as in the row at position {int(prev) + 2}", cells=cells,
                                               row_number=row_number, cell=str(self._typed_values([p.name], cells)[0]),
                                               field_name=p.name, field_number=p.index + 1)
                elif rest == "blank-row":
                    err = ferr.BlankRowError(note="", cells=cells, row_number=row_number)
                elif head == "missing-cell":
                    p = plans[int(rest)]
                    err = ferr.MissingCellError(note="", cells=cells, row_number=row_number, cell="", field_name=p.name,
                                                field_number=p.index + 1)
                elif head == "extra-cell":
                    at = len(plans) + int(rest)
                    err = ferr.ExtraCellError(note="", cells=cells, row_number=row_number, cell=cells[at], field_name="",
                                              field_number=at + 1)
                elif rest == "cast":
                    continue
                else:
                    p = plans[int(head)]
                    cls = ferr.TypeError if code_kind(rest) == "type" else ferr.ConstraintError
                    note = p.note(rest)
                    cell = cells[p.index] if p.index < len(cells) else "None"  # a short row's absent cell
                    err = cls(note=note, cells=cells, row_number=row_number, cell=cell, field_name=p.name,
                              field_number=p.index + 1)
                stored.append(err.to_descriptor())
                if len(stored) >= STORED_ERRORS_LIMIT:
                    break
            if len(stored) >= STORED_ERRORS_LIMIT:
                break
        seconds = round(time.monotonic() - started, 3)
        task: dict[str, Any] = {
            "name": self.origin.stem, "type": "table", "valid": total == 0, "place": str(self.origin.name),
            "labels": labels,
            "stats": {"errors": total, "warnings": len(self.warnings), "seconds": seconds, "bytes": self.origin.stat().st_size,
                      "fields": len(plans), "rows": rows},
            "warnings": list(self.warnings), "errors": stored,
        }
        if total > len(stored):
            task["warnings"].append(
                f"report truncated to the first {len(stored)} of {total} errors; every invalid row and its errors "
                "is kept in the dataset's quarantine table")
        desc = {"valid": total == 0, "stats": {"tasks": 1, "errors": total, "warnings": len(self.warnings), "seconds": seconds},
                "warnings": list(self.warnings), "errors": [], "tasks": [task]}
        engine: dict[str, Any] = {"engine": "duckdb", "oracle_values": self.oracle_values, "scan": self.scan_mode}
        if self.rewritten:  # judged on a copy written as frictionless read the file (validate/reread.py)
            engine["rewritten"] = True
        desc["partage_engine"] = engine
        return Report(desc, total, rows, invalid_rows, dict(counts))

    # -- writing ---------------------------------------------------------------

    def _write(self, out: Output) -> tuple[int, int]:
        con = self.con
        assert con is not None
        plans = self.plan.fields
        if [p.name for p in plans] != out.data_schema.names[:-2]:  # the schema's fields, then _source and _row_number
            # a header the schema's fieldsMatch tolerates (subset, superset...) but whose columns differ from
            # its fields: the typed table keeps the schema's columns, as frictionless-py's path writes them
            raise Unsupported("typed storage of a file whose columns differ from the schema's (fieldsMatch)")
        if out.policy == "warn":
            bad = ("SELECT rid FROM errs WHERE len(list_filter(errs, lambda x: split_part(split_part(x, ':', 2), '.', 1) "
                   "IN ('type', 'cast', 'blank-row'))) > 0")
        else:
            bad = "SELECT rid FROM errs"
        con.execute(f"CREATE TABLE bad AS {bad}")
        # every column nullable, as in validate/arrow.py (DuckDB's writer marks a column 'required' when it saw no NULL)
        typed = ", ".join(f"CASE WHEN random() < 2 THEN t{p.index} END AS {ident(p.name)}" for p in plans)
        # sorted by the primary key (issue #5: range reads on the key); by row otherwise
        order = " ORDER BY " + ", ".join([ident(k) for k in self.plan.primary_key] + ["_row_number"])
        data_sql = (f"SELECT {typed}, CASE WHEN random() < 2 THEN {sql_str(out.source_key)} END AS _source, "
                    "CASE WHEN random() < 2 THEN rid + 2 END AS _row_number "
                    f"FROM typed WHERE rid NOT IN (SELECT rid FROM bad){order}")
        stored = self._copy(data_sql, out.data_path, out.data_schema)
        quarantined = self._copy_quarantine(out)
        return stored, quarantined

    def _copy(self, sql: str, path: Path, schema: pa.Schema) -> int:
        con = self.con
        assert con is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        # DuckDB writes the Parquet itself (parallel); the column types are those of validate/arrow.py's schema
        con.execute(f"COPY ({sql}) TO {sql_str(str(path))} (FORMAT parquet, COMPRESSION zstd)")
        written = pq.read_schema(path)
        if not written.equals(schema):
            raise pa.ArrowTypeError(f"typed Parquet schema {written} differs from the expected {schema}")
        return pq.ParquetFile(path).metadata.num_rows

    def _copy_quarantine(self, out: Output) -> int:
        """The bad rows as received, with ``_errors`` (a JSON list), written by DuckDB.

        A code's description depends on its field and kind only (not on the row a duplicate repeats),
        so each distinct one is described once in Python and the lists are assembled in SQL: a file
        whose every row is bad (a whole column in the wrong format) costs seconds, not a Python loop."""
        con = self.con
        assert con is not None
        plans = self.plan.fields
        # the description key: 'pk:17' -> 'pk', 'unique:3:17' -> 'unique:3', the others as they are
        kinds = ("CASE WHEN starts_with(code, 'pk:') THEN 'pk' WHEN starts_with(code, 'unique:') "
                 "THEN 'unique:' || split_part(code, ':', 2) ELSE code END")
        con.execute(f"CREATE TABLE qcodes AS SELECT e.rid, c.pos, {kinds} AS k FROM errs e, "
                    "unnest(e.errs) WITH ORDINALITY AS c(code, pos) WHERE e.rid IN (SELECT rid FROM bad)")
        keys = [r[0] for r in con.execute("SELECT DISTINCT k FROM qcodes").fetchall()]
        described = pa.table({"k": pa.array(keys, pa.string()),
                              "j": pa.array([json.dumps(self._describe(k), ensure_ascii=False) for k in keys], pa.string())})
        con.register("_qdesc", described)
        try:
            text = ", ".join(f"CASE WHEN random() < 2 THEN r.v{p.index} END AS {ident(p.name)}" for p in plans)
            sql = (f"SELECT {text}, CASE WHEN random() < 2 THEN {sql_str(out.source_key)} END AS _source, "
                   "CASE WHEN random() < 2 THEN r.rid + 2 END AS _row_number, "
                   "CASE WHEN random() < 2 THEN q._errors END AS _errors FROM cells r JOIN "
                   "(SELECT c.rid, '[' || string_agg(d.j, ', ' ORDER BY c.pos) || ']' AS _errors FROM qcodes c "
                   "JOIN _qdesc d ON d.k = c.k GROUP BY c.rid) q ON q.rid = r.rid ORDER BY r.rid")
            n = con.execute("SELECT count(DISTINCT rid) FROM qcodes").fetchall()[0][0]
            if n:
                self._copy(sql, out.quarantine_path, out.quarantine_schema)
        finally:
            con.unregister("_qdesc")
        return int(n)

    def _describe(self, code: str) -> dict[str, Any]:
        head, _, rest = code.partition(":")
        plans = self.plan.fields
        if head == "pk":  # 'pk:<row>' or 'pk': the description does not depend on the row
            return {"type": "primary-key", "field": None, "message": "duplicate or empty primary key"}
        if head == "fk":
            fk = self.plan.foreign_keys[int(rest)]
            where = f"dataset '{fk.resource}'" if not self._is_self(fk) else "this file"
            return {"type": "foreign-key", "field": ", ".join(fk.fields),
                    "message": f"{', '.join(fk.fields)}: not found among {', '.join(fk.ref_fields)} of {where}"}
        if head == "missing-cell":
            return {"type": "missing-cell", "field": plans[int(rest)].name, "message": "missing cell: the row is shorter than the header"}
        if head == "extra-cell":
            return {"type": "extra-cell", "field": None,
                    "message": f"extra cell at position {len(plans) + int(rest) + 1}: the row is longer than the header"}
        if head == "unique":
            idx = int(rest.partition(":")[0])
            return {"type": "unique-error", "field": plans[idx].name, "message": "duplicate value"}
        if rest == "blank-row":
            return {"type": "blank-row", "field": None, "message": "blank row"}
        p = plans[int(head)]
        if rest == "cast":
            return {"type": "partage-cast-error", "field": p.name,
                    "message": f"field '{p.name}': the value does not fit the stored type; kept in quarantine rather than stored wrong"}
        if code_kind(rest) == "type":
            return {"type": "type-error", "field": p.name, "message": p.note(rest)}
        return {"type": "constraint-error", "field": p.name, "message": p.note(rest)}

    # -- entry -----------------------------------------------------------------

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
        rows = timed("scan", lambda: self._scan(read, feeds))
        spaced: list[bool] = []  # checked on a core the oracle's Python work leaves free
        check = threading.Thread(target=lambda: spaced.append(self._spaces_by_quotes()), daemon=True)
        check.start()
        try:
            timed("oracle", self._oracles)
        finally:
            check.join()
        if not spaced or spaced[0]:
            raise Unsupported("a space beside a quote, outside the quotes (DuckDB's reader drops it, Python's csv keeps it)",
                              reread=True)
        timed("checks", self._collect_errors)
        report = timed("report", lambda: self._report(labels, rows, started))
        report.descriptor["partage_engine"]["phases"] = phases  # the same dict: "write" lands in it below
        if out is None or report.file_errors or (report.error_count and out.policy == "reject"):
            return Outcome(report)
        stored, quarantined = timed("write", lambda: self._write(out))
        return Outcome(report, stored, quarantined)
