"""Turning query-string parameters into one parameterised DuckDB query.

The vocabulary is data.gouv.fr's api-tabular (``col__exact=``, ``col__in=a,b``,
``col__sort=desc``…), so a data service written for it needs few changes.
Column names must be columns of the version being read and are quoted with
:func:`partage.store.warehouse.ident`; every value is a bound parameter, converted
here to the column's type so a wrong value is a clear 400, not a DuckDB error.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from ..errors import ApiQueryError
from ..store.warehouse import ident
from .catalog_cache import Column

OPERATORS: dict[str, str] = {
    "exact": "equal to the value",
    "differs": "different from the value (rows where the column is empty included)",
    "contains": "contains the text, ignoring case",
    "in": "one of the comma-separated values",
    "less": "lower than or equal to the value",
    "greater": "greater than or equal to the value",
    "strictly_less": "lower than the value",
    "strictly_greater": "greater than the value",
    "isnull": "empty (no value needed)",
    "isnotnull": "not empty (no value needed)",
}
SORT = "sort"
RESERVED = ("page", "page_size", "columns", "sort", "version", "as_of")
ORDERED = ("BIGINT", "INTEGER", "DOUBLE", "DATE", "TIME", "VARCHAR", "TIMESTAMP", "HUGEINT", "FLOAT", "SMALLINT")
MAX_IN_VALUES = 500
PARIS = ZoneInfo("Europe/Paris")


@dataclass
class Page:
    page: int = 1
    page_size: int = 20


@dataclass(frozen=True)
class Source:
    """Where a version's rows are read from, and the shortcuts that place offers.

    ``dictionaries`` maps a text column to (dictionary table, code column): the in-memory copy of a
    version keeps, for each text column with few distinct values, a table of those values and a
    hidden integer column of codes. ``__contains`` then matches the pattern against the distinct
    values only and keeps the rows whose code is among the matches: the same rows as ``ILIKE`` on
    every row, for a fraction of the work. The engine looks the matching codes up first (see
    :meth:`partage.api.engine.Engine.matches`); when there are few, they are a bound list the scan
    checks each row against (a count over 1M rows: ~2.5 ms instead of ~20 ms), otherwise a
    semi-join with the dictionary does the same (~4 ms).
    """

    relation: str
    dictionaries: dict[str, tuple[str, str]] = field(default_factory=dict)


Matches = Mapping[int, list[int]]  # index of a __contains condition in RowQuery.where -> matching codes


@dataclass(frozen=True)
class Cond:
    """One condition of the WHERE clause, its own bound values, and (``contains``) the text column
    whose ``__contains`` it is: a source with a dictionary for that column rewrites it."""

    sql: str
    params: tuple[Any, ...] = ()
    contains: str | None = None
    lookup: str | None = None  # the column of an __exact / __in: an index on it finds every match at once

    def render(self, source: Source, codes: list[int] | None = None) -> tuple[str, tuple[Any, ...]]:
        if self.contains is not None and self.contains in source.dictionaries:
            table, code = source.dictionaries[self.contains]
            if codes is not None:
                return (f"list_contains(?::UINTEGER[], {ident(code)})", (codes,)) if codes else ("false", ())
            return f"{ident(code)} IN (SELECT code FROM {table} WHERE value ILIKE ? ESCAPE '\\')", self.params
        return self.sql, self.params


@dataclass
class RowQuery:
    columns: list[Column]  # selected, in order
    where: list[Cond] = field(default_factory=list)
    order: list[str] = field(default_factory=list)

    @property
    def params(self) -> list[Any]:
        return [p for c in self.where for p in c.params]

    def filter_key(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """The filters, whatever the source they will run on (the key of a cached total)."""
        return tuple((c.sql, tuple(map(str, c.params))) for c in self.where)

    def _where(self, source: Source, matches: Matches | None) -> tuple[str, list[Any]]:
        if not self.where:
            return "", []
        parts = [c.render(source, (matches or {}).get(i)) for i, c in enumerate(self.where)]
        return " WHERE " + " AND ".join(sql for sql, _ in parts), [p for _, params in parts for p in params]

    def sql(self, source: Source | str, *, limit: int | None = None, offset: int = 0,
            select: Iterable[str] | None = None, matches: Matches | None = None) -> tuple[str, list[Any]]:
        src = source if isinstance(source, Source) else Source(source)
        cols = ", ".join(select) if select is not None else ", ".join(ident(c.name) for c in self.columns)
        where, params = self._where(src, matches)
        sql = f"SELECT {cols} FROM {src.relation}" + where
        if self.order:
            sql += " ORDER BY " + ", ".join(self.order)
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
            if offset:  # only when needed: with an OFFSET, DuckDB does not look a key up in its index
                sql += " OFFSET ?"  # (a point lookup takes 1.1 ms instead of 0.45 ms)
                params.append(offset)
        return sql, params

    def count_sql(self, source: Source | str, matches: Matches | None = None) -> tuple[str, list[Any]]:
        src = source if isinstance(source, Source) else Source(source)
        where, params = self._where(src, matches)
        return f"SELECT count(*) FROM {src.relation}" + where, params


def _bad(message: str, columns: Iterable[Column]) -> ApiQueryError:
    names = ", ".join(c.name for c in columns)
    ops = ", ".join(f"__{o}" for o in OPERATORS)
    return ApiQueryError(
        f"{message}. Filters are COLUMN__OPERATOR=VALUE with an operator among {ops}; sort with "
        f"COLUMN__sort=asc|desc or sort=COLUMN,-COLUMN; other parameters: {', '.join(RESERVED)}. Columns: {names}"
    )


def convert(column: Column, raw: str) -> Any:
    """The parameter value as the column's type; a clear error naming the column otherwise."""
    t = column.sql_type.upper()
    try:
        if t in ("BIGINT", "INTEGER", "HUGEINT", "SMALLINT", "TINYINT", "UBIGINT", "UINTEGER"):
            return int(raw.strip())
        if t in ("DOUBLE", "FLOAT", "REAL") or t.startswith("DECIMAL"):
            number = float(raw.strip().replace(",", ".") if raw.count(",") == 1 and "." not in raw else raw.strip())
            if number != number:  # NaN matches nothing and sorts oddly: refuse it
                raise ValueError
            return number
        if t == "BOOLEAN":
            low = raw.strip().lower()
            if low in ("true", "1", "oui", "vrai", "yes"):
                return True
            if low in ("false", "0", "non", "faux", "no"):
                return False
            raise ValueError
        if t == "DATE":
            return dt.date.fromisoformat(raw.strip())
        if t.startswith("TIMESTAMP"):
            value = dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
            return value if value.tzinfo else value.replace(tzinfo=PARIS)
        if t.startswith("TIME"):
            return dt.time.fromisoformat(raw.strip())
    except ValueError:
        kind = (column.field or {}).get("type") or t.lower()
        raise ApiQueryError(f"{raw!r} is not a valid {kind} value for column {column.name!r}") from None
    return raw


def _is_text(column: Column) -> bool:
    return column.sql_type.upper() == "VARCHAR"


def _is_scalar(column: Column) -> bool:
    t = column.sql_type.upper()
    return not (t.startswith("STRUCT") or t.endswith("[]") or t.startswith("MAP") or t.startswith("UNION"))


def _lhs(column: Column) -> str:
    """Structured columns (geopoints) are compared as text."""
    q = ident(column.name)
    return q if _is_scalar(column) else f"CAST({q} AS VARCHAR)"


def build(params: list[tuple[str, str]], columns: tuple[Column, ...], *, max_page_size: int,
          default_page_size: int = 20) -> tuple[RowQuery, Page, dict[str, str]]:
    """Parse the query string. Returns the query, the page, and the reserved parameters (version, as_of…)."""
    by_name = {c.name: c for c in columns}
    reserved: dict[str, str] = {}
    query = RowQuery(list(columns))
    sorts: list[str] = []
    for key, raw in params:
        if key in RESERVED:
            if key in reserved:
                raise _bad(f"parameter {key!r} is given twice", columns)
            reserved[key] = raw
            continue
        name, sep, op = key.rpartition("__")
        if not sep or name not in by_name:
            if key in by_name:
                raise _bad(f"parameter {key!r} has no operator (did you mean {key}__exact={raw}?)", columns)
            raise _bad(f"unknown parameter {key!r}" + (f" (no column {name!r})" if sep else ""), columns)
        col = by_name[name]
        q = ident(name)
        if op == SORT:
            direction = raw.strip().lower()
            if direction not in ("asc", "desc"):
                raise _bad(f"{key}={raw!r}: sort must be asc or desc", columns)
            sorts.append(f"{_lhs(col)} {direction.upper()} NULLS LAST")
        elif op not in OPERATORS:
            raise _bad(f"unknown operator {op!r} in {key!r}", columns)
        elif op == "isnull":
            query.where.append(Cond(f"{q} IS NULL"))
        elif op == "isnotnull":
            query.where.append(Cond(f"{q} IS NOT NULL"))
        elif op == "contains":
            text = q if _is_text(col) else f"CAST({q} AS VARCHAR)"
            pattern = "%" + raw.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            query.where.append(Cond(f"{text} ILIKE ? ESCAPE '\\'", (pattern,), name if _is_text(col) else None))
        elif op == "in":
            values = raw.split(",")
            if len(values) > MAX_IN_VALUES:
                raise _bad(f"{key} lists {len(values)} values; at most {MAX_IN_VALUES}", columns)
            conv = [convert(col, v) if _is_scalar(col) else v for v in values]
            query.where.append(Cond(f"{_lhs(col)} IN ({', '.join('?' for _ in conv)})", tuple(conv), lookup=name))
        else:
            if op in ("less", "greater", "strictly_less", "strictly_greater") and not (
                    _is_scalar(col) and col.sql_type.upper().startswith(ORDERED)):
                raise _bad(f"operator {op!r} does not apply to column {name!r} of type {col.sql_type}", columns)
            sql_op = {"exact": "=", "differs": "IS DISTINCT FROM", "less": "<=", "greater": ">=",
                      "strictly_less": "<", "strictly_greater": ">"}[op]
            query.where.append(Cond(f"{_lhs(col)} {sql_op} ?", (convert(col, raw) if _is_scalar(col) else raw,),
                                    lookup=name if op == "exact" else None))
    if "sort" in reserved:
        for item in filter(None, (s.strip() for s in reserved["sort"].split(","))):
            desc = item.startswith("-")
            name = item.lstrip("-+")
            if name not in by_name:
                raise _bad(f"sort={reserved['sort']!r}: no column {name!r}", columns)
            sorts.append(f"{_lhs(by_name[name])} {'DESC' if desc else 'ASC'} NULLS LAST")
    if sorts:
        # A total order, so pages neither repeat nor skip rows: (source, row number) is unique in a version.
        query.order = sorts + [ident(n) for n in ("_source", "_row_number") if n in by_name]
    if "columns" in reserved:
        wanted = [c.strip() for c in reserved["columns"].split(",") if c.strip()]
        missing = [c for c in wanted if c not in by_name]
        if missing or not wanted:
            raise _bad(f"columns={reserved['columns']!r}: " + (f"no column {', '.join(map(repr, missing))}"
                                                              if missing else "name at least one column"), columns)
        query.columns = [by_name[c] for c in dict.fromkeys(wanted)]
    page = Page(page_size=default_page_size)
    for key in ("page", "page_size"):
        if key in reserved:
            try:
                value = int(reserved[key])
            except ValueError:
                value = 0
            if value < 1:
                raise _bad(f"{key}={reserved[key]!r} must be a whole number ≥ 1", columns)
            setattr(page, key, value)
    if page.page_size > max_page_size:
        raise _bad(f"page_size={page.page_size} is over the maximum of {max_page_size}", columns)
    if page.page > 10_000_000:
        raise _bad(f"page={page.page} is too far; add filters instead", columns)
    return query, page, reserved
