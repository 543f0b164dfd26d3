"""The checks after the scan: frictionless' verdicts on the values SQL left to it, then the errors
of every row, unique and primary keys and foreign keys included, in frictionless' order (table ``errs``)."""

from __future__ import annotations

import logging
import re
from typing import Any

import pyarrow as pa

from ..store.warehouse import ident
from .compiler import (
    CONSTRAINT_ORDER,
    JSON_KINDS,
    FieldPlan,
    ForeignKey,
    Unsupported,
    code_kind,
    exact_number_key,
    json_key,
    oracle,
)
from .sqlscan import ScanRun
from .sqlstate import GROUP_FIELDS

log = logging.getLogger("partage.validate")

_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE", "DECIMAL")


def _comparable(a: str, b: str) -> bool:
    """Would Python's ``==`` on frictionless' values of these SQL types ever be true? (1 == Decimal('1.0'), 1 != '1')"""
    def family(t: str) -> str:
        t = t.upper()
        return "number" if t.startswith(_NUMERIC) else t
    return family(a) == family(b)


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


class CheckRun(ScanRun):
    """The checking stage: tables ``o<i>`` (frictionless' verdicts), view ``typed``, tables ``long`` and ``errs``."""

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
                # the WHERE, which the aggregate's FILTERs imply, lets the Parquet reader read the texts of the
                # few flagged rows only: 0.09 s instead of 0.38 s for 1M IRVE rows
                flagged = " OR ".join(f"x{p.index}" for p in part)
                found += con.execute(f"SELECT {lists} FROM {self._holder(part[0])} WHERE {flagged}").fetchall()[0]
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
            linked = [(by_name[a], by_name[b]) for a, b in zip(fk.fields, fk.ref_fields)]
            mine = [self._fk_key(a, b) for a, b in linked]
            theirs, source = [self._fk_key(b, a) for a, b in linked], "typed"
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

    def _fk_key(self, p: FieldPlan, other: FieldPlan) -> str:
        """A self-reference's key for ``p``, compared with ``other``'s: a number against a number as ``_key``
        (Decimals: 999.99999999999999999 is not 1000, though their double is one), against an integer or a
        year the typed value (doubles compare with integers as Python does); times, datetimes and JSON values
        as ``_key``."""
        if p.type == "number" and other.type == "number":
            return self._key(p)
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
