"""Run a compiled schema over a CSV file in DuckDB: errors, typed Parquet, quarantine.

The file is read once by DuckDB's CSV reader (every column as text) into a
table spilled to disk under the warehouse's tmp dir; the checks, the typed
casts and the Parquet writing are scans of that table. Cell semantics come
from :mod:`.compiler`; this module owns the file handling and the report.

Files whose *row numbering* DuckDB cannot reproduce (ragged rows, blank lines,
line breaks inside quoted cells), whose header does not match the schema, or
that are not CSV raise :class:`~.compiler.Unsupported`: frictionless-py then
validates them, and the engine logs the feature's name.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import re
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ..dialect import Dialect
from ..warehouse import ident
from .compiler import CONSTRAINT_ORDER, FieldPlan, SchemaPlan, Unsupported, compile_schema, oracle, sql_str
from .report import STORED_ERRORS_LIMIT, Report

log = logging.getLogger("partage.validate")

_CHUNK = 1 << 22
NOT_NULL_STR = "\x01"  # DuckDB's nullstr: a byte no text cell holds, so '' stays ''
MEMORY_LIMIT = "600MB"
BATCH_ROWS = 65_536
GROUP_FIELDS = 24
MAX_LINE = 16 << 20  # longer records (a 100 MB line) go to frictionless-py


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


def _line_feeds(path: Path) -> tuple[int, bool, bool]:
    """Count b'\\n', and tell whether the file ends with one and holds a lone b'\\r' (old Mac line ends)."""
    count, last, lone_cr = 0, b"", False
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            count += chunk.count(b"\n")
            if not lone_cr and chunk.count(b"\r") != chunk.count(b"\r\n"):
                lone_cr = chunk.replace(b"\r\n", b"").count(b"\r") > (1 if chunk.endswith(b"\r") else 0)
            last = chunk[-1:]
    return count, last == b"\n", lone_cr


def _header(path: Path, encoding: str, dialect: Dialect) -> list[str]:
    with open(path, encoding=encoding, newline="", errors="strict") as f:
        head = f.read(1 << 20)
    reader = csv.reader(io.StringIO(head), delimiter=dialect.delimiter, quotechar=dialect.quote_char)
    for row in reader:
        return row
    raise Unsupported("empty file")


def _duck_encoding(encoding: str) -> str | None:
    enc = codecs.lookup(encoding).name
    return {"utf-8": "utf-8", "utf-8-sig": "utf-8", "ascii": "utf-8", "iso8859-1": "latin-1", "latin-1": "latin-1"}.get(enc)


def _pattern_works(con: duckdb.DuckDBPyConnection, pattern: str) -> bool:
    try:
        con.execute(f"SELECT regexp_full_match('', {sql_str(pattern)})").fetchall()
        return True
    except duckdb.Error:
        return False


class SqlValidation:
    """One validation run: a DuckDB database in a temp dir, dropped at the end."""

    def __init__(self, path: Path, descriptor: dict[str, Any], dialect: Dialect, *, timezone: str,
                 tmp_root: Path | None = None):
        self.path = path
        self.descriptor = descriptor
        self.dialect = dialect
        self.timezone = timezone
        self.plan: SchemaPlan = compile_schema(descriptor, timezone)
        self.tmp = Path(tempfile.mkdtemp(prefix="partage-sqlv-", dir=tmp_root))
        self.con: duckdb.DuckDBPyConnection | None = None
        self.oracle_values = 0

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- reading ---------------------------------------------------------------

    def _load(self) -> tuple[list[str], int]:
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
        try:
            labels = _header(source, "utf-8-sig" if duck_enc == "utf-8" else "latin-1", d)
        except UnicodeDecodeError:
            raise Unsupported(f"bytes that are not {d.encoding}") from None
        names = [f.name for f in self.plan.fields]
        if labels != names:
            raise Unsupported("header that differs from the schema's field names")
        feeds, ends_with_lf, lone_cr = _line_feeds(source)
        if lone_cr:
            raise Unsupported("carriage-return line ends or carriage returns inside cells")
        # in memory, spilling to the temp dir past memory_limit: faster than a database file, same bound on RSS
        con = self.con = duckdb.connect()
        con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        con.execute(f"SET temp_directory = {sql_str(str(self.tmp / 'spill'))}")
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        columns = "{" + ", ".join(f"{sql_str(f'c{i}')}: 'VARCHAR'" for i in range(len(names))) + "}"
        q = d.quote_char or '"'
        try:
            con.execute(
                f"CREATE TABLE raw AS SELECT * FROM read_csv({sql_str(str(source))}, header=true, auto_detect=false, "
                f"columns={columns}, delim={sql_str(d.delimiter)}, quote={sql_str(q)}, escape={sql_str(q)}, "
                f"nullstr={sql_str(NOT_NULL_STR)}, strict_mode=true, null_padding=false, encoding={sql_str(duck_enc)}, "
                f"max_line_size={MAX_LINE})"
            )
        except duckdb.Error as e:
            first = str(e).splitlines()[0][:160]
            raise Unsupported(f"irregular CSV rows ({first})") from None
        rows = con.execute("SELECT count(*) FROM raw").fetchall()[0][0]
        expected = rows + 1 if ends_with_lf else rows
        if feeds != expected:
            raise Unsupported("blank lines or line breaks inside cells (row numbering)")
        return labels, rows

    # -- checks ----------------------------------------------------------------

    def _oracles(self) -> None:
        """Judge with frictionless every distinct value SQL does not decide, and store the verdicts."""
        con = self.con
        assert con is not None
        for p in self.plan.fields:
            if "pattern" in p.notes and not _pattern_works(con, p.descriptor["constraints"]["pattern"]):
                p.fast = "false"
                p.checks = [c for c in p.checks if c[0] != "pattern"]
        todo = [p for p in self.plan.fields if p.fast != "true"]
        if not todo:
            return
        # one scan collects, for every field, the distinct values SQL does not decide
        lists = ", ".join(
            f"list(DISTINCT {p.raw}) FILTER (WHERE NOT ({self._missing(p, p.raw)}) "
            f"AND NOT coalesce({self._on(p.fast, p.raw)}, false))" for p in todo)
        found = con.execute(f"SELECT {lists} FROM raw").fetchall()[0]
        for p, values in zip(todo, found):
            values = values or []
            judge = oracle(p.descriptor, self.plan.missing)
            pattern = p.descriptor.get("constraints", {}).get("pattern")
            rows: dict[str, list[Any]] = {"v": [], "canon": [], "errs": [], "cast_err": []}
            full = re.compile(pattern) if pattern else None
            for value in values:
                canon, errs, cast_err = judge(value)
                if full is not None and errs != ["type"]:
                    # the spec's reading of `pattern` (whole value), not frictionless' re.match("^P$") — docs/validation.md
                    errs = [e for e in errs if e != "pattern"]
                    if not full.fullmatch(value):
                        errs.append("pattern")
                    errs.sort(key=lambda e: CONSTRAINT_ORDER.index(e) if e in CONSTRAINT_ORDER else 99)
                rows["v"].append(value)
                rows["canon"].append(canon)
                rows["errs"].append(errs)
                rows["cast_err"].append(cast_err)
            self.oracle_values += len(values)
            codes = [",".join(e + (["cast"] if c else [])) or None for e, c in zip(rows["errs"], rows["cast_err"])]
            table = pa.table({"v": pa.array(rows["v"], pa.string()), "canon": pa.array(rows["canon"], pa.string()),
                              "errs": pa.array(codes, pa.string())})
            con.register(f"_o{p.index}", table)
            con.execute(f"CREATE TABLE o{p.index} AS SELECT * FROM _o{p.index}")
            con.unregister(f"_o{p.index}")
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
        return f"{col} IN ({', '.join(sql_str(m) for m in p.missing)})"

    def _has_oracle(self, p: FieldPlan) -> bool:
        return p.fast != "true"

    def _inner(self, p: FieldPlan) -> str:
        """Per-field columns computed once per cell: the text, missing, fast, the oracle's verdict."""
        col = f"raw.{p.raw}"
        i = p.index
        cols = [f"{col} AS v{i}", f"{self._missing(p, col)} AS m{i}"]
        if self._has_oracle(p):
            canon = p.from_canon.replace("canon", f"o{i}.canon")
            cols += [f"coalesce({self._on(p.fast, col)}, false) AS f{i}", f"{canon} AS to{i}", f"o{i}.errs AS oe{i}"]
        return ", ".join(cols)

    def _middle(self, p: FieldPlan) -> str:
        """The cast of a fast value, evaluated only where the value is fast (a cast can raise otherwise)."""
        i = p.index
        cast = self._on(p.cast, f"v{i}")
        keep = f"v{i}, m{i}" + (f", f{i}, to{i}, oe{i}" if self._has_oracle(p) else "")
        if self._has_oracle(p):
            return f"{keep}, CASE WHEN f{i} THEN {cast} END AS tf{i}"
        return f"{keep}, {cast} AS tf{i}"

    def _outer(self, p: FieldPlan) -> str:
        """The typed value t<i> and the error codes e<i> (comma-joined: 'type', constraint names, 'cast')."""
        i = p.index
        checks = ", ".join(
            f"CASE WHEN coalesce({pred.replace('__T__', f'tf{i}').replace('__V__', f'v{i}')}, false) THEN {sql_str(name)} END"
            for name, pred in sorted(p.checks, key=lambda c: CONSTRAINT_ORDER.index(c[0]))
        )
        fast_errs = f"CASE WHEN tf{i} IS NULL THEN 'type' ELSE nullif(concat_ws(',', {checks}), '') END" if checks \
            else f"CASE WHEN tf{i} IS NULL THEN 'type' END"
        required = "'required'" if p.required else "NULL"
        if self._has_oracle(p):
            typed = f"CASE WHEN m{i} THEN NULL WHEN f{i} THEN tf{i} ELSE to{i} END"
            errs = f"CASE WHEN m{i} THEN {required} WHEN f{i} THEN {fast_errs} ELSE oe{i} END"
        else:
            typed = f"CASE WHEN m{i} THEN NULL ELSE tf{i} END"
            errs = f"CASE WHEN m{i} THEN {required} ELSE {fast_errs} END"
        return f"{typed} AS t{i}, {errs} AS e{i}"

    def _collect_errors(self) -> None:
        """One scan computes every typed value and error code into `typed` (in groups of fields, joined by position)."""
        con = self.con
        assert con is not None
        plans = self.plan.fields
        con.execute("CREATE TABLE long (rid BIGINT, fi INTEGER, pos INTEGER, code VARCHAR)")
        groups = []
        # fields in groups: one SELECT over a hundred columns' checks exhausts DuckDB's memory
        for g, start in enumerate(range(0, len(plans), GROUP_FIELDS)):
            group = plans[start:start + GROUP_FIELDS]
            joined = "raw" + "".join(f" LEFT JOIN o{p.index} ON o{p.index}.v = raw.{p.raw}" for p in group
                                     if self._has_oracle(p))
            inner = ", ".join(self._inner(p) for p in group)
            middle = ", ".join(self._middle(p) for p in group)
            outer = ", ".join(self._outer(p) for p in group)
            con.execute(f"CREATE TABLE typed{g} AS SELECT rid, {outer} FROM (SELECT rid, {middle} FROM "
                        f"(SELECT raw.rowid AS rid, {inner} FROM {joined}))")
            groups.append(f"typed{g}")
        if len(groups) == 1:
            con.execute("CREATE VIEW typed AS SELECT * FROM typed0")
        else:
            con.execute(f"CREATE VIEW typed AS SELECT * FROM {' JOIN '.join(groups[:1] + [g + ' USING (rid)' for g in groups[1:]])}")
        any_err = " OR ".join(f"e{p.index} IS NOT NULL" for p in plans)
        ecols = ", ".join(f"e{p.index}" for p in plans)
        con.execute(f"CREATE TABLE wide AS SELECT rid, {ecols} FROM typed WHERE {any_err}")
        con.execute(
            "INSERT INTO long SELECT rid, fi, unnest(range(len(string_split(codes, ',')))), "
            "unnest(string_split(codes, ',')) FROM (SELECT rid, CAST(substr(name, 2) AS INTEGER) AS fi, codes FROM "
            "(UNPIVOT wide ON COLUMNS('^e[0-9]+$') INTO NAME name VALUE codes))"
        )
        # a blank row has that one error, whatever its cells say (frictionless replaces them)
        blank = " AND ".join(self._missing(p, f"raw.{p.raw}") for p in plans)
        con.execute(f"CREATE TABLE blank AS SELECT raw.rowid AS rid FROM raw WHERE {blank}")
        con.execute("DELETE FROM long WHERE rid IN (SELECT rid FROM blank)")
        con.execute("INSERT INTO long SELECT rid, -1, 0, 'blank-row' FROM blank")
        # unique constraints and the primary key: on typed values, like frictionless' in-memory sets
        n = len(plans)
        for p in plans:
            if p.unique:
                t = f"t{p.index}"
                con.execute(
                    f"INSERT INTO long SELECT rid, {n + p.index}, 0, 'unique:{p.index}:' || prev FROM (SELECT rid, "
                    f"{t} AS t, lag(rid) OVER (PARTITION BY {t} ORDER BY rid) AS prev FROM typed) "
                    "WHERE t IS NOT NULL AND prev IS NOT NULL"
                )
        if self.plan.primary_key:
            pks = sorted((p for p in plans if p.name in self.plan.primary_key),
                         key=lambda p: self.plan.primary_key.index(p.name))
            typed = [f"t{p.index}" for p in pks]
            allnull = " AND ".join(f"k{i} IS NULL" for i in range(len(typed)))
            kcols = ", ".join(f"{t} AS k{i}" for i, t in enumerate(typed))
            part = ", ".join(typed)
            con.execute(
                f"INSERT INTO long SELECT rid, {2 * n}, 0, CASE WHEN {allnull} THEN 'pk:none' ELSE 'pk:' || prev END FROM ("
                f"SELECT rid, {kcols}, lag(rid) OVER (PARTITION BY {part} ORDER BY rid) AS prev "
                f"FROM typed) WHERE ({allnull}) OR prev IS NOT NULL"
            )
        con.execute(
            "CREATE TABLE errs AS SELECT rid, list(CASE WHEN fi >= 0 AND fi < " + str(n) + " THEN fi || ':' || code "
            "WHEN fi = -1 THEN '-1:blank-row' ELSE code END ORDER BY fi, pos) AS errs FROM long GROUP BY rid"
        )

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
            "SELECT k, count(*) FROM (SELECT split_part(unnest(errs), ':', 2) AS k FROM errs) "
            "WHERE k <> 'cast' GROUP BY k"
        ).fetchall():
            key = {"blank-row": "blank-row", "unique": "unique-error", "pk": "primary-key"}.get(kind, "type-error" if kind == "type" else "constraint-error")
            counts[key] += n
            total += n
        invalid_rows = con.execute(
            "SELECT count(*) FROM errs WHERE len(list_filter(errs, lambda x: split_part(x, ':', 2) <> 'cast')) > 0"
        ).fetchall()[0][0]
        first = con.execute(
            f"SELECT e.rid, e.errs, [{', '.join(f'r.{p.raw}' for p in plans)}] FROM errs e JOIN raw r ON r.rowid = e.rid "
            f"ORDER BY e.rid LIMIT {STORED_ERRORS_LIMIT}"
        ).fetchall()
        stored: list[dict[str, Any]] = []
        for rid, codes, cells in first:
            row_number = rid + 2
            for code in codes:
                head, _, rest = code.partition(":")
                if head in ("unique", "pk"):
                    if head == "pk":
                        note = 'cells composing the primary keys are all "None"' if rest == "none" else \
                            f"the same as in the row at position {int(rest) + 2}"
                        err: ferr.RowError = ferr.PrimaryKeyError(note=note, cells=cells, row_number=row_number)
                    else:
                        idx, _, prev = rest.partition(":")
                        p = plans[int(idx)]
                        err = ferr.UniqueError(note=f"the same as in the row at position {int(prev) + 2}", cells=cells,
                                               row_number=row_number, cell=cells[p.index], field_name=p.name,
                                               field_number=p.index + 1)
                elif rest == "blank-row":
                    err = ferr.BlankRowError(note="", cells=cells, row_number=row_number)
                elif rest == "cast":
                    continue
                else:
                    p = plans[int(head)]
                    cls = ferr.TypeError if rest == "type" else ferr.ConstraintError
                    note = p.type_note if rest == "type" else p.notes.get(rest, rest)
                    err = cls(note=note, cells=cells, row_number=row_number, cell=cells[p.index], field_name=p.name,
                              field_number=p.index + 1)
                stored.append(err.to_descriptor())
                if len(stored) >= STORED_ERRORS_LIMIT:
                    break
            if len(stored) >= STORED_ERRORS_LIMIT:
                break
        seconds = round(time.monotonic() - started, 3)
        task: dict[str, Any] = {
            "name": self.path.stem, "type": "table", "valid": total == 0, "place": str(self.path.name),
            "labels": labels,
            "stats": {"errors": total, "warnings": 0, "seconds": seconds, "bytes": self.path.stat().st_size,
                      "fields": len(plans), "rows": rows},
            "warnings": [], "errors": stored,
        }
        if total > len(stored):
            task["warnings"].append(
                f"report truncated to the first {len(stored)} of {total} errors; every invalid row and its errors "
                "is kept in the dataset's quarantine table")
        desc = {"valid": total == 0, "stats": {"tasks": 1, "errors": total, "warnings": 0, "seconds": seconds},
                "warnings": [], "errors": [], "tasks": [task]}
        desc["partage_engine"] = {"engine": "duckdb", "oracle_values": self.oracle_values}
        return Report(desc, total, rows, invalid_rows, dict(counts))

    # -- writing ---------------------------------------------------------------

    def _write(self, out: Output) -> tuple[int, int]:
        con = self.con
        assert con is not None
        plans = self.plan.fields
        if out.policy == "warn":
            bad = "SELECT rid FROM errs WHERE len(list_filter(errs, lambda x: split_part(x, ':', 2) IN ('type', 'cast', 'blank-row'))) > 0"
        else:
            bad = "SELECT rid FROM errs"
        con.execute(f"CREATE TABLE bad AS {bad}")
        # every column nullable, as in validate/arrow.py (DuckDB marks a column 'required' when it saw no NULL)
        typed = ", ".join(f"CASE WHEN random() < 2 THEN t{p.index} END AS {ident(p.name)}" for p in plans)
        # sorted by the primary key (issue #5: range reads on the key); by row otherwise
        order = " ORDER BY " + ", ".join([ident(k) for k in self.plan.primary_key] + ["_row_number"])
        data_sql = (f"SELECT {typed}, CASE WHEN random() < 2 THEN {sql_str(out.source_key)} END AS _source, "
                    "CASE WHEN random() < 2 THEN rid + 2 END AS _row_number "
                    f"FROM typed WHERE rid NOT IN (SELECT rid FROM bad){order}")
        stored = self._copy(data_sql, out.data_path, out.data_schema)
        q_sql = (f"SELECT {', '.join(f'r.{p.raw} AS {ident(p.name)}' for p in plans)}, {sql_str(out.source_key)} AS _source, "
                 f"r.rowid + 2 AS _row_number, e.errs AS _codes FROM raw r JOIN errs e ON e.rid = r.rowid "
                 "WHERE r.rowid IN (SELECT rid FROM bad) ORDER BY r.rowid")
        quarantined = self._copy_quarantine(q_sql, out)
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

    def _copy_quarantine(self, sql: str, out: Output) -> int:
        con = self.con
        assert con is not None
        out.quarantine_path.parent.mkdir(parents=True, exist_ok=True)
        reader = con.sql(sql).to_arrow_reader(BATCH_ROWS)
        n = 0
        with pq.ParquetWriter(out.quarantine_path, out.quarantine_schema, compression="zstd") as w:
            for batch in reader:
                cols = batch.to_pydict()
                errors_json = []
                for codes in cols.pop("_codes"):
                    errors_json.append(json.dumps([self._describe(c) for c in codes], ensure_ascii=False))
                cols["_errors"] = errors_json
                w.write_table(pa.Table.from_pydict(cols, schema=out.quarantine_schema))
                n += batch.num_rows
        if n == 0:
            out.quarantine_path.unlink(missing_ok=True)
        return n

    def _describe(self, code: str) -> dict[str, Any]:
        head, _, rest = code.partition(":")
        plans = self.plan.fields
        if head == "pk":
            return {"type": "primary-key", "field": None, "message": "duplicate or empty primary key"}
        if head == "unique":
            idx = int(rest.partition(":")[0])
            return {"type": "unique-error", "field": plans[idx].name, "message": "duplicate value"}
        if rest == "blank-row":
            return {"type": "blank-row", "field": None, "message": "blank row"}
        p = plans[int(head)]
        if rest == "cast":
            return {"type": "partage-cast-error", "field": p.name,
                    "message": f"field '{p.name}': the value does not fit the stored type; kept in quarantine rather than stored wrong"}
        if rest == "type":
            return {"type": "type-error", "field": p.name, "message": p.type_note}
        return {"type": "constraint-error", "field": p.name, "message": p.notes.get(rest, rest)}

    # -- entry -----------------------------------------------------------------

    def run(self, out: Output | None = None) -> Outcome:
        started = time.monotonic()
        labels, rows = self._load()
        self._oracles()
        self._collect_errors()
        report = self._report(labels, rows, started)
        if out is None or report.file_errors or (report.error_count and out.policy == "reject"):
            return Outcome(report)
        stored, quarantined = self._write(out)
        return Outcome(report, stored, quarantined)
