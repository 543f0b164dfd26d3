"""Consolidation: several sources, one table, and what to do when they claim the same key.

A dataset with several sources (charging points of several operators, the
places of several associations) is one view. Each source is validated and
versioned on its own, so a primary-key duplicate *inside* a file is a
validation error of that file; a duplicate *across* files is not any single
producer's fault and cannot be seen until the parts are put together. It is
found here, when a version is assembled, and settled by the entry's
``duplicates:`` rule:

* ``first-source`` (default): the source listed first in the catalog wins — the
  data team orders sources by authority (the territory's own export, then the
  operators);
* ``latest``: the row of the source whose data changed most recently wins
  (ties: catalog order) — for feeds where the newest declaration is the truth;
* ``keep``: every row stays; duplicates are only reported.

Parts stay immutable and shared between versions: the losing rows are listed
in the version's ``duplicates.parquet`` and the views leave them out with an
anti-join, so nothing is rewritten and the rows stay inspectable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import duckdb

from .store.warehouse import DUPLICATES_FILE, Part, ident, literal

Rule = Literal["first-source", "latest", "keep"]
RULES: tuple[Rule, ...] = ("first-source", "latest", "keep")


@dataclass(frozen=True)
class Duplicates:
    rule: Rule
    keys: int = 0  # primary-key values claimed by more than one source
    rows: int = 0  # rows of the losing sources
    by_source: dict[str, int] = field(default_factory=dict)  # losing rows per source
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def dropped(self) -> int:
        return 0 if self.rule == "keep" else self.rows

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.rule, "keys": self.keys, "rows": self.rows, "dropped": self.dropped,
                               "by_source": self.by_source, "examples": self.examples}
        if self.rows:
            out["file"] = DUPLICATES_FILE
        return out

    def describe(self) -> str:
        if not self.rows:
            return ""
        ranked = sorted(self.by_source.items(), key=lambda kv: (-kv[1], kv[0]))
        losers = ", ".join(f"{k}: {v}" for k, v in ranked[:5]) + (f", … {len(ranked) - 5} more source(s)" if len(ranked) > 5 else "")
        if self.rule == "keep":
            return f"{self.keys} primary-key value(s) in several sources, all rows kept (rule 'keep'; {losers})"
        return (f"{self.keys} primary-key value(s) in several sources: {self.rows} row(s) left out by rule "
                f"'{self.rule}' ({losers}); see duplicates.\"<id>\"")


def primary_key(schema: dict[str, Any]) -> list[str]:
    pk = schema.get("primaryKey") or []
    return [pk] if isinstance(pk, str) else list(pk)


def find_duplicates(version_dir: Path, parts: list[Part], pk: list[str], rule: Rule,
                    order: list[str]) -> Duplicates:
    """List the rows of non-winning sources for every key several sources share.

    ``order`` is the sources' catalog order. Writes ``duplicates.parquet`` in
    ``version_dir`` when there is any; reads only the key columns of the parts.
    """
    if not pk or len(parts) < 2:
        return Duplicates(rule)
    rank = {key: i for i, key in enumerate(order)}
    if rule == "latest":  # newest part first; ties by catalog order
        by_age = sorted(parts, key=lambda p: (_neg(p.since_version), rank.get(p.source_key, len(rank))))
        rank = {p.source_key: i for i, p in enumerate(by_age)}
    keys = ", ".join(ident(c) for c in pk)
    selects = [
        f"SELECT {keys}, _source, _row_number, {rank.get(p.source_key, len(rank) + i)} AS _rank "
        f"FROM read_parquet({literal(str(version_dir / p.data))})"
        for i, p in enumerate(parts)
    ]
    not_null = " AND ".join(f"{ident(c)} IS NOT NULL" for c in pk)
    con = duckdb.connect()
    try:
        con.execute(f"""
            CREATE TEMP TABLE shared AS
            WITH u AS ({' UNION ALL '.join(selects)}),
            ranked AS (
                SELECT *, min(_rank) OVER k AS _win, count(DISTINCT _source) OVER k AS _n
                FROM u WHERE {not_null} WINDOW k AS (PARTITION BY {keys})
            ),
            contested AS (SELECT * FROM ranked WHERE _n > 1),
            winners AS (
                SELECT {keys}, arg_min(_source, _row_number) AS _kept_source, min(_row_number) AS _kept_row_number
                FROM contested WHERE _rank = _win GROUP BY {keys}
            )
            SELECT c.* EXCLUDE (_win, _n, _rank), w._kept_source, w._kept_row_number
            FROM contested c JOIN winners w USING ({keys})
            WHERE c._rank > c._win
        """)
        rows = con.execute("SELECT count(*) FROM shared").fetchall()[0][0]
        if not rows:
            return Duplicates(rule)
        n_keys = con.execute(f"SELECT count(*) FROM (SELECT DISTINCT {keys} FROM shared)").fetchall()[0][0]
        by_source = dict(con.execute("SELECT _source, count(*) FROM shared GROUP BY _source").fetchall())
        cur = con.execute(f"SELECT * FROM shared ORDER BY {keys}, _source, _row_number LIMIT 5")
        names = [d[0] for d in cur.description]
        examples = [{k: (v if isinstance(v, (int, float, str, bool)) or v is None else str(v))
                     for k, v in zip(names, r)} for r in cur.fetchall()]
        target = version_dir / DUPLICATES_FILE
        con.execute(f"COPY (SELECT * FROM shared ORDER BY {keys}, _source, _row_number) TO "
                    f"{literal(str(target))} (FORMAT parquet, COMPRESSION zstd)")
        return Duplicates(rule, n_keys, rows, {str(k): int(v) for k, v in by_source.items()}, examples)
    finally:
        con.close()


def _neg(version: str) -> tuple[int, ...]:
    """Sort key putting the newest version id first (ids sort chronologically as text)."""
    return tuple(-ord(c) for c in version)
