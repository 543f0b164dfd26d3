"""Reading a CSV file with DuckDB as frictionless-py reads it: one scan giving every cell's text, typed value and errors.

DuckDB's CSV reader and Python's csv (frictionless' reader) agree on most files and differ, without a
word, on a few: empty lines, rows of another width, spaces beside quotes, lone carriage returns,
quotes never closed. This module finds those cases and either reproduces frictionless' reading
(blank rows, ragged rows) or raises :class:`~.compiler.Unsupported` so that the file is read as
frictionless reads it (validate/reread.py) or validated by frictionless-py.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import json
import logging
import re
from collections import Counter
from pathlib import Path

import duckdb
import pyarrow as pa

from ..dialect import Dialect
from ..filefacts import file_facts
from .compiler import CONSTRAINT_ORDER, FieldPlan, Unsupported, re2_pattern, sql_str
from .sqlstate import GROUP_FIELDS, RunState

log = logging.getLogger("partage.validate")

_CHUNK = 1 << 22
NOT_NULL_STR = "\x01"  # DuckDB's nullstr: a byte no text cell holds, so '' stays ''
MEMORY_LIMIT = "600MB"
SCAN_MEMORY_LIMIT = "1GB"  # the ordered one-pass scan: enough for its writer to use both cores (see _scan_narrow)
SCAN_COMPRESSION = "uncompressed"  # a temp file read back at once: compressing it cost more CPU than the bytes (A/B: 3 of 3)
LONGEST_IN_LIST = 64  # longer enums keep DuckDB's hash join, and the two-step scan
MAX_FIELDS = 1000
MAX_LINE = 2 << 20  # longer records go to frictionless-py; DuckDB sizes its CSV buffers on this (16 MB lines: 256 MB blocks)
SAMPLE_ROWS = 100  # frictionless' default detector sample
MAX_INLINE_GAPS = 64
MAX_EXTRA_CELLS = 64  # a row longer than the header by more: frictionless-py (and its guard, validate/ragged.py)
RAGGED_ATTEMPTS = 4  # empty lines in more places than this between the rows: their shifts are joined


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


class ScanRun(RunState):
    """The reading stage: ``_source`` checks the file and header, ``_scan`` leaves the view ``cells``
    (per cell v<i> its text, t<i> its typed value, x<i> whether frictionless must judge it, per row
    ``_e<g>`` SQL's error codes) and the table ``blanks``."""

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

    def _quote_space_lines(self) -> tuple[int, int]:
        """How many lines hold a space beside a quote, outside the quotes (``"a" ;``, ``"a" "b"``, ``; "a"``),
        and how many start with a closing quote then a space (three quotes, a space, a delimiter: outside the
        quotes only when the line starts inside a multi-line cell, see ``_spaces_by_quotes``).

        DuckDB's reader drops a space after a closing quote, or a single one before an opening quote,
        and reads a quote after such a space as opening the cell again, all without a word; Python's
        csv, frictionless' reader, keeps them in the cell (``a ``, ``a "b"``, `` "a"``). Such a file goes
        to frictionless-py. One streamed read of the lines, on its own connection and one thread, while
        the scan runs: it needs the file only, and the scan's ordered writer leaves part of a core free.
        The test is by line, so a few files without the trap go there too (an inch mark then a space in
        an unquoted cell, ``5" disk``): slower, same verdict. -1, -1: the read failed (frictionless-py)."""
        if self.rewritten:  # every cell quoted by Python's csv writer: no space beside a quote outside the quotes
            return 0, 0
        path, encoding = self._text
        q = self.dialect.quote_char or '"'
        hexq, hexd = f"\\x{{{ord(q):x}}}", f"\\x{{{ord(self.dialect.delimiter):x}}}"
        # a closing quote (an odd run of quotes after text: not the doubled ones of `""Les Pins"" Nord`) or an
        # empty quoted cell, then a space; or one space, then an opening quote (not `, ""b`, a doubled quote
        # inside quoted JSON: {""a"": 1, ""b"": 2})
        pattern = (f"[^{hexq}{hexd}\\r\\n]{hexq}({hexq}{hexq})* |(^|{hexd})({hexq}{hexq})+ |"
                   f"(^|{hexd}) {hexq}([^{hexq}]|{hexq}{hexq}|{hexq}({hexd}|\\r|$))")
        closing = f"^{hexq}({hexq}{hexq})* "  # a line starting inside a cell, with its closing quote
        sep = "chr(31) || chr(30) || chr(29) || chr(28)"  # no real file's delimiter: each line is one cell
        con = duckdb.connect()
        try:
            con.execute("SET threads = 1")
            con.execute("SET memory_limit = '200MB'")
            found, starts = con.execute(
                f"SELECT count(*) FILTER (WHERE regexp_matches(l, {sql_str(pattern)})), "
                f"count(*) FILTER (WHERE regexp_matches(l, {sql_str(closing)})) "
                f"FROM read_csv({sql_str(str(path))}, columns={{'l': 'VARCHAR'}}, header=false, "
                f"delim={sep}, quote='', escape='', strict_mode=false, auto_detect=false, null_padding=true, "
                f"encoding={sql_str(encoding)}, max_line_size={MAX_LINE}) "
                f"WHERE contains(l, {sql_str(q + ' ')}) OR contains(l, {sql_str(' ' + q)})").fetchall()[0]
            return int(found), int(starts)
        except duckdb.Error as e:
            log.debug("line check failed (%s): the file goes to frictionless-py", e)
            return -1, -1
        finally:
            con.close()

    def _spaces_by_quotes(self, lines: tuple[int, int]) -> bool:
        """Given ``_quote_space_lines``' counts and the scan's finding of multi-line cells: is there a space
        beside a quote outside the quotes? (A line starting with ``" `` is inside a cell's quotes unless the
        line before ended inside a multi-line cell.)"""
        found, starts = lines
        return found != 0 or (self.multiline and starts != 0)

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
            if self.scan_choice == "auto" and _writes_in_order(con, copy):
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
            surely = p.invalid != "false"  # b<i>: a value frictionless surely refuses (CASE: tested only when not fast)
            if surely:
                middle.append(f"CASE WHEN f{i} OR m{i} THEN false ELSE coalesce({self._on(p.invalid, f'v{i}')}, false) "
                              f"END AS b{i}")
            checks = ", ".join(
                f"CASE WHEN coalesce({pred.replace('__T__', f'tf{i}').replace('__V__', f'v{i}')}, false) THEN {sql_str(name)} END"
                for name, pred in sorted(p.checks, key=lambda c: CONSTRAINT_ORDER.index(c[0])))
            fast_errs = f"CASE WHEN tf{i} IS NULL THEN 'type' ELSE nullif(concat_ws(',', {checks}), '') END" if checks \
                else f"CASE WHEN tf{i} IS NULL THEN 'type' END"
            required = "'required'" if p.required else "NULL"
            bad = f" WHEN b{i} THEN 'type'" if surely else ""
            outer.append(f"v{i}, CASE WHEN m{i} THEN {required} WHEN f{i} THEN {fast_errs}{bad} END AS e{i}")
            kept.append(f"v{i}")
            errs.append(f"'{i}:' || e{i}")
            if not self._identity(p):
                outer.append(f"CAST(CASE WHEN f{i} AND NOT m{i} THEN tf{i} END AS {p.target}) AS t{i}")
                kept.append(f"t{i}")
            if self._has_oracle(p):
                outer.append(f"NOT m{i} AND NOT f{i}{f' AND NOT b{i}' if surely else ''} AS x{i}")
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
