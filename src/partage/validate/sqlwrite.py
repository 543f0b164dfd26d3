"""Writing what a SQL validation run keeps: the typed rows as Parquet sorted by the primary key, and the
bad rows as received, with their errors, in the quarantine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..store.warehouse import ident
from .compiler import Unsupported, code_kind, sql_str
from .sqlreport import ReportRun
from .sqlstate import Output


class WriteRun(ReportRun):
    """The writing stage: DuckDB writes both Parquet files itself, in parallel."""

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
        so each distinct one is described once in Python, and each row's list is spelled out in the
        COPY's projection from its codes (short strings, in ``errs``) and a MAP of those descriptions
        (a CASE over them cost a third more).
        Joining the rows to lists of descriptions aggregated beforehand held them all in memory: a 300k-row
        file whose every row was bad (a shifted column) ran out of it."""
        con = self.con
        assert con is not None
        plans = self.plan.fields
        # the description key: 'pk:17' -> 'pk', 'unique:3:17' -> 'unique:3', the others as they are
        kind = ("CASE WHEN starts_with(x, 'pk:') THEN 'pk' WHEN starts_with(x, 'unique:') "
                "THEN 'unique:' || split_part(x, ':', 2) ELSE x END")
        bad = "SELECT rid, errs FROM errs WHERE rid IN (SELECT rid FROM bad)"
        n, keys = con.execute(f"SELECT count(DISTINCT rid), list(DISTINCT {kind}) FILTER (WHERE x IS NOT NULL) FROM "
                              f"(SELECT rid, unnest(errs) AS x FROM ({bad}))").fetchall()[0]
        if not n:
            return 0
        described = "(MAP {" + ", ".join(f"{sql_str(k)}: {sql_str(json.dumps(self._describe(k), ensure_ascii=False))}"
                                         for k in sorted(keys or [])) + "})[" + kind + "]"
        text = ", ".join(f"CASE WHEN random() < 2 THEN v{p.index} END AS {ident(p.name)}" for p in plans)
        # sorted while each row holds its codes, not yet their descriptions (a kilobyte a row when every
        # row is bad): the sort then fits the memory limit, and the lists are spelled out as rows are written
        cells = ", ".join(f"r.v{p.index}" for p in plans)
        sql = (f"SELECT {text}, CASE WHEN random() < 2 THEN {sql_str(out.source_key)} END AS _source, "
               "CASE WHEN random() < 2 THEN rid + 2 END AS _row_number, "
               f"CASE WHEN random() < 2 THEN '[' || array_to_string(list_transform(errs, lambda x: "
               f"{described}), ', ') || ']' END AS _errors "
               f"FROM (SELECT {cells}, r.rid, e.errs FROM cells r JOIN ({bad}) e ON e.rid = r.rid ORDER BY r.rid)")
        self._copy(sql, out.quarantine_path, out.quarantine_schema)
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
