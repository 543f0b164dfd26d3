"""Publication targets of ``catalog/_targets.yaml`` behind one interface: plan, apply, finish.

``ckan`` targets talk to a portal; ``dcat`` and ``datapackage`` targets write
files meant to be served publicly, so they only ever contain ``open`` datasets.
Relative target paths are read from the project directory (the catalog's parent).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Protocol

from ..catalog import (
    Catalog,
    CatalogEntry,
    CkanTarget,
    DataPackageTarget,
    DcatTarget,
    Target,
)
from ..credentials import resolve
from ..errors import PartageError
from ..rawstore import copy_or_link
from ..store.warehouse import Publication, VersionInfo, Warehouse, now
from . import datapackage
from .ckan import published_name
from .exports import ExportFile, exports
from .plan import PlanItem

log = logging.getLogger("partage.publish")


class Publisher(Protocol):
    name: str

    def plan(self, entries: list[CatalogEntry], all_ids: set[str]) -> list[PlanItem]: ...
    def apply(self, item: PlanItem) -> PlanItem: ...
    def finish(self) -> None: ...
    @property
    def writes(self) -> int: ...


def _open_only(entry: CatalogEntry, item: PlanItem) -> bool:
    if entry.dataset.access != "open":
        item.detail = f"access '{entry.dataset.access}': only open datasets go into public files"
        return False
    return True


@dataclass
class _FileTarget:
    name: str
    directory: Path
    warehouse: Warehouse
    writes: int = 0
    _latest: dict[str, tuple[CatalogEntry, VersionInfo, list[ExportFile]]] = field(default_factory=dict)

    def _prepare(self, entry: CatalogEntry, item: PlanItem) -> tuple[VersionInfo, list[ExportFile]] | None:
        if not _open_only(entry, item):
            return None
        info = self.warehouse.latest_version_info(entry.id)
        if info is None:
            item.detail = "no version stored yet: run `partage harvest` first"
            return None
        files = exports(self.warehouse, info)
        self._latest[entry.id] = (entry, info, files)
        item.version = info.version
        return info, files

    def finish(self) -> None:
        pass


class DataPackagePublisher(_FileTarget):
    """``<dir>/<id>/``: datapackage.json, the Parquet and CSV files, the schema and the report."""

    def plan(self, entries: list[CatalogEntry], all_ids: set[str]) -> list[PlanItem]:
        items = []
        for e in entries:
            item = PlanItem(self.name, e.id, "skip", "", access=e.dataset.access)
            current = self.directory / e.id / "datapackage.json"
            prepared = self._prepare(e, item)
            if prepared is None:
                if current.exists():
                    item.action, item.detail = "delete", item.detail + "; its published files are removed"
            else:
                old = json.loads(current.read_text(encoding="utf-8")).get("version") if current.exists() else None
                item.action = "unchanged" if old == prepared[0].version else ("update" if old else "create")
                item.detail = f"version {prepared[0].version}" + (" already written" if item.action == "unchanged" else "")
            items.append(item)
        if self.directory.is_dir():
            for d in sorted(self.directory.iterdir()):
                if d.is_dir() and (d / "datapackage.json").exists() and d.name not in all_ids:
                    items.append(PlanItem(self.name, d.name, "delete", "removed from the catalog: its files are removed"))
        return items

    def apply(self, item: PlanItem) -> PlanItem:
        try:
            if item.action in ("create", "update"):
                entry, info, files = self._latest[item.dataset_id]
                out = self.directory / item.dataset_id
                for f in files:
                    name = published_name(item.dataset_id, f)
                    tmp = out / f".{name}.tmp"
                    tmp.unlink(missing_ok=True)
                    copy_or_link(f.path, tmp)
                    os.replace(tmp, out / name)
                    self.writes += 1
                desc = datapackage.build_for_publication(entry.dataset, info, files)
                tmp = out / ".datapackage.json.tmp"
                tmp.write_text(json.dumps(desc, ensure_ascii=False, indent=2), encoding="utf-8")
                os.replace(tmp, out / "datapackage.json")  # last: the descriptor appears once its files are there
                self.writes += 1
            elif item.action == "delete":
                shutil.rmtree(self.directory / item.dataset_id, ignore_errors=True)
                self.writes += 1
            item.status = "done"
        except Exception as e:
            item.status, item.error = "failed", f"{type(e).__name__}: {e}"
        return item


class DcatPublisher(_FileTarget):
    """One catalog file (Turtle + JSON-LD) for every open dataset with a version."""

    def __init__(self, name: str, directory: Path, warehouse: Warehouse, base_url: str | None, title: str, publisher: str,
                 catalog: Catalog | None = None):
        super().__init__(name, directory, warehouse)
        self.base_url = base_url
        self.title = title
        self.publisher = publisher
        self.catalog = catalog  # the whole catalog: publishing some ids rewrites the one file with the others kept
        self.changed: dict[str, bool] = {}

    def plan(self, entries: list[CatalogEntry], all_ids: set[str]) -> list[PlanItem]:
        published = self.warehouse.publications(self.name)
        on_disk = all((self.directory / n).is_file() for n in ("catalog.ttl", "catalog.jsonld"))
        items = []
        for e in entries:
            item = PlanItem(self.name, e.id, "skip", "", access=e.dataset.access)
            prepared = self._prepare(e, item)
            pub = published.get(e.id)
            was_in = on_disk and pub is not None and pub.deleted_at is None
            if prepared is None:
                if was_in:
                    item.action, item.detail = "delete", item.detail + "; removed from the catalog file"
            else:
                same = was_in and pub is not None and pub.version == prepared[0].version
                item.action = "unchanged" if same else ("update" if was_in else "create")
                item.detail = f"version {prepared[0].version}"
            items.append(item)
        for ds_id, pub in sorted(published.items()):
            if ds_id not in all_ids and pub.deleted_at is None:
                items.append(PlanItem(self.name, ds_id, "delete", "removed from the catalog: dropped from the catalog file"))
        items += self._keep_the_others({e.id for e in entries}, published, on_disk)
        return items

    def _keep_the_others(self, selected: set[str], published: dict[str, Publication], on_disk: bool) -> list[PlanItem]:
        """The catalog file is one file for every dataset: publishing only some ids keeps the others in it
        as they were published (the version recorded for this target), so `partage publish ID --target
        dcat` never unpublishes the rest. One that is no longer open is dropped at once, whatever ids were
        asked (a public file never keeps a dataset that stopped being open)."""
        if self.catalog is None or not on_disk:
            return []
        items = []
        for ds_id, entry in sorted(self.catalog.entries.items()):
            pub = published.get(ds_id)
            if ds_id in selected or pub is None or pub.deleted_at is not None:
                continue
            if entry.dataset.access != "open":
                items.append(PlanItem(self.name, ds_id, "delete", f"access '{entry.dataset.access}': "
                                      "only open datasets go into public files; removed from the catalog file",
                                      access=entry.dataset.access))
                continue
            info = (self.warehouse.version_info(ds_id, pub.version) if pub.version else None) \
                or self.warehouse.latest_version_info(ds_id)
            if info is not None:
                self._latest[ds_id] = (entry, info, exports(self.warehouse, info))
        return items

    def apply(self, item: PlanItem) -> PlanItem:
        deleted = now() if item.action == "delete" else None
        if item.action in ("create", "update", "unchanged", "delete"):
            self.warehouse.record_publication(Publication(self.name, item.dataset_id, None, item.dataset_id, item.access,
                                                          item.version, now(), None, deleted))
        item.status = "done"
        return item

    def finish(self) -> None:
        from .dcat import DcatDataset, build_graph, write_catalog

        datasets = [DcatDataset(e, info, files) for e, info, files in self._latest.values()]
        graph = build_graph(datasets, base_url=self.base_url, title=self.title, publisher=self.publisher)
        self.changed = write_catalog(graph, self.directory)
        self.writes += sum(self.changed.values())


class TargetError(PartageError):
    pass


def open_publisher(name: str, target: Target, catalog: Catalog, warehouse: Warehouse) -> Publisher:
    """Build the publisher of one target; credentials are resolved here, at the last moment."""
    project = catalog.root.parent
    if isinstance(target, CkanTarget):
        from .ckan import CkanClient, CkanPublisher

        token = resolve(target.api_token) if target.api_token else None
        grace = timedelta(days=float(os.environ.get("PARTAGE_PUBLISH_GRACE_DAYS", target.grace_days)))
        return CkanPublisher(name, target, warehouse, CkanClient(target.ckan, token), grace=grace)  # type: ignore[return-value]
    if isinstance(target, DcatTarget):
        publishers = {e.dataset.publisher for e in catalog.entries.values() if e.dataset.publisher}
        return DcatPublisher(name, project / target.dcat, warehouse, target.base_url,
                             target.title or "Catalogue des données partagées",
                             target.publisher or (publishers.pop() if len(publishers) == 1 else "Partage"), catalog)
    if isinstance(target, DataPackageTarget):
        return DataPackagePublisher(name, project / target.datapackage, warehouse)
    raise TargetError(f"target {name}: unknown kind")

