"""``udata:`` sources: data.gouv.fr and the other udata portals, through API v1.

* ``dataset: <id or slug>``: that dataset's resources;
* ``organization: <id or slug>``: every dataset of the organization;
* ``schema: etalab/schema-irve-statique``: every resource that declares this
  schema, across the portal — the national consolidation use case (only the
  resources declaring it are kept, not their siblings);
* ``tags`` / ``q``: a dataset search.

``formats`` keeps the resources in those formats. Pages are followed through
``next_page`` under the paging guard.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from ..catalog import Source
from ..errors import PortalError
from ..fetch import redact
from .portal import Listed, PageGuard, auth_headers, format_matches, get_json

PAGE_SIZE = "100"


def _pages(first: str, params: dict[str, str], headers: dict[str, str]) -> list[dict[str, Any]]:
    datasets: list[dict[str, Any]] = []
    guard = PageGuard(first)
    url: str | None = first
    query: dict[str, str] | None = params
    while url:
        page, doc = get_json(url, params=query, headers=headers, what="the udata portal")
        if isinstance(page, list):  # older udata answers a bare list, without paging
            page = {"data": page}
        data = page.get("data") if isinstance(page, dict) else None
        if not isinstance(data, list):
            raise PortalError(f"{redact(doc.url)}: no 'data' list in the answer; is it a udata API v1 address?")
        guard.page(doc.url, doc.body, [str(d.get("id")) for d in data if isinstance(d, dict)])
        datasets += [d for d in data if isinstance(d, dict)]
        nxt = page.get("next_page")
        url, query = (str(nxt), None) if nxt and data else (None, None)
    return datasets


def list_resources(src: Source) -> list[Listed]:
    base = src.location.rstrip("/")
    api = base if base.endswith("/api/1") else f"{base}/api/1"
    headers = auth_headers(src.auth)
    if src.dataset:
        one, doc = get_json(f"{api}/datasets/{quote(src.dataset, safe='')}/", headers=headers, what="the udata portal")
        if not isinstance(one, dict) or "resources" not in one:
            raise PortalError(f"{redact(doc.url)}: not a udata dataset (no 'resources'); check the dataset id")
        datasets = [one]
    elif src.organization and not (src.schema_ or src.tags or src.q):
        datasets = _pages(f"{api}/organizations/{quote(src.organization, safe='')}/datasets/",
                          {"page_size": PAGE_SIZE}, headers)
    else:
        params = {"page_size": PAGE_SIZE}
        if src.schema_:
            params["schema"] = src.schema_
        if src.organization:
            params["organization"] = src.organization
        if src.q:
            params["q"] = src.q
        for t in src.tags:
            params["tag"] = t  # the API takes one tag; the others are checked below
        datasets = _pages(f"{api}/datasets/", params, headers)
        if src.tags:
            wanted = set(src.tags)
            datasets = [d for d in datasets if wanted <= set(d.get("tags") or [])]
    listed: list[Listed] = []
    for ds in datasets:
        for res in ds.get("resources") or []:
            if not isinstance(res, dict) or not res.get("url"):
                continue
            if src.schema_ and ((res.get("schema") or {}).get("name") if isinstance(res.get("schema"), dict) else None) != src.schema_:
                continue
            size = res.get("filesize")
            internal: dict[str, Any] = res["internal"] if isinstance(res.get("internal"), dict) else {}
            modified = res.get("last_modified") or internal.get("last_modified_internal")
            item = Listed(str(res["url"]).strip(), res.get("id"), res.get("format") or res.get("mime"),
                          str(modified) if modified else None, size if isinstance(size, int) else None)
            if format_matches(item, src.formats):
                listed.append(item)
    return listed
