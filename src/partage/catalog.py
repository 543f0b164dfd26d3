"""The catalog: one YAML file per dataset, plus ``_targets.yaml``.

The catalog is the data team's interface, so loading it checks *every* file and
reports *every* problem at once, each naming the file, the key and what is
allowed. Closed sets of words (access levels, policies, source kinds) become
types here, at the edge, and are never re-parsed further in.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import CatalogError

Access = Literal["open", "partners", "internal"]
Policy = Literal["reject", "quarantine", "warn"]
SourceKind = Literal["url", "file", "ckan", "udata", "ods", "dcat"]
SOURCE_KINDS: tuple[str, ...] = get_args(SourceKind)

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# which filters each source kind understands; any other is a mistake worth saying
KIND_FILTERS: dict[str, frozenset[str]] = {
    "url": frozenset(), "file": frozenset(),
    "ckan": frozenset({"organization", "tags", "formats", "q", "dataset"}),
    "udata": frozenset({"organization", "tags", "formats", "q", "dataset", "schema_"}),
    "ods": frozenset({"organization", "tags", "formats", "q", "dataset"}),
    "dcat": frozenset({"tags", "formats", "q"}),
}
CREDENTIAL_PATTERN = re.compile(r"^(env|prefect-secret):[A-Za-z_][A-Za-z0-9_.-]*$")
CRON_FIELD = re.compile(r"^[\d*/,\-A-Za-z?LW#]+$")

CREDENTIAL_HELP = (
    "credentials must be a reference, 'env:NAME' (an environment variable) or "
    "'prefect-secret:NAME' (a Prefect Secret block), never the secret itself"
)


def _credential_ref(value: Any) -> str:
    if not isinstance(value, str) or not CREDENTIAL_PATTERN.match(value):
        # Never echo the value: it may be a real token pasted by mistake.
        raise ValueError(CREDENTIAL_HELP)
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class BasicAuth(_Strict):
    username: str
    password: str

    @field_validator("password")
    @classmethod
    def _password_ref(cls, v: str) -> str:
        return _credential_ref(v)


class Auth(_Strict):
    """How to authenticate to a partner URL. Every secret is a reference."""

    bearer: str | None = None
    basic: BasicAuth | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("bearer")
    @classmethod
    def _bearer_ref(cls, v: str | None) -> str | None:
        return None if v is None else _credential_ref(v)

    @field_validator("headers")
    @classmethod
    def _header_refs(cls, v: dict[str, str]) -> dict[str, str]:
        return {name: _credential_ref(ref) for name, ref in v.items()}


class Dialect(_Strict):
    """Explicit reading options; anything left out is detected from the file."""

    encoding: str | None = None
    delimiter: str | None = None
    quoteChar: str | None = None
    decimalChar: str | None = None
    groupChar: str | None = None
    format: Literal["csv", "xlsx", "xls", "json"] | None = None

    @field_validator("delimiter", "quoteChar", "decimalChar", "groupChar")
    @classmethod
    def _one_char(cls, v: str | None) -> str | None:
        if v is not None and len(v) != 1:
            raise ValueError("must be a single character, e.g. ';'")
        return v

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, v: str | None) -> str | None:
        import codecs

        if v is not None:
            try:
                codecs.lookup(v)
            except LookupError:
                raise ValueError(f"unknown encoding {v!r}; use e.g. utf-8, utf-8-sig, cp1252, latin-1") from None
        return v


class Retention(_Strict):
    """How many old versions `partage gc` keeps. The latest version is always kept."""

    keep: int | None = Field(default=None, ge=1)  # the last N versions
    days: float | None = Field(default=None, gt=0)  # versions younger than D days


class Source(_Strict):
    """One entry of ``sources:``. Exactly one kind key says where data comes from."""

    url: str | None = None
    file: str | None = None
    ckan: str | None = None
    udata: str | None = None
    ods: str | None = None
    dcat: str | None = None
    # portal filters (used by the portal kinds)
    organization: str | None = None
    tags: list[str] = Field(default_factory=list)
    formats: list[str] = Field(default_factory=list)
    q: str | None = None
    dataset: str | None = None
    schema_: str | None = Field(default=None, alias="schema")
    # access and limits
    auth: Auth | None = None
    name: str | None = None
    max_bytes: int | None = Field(default=None, gt=0)
    # how this source's files are read, over the dataset's `dialect:` (a partner's cp1252 export
    # beside the portal's UTF-8 files): only the keys given here replace the dataset's
    dialect: Dialect | None = None

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> Source:
        kinds = [k for k in SOURCE_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            found = ", ".join(kinds) if kinds else "none"
            raise ValueError(
                f"a source needs exactly one of the keys {', '.join(SOURCE_KINDS)} (found: {found})"
            )
        kind = kinds[0]
        used = [k for k in ("organization", "tags", "formats", "q", "dataset", "schema_")
                if getattr(self, k) not in (None, [])]
        unused = [("schema" if k == "schema_" else k) for k in used if k not in KIND_FILTERS[kind]]
        if unused:
            allowed = ", ".join(sorted("schema" if k == "schema_" else k for k in KIND_FILTERS[kind])) or "none"
            raise ValueError(f"{', '.join(unused)}: not used by a '{kind}' source (its filters: {allowed})")
        if kind in ("ckan", "udata", "ods", "dcat") and not re.match(r"^https?://", str(getattr(self, kind)), re.I):
            raise ValueError(f"{kind} must be the portal's http(s) address (got {getattr(self, kind)!r})")
        if self.auth is not None and kind == "file":
            raise ValueError("auth does not apply to 'file' sources (S3 credentials come from the environment)")
        if self.url is not None and not re.match(r"^https?://", self.url, re.I):
            raise ValueError(f"url must start with http:// or https:// (got {self.url!r}); use 'file:' for local files")
        address = self.url if self.url is not None else getattr(self, kind) if kind in ("ckan", "udata", "ods", "dcat") else None
        if address is not None and re.match(r"^https?://[^/@]*:[^/@]*@", str(address), re.I):
            # the password would be echoed in reasons and stored with the source's state
            raise ValueError(f"{kind} must not embed a password in its address; use 'auth:' with a credential "
                             "reference (env:NAME or prefect-secret:NAME)")
        return self

    @property
    def kind(self) -> SourceKind:
        return cast(SourceKind, next(k for k in SOURCE_KINDS if getattr(self, k) is not None))

    @property
    def location(self) -> str:
        return str(getattr(self, self.kind))


class Dataset(_Strict):
    """A catalog entry. These key names are a contract: do not rename them."""

    id: str
    title: str
    description: str = ""
    publisher: str | None = None
    license: str
    access: Access
    keywords: list[str] = Field(default_factory=list)
    schema_: str | None = Field(default=None, alias="schema")
    policy: Policy = "quarantine"
    schedule: str | None = None
    timezone: str = "Europe/Paris"
    dialect: Dialect = Field(default_factory=Dialect)
    sources: list[Source] = Field(min_length=1)
    max_bytes: int | None = Field(default=None, gt=0)
    retention: Retention | None = None  # none: every version is kept
    # which row wins when several sources have the same primary key (see consolidate.py)
    duplicates: Literal["first-source", "latest", "keep"] = "first-source"

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    @field_validator("id")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not ID_PATTERN.match(v):
            raise ValueError(
                "must be a slug: lower-case letters, digits, '-' or '_', starting with a letter or digit, "
                f"at most 63 characters (got {v!r})"
            )
        if v in ("catalog",):
            raise ValueError(f"{v!r} is reserved: the warehouse has a view of that name listing every dataset")
        return v

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is not None:
            parts = v.split()
            if len(parts) != 5 or not all(CRON_FIELD.match(p) for p in parts):
                raise ValueError(f"must be a 5-field cron expression like '0 3 * * *' (got {v!r})")
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}; use an IANA name like 'Europe/Paris'") from None
        return v

    # Unknown top-level keys are found on the raw mapping (`_unknown_dataset_keys`), not here: an
    # after-validator runs only once every field is valid, so a misspelt `licence` (which also makes
    # `license` missing) was only reported on the next run, one typo per run.


class CkanTarget(_Strict):
    ckan: str
    api_token: str | None = None
    organization: str | None = None
    grace_days: float = Field(default=7, ge=0)  # a dataset removed from the catalog is deleted on the portal after this
    resources: Literal["upload", "link"] = "upload"
    link_base_url: str | None = None  # with resources: link — where the `datapackage` target's folder is served

    @model_validator(mode="after")
    def _link_needs_base(self) -> "CkanTarget":
        if self.resources == "link" and not (self.link_base_url or "").startswith(("http://", "https://")):
            raise ValueError("resources: link needs link_base_url, the http(s) address where the datapackage folder is served")
        return self

    @field_validator("api_token")
    @classmethod
    def _token_ref(cls, v: str | None) -> str | None:
        return None if v is None else _credential_ref(v)


class DcatTarget(_Strict):
    dcat: str
    base_url: str | None = None  # where the datapackage target's files are served; used for download URLs
    title: str | None = None
    publisher: str | None = None


class DataPackageTarget(_Strict):
    datapackage: str


Target = CkanTarget | DcatTarget | DataPackageTarget


@dataclass(frozen=True)
class CatalogEntry:
    """A dataset with the file it was read from (needed to resolve relative paths)."""

    dataset: Dataset
    path: Path

    @property
    def id(self) -> str:
        return self.dataset.id


@dataclass
class Catalog:
    root: Path
    entries: dict[str, CatalogEntry] = field(default_factory=dict)
    targets: dict[str, Target] = field(default_factory=dict)

    def select(self, ids: list[str] | None) -> list[CatalogEntry]:
        """The entries to work on; unknown ids are a configuration error, not a silent no-op."""
        if not ids:
            return list(self.entries.values())
        unknown = [i for i in ids if i not in self.entries]
        if unknown:
            known = ", ".join(sorted(self.entries)) or "(none)"
            raise CatalogError([f"unknown dataset id(s): {', '.join(unknown)}; the catalog {self.root} has: {known}"])
        return [self.entries[i] for i in ids]


_ALLOWED_DATASET_KEYS = sorted(
    (f.alias or name) for name, f in Dataset.model_fields.items()
)
_ALLOWED_SOURCE_KEYS = sorted((f.alias or name) for name, f in Source.model_fields.items())


def did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """' — did you mean 'x'?' for the closest allowed word, or nothing when none is close.

    Case is ignored when comparing (``Etalab-2.0`` is one letter away from nothing else)."""
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(str(word).lower(), list(lowered), n=1, cutoff=0.6)
    return f" — did you mean '{lowered[close[0]]}'?" if close else ""


def _loc(parts: tuple[Any, ...]) -> str:
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            p = {"schema_": "schema"}.get(str(p), str(p))
            out += f".{p}" if out else p
    return out or "(top level)"


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model whose keys are allowed at ``loc`` (for 'did you mean' on a nested unknown key)."""
    for part in loc:
        if isinstance(part, int):
            continue
        name = {f.alias: n for n, f in model.model_fields.items() if f.alias}.get(str(part), str(part))
        f = model.model_fields.get(name)
        if f is None:
            return None
        found = _nested_model(f.annotation)
        if found is None:
            return None
        model = found
    return model


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


def _keys_of(model: type[BaseModel]) -> list[str]:
    return sorted((f.alias or name) for name, f in model.model_fields.items())


def _explain(file: Path, exc: ValidationError, model: type[BaseModel] = BaseModel) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if err["type"] == "extra_forbidden":
            parent = _model_at(model, loc[:-1]) if model is not BaseModel else None
            allowed = _keys_of(parent) if parent is not None else []
            hint = (did_you_mean(str(loc[-1]), allowed) + f"; allowed keys are {', '.join(allowed)}") if allowed else ""
            problems.append(f"{file}: {_loc(loc)}: unknown key{hint}")
            continue
        if err["type"] == "missing":
            problems.append(f"{file}: {_loc(loc)}: required key is missing")
            continue
        if err["type"] == "literal_error":
            allowed = re.findall(r"'([^']*)'", str((err.get("ctx") or {}).get("expected", "")))
            problems.append(f"{file}: {_loc(loc)}: {msg} (got {err['input']!r}){did_you_mean(str(err['input']), allowed)}")
            continue
        problems.append(f"{file}: {_loc(loc)}: {msg}")
    return problems


def _unknown_dataset_keys(path: Path, data: dict[Any, Any]) -> list[str]:
    """Every unknown key of a dataset file, top level and per source, each with the closest allowed key."""
    problems = []
    for key in data:
        if str(key) not in _ALLOWED_DATASET_KEYS and not str(key).startswith("x-"):
            problems.append(
                f"{path}: {key}: unknown key{did_you_mean(str(key), _ALLOWED_DATASET_KEYS)}; allowed keys are "
                f"{', '.join(_ALLOWED_DATASET_KEYS)} (custom keys must start with 'x-')"
            )
    return problems


def _read_yaml(path: Path) -> tuple[Any, list[str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        return None, [f"{path}: not UTF-8 (byte {e.start}); save the file as UTF-8"]
    try:
        return yaml.safe_load(text), []
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        return None, [f"{path}:{where}: invalid YAML: {problem}"]


def load_dataset_file(path: Path) -> tuple[Dataset | None, list[str]]:
    data, problems = _read_yaml(path)
    if problems:
        return None, problems
    if not isinstance(data, dict):
        return None, [f"{path}: must be a mapping of keys (id, title, sources, ...), got {type(data).__name__}"]
    unknown = _unknown_dataset_keys(path, data)
    try:
        ds = Dataset.model_validate(data)
    except ValidationError as e:
        return None, unknown + _explain(path, e, Dataset)
    if unknown:
        return None, unknown
    if ds.id != path.stem:
        return None, [f"{path}: id: {ds.id!r} does not match the file name; rename the file to {ds.id}{path.suffix} or fix the id"]
    return ds, []


def load_targets(path: Path) -> tuple[dict[str, Target], list[str]]:
    data, problems = _read_yaml(path)
    if problems:
        return {}, problems
    if data is None:
        return {}, []
    if not isinstance(data, dict):
        return {}, [f"{path}: must map target names to targets"]
    targets: dict[str, Target] = {}
    for name, spec in data.items():
        if not isinstance(spec, dict):
            problems.append(f"{path}: {name}: must be a mapping with one of the keys ckan, dcat, datapackage")
            continue
        model = CkanTarget if "ckan" in spec else DcatTarget if "dcat" in spec else DataPackageTarget if "datapackage" in spec else None
        if model is None:
            problems.append(f"{path}: {name}: a target needs one of the keys ckan, dcat, datapackage")
            continue
        try:
            targets[str(name)] = model.model_validate(spec)
        except ValidationError as e:
            problems += [p.replace(f"{path}: ", f"{path}: {name}.", 1) for p in _explain(path, e, model)]
    return targets, problems


def read_catalog(root: Path | str) -> tuple[Catalog, list[str]]:
    """Read every file of the catalog: the datasets that load, and every problem of the others."""
    root = Path(root)
    if not root.is_dir():
        return Catalog(root=root), [f"{root}: catalog directory not found; pass --catalog DIR or set PARTAGE_CATALOG"]
    catalog = Catalog(root=root.resolve())
    problems: list[str] = []
    for path in sorted(root.iterdir()):
        if path.suffix not in (".yaml", ".yml") or not path.is_file():
            continue
        if path.name.startswith("_"):
            if path.stem == "_targets":
                catalog.targets, found = load_targets(path)
                problems += found
            continue
        ds, found = load_dataset_file(path)
        problems += found
        if ds is not None:
            if ds.id in catalog.entries:
                problems.append(f"{path}: id: {ds.id!r} is also defined in {catalog.entries[ds.id].path.name}")
            else:
                catalog.entries[ds.id] = CatalogEntry(ds, path.resolve())
    aliases: dict[str, str] = {}
    for ds_id in catalog.entries:
        alias = ds_id.replace("-", "_")
        if alias in aliases:
            problems.append(f"ids {aliases[alias]!r} and {ds_id!r} both give the SQL view name {alias!r}; rename one")
        aliases[alias] = ds_id
    return catalog, problems


def load_catalog(root: Path | str) -> Catalog:
    """Read and check every file of the catalog; raise one CatalogError listing all problems."""
    catalog, problems = read_catalog(root)
    if problems:
        raise CatalogError(problems)
    return catalog


@dataclass(frozen=True)
class CatalogCheck:
    """What `partage catalog check` found: problems stop a harvest, warnings do not."""

    catalog: Catalog
    problems: list[str]
    warnings: list[str]


def known_licenses() -> dict[str, str]:
    """The licence ids Partage can publish with a title and a URL (DCAT ``dct:license``, Data Package)."""
    from .publish.datapackage import LICENSES

    return {name: info["title"] for name, info in LICENSES.items()}


def _credential_refs(ds: Dataset) -> list[tuple[str, str]]:
    refs: list[tuple[str, str]] = []
    for i, src in enumerate(ds.sources):
        if src.auth is None:
            continue
        if src.auth.bearer:
            refs.append((f"sources[{i}].auth.bearer", src.auth.bearer))
        if src.auth.basic:
            refs.append((f"sources[{i}].auth.basic.password", src.auth.basic.password))
        refs += [(f"sources[{i}].auth.headers.{h}", ref) for h, ref in src.auth.headers.items()]
    return refs


def _unset_env(where: str, ref: str, environ: Mapping[str, str]) -> str | None:
    scheme, _, name = ref.partition(":")
    if scheme == "env" and not environ.get(name):
        return f"{where}: {ref}: the environment variable {name} is not set here; export it before the harvest"
    return None


def check_catalog(root: Path | str, schemas_dir: Path | None = None,
                  environ: Mapping[str, str] | None = None) -> CatalogCheck:
    """Everything `load_catalog` checks, and what a harvest would only find later: licences outside the
    known list (DCAT would publish no licence), ``schema:`` refs that do not resolve, credentials whose
    environment variable is not set (a warning: the harvest may run elsewhere)."""
    from .errors import SchemaError
    from .schemas import resolve_schema

    environ = os.environ if environ is None else environ
    catalog, problems = read_catalog(root)
    warnings: list[str] = []
    if schemas_dir is None:
        env = environ.get("PARTAGE_SCHEMAS")
        schemas_dir = Path(env) if env else catalog.root.parent / "schemas"
    licenses = known_licenses()
    for entry in catalog.entries.values():
        ds, path = entry.dataset, entry.path
        if ds.license.lower() not in licenses:
            problems.append(
                f"{path}: license: {ds.license!r} is not a licence Partage knows"
                f"{did_you_mean(ds.license, list(licenses))}; use one of {', '.join(licenses)} "
                "(README, 'Licences')"
            )
        if ds.schema_:
            try:
                resolve_schema(ds.schema_, catalog_dir=path.parent, schemas_dir=schemas_dir)
            except SchemaError as e:
                problems.append(f"{path}: schema: {e}")
        for where, ref in _credential_refs(ds):
            found = _unset_env(f"{path}: {where}", ref, environ)
            if found:
                warnings.append(found)
    targets_file = catalog.root / "_targets.yaml"
    for name, target in catalog.targets.items():
        token = getattr(target, "api_token", None)
        if token:
            found = _unset_env(f"{targets_file}: {name}.api_token", token, environ)
            if found:
                warnings.append(found)
    return CatalogCheck(catalog, problems, warnings)
