"""The ``harvest`` flow: every source of every dataset, then validate/store per dataset.

Sources are acquired concurrently (network-bound, one Prefect task each);
datasets are stored one at a time, because DuckDB has a single writer. A
source that fails is recorded as ``failed`` and the run goes on; the flow
returns a :class:`~partage.pipeline.HarvestSummary` whose ``exit_code`` says
whether everything went well.

Runs without a Prefect server (ephemeral mode) by default; deployed with
``prefect deploy`` (see prefect.yaml) it runs on a worker.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from partage import credentials
from partage.catalog import CatalogEntry, load_catalog
from partage.pipeline import (
    DatasetOutcome,
    HarvestSummary,
    default_schemas_dir,
    fail_dataset,
    new_run_id,
    plan,
    store_dataset,
)
from partage.sources import Acquired, SourceResource, acquire
from partage.warehouse import SourceRecord, Warehouse, now

progress = logging.getLogger("partage.progress")


def _prefect_secret(name: str) -> str:
    from prefect.blocks.system import Secret

    try:
        secret: Any = Secret.load(name)
        return str(secret.get())
    except ValueError:
        raise credentials.CredentialError(
            f"Prefect Secret block {name!r} not found; create it with `prefect block create secret` or in the UI"
        ) from None


credentials.register_backend("prefect-secret", _prefect_secret)


@task(name="acquire-source", cache_policy=NO_CACHE, task_run_name="acquire {resource.dataset_id}/{resource.key}")
def acquire_source(resource: SourceResource, record: SourceRecord | None, warehouse_root: str) -> Acquired:
    result = acquire(resource, record, Warehouse(warehouse_root).raw)
    get_run_logger().info("%s: %s (%s)", resource.label, result.state, result.reason)
    return result


@task(name="store-dataset", cache_policy=NO_CACHE, task_run_name="store {entry.dataset.id}")
def store(entry: CatalogEntry, acquired: list[Acquired], warehouse_root: str, run_id: str, schemas_dir: str) -> DatasetOutcome:
    wh = Warehouse(warehouse_root)
    try:
        return store_dataset(entry, acquired, wh, run_id=run_id, schemas_dir=Path(schemas_dir))
    except Exception as e:  # one dataset's crash must not stop the others
        get_run_logger().exception("storing %s failed", entry.id)
        return fail_dataset(entry, acquired, wh, run_id, e)


@flow(name="harvest", log_prints=True)
def harvest(
    catalog: str = os.environ.get("PARTAGE_CATALOG", "catalog"),
    warehouse: str = os.environ.get("PARTAGE_WAREHOUSE", "warehouse"),
    ids: list[str] | None = None,
) -> HarvestSummary:
    """Harvest the catalog's datasets (or only ``ids``) into the warehouse."""
    logger = get_run_logger()
    cat = load_catalog(catalog)
    entries = cat.select(ids)
    schemas_dir = str(default_schemas_dir(cat))
    wh = Warehouse(warehouse)
    summary = HarvestSummary(run_id=new_run_id())
    with wh.harvest_lock():
        wh.init()
        for moved in wh.repoint_moved_views():
            logger.info("%s: the warehouse moved; its views now point to %s", moved, wh.root)
        started = now()
        wh.record_run(summary.run_id, started)
        logger.info("run %s: %d dataset(s) from %s into %s", summary.run_id, len(entries), cat.root, wh.root)
        pending = []
        for entry in entries:
            resources, failures = plan(entry)
            records = wh.source_records(entry.id)
            futures = [acquire_source.submit(r, records.get(r.key), str(wh.root)) for r in resources]
            pending.append((entry, futures, failures))
        for entry, futures, failures in pending:
            acquired = [f.result() for f in futures] + failures
            outcome = store(entry, acquired, str(wh.root), summary.run_id, schemas_dir)
            summary.datasets.append(outcome)
            for s in outcome.sources:
                logger.info("%s · %s: %s — %s", s.dataset_id, s.label, s.state, s.reason)
                progress.info("%s", s.state, extra={"partage_source": s})
            progress.info("%s", outcome.message, extra={"partage_dataset": outcome})
        counts = summary.counts()
        wh.record_run(summary.run_id, started, {"counts": counts, "exit_code": summary.exit_code})
    logger.info("done: %s", ", ".join(f"{v} {k}" for k, v in counts.items()))
    return summary


if __name__ == "__main__":
    result = harvest()
    raise SystemExit(result.exit_code)
