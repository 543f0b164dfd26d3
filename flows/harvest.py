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
from partage.errors import TransientError
from partage.pipeline import (
    DatasetOutcome,
    HarvestSummary,
    default_schemas_dir,
    fail_dataset,
    new_run_id,
    plan,
    schema_descriptor,
    store_dataset,
)
from partage.references import harvest_order
from partage.sources import Acquired, SourceResource, acquire
from partage.summaries import artifact_key, dataset_markdown, needs_attention, run_table
from partage.warehouse import DatasetState, SourceRecord, Warehouse, now

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


WAREHOUSE_LIMIT = "partage-warehouse"  # `prefect gcl create partage-warehouse --limit 1` makes it apply


class TransientSourceFailure(TransientError):
    """Raised by the acquire task so that Prefect retries it later; carries the failed acquisition."""

    def __init__(self, acquired: Acquired):
        self.acquired = acquired
        super().__init__(acquired.reason)


def _retry_transient_only(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except TransientSourceFailure:
        return True
    except Exception:
        return False
    return False


@task(
    name="acquire-source",
    cache_policy=NO_CACHE,
    task_run_name="acquire {resource.dataset_id}/{resource.key}",
    retries=int(os.environ.get("PARTAGE_TASK_RETRIES", 2)),
    retry_delay_seconds=float(os.environ.get("PARTAGE_TASK_RETRY_DELAY", 60)),
    retry_condition_fn=_retry_transient_only,
)
def acquire_source(resource: SourceResource, record: SourceRecord | None, warehouse_root: str) -> Acquired:
    """Download or read one source. A transient failure raises, so Prefect tries the task again later."""
    result = acquire(resource, record, Warehouse(warehouse_root).raw)
    get_run_logger().info("%s: %s (%s)", resource.label, result.state, result.reason)
    if result.state == "failed" and result.transient:
        raise TransientSourceFailure(result)
    return result


@task(name="expand-sources", cache_policy=NO_CACHE, task_run_name="expand {entry.dataset.id}")
def expand_sources(entry: CatalogEntry, state: DatasetState) -> tuple[list[SourceResource], list[Acquired]]:
    """List the dataset's resources; portals are asked over the network here, each under its paging guard."""
    resources, failures = plan(entry, state)
    for f in failures:
        get_run_logger().warning("%s: %s", f.resource.label, f.reason)
    return resources, failures


def _expanded(entry: CatalogEntry, future: Any) -> tuple[list[SourceResource], list[Acquired]]:
    try:
        return future.result()
    except Exception as e:  # a crashed expansion fails this dataset's sources, not the run
        res = SourceResource(entry.id, "expansion", "url", str(entry.path), entry.id)
        return [], [Acquired(res, "failed", f"{entry.id}: could not list its sources: {type(e).__name__}: {e}")]


def _settle(resource: SourceResource, future: Any) -> Acquired:
    """The task's result, or a failed acquisition saying why (retries exhausted, time-out)."""
    try:
        return future.result()
    except TransientSourceFailure as e:
        return e.acquired
    except Exception as e:  # a crashed task
        return Acquired(resource, "failed", f"{resource.label}: {type(e).__name__}: {e}")


@task(name="store-dataset", cache_policy=NO_CACHE, task_run_name="store {entry.dataset.id}")
def store(entry: CatalogEntry, acquired: list[Acquired], warehouse_root: str, run_id: str, schemas_dir: str,
          limit: bool = False, state: DatasetState | None = None) -> DatasetOutcome:
    """Validate and store one dataset. With the global limit defined, one such task at a time writes."""
    wh = Warehouse(warehouse_root)
    try:
        if limit:
            from prefect.concurrency.sync import concurrency

            with concurrency(WAREHOUSE_LIMIT, occupy=1):
                return store_dataset(entry, acquired, wh, run_id=run_id, schemas_dir=Path(schemas_dir))
        return store_dataset(entry, acquired, wh, run_id=run_id, schemas_dir=Path(schemas_dir), state=state)
    except Exception as e:  # one dataset's crash must not stop the others
        get_run_logger().exception("storing %s failed", entry.id)
        return fail_dataset(entry, acquired, wh, run_id, e)


def _limit_defined() -> bool:
    """Whether the `partage-warehouse` global concurrency limit exists (checked once per run)."""
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            client.read_global_concurrency_limit_by_name(WAREHOUSE_LIMIT)
        return True
    except Exception:
        return False


def _report(summary: HarvestSummary) -> None:
    """Artifacts for the Prefect UI, and events that automations can turn into alerts."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact
    from prefect.events import emit_event

    create_table_artifact(key="harvest-summary", table=run_table(summary),
                          description=f"Harvest {summary.run_id}: " + ", ".join(f"{v} {k}" for k, v in summary.counts().items()))
    for d in summary.datasets:
        if needs_attention(d):
            create_markdown_artifact(key=artifact_key("quality", d.dataset_id), markdown=dataset_markdown(d),
                                     description=f"{d.dataset_id}: rejected, failed or quarantined data")
        for s in d.sources:
            if s.state in ("rejected", "failed"):
                emit_event(
                    event=f"partage.source.{s.state}",
                    resource={"prefect.resource.id": f"partage.source.{s.dataset_id}.{s.source_key}",
                              "prefect.resource.name": s.label, "partage.dataset": s.dataset_id},
                    payload={"dataset": s.dataset_id, "source": s.label, "state": s.state, "reason": s.reason,
                             "first_errors": list(s.first_errors[:5]), "report": s.report_path},
                )
        if d.version:
            emit_event(event="partage.dataset.updated",
                       resource={"prefect.resource.id": f"partage.dataset.{d.dataset_id}",
                                 "prefect.resource.name": d.dataset_id},
                       payload={"version": d.version, "rows": d.rows, "quarantined": d.quarantined})


@flow(name="harvest", log_prints=True)
def harvest(
    catalog: str = os.environ.get("PARTAGE_CATALOG", "catalog"),
    warehouse: str = os.environ.get("PARTAGE_WAREHOUSE", "warehouse"),
    ids: list[str] | None = None,
) -> HarvestSummary:
    """Harvest the catalog's datasets (or only ``ids``) into the warehouse."""
    logger = get_run_logger()
    cat = load_catalog(catalog)
    schemas_dir = str(default_schemas_dir(cat))
    # a dataset whose foreign keys point to another is stored after it, so it is checked against this run's rows
    entries = harvest_order(cat.select(ids), lambda e: schema_descriptor(e, Path(schemas_dir)))
    wh = Warehouse(warehouse)
    summary = HarvestSummary(run_id=new_run_id())
    with wh.harvest_lock():
        wh.init()
        started = now()
        wh.record_run(summary.run_id, started)
        logger.info("run %s: %d dataset(s) from %s into %s", summary.run_id, len(entries), cat.root, wh.root)
        limit = _limit_defined()
        logger.info("warehouse writes %s", f"limited by the global concurrency limit {WAREHOUSE_LIMIT!r}"
                    if limit else "serialized by this run (no global concurrency limit defined)")
        states = {entry.id: wh.dataset_state(entry.id) for entry in entries}
        expansions = [(entry, expand_sources.submit(entry, states[entry.id])) for entry in entries]
        pending = []
        for entry, expansion in expansions:
            resources, failures = _expanded(entry, expansion)
            state = states[entry.id]
            futures = [(r, acquire_source.submit(r, state.records.get(r.key), wh.spec)) for r in resources]
            pending.append((entry, futures, failures, state))
        for entry, futures, failures, state in pending:
            acquired = [_settle(r, f) for r, f in futures] + failures
            # with a global limit another run may have written meanwhile: then the state is read again
            outcome = store(entry, acquired, wh.spec, summary.run_id, schemas_dir, limit, None if limit else state)
            summary.datasets.append(outcome)
            for s in outcome.sources:
                logger.info("%s · %s: %s — %s", s.dataset_id, s.label, s.state, s.reason)
                progress.info("%s", s.state, extra={"partage_source": s})
            progress.info("%s", outcome.message, extra={"partage_dataset": outcome})
        counts = summary.counts()
        wh.record_run(summary.run_id, started, {"counts": counts, "exit_code": summary.exit_code})
    try:
        _report(summary)
    except Exception:  # the data is stored; a reporting hiccup must not fail the run
        logger.exception("could not publish the run's artifacts or events")
    logger.info("done: %s", ", ".join(f"{v} {k}" for k, v in counts.items()))
    return summary


if __name__ == "__main__":
    result = harvest()
    raise SystemExit(result.exit_code)
