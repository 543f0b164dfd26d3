"""Foreign keys to other datasets of the hub: their rows, and the order to harvest datasets in.

A Table Schema's ``foreignKeys[].reference.resource`` names, in Partage, another
dataset of the catalog (its id). Its rows are those of its latest stored
version, read where they live (the warehouse's Parquet), so a file is checked
against what analysts see. frictionless-py could only check keys inside a data
package it reads itself; the SQL engine checks these (see docs/validation.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import duckdb

from .catalog import CatalogEntry
from .errors import SchemaError
from .validate import Reference
from .store.warehouse import Warehouse, version_relation

log = logging.getLogger("partage.references")


def referenced_datasets(descriptor: dict[str, Any], dataset_id: str | None) -> list[str]:
    """The other datasets a schema's foreign keys point to, in the schema's order (a key to itself is not one)."""
    out: list[str] = []
    keys = descriptor.get("foreignKeys")
    for fk in keys if isinstance(keys, list) else []:
        ref = fk.get("reference") if isinstance(fk, dict) else None
        resource = ref.get("resource") if isinstance(ref, dict) else None
        if isinstance(resource, str) and resource and resource != dataset_id and resource not in out:
            out.append(resource)
    return out


def foreign_references(descriptor: dict[str, Any], warehouse: Warehouse, dataset_id: str | None, *,
                       strict: bool = True) -> tuple[dict[str, Reference], dict[str, str]]:
    """The rows each foreign key to another dataset is checked against, and the version they come from.

    The versions enter the validation's fingerprint: a new version of a referenced dataset
    revalidates the files that point to it. ``strict``: a dataset with no version, or without the
    referenced fields, is a :class:`SchemaError` naming the fix (the harvest); otherwise it is left
    out, and the validation reports the key as not checked (``partage validate`` on a bare machine).
    """
    names = referenced_datasets(descriptor, dataset_id)
    refs: dict[str, Reference] = {}
    versions: dict[str, str] = {}
    if not names:
        return refs, versions
    if not warehouse.exists():
        if strict:
            raise SchemaError(f"the schema's foreign keys refer to dataset(s) {', '.join(names)}, but the warehouse "
                              f"{warehouse.root} has no database yet: harvest {', '.join(names)} first")
        return refs, versions
    wanted = {name: _fields_of(descriptor, name) for name in names}
    for name in names:
        info = warehouse.latest_version_info(name)
        if info is None:
            if strict:
                raise SchemaError(
                    f"the schema's foreign keys refer to dataset '{name}', which has no version in the warehouse yet: "
                    f"add it to the catalog and harvest it first (partage harvest {name}), or fix "
                    "foreignKeys[].reference.resource")
            continue
        relation = version_relation(info.location, info.parts, info.summary)
        with duckdb.connect() as con:
            warehouse.register(con)
            columns = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()}
        missing = [f for f in wanted[name] if f not in columns]
        if missing:
            message = (f"the schema's foreign keys refer to field(s) {', '.join(missing)} of dataset '{name}', which "
                       f"has none such (its fields: {', '.join(c for c in columns if not c.startswith('_'))}); "
                       "fix foreignKeys[].reference.fields")
            if strict:
                raise SchemaError(message)
            log.warning("%s", message)
            continue
        attach: Callable[[duckdb.DuckDBPyConnection], None] | None = warehouse.register if warehouse.remote else None
        refs[name] = Reference(relation, columns, attach)
        versions[name] = info.version
    return refs, versions


def _fields_of(descriptor: dict[str, Any], resource: str) -> list[str]:
    out: list[str] = []
    for fk in descriptor.get("foreignKeys") or []:
        ref = fk.get("reference") if isinstance(fk, dict) else None
        if isinstance(ref, dict) and ref.get("resource") == resource:
            fields = ref.get("fields")
            out += [fields] if isinstance(fields, str) else [f for f in fields or [] if isinstance(f, str)]
    return out


def harvest_order(entries: list[CatalogEntry], schema_of: Callable[[CatalogEntry], dict[str, Any] | None]) -> list[CatalogEntry]:
    """The entries with every referenced dataset before the ones pointing to it (else the catalog's order).

    ``schema_of`` gives an entry's schema descriptor, or None when it has none or cannot be resolved now
    (the harvest will then report that itself). A cycle keeps the catalog's order for the datasets in it."""
    ids = {e.id for e in entries}
    deps: dict[str, list[str]] = {}
    for e in entries:
        try:
            desc = schema_of(e)
        except Exception:  # noqa: BLE001 - resolving fails again, with its reason, when the dataset is stored
            desc = None
        deps[e.id] = [d for d in referenced_datasets(desc or {}, e.id) if d in ids]
    ordered: list[CatalogEntry] = []
    state: dict[str, str] = {}
    by_id = {e.id: e for e in entries}

    def visit(i: str) -> None:
        if state.get(i):
            return  # done, or on the current path (a cycle): leave it where it is
        state[i] = "visiting"
        for d in deps[i]:
            visit(d)
        state[i] = "done"
        ordered.append(by_id[i])

    for e in entries:
        visit(e.id)
    return ordered

