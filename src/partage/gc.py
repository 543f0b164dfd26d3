"""`partage gc`: apply each dataset's retention, and remove what crashes leave behind.

What goes, and why it is safe:

* versions beyond the entry's ``retention`` (keep the last ``keep`` versions and/or those younger than
  ``days``) — never the latest one. Parts shared with newer versions are hard links, so the newer
  versions keep their data. The version row goes in the same transaction that rebuilds the history view.
* lake snapshots no kept version needs (``ducklake_expire_snapshots``), once older than the grace
  period, and then the lake's data files only they referred to (``ducklake_cleanup_old_files``,
  ``ducklake_delete_orphaned_files``) — see ``Warehouse.clean_lake``.
* orphans: staging directories and version directories no transaction ever recorded (a crash between
  the rename and the commit), temporary raw downloads, exports of versions that no longer exist,
  raw files no source and no kept version refers to;
  in the object store, version prefixes no transaction recorded — with a PostgreSQL catalog only once
  older than the grace period, since another machine's harvest may be about to commit one.

It takes the harvest lock, so it never runs while a harvest writes.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .catalog import Catalog
from .faults import checkpoint
from .store import metadata
from .store.metadata import VersionRecord
from .store.warehouse import Warehouse, now, point_history

VERSION_NAME = re.compile(r"^\d{8}T\d{9,}Z$")  # what warehouse.new_version_id makes


@dataclass
class GcReport:
    versions: list[tuple[str, str]] = field(default_factory=list)  # (dataset, version) removed by retention
    orphans: list[Path] = field(default_factory=list)
    remote_orphans: list[str] = field(default_factory=list)  # object-store version prefixes no transaction recorded
    raw_files: list[Path] = field(default_factory=list)
    bytes_freed: int = 0
    snapshots: list[int] = field(default_factory=list)  # lake snapshots expired (no kept version needs them)
    lake_files: list[str] = field(default_factory=list)  # lake data files deleted (only expired snapshots had them)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _newer_than(warehouse: Warehouse, url: str, cutoff: dt.datetime) -> bool:
    """Whether any object under ``url`` was written after ``cutoff``.

    Why: with a PostgreSQL catalog other machines harvest into the same bucket, beyond this gc's lock;
    a version they uploaded and have not committed yet looks exactly like a crash's leftover, so only
    leftovers older than the grace period go (on one machine the lock already keeps harvests out)."""
    for info in warehouse.fs.find(url, detail=True).values():
        modified = info.get("LastModified") or info.get("mtime")
        if isinstance(modified, (int, float)):
            modified = dt.datetime.fromtimestamp(modified, dt.UTC)
        if not isinstance(modified, dt.datetime) or modified.astimezone(dt.UTC) > cutoff:
            return True  # unknown age: kept
    return False


def _keep_reports_of_carried_parts(warehouse: Warehouse, ds_id: str, version: str, stored: list[VersionRecord],
                                   gone: set[tuple[str, str]]) -> None:
    """Before a version's directory goes, give its reports to the kept versions that carry its parts.

    A source that did not change keeps its part, and its report, from the version that produced
    it; a kept version must not lose that report when the producing version is removed."""
    for kept in stored:
        if kept.dataset_id != ds_id or (kept.dataset_id, kept.version) in gone:
            continue
        for p in kept.parts:
            if p.since_version != version:
                continue
            # on an object-store warehouse the report may be only in the bucket (another machine wrote it)
            report = warehouse.version_file(ds_id, version, f"reports/{p.source_key}.json")
            if report is None:
                continue
            dest = warehouse.version_dir(ds_id, kept.version) / "reports" / report.name
            if not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(report, dest)
            if warehouse.remote:  # and the heir's copy in the bucket, for the other machines
                warehouse.fs.put_file(str(report), f"{warehouse.location(ds_id, kept.version)}/reports/{report.name}")


def collect_garbage(warehouse: Warehouse, catalog: Catalog | None, *, dry_run: bool = False,
                    grace: dt.timedelta = dt.timedelta(hours=24)) -> GcReport:
    report = GcReport()
    with warehouse.harvest_lock():
        stored = metadata.versions(warehouse, read_only=False)
        referenced_raw = metadata.raw_files_in_use(warehouse, read_only=False)
        versions: dict[str, list[tuple[str, dt.datetime]]] = {}
        raw_of: dict[tuple[str, str], set[str]] = {}
        for sv in stored:
            versions.setdefault(sv.dataset_id, []).append((sv.version, sv.created_at))
            raw_of[(sv.dataset_id, sv.version)] = sv.raw_files

        # 1. retention
        for ds_id, vs in versions.items():
            entry = catalog.entries.get(ds_id) if catalog else None
            retention = entry.dataset.retention if entry else None
            if retention is None:
                continue
            keep = set()
            ordered = sorted(vs, reverse=True)
            keep.add(ordered[0][0])  # never the latest
            if retention.keep is not None:
                keep.update(v for v, _ in ordered[: retention.keep])
            if retention.days is not None:
                keep.update(v for v, c in ordered if now() - c <= dt.timedelta(days=retention.days))
            if retention.keep is None and retention.days is None:
                keep.update(v for v, _ in ordered)
            for v, _ in ordered:
                if v not in keep:
                    report.versions.append((ds_id, v))

        if report.versions and not dry_run:
            metadata.forget_versions(warehouse, report.versions)
            for ds_id in sorted({d for d, _ in report.versions}):
                point_history(warehouse, ds_id)
        gone = set(report.versions)
        for ds_id, v in report.versions:
            d = warehouse.version_dir(ds_id, v)
            if not dry_run:
                _keep_reports_of_carried_parts(warehouse, ds_id, v, stored, gone)
            if d.exists():
                report.bytes_freed += _size(d)
                if not dry_run:
                    shutil.rmtree(d)
            if not dry_run:
                warehouse.remove_version_data(ds_id, v)

        # 2. orphans: only names Partage itself creates are touched (staging dirs, version ids)
        known = {(d, v) for d, vs in versions.items() for v, _ in vs} - gone
        for ds_dir in sorted(p for p in warehouse.root.iterdir() if p.is_dir() and p.name not in ("raw", "exports")):
            for child in ds_dir.iterdir():
                if child.is_dir() and (child.name.startswith((".staging-", ".unpacked-"))
                                       or (VERSION_NAME.match(child.name) and (ds_dir.name, child.name) not in known)):
                    report.orphans.append(child)
        if warehouse.remote:
            datasets = set(versions) | {p.name for p in warehouse.root.iterdir() if p.is_dir()}
            for ds in sorted(datasets):
                for name in warehouse.remote_version_names(ds):
                    if VERSION_NAME.match(name) and (ds, name) not in known:  # uploaded, then the harvest died
                        url = f"{warehouse.remote}/{ds}/{name}"
                        if warehouse.lake.kind == "postgres" and _newer_than(warehouse, url, now() - grace):
                            continue  # maybe another machine's harvest, uploaded and about to commit
                        report.remote_orphans.append(url)
                        if not dry_run:
                            warehouse.fs.rm(url, recursive=True)
        exports_root = warehouse.root / "exports"
        if exports_root.is_dir():
            for ds_dir in exports_root.iterdir():
                for vdir in ds_dir.iterdir() if ds_dir.is_dir() else []:
                    if (ds_dir.name, vdir.name) not in known:
                        report.orphans.append(vdir)
        tmp = warehouse.raw.tmp
        if tmp.is_dir():
            report.orphans += sorted(tmp.iterdir())
        for orphan in report.orphans:
            report.bytes_freed += _size(orphan)
            if not dry_run:
                shutil.rmtree(orphan) if orphan.is_dir() else orphan.unlink(missing_ok=True)
                checkpoint("gc-removing")

        # 3. raw files nobody refers to (neither a source's last state nor a kept version's parts)
        for key, shas in raw_of.items():
            if key not in gone:
                referenced_raw |= shas
        if warehouse.raw.root.is_dir():
            for f in warehouse.raw.root.glob("??/*"):
                if f.is_file() and f.name not in referenced_raw:
                    report.raw_files.append(f)
                    report.bytes_freed += f.stat().st_size
                    if not dry_run:
                        f.unlink()

        # 4. the lake: snapshots no kept version needs, and the data files only they referred to
        cleanup = warehouse.clean_lake(grace=grace, dry_run=dry_run)
        report.snapshots, report.lake_files = cleanup.snapshots, cleanup.files
    return report


