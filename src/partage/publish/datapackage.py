"""A Frictionless Data Package (``datapackage.json``) for each stored version.

It travels with the Parquet files, so a version directory is self-describing:
what the data is, under which licence, from which sources, against which
schema it was validated and with what result.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..catalog import Dataset
from ..rawstore import file_sha256
from ..validate.arrow import ROW_COLUMN, SOURCE_COLUMN

if TYPE_CHECKING:
    from ..store.warehouse import VersionInfo
    from .exports import ExportFile

LICENSES: dict[str, dict[str, str]] = {
    "etalab-2.0": {"title": "Licence Ouverte / Open Licence version 2.0",
                   "path": "https://www.etalab.gouv.fr/licence-ouverte-open-licence/"},
    "lov2": {"title": "Licence Ouverte / Open Licence version 2.0",
             "path": "https://www.etalab.gouv.fr/licence-ouverte-open-licence/"},
    "odc-odbl": {"title": "Open Data Commons Open Database License 1.0", "path": "https://opendatacommons.org/licenses/odbl/1-0/"},
    "odbl-1.0": {"title": "Open Data Commons Open Database License 1.0", "path": "https://opendatacommons.org/licenses/odbl/1-0/"},
    "cc-by-4.0": {"title": "Creative Commons Attribution 4.0", "path": "https://creativecommons.org/licenses/by/4.0/"},
    "cc-by-sa-4.0": {"title": "Creative Commons Attribution-ShareAlike 4.0", "path": "https://creativecommons.org/licenses/by-sa/4.0/"},
    "cc0-1.0": {"title": "CC0 1.0", "path": "https://creativecommons.org/publicdomain/zero/1.0/"},
}


def license_descriptor(name: str) -> dict[str, str]:
    known = LICENSES.get(name.lower())
    return {"name": name, **known} if known else {"name": name, "title": name}


def build(
    dataset: Dataset,
    *,
    version: str,
    version_dir: Path,
    schema: dict[str, Any],
    schema_ref: str,
    schema_sha256: str,
    parts: list[dict[str, Any]],
    sources: list[dict[str, str]],
    summary: dict[str, Any],
) -> dict[str, Any]:
    """The descriptor; paths are relative to the version directory."""
    fields = list(schema.get("fields", [])) + [
        {"name": SOURCE_COLUMN, "type": "string", "description": "Partage: key of the source this row came from"},
        {"name": ROW_COLUMN, "type": "integer", "description": "Partage: row number in the source file"},
    ]
    resource_schema = {k: v for k, v in schema.items() if k not in ("fields",)}
    resource_schema["fields"] = fields
    part_info = []
    for p in parts:
        f = version_dir / p["data"]
        part_info.append({"source": p["source_key"], "path": p["data"], "bytes": f.stat().st_size,
                          "sha256": file_sha256(f), "raw_sha256": p["sha256"], "rows": p["rows"],
                          "quarantined": p["quarantined"], "since_version": p["since_version"]})
    resource: dict[str, Any] = {
        "name": "data",
        "title": dataset.title,
        "path": [p["path"] for p in part_info] if len(part_info) != 1 else part_info[0]["path"],
        "format": "parquet",
        "mediatype": "application/vnd.apache.parquet",
        "bytes": sum(p["bytes"] for p in part_info),
        "schema": resource_schema,
        "partage:rows": summary["rows"],
        "partage:parts": part_info,
    }
    if len(part_info) == 1:
        resource["hash"] = f"sha256:{part_info[0]['sha256']}"
    return {
        "name": dataset.id,
        "title": dataset.title,
        "description": dataset.description,
        "version": version,
        "keywords": list(dataset.keywords),
        "licenses": [license_descriptor(dataset.license)],
        "sources": sources,
        "contributors": [{"title": dataset.publisher, "role": "publisher"}] if dataset.publisher else [],
        "resources": [resource],
        "partage:access": dataset.access,
        "partage:schema": {"ref": schema_ref, "sha256": schema_sha256},
        "partage:validation": summary,
    }


def build_for_publication(dataset: Dataset, info: VersionInfo, files: list[ExportFile]) -> dict[str, Any]:
    """The descriptor of a published dataset: its CSV (conforming to the schema) and its Parquet."""
    schema = info.schema
    by_role = {f.role: f for f in files}
    provenance = [
        {"name": SOURCE_COLUMN, "type": "string", "description": "Partage: the source this row came from"},
        {"name": ROW_COLUMN, "type": "integer", "description": "Partage: row number in the source file"},
    ]
    csv, parquet = by_role["data-csv"], by_role["data-parquet"]
    sources = []
    for s in dataset.sources:
        if s.kind == "file":
            sources.append({"title": s.name or "dépôt de fichiers d'un partenaire"})
        else:
            from ..fetch import redact

            sources.append({"title": s.name or redact(s.location), "path": redact(s.location)})
    return {
        "name": dataset.id,
        "title": dataset.title,
        "description": dataset.description,
        "version": info.version,
        "created": info.created_at.isoformat(timespec="seconds"),
        "keywords": list(dataset.keywords),
        "licenses": [license_descriptor(dataset.license)],
        "sources": sources,
        "contributors": [{"title": dataset.publisher, "role": "publisher"}] if dataset.publisher else [],
        "resources": [
            {"name": "data-csv", "path": csv.path.name, "format": "csv", "mediatype": "text/csv", "encoding": "utf-8",
             "bytes": csv.bytes, "hash": f"sha256:{csv.sha256}", "schema": schema,
             "dialect": {"delimiter": ",", "header": True}},
            {"name": "data-parquet", "path": parquet.path.name, "format": "parquet",
             "mediatype": "application/vnd.apache.parquet", "bytes": parquet.bytes, "hash": f"sha256:{parquet.sha256}",
             "schema": {**schema, "fields": list(schema.get("fields", [])) + provenance}},
        ],
        "partage:schema": {"ref": info.schema_ref, "sha256": info.schema_sha256},
        "partage:validation": info.summary,
        "partage:rows": info.row_count,
    }
