"""Compile a Table Schema into DuckDB SQL, with frictionless-py as the oracle for odd values.

Why two deciders? frictionless-py is the reference, and its cell semantics are
Python's: ``int(" 12 ")`` is 12, ``strptime("2020-1-5", "%Y-%m-%d")`` is a
date, ``Decimal("1e3")`` is a number, ``re.match("^a$", "a\\n")`` matches. A
faithful SQL translation of all of it would be long and fragile. So each field
gets a *canonical form* (``-?[0-9]{1,18}`` for an integer, ``YYYY-MM-DD`` for a
date, printable ASCII for a patterned string…) on which SQL and frictionless
provably agree, and SQL decides those values — nearly all of a real file. The
few *distinct* values outside it are handed to frictionless' own cell reader
(``Field.read_cell``: type and every constraint), and its verdict is joined
back. Every cell is thus judged exactly as frictionless judges it, at SQL speed.

What the compiler cannot do raises :class:`Unsupported` naming the feature; the
engine then validates the file with frictionless-py and logs that name.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

from ..store.warehouse import ident

PRINTABLE_ASCII = r"^[\x20-\x7E]*$"
# strptime directives whose fixed-width form SQL reads the same way as Python
_STRPTIME = {"%Y": "[1-9][0-9]{3}", "%m": "(0[1-9]|1[0-2])", "%d": "(0[1-9]|[12][0-9]|3[01])",
             "%H": "([01][0-9]|2[0-3])", "%M": "[0-5][0-9]", "%S": "[0-5][0-9]"}
# The canonical forms of string formats: plain ASCII values frictionless' own validators (validators
# 0.36's email and uuid, rfc3986's reference with a scheme, base64.b64decode) accept, each a subset of
# what they accept. A contact or website column has as many distinct values as rows: judged one by one
# in Python (11-20 µs each), 1M of them cost 10-20 s. The unusual rest still goes to the oracle.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HEX = "[0-9A-Fa-f]"
STRING_FORMATS = {
    # local part: a dot-atom of at most 64 characters; domain: validators.domain's labels, at most 253
    "email": ("regexp_full_match(__V__, {}) AND instr(__V__, '@') <= 65 AND length(__V__) - instr(__V__, '@') <= 253",
              rf"{_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+[A-Za-z0-9][A-Za-z0-9-]{{0,61}}[A-Za-z]"),
    # rfc3986 only asks for a scheme: printable ASCII after it
    "uri": ("regexp_full_match(__V__, {})", r"[A-Za-z][A-Za-z0-9+.-]*:[!-~]*"),
    "uuid": ("regexp_full_match(__V__, {})", f"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}"),
    "binary": ("regexp_full_match(__V__, {})", r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?"),
}
# order of frictionless' checks inside a cell (Field.supported_constraints order)
CONSTRAINT_ORDER = ("required", "minLength", "maxLength", "minimum", "maximum",
                    "exclusiveMinimum", "exclusiveMaximum", "pattern", "enum")


class Unsupported(Exception):
    """A schema or file feature the SQL engine leaves to frictionless-py; ``feature`` names it.

    ``reread``: DuckDB's reader would not read the cells Python's csv reads; a copy of the file as
    frictionless reads it (validate/reread.py) can still be judged in SQL."""

    def __init__(self, feature: str, *, reread: bool = False):
        self.feature = feature
        self.reread = reread
        super().__init__(feature)


def sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def sql_in(expr: str, literals: list[str]) -> str:
    """``expr IN (literals)``; NULL for no literal (as frictionless, nothing is then in the list)."""
    if not literals:
        return "NULL"
    return f"{expr} IN ({', '.join(literals)})"


def re2_pattern(pattern: str) -> str:
    """A Python ``re`` pattern written so RE2 (DuckDB's regexp_*) reads it as Python does.

    Two spellings both engines accept read differently there, silently: ``a{,3}`` is ``a{0,3}`` to
    Python and the literal text "a{,3}" to RE2; ``[[:alpha:]]`` is a set of the characters "[:alph"
    followed by "]" to Python, a POSIX class to RE2. Everything else either means the same on the ASCII
    text SQL judges, or fails to compile in RE2 (lookarounds, ``\\Z``...), which sends the field's
    values to frictionless (sqlscan._pattern_works)."""
    out: list[str] = []
    i, n, in_class, first = 0, len(pattern), False, 0
    while i < n:
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            if c == "]" and i > first:
                in_class = False
            out.append("\\[" if c == "[" else c)
            i += 1
            continue
        if c == "[":
            in_class = True
            first = i + 1 + (pattern[i + 1:i + 2] == "^")
            out.append(pattern[i:first])
            i = first
            continue
        bound = re.match(r"\{,([0-9]*)\}", pattern[i:]) if c == "{" else None
        if bound:
            out.append("{0," + bound.group(1) + "}")
            i += bound.end()
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _num_literal(value: Any) -> str:
    return repr(float(value))


@dataclass
class FieldPlan:
    """Everything the engine needs to judge and type one column."""

    index: int  # 0-based position in the schema (frictionless' fieldNumber - 1)
    name: str
    type: str
    descriptor: dict[str, Any]
    missing: list[str]
    fast: str  # SQL predicate on v: SQL decides this value exactly
    cast: str  # SQL typed value of a fast v (NULL when its type is wrong)
    # SQL predicate on a v that is not fast: frictionless surely calls it a type error (see _surely_invalid)
    invalid: str = "false"
    checks: list[tuple[str, str]] = field(default_factory=list)  # (constraint, SQL "t violates it" for fast values)
    notes: dict[str, str] = field(default_factory=dict)  # constraint -> frictionless note
    type_note: str = ""
    # notes frictionless gave some values that differ from the field's usual ones (an array item's
    # 'array item type is "integer/default"'): the error code '<kind>.<k>' points at the k-th
    other_notes: list[str] = field(default_factory=list)
    target: str = "VARCHAR"  # SQL type of the typed column
    from_canon: str = "canon"  # SQL turning the oracle's canonical text into the typed value
    unique: bool = False

    @property
    def raw(self) -> str:
        return ident(f"c{self.index}")

    @property
    def required(self) -> bool:
        return bool(self.descriptor.get("constraints", {}).get("required"))

    def note(self, code: str) -> str:
        """frictionless' note for an error code of this field: 'type', a constraint, or '<kind>.<k>'."""
        kind, _, k = code.partition(".")
        if k:
            return self.other_notes[int(k)]
        return self.type_note if kind == "type" else self.notes.get(kind, kind)

    def code(self, kind: str, note: str | None) -> str:
        """The error code for frictionless' verdict on one value: its kind, plus where its note is kept
        when the note is not the field's usual one."""
        if note is None or note == self.note(kind):
            return kind
        if note not in self.other_notes:
            self.other_notes.append(note)
        return f"{kind}.{self.other_notes.index(note)}"


def code_kind(code: str) -> str:
    """'type.2' -> 'type', 'minimum' -> 'minimum' (constraint names hold no dot)."""
    return code.partition(".")[0]


def _strptime_parts(fmt: str) -> list[str]:
    """A strptime format's directives ('%Y', '%%'; a lone '%' at the end) and literal characters, in order."""
    parts, i = [], 0
    while i < len(fmt):
        step = 2 if fmt[i] == "%" else 1
        parts.append(fmt[i:i + step])
        i += step
    return parts


def _strptime_regex(fmt: str) -> str | None:
    """A regex for the fixed-width values of a strptime format, or None if it uses other directives."""
    out = []
    for part in _strptime_parts(fmt):
        if part.startswith("%"):
            if part not in _STRPTIME:
                return None
            out.append(_STRPTIME[part])
        elif part.isspace():
            return None  # strptime lets whitespace match any run of whitespace
        else:
            out.append(re.escape(part))
    return "^" + "".join(out) + "$"


# what Python's str.strip() and int() / Decimal() skip around a value, in ASCII
_WS = r"\t\n\r\x0b\x0c\x1c-\x1f "
_INT_TEXT = f"[{_WS}]*[+-]?[0-9](_?[0-9])*[{_WS}]*"  # every ASCII text Python's int() reads
_JSON_ITERABLE = r'^[\t\n\r ]*[\["{]'  # a JSON array, string or object, after JSON's whitespace
_DIGIT_DIRECTIVES = ("%d", "%m", "%Y", "%y", "%H", "%M", "%S")


def _foreign(allowed: str) -> str:
    """RE2: an ASCII character outside ``allowed`` (a class body), anywhere in the text."""
    return "[^" + allowed + r"\x{80}-\x{10FFFF}]"


def _surely_invalid(kind: str, fmt: str, desc: dict[str, Any], v: str) -> str:
    """SQL: frictionless' reader surely refuses this text, a type error, whatever the constraints.

    A column whose values are all of the wrong kind (a header shifted by one column, dates in another
    format, the wrong file for the schema) has as many distinct type errors as values, and each went to
    frictionless (11-20 µs a value: a shifted 1M-row file cost minutes). These are readings of
    frictionless' readers that hold whatever the script: Python's int() reads digits, signs, underscores
    and spaces, Decimal() also a dot, an exponent and the inf/nan words, strptime's digit directives
    digits and the format's literals, so an ASCII character outside those fails them (other scripts'
    digits and spaces are theirs too: only ASCII is judged). On ASCII text, int() reads exactly
    ``_INT_TEXT``, a year is 4 characters, a default datetime needs a ':' at index 16 and 19 characters
    (frictionless' own guard), a geopoint exactly one comma. The rest still goes to the oracle. The
    cell-level property test checks each against ``Field.read_cell``."""
    ascii_ = f"strlen({v}) = length({v})"
    bare = desc.get("bareNumber", True) is not False
    int_chars = "0-9+_" + _WS + r"\-"
    if kind == "integer" and bare:
        return (f"(regexp_matches({v}, {sql_str(_foreign(int_chars))}) OR "
                f"({ascii_} AND NOT regexp_full_match({v}, {sql_str(_INT_TEXT)})))")
    if kind == "year":
        return (f"(regexp_matches({v}, {sql_str(_foreign(int_chars))}) OR "
                f"({ascii_} AND (length({v}) <> 4 OR NOT regexp_full_match({v}, {sql_str(_INT_TEXT)}))))")
    decimal_chars = "0-9+.eE_iInNfFtTyYaAsS" + _WS + r"\-"
    if kind == "number" and bare:
        chars = [c for c in (desc.get("groupChar") or "", desc.get("decimalChar") or "") if c]
        if any(len(c) > 1 for c in chars):
            return "false"
        return f"regexp_matches({v}, {sql_str(_foreign(decimal_chars + ''.join(_char(c) for c in chars)))})"
    if kind in ("date", "datetime") and fmt != "any":
        if kind == "datetime" and fmt == "default":
            return f"({ascii_} AND (length({v}) < 19 OR substring({v}, 17, 1) <> ':'))"
        pyfmt = "%Y-%m-%d" if fmt == "default" else fmt
        allowed = ["0-9"]
        for part in _strptime_parts(pyfmt):
            if part == "%%":
                allowed.append(_char("%"))
            elif part.startswith("%") and part not in _DIGIT_DIRECTIVES:
                return "false"
            elif part == "%d":
                allowed.append(" ")  # _strptime's %d also reads " 5"
            elif part.startswith("%"):
                pass  # digits only
            elif part.isspace():
                allowed.append(_WS)  # strptime: whitespace in the format matches any run of it
            elif not part.isascii():
                return "false"
            else:  # strptime ignores case
                allowed += [_char(x) for x in sorted({part.lower(), part.upper()})]
        return f"regexp_matches({v}, {sql_str(_foreign(''.join(allowed)))})"
    if kind == "geopoint" and fmt == "default":  # lon, lat = cell.split(","), then Decimal() of each
        return (f"(strlen({v}) - strlen(replace({v}, ',', '')) <> 1 OR "
                f"regexp_matches({v}, {sql_str(_foreign(decimal_chars + ','))}))")
    if kind == "geopoint" and fmt == "array":  # lon, lat = json.loads(cell): a JSON number, true, null, garbage
        # (a JSON string of two characters, "12", or an object of two members unpacks: the oracle's)
        return f"({ascii_} AND NOT regexp_matches({v}, {sql_str(_JSON_ITERABLE)}))"
    return "false"


def _char(c: str) -> str:
    """One character, literally, in an RE2 pattern (a space, a no-break space, a dot...)."""
    return "\\x{%x}" % ord(c)


def _unwrapped(v: str, core: str) -> str:
    """SQL: ``v`` is a number in ``core``'s form, wrapped as bareNumber: false lets it be ("12 €", "env. 40").

    frictionless removes ``^[^-\\d]*`` and ``\\D*$`` (Python's re.sub), then reads what is left. On
    ASCII text RE2's [0-9] is Python's \\d, and what is left is then exactly ``core``'s match: the text
    before it holds no digit and no minus, the text after it no digit."""
    return f"strlen({v}) = length({v}) AND regexp_full_match({v}, {sql_str('[^-0-9]*' + core + '[^0-9]*')})"


def _duck_format(fmt: str) -> str:
    return fmt.replace("'", "''")


LONG_NUMBER = 40  # characters: longer numbers (up to 1e40 and beyond) go to the oracle, whatever the field


def compile_field(index: int, desc: dict[str, Any], schema_missing: list[str], timezone: str, *,
                  keyed: bool = False) -> FieldPlan:
    """``keyed``: the field is part of the primary key or of a foreign key (a unique one is known here).

    A key compares frictionless' Decimals, so a number there is decided in SQL only when its double
    tells it apart from every other (15 significant digits); elsewhere longer ones are too (below)."""
    from frictionless import Field

    kind = desc.get("type", "string") or "string"
    fmt = desc.get("format", "default") or "default"
    constraints = dict(desc.get("constraints") or {})
    missing = list(desc["missingValues"]) if "missingValues" in desc else list(schema_missing)
    plan = FieldPlan(index, desc["name"], kind, desc, missing, fast="false", cast="NULL")
    plan.type_note = f'type is "{kind}/{fmt}"'
    plan.unique = bool(constraints.get("unique"))
    keyed = keyed or plan.unique
    for name in CONSTRAINT_ORDER:
        if name in constraints:
            plan.notes[name] = f'constraint "{name}" is "{constraints[name]}"'
    fl = Field.from_descriptor({k: v for k, v in desc.items() if k != "constraints"} | {"type": kind})
    reader = fl.create_value_reader()
    v = "__V__"
    bare = desc.get("bareNumber", True)
    fast_ok = True  # becomes False when a constraint has no exact SQL form: the oracle then judges all values

    def bound_checks(typed: str, literal: Any) -> None:
        ops = {"minimum": "<", "maximum": ">", "exclusiveMinimum": "<=", "exclusiveMaximum": ">="}
        for name, op in ops.items():
            if name in constraints:
                value = reader(constraints[name])
                if value is None:
                    raise Unsupported(f"constraint '{name}' of field '{plan.name}' is not a {kind}")
                plan.checks.append((name, f"{typed} {op} {literal(value)}"))

    if kind in ("string", "any"):
        plan.target = "VARCHAR"
        if kind == "string" and fmt != "default":
            # frictionless' own validators decide the values outside the format's canonical form (distinct values)
            test, form = STRING_FORMATS.get(fmt, ("false", ""))
            plan.fast = "(" + test.replace("{}", sql_str(form)) + ")"
        else:
            plan.fast = "true"
        plan.cast = v
        if "pattern" in constraints:
            try:
                with warnings.catch_warnings():  # "Possible nested set": Python's own reading is the one kept
                    warnings.simplefilter("ignore", FutureWarning)
                    re.compile(constraints["pattern"])
            except re.error as e:
                raise Unsupported(f"pattern of field '{plan.name}' is not a valid regular expression ({e})") from None
            # RE2 and Python's re agree on ASCII text; they differ on \s for \x0b and \x1c-\x1f only
            pattern = constraints["pattern"]
            if re.search(r"\\[sS]|\[:space:\]", pattern):
                plan.fast = f"({plan.fast} AND regexp_full_match({v}, {sql_str(PRINTABLE_ASCII)}))"
            else:
                plan.fast = f"({plan.fast} AND strlen({v}) = length({v}))"
                if "$" in pattern:  # Python's $ also matches before a last line feed, RE2's only at the end
                    plan.fast = f"({plan.fast} AND NOT contains({v}, chr(10)))"
            if "\\B" in pattern:  # Python's \B never matches an empty text, RE2's does
                plan.fast = f"({plan.fast} AND {v} <> '')"
            plan.checks.append(("pattern", f"NOT regexp_full_match({v}, {sql_str(re2_pattern(pattern))})"))
        for name, op in (("minLength", "<"), ("maxLength", ">")):
            if name in constraints:
                plan.checks.append((name, f"length({v}) {op} {int(constraints[name])}"))
        if "enum" in constraints:
            values = [x for x in constraints["enum"] if isinstance(x, str)]
            plan.checks.append(("enum", f"NOT {sql_in(v, [sql_str(x) for x in values])}"
                                if values else "true"))
        if kind == "any":
            plan.fast = "true"
    elif kind == "integer":
        plan.target = "BIGINT"
        if bare:
            plan.fast = f"regexp_full_match({v}, '-?[0-9]{{1,18}}')"
            plan.cast = f"CAST({v} AS BIGINT)"
        else:  # frictionless strips what surrounds the number ("12 €", "env. 40"): see _unwrapped
            plan.fast = f"({_unwrapped(v, '-?[0-9]{1,18}')})"
            plan.cast = f"CAST(regexp_extract({v}, '-?[0-9]+') AS BIGINT)"
        plan.from_canon = "TRY_CAST(canon AS BIGINT)"
        bound_checks("__T__", lambda x: str(int(x)))
        if "enum" in constraints:
            values = [reader(x) for x in constraints["enum"]]
            plan.checks.append(("enum", f"NOT {sql_in('__T__', [str(int(x)) for x in values if x is not None])}"))
    elif kind == "number":
        plan.target = "DOUBLE"
        dec = desc.get("decimalChar", ".")
        if len(dec) != 1:
            raise Unsupported(f"decimalChar '{dec}' of field '{plan.name}' (more than one character)")
        group = desc.get("groupChar") or ""
        if len(group) > 1 or group == dec or (group + dec).strip("0123456789-") != group + dec:
            fast_ok = False  # a group or decimal "character" that is a digit, a minus or a word: frictionless decides
        # group characters anywhere between digits ("1 234 567,5", "1.234,5"): frictionless removes them all
        digits = "[0-9]+" if not group else "[0-9](?:" + _char(group) + "?[0-9])*"
        core = "-?" + digits + "(?:" + _char(dec) + "[0-9]+)?"
        text = f"regexp_extract({v}, {sql_str(core)})" if not bare else v
        for char in (group, dec if dec != "." else ""):
            if char:
                text = f"replace({text}, {sql_str(char)}, {sql_str('.' if char == dec else '')})"
        # up to 15 characters once the group characters are gone: the double is then exact enough for
        # every comparison frictionless makes on Decimals. Longer ones (coordinates exported with 14
        # decimals, 5.34272020620408: a distinct value per row) are too, outside keys, where a bound is the
        # only comparison: rounding to the nearest double never changes the order of two numbers, only
        # makes them equal, so a comparison with a bound can differ from the Decimal's only when the
        # double *is* the bound's; those values go to the oracle
        short = f"length({text}) <= 15"
        if not keyed:
            values = [reader(constraints[name]) for name in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
                      if name in constraints]
            bounds = [_num_literal(value) for value in values if value is not None]
            # (TRY_CAST: DuckDB may evaluate this before the regex has said the text is a number)
            apart = "".join(f" AND coalesce(TRY_CAST({text} AS DOUBLE) <> {b}, false)" for b in bounds)
            short = f"CASE WHEN length({text}) <= 15 THEN true WHEN length({text}) <= {LONG_NUMBER} THEN true{apart} ELSE false END"
        plan.fast = (f"({short} AND regexp_full_match({v}, {sql_str(core)}))" if bare
                     else f"({_unwrapped(v, core)} AND {short})")
        plan.cast = f"CAST({text} AS DOUBLE)"
        plan.from_canon = "TRY_CAST(canon AS DOUBLE)"
        bound_checks("__T__", _num_literal)
        if "enum" in constraints:
            fast_ok = False
    elif kind == "boolean":
        plan.target = "BOOLEAN"
        trues = desc.get("trueValues", getattr(fl, "true_values", None)) or []
        falses = desc.get("falseValues", getattr(fl, "false_values", None)) or []
        plan.fast = "true"
        tl = [sql_str(x) for x in trues]
        fl_ = [sql_str(x) for x in falses]
        plan.cast = f"CASE WHEN {sql_in(v, tl)} THEN true WHEN {sql_in(v, fl_)} THEN false END"
        plan.from_canon = "TRY_CAST(canon AS BOOLEAN)"
        if "enum" in constraints:
            values = [reader(x) for x in constraints["enum"]]
            plan.checks.append(("enum", f"NOT {sql_in('__T__', [str(x).lower() for x in values if x is not None])}"))
    elif kind == "date":
        plan.target = "DATE"
        pyfmt = "%Y-%m-%d" if fmt == "default" else fmt
        regex = None if fmt == "any" else _strptime_regex(pyfmt)
        if regex:
            plan.fast = f"regexp_full_match({v}, {sql_str(regex)})"
            plan.cast = f"CAST(try_strptime({v}, {sql_str(_duck_format(pyfmt))}) AS DATE)"
        plan.from_canon = "TRY_CAST(canon AS DATE)"
        bound_checks("__T__", lambda x: f"DATE '{x.isoformat()}'")
        if "enum" in constraints:
            fast_ok = False
    elif kind == "datetime":
        plan.target = "TIMESTAMPTZ"
        tzsql = sql_str(timezone)
        if fmt == "default":
            base = r"[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
            plan.fast = f"regexp_full_match({v}, {sql_str(base + '(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?')})"
            plan.cast = (f"CASE WHEN length({v}) = 19 THEN timezone({tzsql}, TRY_CAST({v} AS TIMESTAMP)) "
                         f"ELSE TRY_CAST({v} AS TIMESTAMPTZ) END")
        elif fmt != "any" and (regex := _strptime_regex(fmt)):
            plan.fast = f"regexp_full_match({v}, {sql_str(regex)})"
            plan.cast = f"timezone({tzsql}, try_strptime({v}, {sql_str(_duck_format(fmt))}))"
        # a value without offset is read in the entry's time zone, as the fast path and validate/arrow.py do
        plan.from_canon = (f"CASE WHEN regexp_matches(canon, '[+-][0-9][0-9]:[0-9][0-9](:[0-9][0-9](\\.[0-9]+)?)?$') "
                           f"THEN TRY_CAST(canon AS TIMESTAMPTZ) ELSE timezone({tzsql}, TRY_CAST(canon AS TIMESTAMP)) END")
        if any(k in constraints for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum")):
            fast_ok = False
    elif kind == "year":
        plan.target = "INTEGER"
        plan.fast = f"regexp_full_match({v}, '[0-9]{{4}}')"
        plan.cast = f"CAST({v} AS INTEGER)"
        plan.from_canon = "TRY_CAST(canon AS INTEGER)"
        bound_checks("__T__", lambda x: str(int(x)))
        if "enum" in constraints:
            fast_ok = False
    elif kind == "geopoint":
        plan.target = "STRUCT(lon DOUBLE, lat DOUBLE)"
        # in-range numbers only (frictionless' range check is a type error): out-of-range values go to the oracle
        # up to 15 significant digits in a key (see number); elsewhere the regex's ranges decide, whatever the digits
        places = "12" if keyed else "30"
        frac = r"(\.[0-9]{1," + places + "})?"
        # an array is read as JSON, where a number has no leading zero ("02.35" is a type error there)
        tens = "[1-9]?[0-9]" if fmt == "array" else "[0-9]{1,2}"
        lon = r"-?(180(\.0{1," + places + "})?|(1[0-7][0-9]|" + tens + ")" + frac + ")"
        lat = r"-?(90(\.0{1," + places + "})?|" + ("[1-8]?[0-9]" if fmt == "array" else "[0-8]?[0-9]") + frac + ")"
        if fmt in ("default", "array"):
            # the shape is checked by the regex, so splitting on the comma is exact (and 7x cheaper than regexp_extract)
            if fmt == "default":
                shape, left, right = lon + ", ?" + lat, "' '", "' '"
            else:
                shape, left, right = r"\[ ?" + lon + ", ?" + lat + r" ?\]", "'[ '", "'] '"
            plan.fast = f"regexp_full_match({v}, {sql_str(shape)})"
            plan.cast = (f"{{'lon': CAST(trim(split_part({v}, ',', 1), {left}) AS DOUBLE), "
                         f"'lat': CAST(trim(split_part({v}, ',', 2), {right}) AS DOUBLE)}}::STRUCT(lon DOUBLE, lat DOUBLE)")
        plan.from_canon = ("CASE WHEN canon IS NOT NULL THEN {'lon': CAST(split_part(canon, ',', 1) AS DOUBLE), "
                           "'lat': CAST(split_part(canon, ',', 2) AS DOUBLE)}::STRUCT(lon DOUBLE, lat DOUBLE) END")
        if any(k in constraints for k in ("minimum", "maximum", "enum")):
            fast_ok = False
    elif kind in ("time", "yearmonth", "duration", "object", "array", "geojson", "list"):
        # no canonical SQL form yet: every distinct value is judged by frictionless' own reader
        plan.target = {"time": "TIME"}.get(kind, "VARCHAR")
        plan.from_canon = "TRY_CAST(canon AS TIME)" if kind == "time" else "canon"
    else:
        raise Unsupported(f"field type '{kind}' (field '{plan.name}')")
    unknown = set(constraints) - set(CONSTRAINT_ORDER) - {"unique"}
    if unknown:
        raise Unsupported(f"constraint(s) {sorted(unknown)} of field '{plan.name}'")
    if not fast_ok:
        plan.fast = "false"
    plan.invalid = _surely_invalid(kind, fmt, desc, v)
    return plan


def oracle(desc: dict[str, Any], schema_missing: list[str]) -> Any:
    """frictionless' own cell reader for this field: value -> (canonical text or None, [failed checks])."""
    from frictionless import Field, FrictionlessException

    d = dict(desc)
    if "missingValues" not in d:
        d["missingValues"] = schema_missing
    try:
        fl = Field.from_descriptor(d)
    except FrictionlessException as e:  # a field frictionless calls invalid: it has no reader to ask
        raise Unsupported(f"field '{d.get('name')}' frictionless-py reports as invalid ({e})") from None
    read = fl.create_cell_reader()
    kind = d.get("type", "string")

    def judge(value: str) -> tuple[str | None, list[str], bool, Any, dict[str, str]]:
        """-> (canonical text, failed checks, typed but not storable, frictionless' typed value, its notes)"""
        typed, notes = read(value)
        notes = notes or {}
        failed = [k for k in notes if k != "type"]
        if "type" in notes:
            return None, ["type"], False, None, notes
        return canonical(kind, typed), failed, typed is not None and canonical(kind, typed) is None, typed, notes

    return judge


def exact_number_key(value: Any) -> str | None:
    """For unique and primary-key checks on a number: None when the stored double is exactly frictionless'
    Decimal (the doubles then compare as the Decimals do), else the Decimal's own digits ('D' + sign, digits
    without trailing zeros, exponent), so that 0.10000000000000001 and 0.1, one double, stay two values."""
    from decimal import Decimal

    if not isinstance(value, Decimal) or not value.is_finite():
        return None
    if Decimal(repr(float(value))) == value:
        return None
    sign, digits, exponent = value.as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    assert isinstance(exponent, int)
    return f"D{'-' if sign else ''}{text}e{exponent + len(digits) - len(text)}"


JSON_KINDS = ("object", "array", "geojson", "list")


def json_key(value: Any) -> str | None:
    """For unique and primary-key checks on an object, array, geojson or list value: the JSON value's
    identity, so that ``{"a": 1, "b": 2}`` and ``{"b": 2, "a": 1}`` (an object's members have no
    order) or ``[1, 2]`` and ``[1.0, 2]`` (one JSON number) are one value, and ``[true]`` and ``[1]``
    are two. frictionless-py cannot compare these (its sets need hashable cells: it stops with
    "unhashable type"), so the Table Schema spec decides; docs/validation.md lists the deviation."""
    from decimal import Decimal

    def form(v: Any) -> Any:
        if isinstance(v, bool):
            return ["b", v]
        if isinstance(v, (int, float, Decimal)):
            d = Decimal(repr(v)) if isinstance(v, float) else Decimal(v)
            return ["n", "0" if d.is_finite() and d == 0 else str(d.normalize() if d.is_finite() else d)]
        if isinstance(v, dict):
            return ["o", sorted([str(k), form(x)] for k, x in v.items())]
        if isinstance(v, (list, tuple)):
            return ["a", [form(x) for x in v]]
        return None if v is None else ["s", str(v)]

    return None if value is None else json.dumps(form(value), ensure_ascii=False, separators=(",", ":"))


def canonical(kind: str, value: Any) -> str | None:
    """A typed frictionless value as text SQL casts back (None: it cannot be stored, e.g. > 64-bit integer)."""
    import datetime as dt

    if value is None:
        return None
    if kind == "integer":
        return str(value) if -(2**63) <= value < 2**63 else None
    if kind == "number":
        return repr(float(value))
    if kind == "boolean":
        return "true" if value else "false"
    if kind in ("date", "time", "year"):
        return str(value) if kind == "year" else value.isoformat()
    if kind == "datetime":
        return value.isoformat() if isinstance(value, dt.datetime) else None
    if kind == "geopoint":
        return f"{float(value[0])},{float(value[1])}"
    if kind == "yearmonth":
        return f"{int(value[0]):04d}-{int(value[1]):02d}"
    if kind == "duration":
        import isodate

        return str(isodate.duration_isoformat(value))
    if kind in ("object", "array", "geojson", "list"):
        return json.dumps(value, ensure_ascii=False, default=str)
    return value if isinstance(value, str) else str(value)


# typed values a foreign key can compare in SQL as frictionless compares them in Python (``==`` on ints,
# Decimals, dates, strings): geopoints, JSON values and durations have no such SQL equality
FK_TYPES = ("string", "any", "integer", "number", "year", "boolean", "date", "datetime", "time")


@dataclass(frozen=True)
class ForeignKey:
    """``fields`` of this file must be found among ``ref_fields`` of ``resource`` ('' = this same file)."""

    fields: tuple[str, ...]
    resource: str
    ref_fields: tuple[str, ...]

    def note(self, values: list[Any]) -> str:
        """frictionless' note, word for word (the report's readers match on it)."""
        return (f'for "{", ".join(self.fields)}": values "{", ".join(str(v) for v in values)}" not found in the '
                f'lookup table "{self.resource}" as "{", ".join(self.ref_fields)}"')


@dataclass
class SchemaPlan:
    fields: list[FieldPlan]
    primary_key: list[str]
    foreign_keys: list[ForeignKey]
    missing: list[str]


def _names(value: Any, what: str) -> tuple[str, ...]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise Unsupported(f"foreignKeys: {what} must be a field name or a list of field names (got {value!r})")
    return tuple(names)


def foreign_keys(descriptor: dict[str, Any], by_name: dict[str, FieldPlan]) -> list[ForeignKey]:
    """The schema's ``foreignKeys``, checked: a malformed one names the property to fix."""
    raw = descriptor.get("foreignKeys") or []
    if not isinstance(raw, list):
        raise Unsupported("foreignKeys: must be a list of {fields, reference} objects")
    out = []
    for n, fk in enumerate(raw):
        where = f"foreignKeys[{n}]"
        if not isinstance(fk, dict) or not isinstance(fk.get("reference"), dict):
            raise Unsupported(f"{where}: needs 'fields' and a 'reference' object with 'resource' and 'fields'")
        ref = fk["reference"]
        key = ForeignKey(_names(fk.get("fields"), f"{where}.fields"), str(ref.get("resource") or ""),
                         _names(ref.get("fields"), f"{where}.reference.fields"))
        if len(key.fields) != len(key.ref_fields):
            raise Unsupported(f"{where}: {len(key.fields)} field(s) refer to {len(key.ref_fields)} field(s)")
        for name in key.fields + (key.ref_fields if not key.resource else ()):
            if name not in by_name:
                raise Unsupported(f"{where}: field '{name}' is not in the schema")
            if by_name[name].type not in FK_TYPES:
                raise Unsupported(f"{where}: a foreign key on a '{by_name[name].type}' field ('{name}')")
            if by_name[name].type == "string" and by_name[name].descriptor.get("format", "default") != "default":
                # a string with a format can be a type error: frictionless then looks the key up as None
                raise Unsupported(f"{where}: a foreign key on a string field with a format ('{name}')")
        out.append(key)
    return out


def _key_fields(descriptor: dict[str, Any]) -> set[str]:
    """The names in the primary key and the foreign keys (both sides: a reference may be to this file)."""
    def names(value: Any) -> list[str]:
        return [value] if isinstance(value, str) else [n for n in value if isinstance(n, str)] \
            if isinstance(value, list) else []

    out = set(names(descriptor.get("primaryKey")))
    for fk in descriptor.get("foreignKeys") or []:
        if isinstance(fk, dict):
            out.update(names(fk.get("fields")))
            ref = fk.get("reference")
            if isinstance(ref, dict):
                out.update(names(ref.get("fields")))
    return out


def compile_schema(descriptor: dict[str, Any], timezone: str = "Europe/Paris") -> SchemaPlan:
    missing = list(descriptor.get("missingValues", [""]))
    fields = descriptor.get("fields") or []
    if not fields:
        raise Unsupported("schema without fields")
    pk = descriptor.get("primaryKey") or []
    if isinstance(pk, str):
        pk = [pk]
    from frictionless import FrictionlessException

    try:
        keyed = _key_fields(descriptor)
        plans = [compile_field(i, f, missing, timezone, keyed=isinstance(f, dict) and f.get("name") in keyed)
                 for i, f in enumerate(fields)]
    except FrictionlessException as e:
        raise Unsupported(f"a schema frictionless-py reports as invalid ({e})") from None
    names = [p.name for p in plans]
    if len(set(names)) != len(names):
        raise Unsupported("duplicate field names in the schema")
    if any(k not in names for k in pk):
        raise Unsupported("primaryKey naming a field the schema does not have")
    return SchemaPlan(plans, list(pk), foreign_keys(descriptor, {p.name: p for p in plans}), missing)
