"""``ods:`` sources: Opendatasoft portals, Explore API v2.1 and v2.0.

``dataset: <dataset_id>`` harvests one dataset; otherwise the catalog is
searched (``q``, ``tags`` as keyword refinements) and each dataset found is
harvested. Each dataset becomes one export, in the first of ``formats``
(csv by default; parquet and geojson too).

Exports are asked for with the options that keep them stable from run to run:
field names rather than labels as headers (``use_labels=false``), dates in
UTC, coordinates in WGS 84. The dataset's ``data_processed`` date (else
``modified``) is the portal's modification date used by change detection,
since exports carry no ETag.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from ..catalog import Source
from ..errors import FetchError, PortalError
from ..fetch import redact
from .portal import Listed, PageGuard, auth_headers, get_json

EXPORTS = {"csv": "csv", "parquet": "parquet", "geojson": "geojson", "json": "json"}
PAGE_SIZE = 100


def _export_options(version: str, fmt: str) -> dict[str, str]:
    opts = {"timezone": "UTC"}
    if fmt == "csv":
        opts.update({"use_labels": "false", "delimiter": ";"} if version == "v2.1" else
                    {"use_labels_for_header": "false", "delimiter": ";"})
    if fmt == "geojson":
        opts["epsg"] = "4326"
    return opts


def _metas(item: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """(dataset_id, default metas) from a v2.1 result or a v2.0 {dataset: …} entry."""
    ds: dict[str, Any] = item["dataset"] if isinstance(item.get("dataset"), dict) else item
    metas: dict[str, Any] = ds.get("metas") if isinstance(ds.get("metas"), dict) else {}  # type: ignore[assignment]
    default: dict[str, Any] = metas["default"] if isinstance(metas.get("default"), dict) else metas
    ds_id = ds.get("dataset_id")
    return (str(ds_id) if ds_id else None), default


def _one(base: str, dataset: str, headers: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """The dataset's metadata and the API version that answered (v2.1 first, then v2.0)."""
    for version, path in (("v2.1", "/api/explore/v2.1/catalog/datasets/"), ("v2.0", "/api/v2/catalog/datasets/")):
        try:
            data, _ = get_json(f"{base}{path}{quote(dataset, safe='')}", headers=headers, what="the Opendatasoft portal")
            if isinstance(data, dict):
                return version, data
        except FetchError as e:
            if e.status != 404:
                raise
    raise PortalError(f"{redact(base)}: dataset {dataset!r} not found through Explore API v2.1 nor v2.0; "
                      "check the dataset id (the last part of its page's URL)")


def _search(base: str, src: Source, headers: dict[str, str]) -> tuple[str, list[dict[str, Any]]]:
    items: list[dict[str, Any]] = []
    url = f"{base}/api/explore/v2.1/catalog/datasets"
    where = [f'search("{src.q}")'] if src.q else []
    where += [f'keyword = "{t}"' for t in src.tags]
    if src.organization:
        where.append(f'publisher = "{src.organization}"')
    guard = PageGuard(url)
    offset, version = 0, "v2.1"
    while True:
        params = {"limit": str(PAGE_SIZE), "offset": str(offset)}
        if where:
            params["where"] = " and ".join(where)
        try:
            page, doc = get_json(url, params=params, headers=headers, what="the Opendatasoft portal")
        except FetchError as e:
            if e.status != 404 or version != "v2.1" or offset:
                raise
            return "v2.0", _search_v20(base, src, headers)
        results = page.get("results") if isinstance(page, dict) else None
        if not isinstance(results, list):
            raise PortalError(f"{redact(doc.url)}: no 'results' list; is it an Opendatasoft portal?")
        guard.page(doc.url, doc.body, [str(_metas(r)[0]) for r in results if isinstance(r, dict)])
        items += [r for r in results if isinstance(r, dict)]
        offset += len(results)
        if not results or offset >= int(page.get("total_count") or 0):
            return version, items


def _search_v20(base: str, src: Source, headers: dict[str, str]) -> list[dict[str, Any]]:
    """v2.0 lists with links rel=next; a portal that keeps answering the same page is stopped."""
    params: dict[str, str] = {"rows": str(PAGE_SIZE)}
    if src.q:
        params["where"] = src.q
    for t in src.tags:
        params["refine.keyword"] = t
    url: str | None = f"{base}/api/v2/catalog/datasets?{urlencode(params)}"
    guard = PageGuard(url or base)
    items: list[dict[str, Any]] = []
    while url:
        page, doc = get_json(url, headers=headers, what="the Opendatasoft portal")
        results = page.get("datasets") if isinstance(page, dict) else None
        if not isinstance(results, list):
            raise PortalError(f"{redact(doc.url)}: no 'datasets' list; is it an Opendatasoft portal?")
        guard.page(doc.url, doc.body, [str(_metas(r)[0]) for r in results if isinstance(r, dict)])
        items += [r for r in results if isinstance(r, dict)]
        nxt = [link.get("href") for link in page.get("links") or [] if isinstance(link, dict) and link.get("rel") == "next"]
        url = str(nxt[0]) if nxt and results else None
    return items


def _attachments(base: str, version: str, ds_id: str, ds: dict[str, Any], modified: str | None,
                 formats: list[str]) -> list[Listed]:
    from .portal import format_matches

    root = "/api/explore/v2.1/catalog/datasets/" if version == "v2.1" else "/api/v2/catalog/datasets/"
    out = []
    for att in ds.get("attachments") or []:
        if not isinstance(att, dict) or not att.get("id"):
            continue
        url = f"{base}{root}{quote(ds_id, safe='')}/attachments/{quote(str(att['id']), safe='')}"
        item = Listed(url, f"{ds_id}/{att['id']}", att.get("mimetype"), modified, None)
        if format_matches(item, formats):
            out.append(item)
    return out


def list_resources(src: Source) -> list[Listed]:
    base = src.location.rstrip("/")
    for suffix in ("/api/explore/v2.1", "/api/v2"):
        base = base.removesuffix(suffix)
    headers = auth_headers(src.auth, raw_token=False)
    if "Authorization" in headers and headers["Authorization"].startswith("Bearer "):
        headers["Authorization"] = "Apikey " + headers["Authorization"][len("Bearer "):]  # Opendatasoft's scheme
    fmt = next((f.lower() for f in src.formats if f.lower() in EXPORTS), "csv")
    if src.dataset:
        version, one = _one(base, src.dataset, headers)
        found = [(version, one)]
    else:
        version, items = _search(base, src, headers)
        found = [(version, i) for i in items]
    listed = []
    for version, item in found:
        ds_id, metas = _metas(item)
        if not ds_id:
            continue
        ds = item["dataset"] if isinstance(item.get("dataset"), dict) else item
        modified = metas.get("data_processed") or metas.get("modified")
        if ds.get("has_records") is False:  # a dataset of files: its attachments are the resources
            listed += _attachments(base, version, ds_id, ds, str(modified) if modified else None, src.formats)
            continue
        path = (f"/api/explore/v2.1/catalog/datasets/{quote(ds_id, safe='')}/exports/{EXPORTS[fmt]}" if version == "v2.1"
                else f"/api/v2/catalog/datasets/{quote(ds_id, safe='')}/exports/{EXPORTS[fmt]}")
        url = f"{base}{path}?{urlencode(_export_options(version, fmt))}"
        listed.append(Listed(url, f"{ds_id}.{fmt}", fmt, str(modified) if modified else None, None))
    return listed
