"""The ``publish`` flow: catalog entries to every target of ``catalog/_targets.yaml``.

Per target: plan (reads only), then apply dataset by dataset; a failure on one
dataset is recorded and the others go on. ``dry_run`` stops after the plan.
Deployed by prefect.yaml to run after each successful harvest.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

import flows.harvest  # noqa: F401  registers the prefect-secret credential backend
from partage.catalog import CatalogError, load_catalog
from partage.publish.plan import PlanItem
from partage.publish.targets import open_publisher
from partage.store.warehouse import Warehouse

progress = logging.getLogger("partage.progress")


@dataclass
class PublishSummary:
    items: list[PlanItem] = field(default_factory=list)
    writes: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False

    @property
    def exit_code(self) -> int:
        return 1 if any(i.status == "failed" for i in self.items) else 0


@task(name="publish-target", cache_policy=NO_CACHE, task_run_name="publish to {name}")
def publish_target(name: str, catalog_dir: str, warehouse_root: str, ids: list[str] | None, dry_run: bool) -> tuple[list[PlanItem], int]:
    logger = get_run_logger()
    cat = load_catalog(catalog_dir)
    entries = cat.select(ids)
    wh = Warehouse(warehouse_root)
    try:
        publisher = open_publisher(name, cat.targets[name], cat, wh)
        items = publisher.plan(entries, set(cat.entries))
    except Exception as e:  # a target that cannot be reached fails its datasets, not the run
        reason = str(e) if isinstance(e, Exception) and str(e) else type(e).__name__
        items = [PlanItem(name, e_.id, "skip", reason, status="failed", error=reason) for e_ in entries]
        progress.info("plan", extra={"partage_plan": items, "partage_target": name})
        return items, 0
    progress.info("plan", extra={"partage_plan": items, "partage_target": name})
    if dry_run:
        return items, 0
    for item in items:
        publisher.apply(item)
        logger.info("%s · %s: %s %s%s", name, item.dataset_id, item.action, item.status,
                    f" — {item.error}" if item.error else "")
        progress.info("done", extra={"partage_published": item})
    try:
        publisher.finish()
    except Exception as e:
        for item in items:
            if item.status == "done" and item.action != "skip":
                item.status, item.error = "failed", f"writing the target failed: {type(e).__name__}: {e}"
    return items, publisher.writes


@flow(name="publish", log_prints=True)
def publish(
    catalog: str = os.environ.get("PARTAGE_CATALOG", "catalog"),
    warehouse: str = os.environ.get("PARTAGE_WAREHOUSE", "warehouse"),
    targets: list[str] | None = None,
    ids: list[str] | None = None,
    dry_run: bool = False,
) -> PublishSummary:
    """Publish the catalog's datasets (or only ``ids``) to its targets (or only ``targets``)."""
    cat = load_catalog(catalog)
    names = targets or sorted(cat.targets)
    unknown = [n for n in names if n not in cat.targets]
    if unknown:
        raise CatalogError([f"unknown target(s) {', '.join(unknown)}; _targets.yaml has: {', '.join(sorted(cat.targets)) or '(none)'}"])
    cat.select(ids)  # unknown ids are a configuration error
    Warehouse(warehouse).init()
    summary = PublishSummary(dry_run=dry_run)
    for name in names:
        items, writes = publish_target(name, catalog, warehouse, ids, dry_run)
        summary.items += items
        summary.writes[name] = writes
    get_run_logger().info("writes per target: %s", summary.writes)
    return summary


if __name__ == "__main__":
    raise SystemExit(publish().exit_code)
