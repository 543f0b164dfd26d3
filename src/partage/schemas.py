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
