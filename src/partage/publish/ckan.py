"""Publishing catalog entries to a CKAN portal with ckanapi — idempotent and access-safe.

For each dataset we compute the package the portal *should* hold, read what it
holds (``package_show``), and write only the difference: ``package_patch`` with
the changed fields, ``resource_patch`` with a new upload only when a file's
sha256 (kept in CKAN's ``hash`` field) changed. An unchanged republish is reads
only, so ``metadata_modified`` does not move and the portal's harvesters and
followers are not woken up for nothing.

Access: ``open`` -> public; ``partners`` -> private dataset of the organization;
``internal`` -> never sent (and taken down at once if it was sent before).
A dataset that left the catalog is deleted on the portal (CKAN's soft delete,
never purged) after a grace period.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from .. import USER_AGENT
from ..catalog import CatalogEntry, CkanTarget
from ..errors import PartageError, TerminalError
from ..store.warehouse import Publication, VersionInfo, Warehouse, now
from .exports import ExportFile, exports
from .plan import PlanItem, ResourceChange

log = logging.getLogger("partage.publish.ckan")

RESOURCE_NAMES = {
    "data-parquet": "Données (Parquet)",
    "data-csv": "Données (CSV)",
    "schema": "Schéma des données (Table Schema, JSON)",
    "report": "Rapport de validation (JSON)",
}
RESOURCE_DESCRIPTIONS = {
    "data-parquet": "Toutes les lignes valides, typées, avec leur provenance (_source, _row_number).",
    "data-csv": "Les lignes valides au format CSV (UTF-8, virgule), conformes au schéma publié.",
    "schema": "Le schéma Table Schema contre lequel ces données ont été validées.",
    "report": "Le rapport de validation de chaque source (format frictionless).",
}
PACKAGE_FIELDS = ("title", "notes", "license_id", "author", "private", "owner_org", "tags", "extras")


class PublishError(TerminalError):
    """A portal refused a write (validation, authorization): retrying will not help."""


class CkanClient:
    """ckanapi with retries on transient failures and a count of write calls. Never logs the token."""

    def __init__(self, url: str, token: str | None):
        import ckanapi

        self.url = url.rstrip("/")
        self.api = ckanapi.RemoteCKAN(self.url, apikey=token, user_agent=USER_AGENT)
        self.writes = 0
        self.reads = 0
        self.attempts = int(os.environ.get("PARTAGE_RETRY_ATTEMPTS", 4))
        self.backoff = float(os.environ.get("PARTAGE_RETRY_BACKOFF", 1.0))
        self.timeout = (float(os.environ.get("PARTAGE_CONNECT_TIMEOUT", 15)), float(os.environ.get("PARTAGE_READ_TIMEOUT", 120)))

    def _call(self, action: str, data: dict[str, Any], files: dict[str, Any] | None = None) -> Any:
        import ckanapi
        import requests

        for attempt in range(1, self.attempts + 1):
            opened = {k: open(v, "rb") for k, v in (files or {}).items()}
            try:
                # ckanapi sets no timeout: a portal that stops answering would hang the run for ever
                return self.api.call_action(action, data, files=opened or None,
                                            requests_kwargs={"timeout": self.timeout})
            except (ckanapi.NotFound, ckanapi.NotAuthorized, ckanapi.ValidationError, ckanapi.SearchError):
                raise
            except (ckanapi.CKANAPIError, requests.RequestException) as e:
                if attempt == self.attempts:
                    raise PartageError(f"{self.url}: {action} failed after {attempt} attempts ({type(e).__name__}: {str(e)[:200]})") from None
                wait = self.backoff * 2 ** (attempt - 1)
                log.info("%s: %s failed (%s); retry %d/%d in %.1fs", self.url, action, type(e).__name__, attempt,
                         self.attempts - 1, wait)
                time.sleep(wait)
            finally:
                for f in opened.values():
                    f.close()
        raise AssertionError("unreachable")

    def read(self, action: str, **data: Any) -> Any:
        self.reads += 1
        return self._call(action, data)

    def write(self, action: str, files: dict[str, Any] | None = None, **data: Any) -> Any:
        self.writes += 1
        log.debug("%s: %s %s", self.url, action, data.get("name") or data.get("id") or "")
        return self._call(action, data, files)


def frequency(schedule: str | None) -> str:
    """A rough update frequency from the cron schedule, in CKAN/DCAT words."""
    if not schedule:
        return "irregular"
    minute, hour, dom, month, dow = schedule.split()
    if dom == "*" and month == "*" and dow == "*":
        return "hourly" if hour == "*" or "/" in hour else "daily"
    if dom == "*" and month == "*":
        return "weekly"
    if month == "*":
        return "monthly"
    return "annual" if dom != "*" and month.isdigit() else "irregular"


def _source_titles(entry: CatalogEntry) -> list[str]:
    """Provenance safe for a portal: URLs as given (never with credentials), partner drops by name."""
    from ..fetch import redact

    titles = []
    for s in entry.dataset.sources:
        if s.kind == "url":
            titles.append(redact(s.location))
        elif s.kind == "file":
            titles.append(s.name or "dépôt de fichiers d'un partenaire")
        else:
            titles.append(f"{s.kind}: {s.location}")
    return titles


def desired_package(entry: CatalogEntry, info: VersionInfo, org_id: str) -> dict[str, Any]:
    ds = entry.dataset
    quality = {k: info.summary.get(k) for k in ("valid", "rows", "quarantined", "errors")}
    extras = {
        "partage_version": info.version,
        "partage_updated": info.created_at.isoformat(timespec="seconds"),
        "partage_schema": info.schema_ref or "(inferred)",
        "partage_schema_sha256": info.schema_sha256 or "",
        "partage_rows": str(info.row_count),
        "partage_quality": json.dumps(quality, sort_keys=True),
        "partage_sources": json.dumps(_source_titles(entry), ensure_ascii=False),
        "frequency": frequency(ds.schedule),
    }
    return {
        "name": ds.id,
        "title": ds.title,
        "notes": ds.description,
        "license_id": ds.license,
        "author": ds.publisher or "",
        "private": ds.access == "partners",
        "owner_org": org_id,
        "tags": sorted(set(ds.keywords)),
        "extras": extras,
    }


def _current_view(pkg: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": pkg.get("title") or "",
        "notes": pkg.get("notes") or "",
        "license_id": pkg.get("license_id") or "",
        "author": pkg.get("author") or "",
        "private": bool(pkg.get("private")),
        "owner_org": pkg.get("owner_org"),
        "tags": sorted(t["name"] for t in pkg.get("tags", [])),
        "extras": {e["key"]: e["value"] for e in pkg.get("extras", [])},
    }


def _to_api(fields: dict[str, Any]) -> dict[str, Any]:
    out = dict(fields)
    if "tags" in out:
        out["tags"] = [{"name": t} for t in out["tags"]]
    if "extras" in out:
        out["extras"] = [{"key": k, "value": v} for k, v in sorted(out["extras"].items())]
    return out


def published_name(dataset_id: str, export: ExportFile) -> str:
    """File name in the datapackage target's folder (the schema gets the dataset's name in front)."""
    return f"{dataset_id}-{export.path.name}" if export.role == "schema" else export.path.name


def _resource_fields(export: ExportFile, link: str | None) -> dict[str, Any]:
    fields = {
        "partage_role": export.role,
        "name": RESOURCE_NAMES[export.role],
        "description": RESOURCE_DESCRIPTIONS[export.role],
        "format": export.format,
        "hash": export.sha256,
    }
    if link is not None:
        fields["url"] = link
    return fields


class CkanPublisher:
    def __init__(self, name: str, target: CkanTarget, warehouse: Warehouse, client: CkanClient,
                 *, grace: timedelta = timedelta(days=7)):
        self.name = name
        self.target = target
        self.warehouse = warehouse
        self.client = client
        self.grace = grace
        self._org_id: str | None = None

    @property
    def writes(self) -> int:
        return self.client.writes

    def finish(self) -> None:
        """Nothing to flush: every write already went to the portal."""

    def org_id(self) -> str:
        if self._org_id is None:
            if not self.target.organization:
                raise PublishError(f"target {self.name}: 'organization' is required for CKAN (datasets belong to one)")
            try:
                self._org_id = self.client.read("organization_show", id=self.target.organization)["id"]
            except Exception as e:
                raise PublishError(f"target {self.name}: organization {self.target.organization!r} not found on "
                                   f"{self.client.url} ({type(e).__name__}); create it or fix _targets.yaml") from None
        return self._org_id

    def _show(self, name: str) -> dict[str, Any] | None:
        import ckanapi

        try:
            pkg = self.client.read("package_show", id=name)
        except ckanapi.NotFound:
            return None
        return pkg

    # -- planning ---------------------------------------------------------------

    def plan(self, entries: list[CatalogEntry], all_ids: set[str]) -> list[PlanItem]:
        """What publishing would do; only reads the portal."""
        published = self.warehouse.publications(self.name)
        items = [self._plan_entry(e, published.get(e.id)) for e in entries]
        for ds_id, pub in sorted(published.items()):
            if ds_id not in all_ids and pub.deleted_at is None:
                items.append(self._plan_removed(pub))
        return items

    def _plan_entry(self, entry: CatalogEntry, pub: Publication | None) -> PlanItem:
        ds = entry.dataset
        item = PlanItem(self.name, ds.id, "skip", "", access=ds.access)
        try:
            current = self._show(ds.id)
            if ds.access == "internal":
                if current is not None and current.get("state") != "deleted" and pub is not None:
                    item.action, item.remote_id = "delete", current["id"]
                    item.detail = "access is 'internal' now: taken down from the portal at once"
                else:
                    item.detail = "access 'internal': never sent to a portal"
                return item
            info = self.warehouse.latest_version_info(ds.id)
            if info is None:
                item.detail = "no version stored yet: run `partage harvest` first"
                return item
            if current is not None and "partage_version" not in {e["key"] for e in current.get("extras", [])} and pub is None:
                item.detail = (f"a dataset named {ds.id!r} already exists on the portal and was not published by "
                               "Partage; it is left alone (rename one of them)")
                return item
            files = exports(self.warehouse, info)
            desired = desired_package(entry, info, self.org_id())
            item.desired, item.version = desired, info.version
            if current is None or current.get("state") == "deleted":
                item.action = "create" if current is None else "update"
                item.remote_id = current["id"] if current else None
                item.changes = {k: desired[k] for k in PACKAGE_FIELDS}
                if current is not None:
                    item.changes["state"] = "active"
                item.resources = [ResourceChange(f.role, "create", export=f) for f in files]
                if current is not None:
                    item.resources = self._resource_changes(current, files, ds.id)
                item.detail = ("new dataset" if current is None else "restored (it was deleted on the portal)") + \
                    f", {len(files)} resources" + (" (private: partners only)" if desired["private"] else "")
                return item
            item.remote_id = current["id"]
            view = _current_view(current)
            item.changes = {k: desired[k] for k in PACKAGE_FIELDS if desired[k] != view[k]}
            item.resources = self._resource_changes(current, files, ds.id)
            if not item.changes and not item.resources:
                item.action, item.detail = "unchanged", f"version {info.version} already published"
            else:
                item.action = "update"
                what = [f"fields: {', '.join(sorted(item.changes))}"] if item.changes else []
                what += [f"{r.role}: {r.op}" for r in item.resources]
                item.detail = "; ".join(what)
        except PartageError as e:
            item.action, item.status, item.error, item.detail = "skip", "failed", str(e), str(e)
        except Exception as e:  # a portal answering nonsense must not stop the other datasets
            item.action, item.status = "skip", "failed"
            item.error = item.detail = f"{type(e).__name__}: {str(e)[:300]}"
        return item

    def _link(self, dataset_id: str, export: ExportFile) -> str | None:
        """In link mode, the URL of the file as the datapackage target serves it; None when uploading."""
        if self.target.resources != "link":
            return None
        from urllib.parse import quote

        base = (self.target.link_base_url or "").rstrip("/")
        return f"{base}/{quote(dataset_id)}/{quote(published_name(dataset_id, export))}"

    def _resource_changes(self, current: dict[str, Any], files: list[ExportFile], dataset_id: str) -> list[ResourceChange]:
        by_role = {r.get("partage_role"): r for r in current.get("resources", []) if r.get("partage_role")}
        changes = []
        for f in files:
            link = self._link(dataset_id, f)
            want = _resource_fields(f, link)
            have = by_role.pop(f.role, None)
            if have is None:
                changes.append(ResourceChange(f.role, "create", export=f))
            elif link is None and (have.get("hash") != f.sha256 or have.get("url_type") != "upload"):
                changes.append(ResourceChange(f.role, "upload", export=f, resource_id=have["id"]))
            else:
                diff = [k for k, v in want.items() if (have.get(k) or "") != v]
                if diff:
                    changes.append(ResourceChange(f.role, "patch", diff, export=f, resource_id=have["id"]))
        for role, r in by_role.items():
            changes.append(ResourceChange(str(role), "delete", resource_id=r["id"]))
        return changes

    def _plan_removed(self, pub: Publication) -> PlanItem:
        item = PlanItem(self.name, pub.dataset_id, "skip", "", remote_id=pub.remote_id, access=pub.access)
        since = pub.removed_since or now()
        item.removed_since = since
        if now() - since >= self.grace:
            item.action = "delete"
            item.detail = f"removed from the catalog on {since:%Y-%m-%d}: deleted on the portal (not purged)"
        else:
            item.detail = (f"removed from the catalog on {since:%Y-%m-%d}; deleted on the portal after "
                           f"{since + self.grace:%Y-%m-%d} (grace period)")
        return item

    # -- applying -------------------------------------------------------------------

    def apply(self, item: PlanItem, progress: Callable[[PlanItem], None] | None = None) -> PlanItem:
        if item.status == "failed":
            return item
        try:
            if item.action in ("create", "update"):
                self._apply_package(item)
            elif item.action == "delete":
                self._delete(item)
            elif item.action == "skip" and item.removed_since is not None:
                self._remember_removed(item)
            item.status = "done"
        except Exception as e:
            item.status, item.error = "failed", _explain(e)
        if progress:
            progress(item)
        return item

    def _apply_package(self, item: PlanItem) -> None:
        assert item.desired is not None
        if item.action == "create":
            fields = _to_api({k: item.desired[k] for k in PACKAGE_FIELDS})
            pkg = self.client.write("package_create", name=item.dataset_id, **fields)
            item.remote_id = pkg["id"]
        elif item.changes:
            self.client.write("package_patch", id=item.remote_id, **_to_api(item.changes))
        for r in item.resources:
            if r.op == "delete":
                self.client.write("resource_delete", id=r.resource_id)
                continue
            assert r.export is not None
            link = self._link(item.dataset_id, r.export)
            meta = _resource_fields(r.export, link)
            upload = {"upload": r.export.path}
            if r.op == "create" and link is not None:
                self.client.write("resource_create", package_id=item.remote_id, **meta)
            elif r.op == "create":
                self.client.write("resource_create", files=upload, package_id=item.remote_id, url="", **meta)
            elif r.op == "upload":
                self.client.write("resource_patch", files=upload, id=r.resource_id, url="", **meta)
            else:
                self.client.write("resource_patch", id=r.resource_id, **{k: meta[k] for k in r.fields})
        self.warehouse.record_publication(Publication(
            self.name, item.dataset_id, item.remote_id, item.dataset_id, item.access, item.version, now(), None, None))

    def _delete(self, item: PlanItem) -> None:
        if item.access == "internal":  # first make sure nobody can read it, then delete
            self.client.write("package_patch", id=item.remote_id, private=True)
        self.client.write("package_delete", id=item.remote_id)
        self.warehouse.record_publication(Publication(
            self.name, item.dataset_id, item.remote_id, item.dataset_id, item.access, None, None,
            item.removed_since, now()))

    def _remember_removed(self, item: PlanItem) -> None:
        pubs = self.warehouse.publications(self.name)
        pub = pubs.get(item.dataset_id)
        if pub is not None and pub.removed_since is None:
            self.warehouse.record_publication(Publication(
                pub.target, pub.dataset_id, pub.remote_id, pub.remote_name, pub.access, pub.version,
                pub.published_at, item.removed_since, None))


def _explain(e: Exception) -> str:
    import ckanapi

    if isinstance(e, ckanapi.NotAuthorized):
        return "the portal refused the write (not authorized): check the API token's rights on the organization"
    if isinstance(e, ckanapi.ValidationError):
        return f"the portal rejected the dataset: {e.error_dict if hasattr(e, 'error_dict') else e}"
    return f"{type(e).__name__}: {str(e)[:300]}"
