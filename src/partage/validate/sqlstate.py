"""The state of one SQL validation run, and the helpers every stage of it shares.

A run goes through stages, each in its own module and each a class built on the one before:
:mod:`.sqlscan` reads the file, :mod:`.sqlchecks` judges what SQL did not and runs the whole-file
checks, :mod:`.sqlreport` writes frictionless' report, :mod:`.sqlwrite` the typed Parquet and the
quarantine, and :mod:`.sqlengine` runs them in order. They share one DuckDB connection and the
tables and views each stage leaves for the next (``cells``, ``typed``, ``errs``...), so the stages
are methods on one object rather than functions passing a dozen values along.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow as pa

from ..dialect import Dialect
from .compiler import FieldPlan, ForeignKey, SchemaPlan, Unsupported, compile_schema, sql_in, sql_str
from .report import Report

GROUP_FIELDS = 24  # fields per scan group: wider files are scanned in groups, joined by row (see sqlscan)


@dataclass(frozen=True)
class Reference:
    """Another dataset a foreign key points to: a SQL relation of its stored rows, and its columns' SQL types.

    ``attach`` lets the validation's own DuckDB connection read where the rows are (an object store)."""

    relation: str
    columns: dict[str, str]
    attach: Callable[[duckdb.DuckDBPyConnection], None] | None = field(default=None, compare=False)


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


ScanChoice = Literal["auto", "two-step"]
"""How a narrow file is scanned: "auto" takes the one-pass scan when DuckDB's plan keeps the file's order."""


class RunState:
    """One validation run: a DuckDB database in a temp dir, dropped at the end."""

    def __init__(self, path: Path, descriptor: dict[str, Any], dialect: Dialect, *, timezone: str,
                 tmp_root: Path | None = None, references: Mapping[str, Reference] | None = None,
                 name: str | None = None, origin: Path | None = None, blank_rows: tuple[int, ...] | None = None,
                 scan: ScanChoice = "auto"):
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
        self.scan_choice: ScanChoice = scan

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
