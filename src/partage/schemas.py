"""Resolve a catalog's ``schema:`` reference to a Table Schema descriptor.

A reference is one of:

* ``publisher/name@version`` — a schema.data.gouv.fr-style ref, read from the
  hub's local cache ``schemas/<publisher>/<name>/<version>/schema.json``
  (or ``schemas/<publisher>/<name>/<version>.json``). Pinned on purpose: a run
  never silently picks up a new national schema version.
* a path (relative to the catalog directory, then to ``schemas/``), or
* an ``http(s)://`` URL, optionally pinned: ``https://…/schema.json#sha256=<hex>``, where
  ``<hex>`` is the schema's canonical hash (the one stored with every version): a schema that
  changed upstream is then refused instead of silently validating with new rules.

The resolved descriptor and its sha256 are stored with every version it
validated, so a report can always be traced to the exact schema.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import SchemaError

REF_PATTERN = re.compile(r"^(?P<publisher>[\w.-]+)/(?P<name>[\w.-]+)@(?P<version>[\w.+-]+)$")


@dataclass(frozen=True)
class ResolvedSchema:
    ref: str
    origin: str
    descriptor: dict[str, Any]
    sha256: str

    @property
    def fields(self) -> list[dict[str, Any]]:
        return list(self.descriptor.get("fields", []))


def canonical_hash(descriptor: dict[str, Any]) -> str:
    data = json.dumps(descriptor, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()


def _load_json(path: Path, ref: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as e:
        raise SchemaError(f"schema {ref}: {path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except OSError as e:
        raise SchemaError(f"schema {ref}: cannot read {path}: {e.strerror}") from None
    return data


def _check(descriptor: Any, ref: str) -> dict[str, Any]:
    """Reject what frictionless cannot read, naming the bad property."""
    if not isinstance(descriptor, dict) or not isinstance(descriptor.get("fields"), list):
        raise SchemaError(f"schema {ref}: not a Table Schema (it needs a 'fields' list)")
    from frictionless import FrictionlessException, Schema

    try:
        Schema.from_descriptor(descriptor)
    except FrictionlessException as e:
        notes = [err.note or err.message for err in (e.reasons or [e.error])]
        raise SchemaError(f"schema {ref} is invalid: " + "; ".join(notes)) from None
    return descriptor


def _fetch_json(url: str) -> dict[str, Any]:
    import httpx

    from . import USER_AGENT

    try:
        r = httpx.get(url, timeout=30, follow_redirects=True, headers={"User-Agent": USER_AGENT})
        r.raise_for_status()
        return r.json()
    except httpx.HTTPError as e:
        raise SchemaError(f"schema {url}: download failed ({e}); check the URL or copy the schema into schemas/") from None
    except ValueError:
        raise SchemaError(f"schema {url}: the server did not return JSON") from None


PIN = re.compile(r"#sha256=(?P<hex>[0-9a-fA-F]{64})$")


def resolve_schema(ref: str, *, catalog_dir: Path | None = None, schemas_dir: Path | None = None) -> ResolvedSchema:
    if re.match(r"^https?://", ref, re.I):
        pin = PIN.search(ref)
        url = ref[: pin.start()] if pin else ref
        resolved = _resolved(ref, url, _fetch_json(url))
        if pin and resolved.sha256 != pin["hex"].lower():
            raise SchemaError(
                f"schema {url} changed: its sha256 is {resolved.sha256}, the catalog pins {pin['hex'].lower()}; "
                "review the new version, then update the pin (or pin a versioned URL)"
            )
        return resolved
    m = REF_PATTERN.match(ref)
    if m and schemas_dir is not None:
        base = schemas_dir / m["publisher"] / m["name"]
        for candidate in (base / m["version"] / "schema.json", base / f"{m['version']}.json"):
            if candidate.is_file():
                return _resolved(ref, str(candidate), _load_json(candidate, ref))
        raise SchemaError(_not_cached(ref, schemas_dir, m["publisher"], m["name"], m["version"]))
    candidates = [Path(ref)] if Path(ref).is_absolute() else [
        d / ref for d in (catalog_dir, schemas_dir, Path.cwd()) if d is not None
    ]
    for candidate in candidates:
        if candidate.is_file():
            return _resolved(ref, str(candidate.resolve()), _load_json(candidate, ref))
    where = ", ".join(str(c) for c in candidates)
    raise SchemaError(f"schema {ref}: file not found (looked at {where}); use publisher/name@version, a path or a URL")


def cached_versions(schemas_dir: Path, publisher: str, name: str) -> list[str]:
    """The versions of one schema in the local cache, in either layout."""
    base = schemas_dir / publisher / name
    if not base.is_dir():
        return []
    found = {p.name for p in base.iterdir() if p.is_dir() and (p / "schema.json").is_file()}
    found |= {p.stem for p in base.glob("*.json") if p.is_file()}
    return sorted(found, key=_version_key)


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.+-]", version))


def cached_schemas(schemas_dir: Path) -> list[str]:
    """Every ``publisher/name`` of the local cache that holds at least one version."""
    if not schemas_dir.is_dir():
        return []
    return sorted(f"{pub.name}/{sch.name}" for pub in schemas_dir.iterdir() if pub.is_dir()
                  for sch in pub.iterdir() if sch.is_dir() and cached_versions(schemas_dir, pub.name, sch.name))


def _not_cached(ref: str, schemas_dir: Path, publisher: str, name: str, version: str) -> str:
    """Why a ``publisher/name@version`` is not found, and the nearest thing that is (``@0.3`` → ``0.3.0``)."""
    versions = cached_versions(schemas_dir, publisher, name)
    add = f"`partage schemas add {ref}` fetches it from schema.data.gouv.fr"
    if versions:
        near = [v for v in versions if v.startswith(version + ".") or v.startswith(version + "-")]
        hint = (f"did you mean @{near[-1]}? " if near else "") + f"the cache has {publisher}/{name} @ {', '.join(versions)}"
        return f"schema {ref} is not in the local schema cache {schemas_dir}: {hint}; pin one of those or {add}"
    import difflib

    known = cached_schemas(schemas_dir)
    close = difflib.get_close_matches(f"{publisher}/{name}", known, n=1)
    hint = f" — did you mean {close[0]}? (cached: {', '.join(cached_versions(schemas_dir, *close[0].split('/')))})" if close else ""
    return f"schema {ref} is not in the local schema cache {schemas_dir}{hint}; {add}, or give a path or a URL"


def _resolved(ref: str, origin: str, descriptor: Any) -> ResolvedSchema:
    descriptor = _check(descriptor, ref)
    return ResolvedSchema(ref=ref, origin=origin, descriptor=descriptor, sha256=canonical_hash(descriptor))


def schema_from_descriptor(descriptor: dict[str, Any], ref: str = "(inferred)") -> ResolvedSchema:
    return _resolved(ref, ref, descriptor)


# -- the national catalog: schema.data.gouv.fr ------------------------------------------------

NATIONAL_BASE_URL = "https://schema.data.gouv.fr"
SOURCE_FILE = "source.json"  # beside a cached schema.json: where it came from and its sha256


def schema_base_url(explicit: str | None = None) -> str:
    """Where the national schema catalog is read: ``--from``, else ``PARTAGE_SCHEMA_BASE_URL``, else
    schema.data.gouv.fr. A mirror serves the same paths (``/schemas.json``, ``/schemas/<publisher>/<name>/
    <version>/<file>``); the catalog's own ``https://schema.data.gouv.fr/…`` URLs are read from it."""
    import os

    base = (explicit or os.environ.get("PARTAGE_SCHEMA_BASE_URL") or NATIONAL_BASE_URL).rstrip("/")
    if not re.match(r"^https?://", base, re.I):
        raise SchemaError(f"schema catalog address {base!r} must start with http:// or https://")
    return base


@dataclass(frozen=True)
class CatalogVersion:
    version: str
    url: str  # as the catalog gives it (schema.data.gouv.fr)


@dataclass(frozen=True)
class NationalSchema:
    """One entry of schema.data.gouv.fr's ``schemas.json``."""

    name: str  # publisher/name
    title: str
    schema_type: str  # tableschema, datapackage, jsonschema, other
    versions: tuple[CatalogVersion, ...]

    def version(self, wanted: str) -> CatalogVersion | None:
        return next((v for v in self.versions if v.version == wanted), None)

    @property
    def latest(self) -> CatalogVersion | None:
        return max(self.versions, key=lambda v: _version_key(v.version)) if self.versions else None


@dataclass(frozen=True)
class CachedSchema:
    """A schema of the local cache and what `partage schemas add` recorded about it."""

    ref: str
    path: Path
    sha256: str  # of the file's bytes as downloaded (or as found, for a schema copied by hand)
    url: str | None  # where it was fetched from; None when it was put there by hand


@dataclass(frozen=True)
class AddOutcome:
    cached: CachedSchema
    state: str  # "added", "unchanged"


def _rebase(url: str, base: str) -> str:
    """A catalog URL read from the configured base (a mirror), the path kept."""
    if url.startswith(NATIONAL_BASE_URL + "/"):
        return base + url[len(NATIONAL_BASE_URL):]
    return url


def _get(url: str) -> bytes:
    from .errors import FetchError
    from .fetch import get_document

    try:
        return get_document(url).body
    except FetchError as e:
        raise SchemaError(f"{e}; set PARTAGE_SCHEMA_BASE_URL (or --from) to a reachable mirror of schema.data.gouv.fr") from None


def national_catalog(base: str) -> dict[str, NationalSchema]:
    """schema.data.gouv.fr's catalog of schemas, by ``publisher/name``."""
    url = f"{base}/schemas.json"
    try:
        data = json.loads(_get(url))
        entries = data["schemas"]
        return {
            e["name"]: NationalSchema(
                name=e["name"], title=e.get("title") or e["name"], schema_type=e.get("schema_type") or "other",
                versions=tuple(CatalogVersion(v["version_name"], v["schema_url"]) for v in e.get("versions") or []),
            )
            for e in entries
        }
    except (ValueError, KeyError, TypeError) as e:
        raise SchemaError(f"{url} is not schema.data.gouv.fr's catalog (expected {{'schemas': [...]}}: {e})") from None


def _find(national: dict[str, NationalSchema], name: str, ref: str) -> NationalSchema:
    import difflib

    entry = national.get(name)
    if entry is None:
        close = difflib.get_close_matches(name, list(national), n=3)
        hint = f" — did you mean {', '.join(close)}?" if close else ""
        raise SchemaError(f"schema {ref}: {name} is not in schema.data.gouv.fr's catalog{hint}")
    if entry.schema_type != "tableschema":
        raise SchemaError(
            f"schema {ref}: {name} is a {entry.schema_type}, not a Table Schema; "
            "add one of its Table Schemas (e.g. etalab/schema-irve-statique for etalab/schema-irve)"
        )
    return entry


def read_cached(schemas_dir: Path, publisher: str, name: str, version: str) -> CachedSchema | None:
    base = schemas_dir / publisher / name
    for path in (base / version / "schema.json", base / f"{version}.json"):
        if path.is_file():
            meta_path = path.parent / SOURCE_FILE if path.name == "schema.json" else None
            meta: dict[str, Any] = {}
            if meta_path is not None and meta_path.is_file():
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
            return CachedSchema(f"{publisher}/{name}@{version}", path,
                                hashlib.sha256(path.read_bytes()).hexdigest(), meta.get("url"))
    return None


def add_schema(ref: str, schemas_dir: Path, base: str) -> AddOutcome:
    """Fetch ``publisher/name@version`` (or ``publisher/name``: its latest version) into the cache.

    The file is kept byte for byte as schema.data.gouv.fr serves it, with ``source.json`` beside it
    (its URL and sha256). A version already cached with other bytes is refused: a published version
    should never change, and a run must not silently validate with new rules."""
    m = REF_PATTERN.match(ref) or re.match(r"^(?P<publisher>[\w.-]+)/(?P<name>[\w.-]+)$", ref)
    if m is None:
        raise SchemaError(f"{ref!r}: expected publisher/name@version, e.g. etalab/schema-irve-statique@2.3.1")
    publisher, name = m["publisher"], m["name"]
    entry = _find(national_catalog(base), f"{publisher}/{name}", ref)
    wanted = m.groupdict().get("version")
    chosen = entry.version(wanted) if wanted else entry.latest
    if chosen is None:
        listed = ", ".join(v.version for v in entry.versions) or "none"
        near = [v.version for v in entry.versions if wanted and v.version.startswith(wanted + ".")]
        hint = f" — did you mean @{near[-1]}?" if near else ""
        raise SchemaError(f"schema {ref}: version {wanted} is not published{hint}; the versions of {entry.name} are {listed}")
    body = _get(_rebase(chosen.url, base))
    try:
        descriptor = json.loads(body.decode("utf-8-sig"))
    except ValueError:
        raise SchemaError(f"schema {ref}: {chosen.url} is not JSON") from None
    full_ref = f"{publisher}/{name}@{chosen.version}"
    _check(descriptor, full_ref)
    sha = hashlib.sha256(body).hexdigest()
    cached = read_cached(schemas_dir, publisher, name, chosen.version)
    if cached is not None:
        if cached.sha256 == sha:
            return AddOutcome(cached, "unchanged")
        raise SchemaError(
            f"schema {full_ref}: the cached file {cached.path} (sha256 {cached.sha256[:12]}…) differs from "
            f"{chosen.url} (sha256 {sha[:12]}…); a published version should not change: compare them, "
            "then delete the cached folder to take the new one"
        )
    folder = schemas_dir / publisher / name / chosen.version
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "schema.json").write_bytes(body)
    (folder / SOURCE_FILE).write_text(json.dumps(
        {"ref": full_ref, "url": chosen.url, "sha256": sha, "canonical_sha256": canonical_hash(descriptor)},
        indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return AddOutcome(CachedSchema(full_ref, folder / "schema.json", sha, chosen.url), "added")


def list_cached(schemas_dir: Path) -> list[CachedSchema]:
    found = []
    for pub_name in cached_schemas(schemas_dir):
        publisher, name = pub_name.split("/")
        for version in cached_versions(schemas_dir, publisher, name):
            cached = read_cached(schemas_dir, publisher, name, version)
            if cached is not None:
                found.append(cached)
    return found


@dataclass(frozen=True)
class UpdateCheck:
    """What schema.data.gouv.fr has that the cache does not, per cached ``publisher/name``."""

    name: str
    cached: tuple[str, ...]
    newer: tuple[str, ...]  # published versions above the newest cached one
    changed: tuple[str, ...]  # cached versions whose published bytes differ from the cache
    missing: bool = False  # no longer in the national catalog


def check_updates(schemas_dir: Path, base: str) -> list[UpdateCheck]:
    """For each cached national schema: newer published versions, and cached versions changed upstream."""
    national = national_catalog(base)
    out = []
    for pub_name in cached_schemas(schemas_dir):
        publisher, name = pub_name.split("/")
        versions = cached_versions(schemas_dir, publisher, name)
        entry = national.get(pub_name)
        if entry is None:
            out.append(UpdateCheck(pub_name, tuple(versions), (), (), missing=True))
            continue
        top = max(_version_key(v) for v in versions)
        newer = tuple(v.version for v in sorted(entry.versions, key=lambda v: _version_key(v.version))
                      if _version_key(v.version) > top)
        changed = []
        for version in versions:
            cached = read_cached(schemas_dir, publisher, name, version)
            published = entry.version(version)
            if cached is not None and cached.url and published is not None:
                if hashlib.sha256(_get(_rebase(published.url, base))).hexdigest() != cached.sha256:
                    changed.append(version)
        out.append(UpdateCheck(pub_name, tuple(versions), newer, tuple(changed)))
    return out
