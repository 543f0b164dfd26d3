"""``ckan:`` sources: the resources of a CKAN portal's datasets, found with ``package_search``.

Filters: ``organization``, ``tags``, ``q``, or one ``dataset`` (name or id);
``formats`` keeps the resources in those formats. With ``auth: {bearer:
env:TOKEN}`` the token (a CKAN API token) is sent to the portal, private
datasets of the organizations it may read are included, and their uploads are
downloaded with it (never from another host).

ckanapi makes the calls (GET only, so a read-only mirror or a cache can answer);
each call holds a slot of the portal's host, has a timeout, and is retried on
transient errors only.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any

from .. import USER_AGENT
from ..catalog import Source
from ..errors import PortalError, TransientFetchError
from ..fetch import RetryPolicy, host_slot, redact
from .portal import Listed, PageGuard, auth_headers, format_matches

PAGE_SIZE = 100


def _call(api: Any, url: str, action: str, params: dict[str, Any], retry: RetryPolicy) -> tuple[Any, bytes]:
    import ckanapi
    import requests

    timeout = (float(os.environ.get("PARTAGE_CONNECT_TIMEOUT", 15)), float(os.environ.get("PARTAGE_READ_TIMEOUT", 120)))
    where = f"{redact(url)} ({action})"
    for attempt in range(1, retry.attempts + 1):
        try:
            with host_slot(url):
                result = api.call_action(action, params, requests_kwargs={"timeout": timeout})
            return result, json.dumps(result, sort_keys=True, default=str).encode()
        except ckanapi.NotFound:
            raise PortalError(f"{where}: not found; check the organization or dataset name") from None
        except ckanapi.NotAuthorized:
            raise PortalError(f"{where}: not authorized; check the token in 'auth:' (a CKAN API token)") from None
        except ckanapi.CKANAPIError as e:
            text = str(e)
            m = re.match(r"""^\[['"].*?['"], (\d{3}),""", text)
            status = int(m.group(1)) if m else 0
            if status in (408, 425, 429, 500, 502, 503, 504):
                last: Exception = TransientFetchError(f"{where} answered HTTP {status}", url=redact(url))
            elif status == 404:
                raise PortalError(f"{where} answered HTTP 404: is {redact(url)} a CKAN portal's root address, "
                                  "and the dataset name right?") from None
            elif "<html" in text.lower() or "<!doctype" in text.lower():
                raise PortalError(f"{where} answered an HTML page instead of JSON: is {redact(url)} the CKAN "
                                  "portal's root address (its API under /api/3/action)?") from None
            else:
                raise PortalError(f"{where}: the portal's answer is not a CKAN API answer ({text[:200]})") from None
        except (requests.Timeout, requests.ConnectionError) as e:
            last = TransientFetchError(f"{where}: {'timed out' if isinstance(e, requests.Timeout) else 'connection failed'}",
                                       url=redact(url))
        except ValueError as e:  # invalid JSON
            raise PortalError(f"{where} did not answer JSON ({e}); check the portal address") from None
        if attempt < retry.attempts:
            time.sleep(retry.wait(attempt, None))
    raise TransientFetchError(f"{last} (gave up after {retry.attempts} attempts; will try again next run)", url=redact(url))


def list_resources(src: Source) -> list[Listed]:
    import ckanapi

    url = src.location.rstrip("/")
    headers = auth_headers(src.auth, raw_token=True)
    token = headers.pop("Authorization", None)
    api = ckanapi.RemoteCKAN(url, apikey=token, user_agent=USER_AGENT, get_only=True)
    if headers:
        api.session.headers.update(headers)
    retry = RetryPolicy.from_env()
    packages: list[dict[str, Any]] = []
    if src.dataset:
        pkg, _ = _call(api, url, "package_show", {"id": src.dataset}, retry)
        packages += pkg if isinstance(pkg, list) else [pkg]  # DKAN answers a list of one
    else:
        fq = []
        if src.organization:
            fq.append(f'organization:"{src.organization}"')
        fq += [f'tags:"{t}"' for t in src.tags]
        params: dict[str, Any] = {"q": src.q or "*:*", "rows": PAGE_SIZE, "sort": "name asc"}
        if fq:
            params["fq"] = " AND ".join(fq)
        if token:
            params["include_private"] = True
        guard = PageGuard(f"{url}/api/3/action/package_search")
        start = 0
        while True:
            page, body = _call(api, url, "package_search", {**params, "start": start}, retry)
            results = page.get("results") if isinstance(page, dict) else None
            if not isinstance(results, list):
                raise PortalError(f"{redact(url)} (package_search): no 'results' list in the answer; is it a CKAN portal?")
            guard.page(f"{url}/api/3/action/package_search?start={start}", body, [str(p.get("id")) for p in results])
            packages += results
            start += len(results)
            count = int(page.get("count") or 0)
            if not results or start >= count:
                break
    listed: list[Listed] = []
    for pkg in packages:
        if not isinstance(pkg, dict):
            continue
        for res in pkg.get("resources") or []:
            if not isinstance(res, dict) or not res.get("url") or str(res.get("state") or "active").lower() != "active":
                continue
            size = res.get("size")
            item = Listed(
                url=str(res["url"]).strip(), remote_id=res.get("id"), format=res.get("format") or res.get("mimetype"),
                modified=res.get("last_modified") or res.get("metadata_modified") or pkg.get("metadata_modified"),
                size=int(size) if isinstance(size, int | str) and str(size).isdigit() else None,
            )
            if format_matches(item, src.formats):
                listed.append(item)
    return listed
