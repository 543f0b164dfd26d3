"""The ``harvest`` flow: the run loop of :func:`partage.pipeline.run_harvest`, its stages as Prefect tasks.

Sources are listed and acquired concurrently (network-bound, one Prefect task each, retried by
Prefect when the failure is transient); datasets are stored one at a time by this run, each in one
lake snapshot. The loop is the plain path's own, so a source's state means the same with and
without Prefect. A source that fails is recorded as ``failed`` and the run goes on; the flow returns
a :class:`~partage.pipeline.HarvestSummary` whose ``exit_code`` says whether everything went well.

Runs without a Prefect server (ephemeral mode) by default; deployed with
``prefect deploy`` (see prefect.yaml) it runs on a worker.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from partage import credentials
from partage.catalog import CatalogEntry, load_catalog
from partage.pipeline import (
    DatasetOutcome,
    HarvestSummary,
    TransientSourceFailure,
    default_schemas_dir,
    plan,
    run_harvest,
    store_or_fail,
)
from partage.sources import Acquired, SourceResource, acquire
from partage.summaries import artifact_key, dataset_markdown, needs_attention, run_table
from partage.store.warehouse import DatasetState, SourceRecord, Warehouse


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


@task(name="store-dataset", cache_policy=NO_CACHE, task_run_name="store {entry.dataset.id}")
def store(entry: CatalogEntry, acquired: list[Acquired], warehouse_root: str, run_id: str, schemas_dir: str,
          limit: bool = False, state: DatasetState | None = None) -> DatasetOutcome:
    """Validate and store one dataset. With the global limit defined, one such task at a time writes,
    and the state is read again inside it (another run may have written meanwhile)."""
    wh = Warehouse(warehouse_root)
    if limit:
        from prefect.concurrency.sync import concurrency

        with concurrency(WAREHOUSE_LIMIT, occupy=1):
            return store_or_fail(entry, acquired, wh, run_id=run_id, schemas_dir=Path(schemas_dir), state=None)
    return store_or_fail(entry, acquired, wh, run_id=run_id, schemas_dir=Path(schemas_dir), state=state)


class Submitted:
    """A submitted task, as the run loop sees it: is it finished (told by the future's done-callback,
    no call to the server), and its result."""

    def __init__(self, future: Any):
        self.future = future
        self._finished = threading.Event()
        future.add_done_callback(lambda _: self._finished.set())

    def done(self) -> bool:
        return self._finished.is_set()

    def result(self) -> Any:
        return self.future.result()


@dataclass
class PrefectStages:
    """The run loop's stages as Prefect tasks: expansions and acquisitions submitted (they run
    concurrently on the task runner), the store task called in the flow, one dataset at a time."""

    warehouse: Warehouse
    schemas_dir: Path
    limit: bool

    def expand(self, entry: CatalogEntry, state: DatasetState) -> Submitted:
        return Submitted(expand_sources.submit(entry, state))

    def acquire(self, resource: SourceResource, record: SourceRecord | None) -> Submitted:
        return Submitted(acquire_source.submit(resource, record, self.warehouse.spec))

    def store(self, entry: CatalogEntry, acquired: list[Acquired], run_id: str, state: DatasetState) -> DatasetOutcome:
        outcome = store(entry, acquired, self.warehouse.spec, run_id, str(self.schemas_dir), self.limit, state)
        for s in outcome.sources:
            get_run_logger().info("%s · %s: %s — %s", s.dataset_id, s.label, s.state, s.reason)
        return outcome


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
                # The same rejected file as last run is still not ok, but not news: its event has
                # another name, so the alert automation (partage.source.rejected) fires once per bad file.
                emit_event(
                    event="partage.source.still-rejected" if s.repeat else f"partage.source.{s.state}",
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
    schemas_dir = default_schemas_dir(cat)
    wh = Warehouse(warehouse)
    limit = _limit_defined()
    logger.info("warehouse writes %s", f"limited by the global concurrency limit {WAREHOUSE_LIMIT!r}"
                if limit else "made by this run, one dataset at a time (no global concurrency limit defined)")
    summary = run_harvest(cat, wh, PrefectStages(wh, schemas_dir, limit), ids, schemas_dir)
    counts = summary.counts()
    try:
        _report(summary)
    except Exception:  # the data is stored; a reporting hiccup must not fail the run
        logger.exception("could not publish the run's artifacts or events")
    logger.info("done: %s", ", ".join(f"{v} {k}" for k, v in counts.items()))
    return summary


if __name__ == "__main__":
    result = harvest()
    raise SystemExit(result.exit_code)
