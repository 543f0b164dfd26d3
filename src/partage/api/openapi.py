"""The OpenAPI document, generated from the real schemas of the datasets a caller may read.

Besides the generic paths (``/datasets/{dataset_id}/rows``…), each readable
dataset gets its own paths, ``/datasets/<id>/rows`` with one documented query
parameter per column and operator, typed from the stored Parquet columns and
titled from the Table Schema, and a ``Rows_<id>`` component describing a row.
A caller without a token sees only the open datasets, so the document itself
leaks nothing.
"""

from __future__ import annotations

import re
from typing import Any

from .catalog_cache import Column, Dataset
from .exports import is_geopoint
from .query import OPERATORS, RESERVED

NULLABLE = ["null"]


def json_type(column: Column) -> dict[str, Any]:
    t = column.sql_type.upper()
    if t in ("BIGINT", "INTEGER", "HUGEINT", "SMALLINT", "TINYINT"):
        out: dict[str, Any] = {"type": ["integer", "null"]}
    elif t in ("DOUBLE", "FLOAT", "REAL") or t.startswith("DECIMAL"):
        out = {"type": ["number", "null"]}
    elif t == "BOOLEAN":
        out = {"type": ["boolean", "null"]}
    elif t == "DATE":
        out = {"type": ["string", "null"], "format": "date"}
    elif t.startswith("TIMESTAMP"):
        out = {"type": ["string", "null"], "format": "date-time"}
    elif t.startswith("STRUCT") and "LON" in t and "LAT" in t:
        out = {"type": ["object", "null"], "properties": {"lon": {"type": "number"}, "lat": {"type": "number"}}}
    elif t == "VARCHAR" or t.startswith("TIME"):
        out = {"type": ["string", "null"]}
    else:
        out = {}
    f = column.field or {}
    if f.get("title"):
        out["title"] = f["title"]
    desc = f.get("description") or ("where the row came from" if column.name == "_source" else
                                    "the row's number in its source file" if column.name == "_row_number" else None)
    if desc:
        out["description"] = desc
    return out


def _param_schema(column: Column, op: str) -> dict[str, Any]:
    if op in ("isnull", "isnotnull"):
        return {"type": "string", "enum": ["", "true"]}
    if op in ("contains", "in") or not column.sql_type.upper().startswith(
            ("BIGINT", "INTEGER", "DOUBLE", "BOOLEAN", "DATE", "TIMESTAMP")):
        return {"type": "string"}
    base = {k: v for k, v in json_type(column).items() if k in ("type", "format")}
    base["type"] = base["type"][0]
    return base


def _common_params() -> list[dict[str, Any]]:
    return [
        {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1}},
        {"name": "page_size", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 20},
         "description": "rows per page; the server's cap applies (default 50)"},
        {"name": "columns", "in": "query", "schema": {"type": "string"}, "description": "comma-separated columns to return"},
        {"name": "sort", "in": "query", "schema": {"type": "string"},
         "description": "comma-separated columns, '-' before a column for descending"},
        {"name": "version", "in": "query", "schema": {"type": "string"},
         "description": "read this version (see GET /datasets/{id}); the `next` links pin it"},
        {"name": "as_of", "in": "query", "schema": {"type": "string"},
         "description": "read the version that was the latest at this date or datetime (ISO 8601)"},
    ]


ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "bad parameter (the message lists the allowed operators and columns)",
            404: "no such dataset or version, or not readable with your token",
            410: "the version was removed by retention", 503: "the query took longer than the server's time limit"}
    return {str(c): {"description": text[c], "content": {"application/json": {"schema": ERROR}}} for c in codes}


def _rows_response(schema_ref: dict[str, Any]) -> dict[str, Any]:
    return {"description": "a page of rows", "content": {"application/json": {"schema": {
        "type": "object", "required": ["data", "meta", "links"],
        "properties": {"data": {"type": "array", "items": schema_ref},
                       "meta": {"$ref": "#/components/schemas/PageMeta"},
                       "links": {"$ref": "#/components/schemas/PageLinks"}}}}}}


def _export_responses() -> dict[str, Any]:
    return {"200": {"description": "the whole (filtered) version, streamed",
                    "content": {"text/csv": {"schema": {"type": "string"}},
                                "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
                                "application/geo+json": {"schema": {"type": "object"}}}},
            **_errors(400, 404, 410, 503)}


def component_name(dataset_id: str) -> str:
    return "Rows_" + re.sub(r"[^A-Za-z0-9_.-]", "_", dataset_id)


def build(datasets: list[tuple[Dataset, tuple[Column, ...] | None]], *, title: str, version: str,
          max_page_size: int) -> dict[str, Any]:
    id_param = {"name": "dataset_id", "in": "path", "required": True, "schema": {"type": "string"}}
    ops = ", ".join(f"`__{k}` ({v})" for k, v in OPERATORS.items())
    paths: dict[str, Any] = {
        "/datasets": {"get": {"summary": "The datasets you may read", "operationId": "list_datasets",
                              "responses": {"200": {"description": "the catalog", "content": {"application/json": {
                                  "schema": {"$ref": "#/components/schemas/DatasetList"}}}}}}},
        "/datasets/{dataset_id}": {"get": {
            "summary": "A dataset: metadata, schema, versions, quality", "operationId": "get_dataset",
            "parameters": [id_param],
            "responses": {"200": {"description": "the dataset", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/DatasetDetail"}}}}, **_errors(404)}}},
        "/datasets/{dataset_id}/rows": {"get": {
            "summary": "Rows of a dataset, filtered, sorted, paginated", "operationId": "get_rows",
            "description": f"Filters: COLUMN__OPERATOR=VALUE with {ops}. Sort: COLUMN__sort=asc|desc. "
                           f"At most {max_page_size} rows a page. Per-dataset paths below document each column.",
            "parameters": [id_param, *_common_params()],
            "responses": {"200": _rows_response({"type": "object"}), **_errors(400, 404, 410, 503)}}},
        "/datasets/{dataset_id}/export.{format}": {"get": {
            "summary": "The whole (filtered) version as CSV, Parquet or GeoJSON (needs a geopoint column)",
            "operationId": "export", "parameters": [
                id_param, {"name": "format", "in": "path", "required": True,
                           "schema": {"type": "string", "enum": ["csv", "parquet", "geojson"]}},
                *[p for p in _common_params() if p["name"] not in ("page", "page_size")]],
            "responses": _export_responses()}},
    }
    schemas: dict[str, Any] = {
        "Error": {"type": "object", "required": ["detail"], "properties": {"detail": {"type": "string"}},
                  "additionalProperties": True},
        "PageMeta": {"type": "object", "required": ["dataset", "version", "page", "page_size", "total"],
                     "properties": {"dataset": {"type": "string"}, "version": {"type": "string"},
                                    "page": {"type": "integer"}, "page_size": {"type": "integer"},
                                    "total": {"type": "integer"}}},
        "PageLinks": {"type": "object", "properties": {
            "next": {"type": ["string", "null"]}, "prev": {"type": ["string", "null"]},
            "dataset": {"type": "string"}}},
        "DatasetSummary": {"type": "object", "required": ["id", "title", "access", "links"], "properties": {
            "id": {"type": "string"}, "title": {"type": "string"}, "description": {"type": "string"},
            "publisher": {"type": ["string", "null"]}, "license": {"type": ["string", "null"]},
            "access": {"type": "string", "enum": ["open", "partners", "internal"]},
            "keywords": {"type": "array", "items": {"type": "string"}},
            "schema": {"type": ["string", "null"]}, "latest_version": {"type": ["string", "null"]},
            "last_update": {"type": ["string", "null"], "format": "date-time"},
            "last_check": {"type": ["string", "null"], "format": "date-time"},
            "rows": {"type": ["integer", "null"]}, "quarantined": {"type": ["integer", "null"]},
            "source_states": {"type": "object", "additionalProperties": {"type": "integer"}},
            "links": {"type": "object", "additionalProperties": {"type": "string"}}}},
        "DatasetList": {"type": "object", "required": ["data", "meta"], "properties": {
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/DatasetSummary"}},
            "meta": {"type": "object"}}},
        "DatasetDetail": {"allOf": [{"$ref": "#/components/schemas/DatasetSummary"}, {"type": "object", "properties": {
            "columns": {"type": "array", "items": {"type": "object"}},
            "table_schema": {"type": "object"}, "versions": {"type": "array", "items": {"type": "object"}},
            "quality": {"type": "object"}}}]},
    }
    for ds, columns in datasets:
        if columns is None:
            continue
        name = component_name(ds.id)
        schemas[name] = {"type": "object", "title": ds.title,
                         "properties": {c.name: json_type(c) for c in columns}}
        params = _common_params()
        for c in columns:
            label = (c.field or {}).get("title") or c.name
            for op, text in OPERATORS.items():
                params.append({"name": f"{c.name}__{op}", "in": "query", "schema": _param_schema(c, op),
                               "description": f"{label}: {text}"})
            params.append({"name": f"{c.name}__sort", "in": "query",
                           "schema": {"type": "string", "enum": ["asc", "desc"]}, "description": f"sort by {label}"})
        base = f"/datasets/{ds.id}"
        paths[base] = {"get": {"summary": ds.title, "operationId": f"get_dataset_{ds.id}", "tags": [ds.id],
                               "responses": paths["/datasets/{dataset_id}"]["get"]["responses"]}}
        paths[base + "/rows"] = {"get": {
            "summary": f"Rows of {ds.title}", "operationId": f"get_rows_{ds.id}", "tags": [ds.id],
            "description": ds.description, "parameters": params,
            "responses": {"200": _rows_response({"$ref": f"#/components/schemas/{name}"}),
                          **_errors(400, 404, 410, 503)}}}
        export_params = [p for p in params if p["name"] not in ("page", "page_size")]
        formats = ("csv", "parquet", "geojson") if any(is_geopoint(c) for c in columns) else ("csv", "parquet")
        for fmt in formats:
            paths[f"{base}/export.{fmt}"] = {"get": {
                "summary": f"{ds.title} as {fmt}", "operationId": f"export_{fmt}_{ds.id}", "tags": [ds.id],
                "parameters": export_params, "responses": _export_responses()}}
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version,
                 "description": "Read-only tabular API over the Partage warehouse. Open datasets need no token; "
                                "partners and internal datasets need `Authorization: Bearer <token>`. "
                                f"Reserved parameters: {', '.join(RESERVED)}."},
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{}, {"bearer": []}],
    }
