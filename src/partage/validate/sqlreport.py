"""The report of a SQL validation run, in frictionless' shape: its counts, and its first errors built with
frictionless' own error classes so that their notes and messages are frictionless' words."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from .compiler import code_kind
from .report import STORED_ERRORS_LIMIT, Report
from .sqlchecks import CheckRun


class ReportRun(CheckRun):
    """The report stage: reads ``errs`` and ``cells``."""

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
