"""Operating the deployments: per-dataset schedules and alerts, applied to a Prefect server.

Both need a Prefect API (PREFECT_API_URL): they change the server's state, not
the warehouse's.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.schedules import CronSchedule

from partage.catalog import load_catalog
from partage.errors import PartageError
from partage.scheduling import ScheduleGroup, schedule_groups

ALERT_AUTOMATION = "partage: rejected or failed source"
ALERT_EVENTS = {"partage.source.rejected", "partage.source.failed"}


class OperationsError(PartageError):
    pass


def apply_schedules(catalog_dir: str, deployment: str, default_cron: str) -> list[ScheduleGroup]:
    """Replace the deployment's schedules by one per group of datasets sharing a cron expression."""
    groups = schedule_groups(load_catalog(catalog_dir), default_cron)
    with get_client(sync_client=True) as client:
        try:
            dep = client.read_deployment_by_name(deployment)
        except Exception as e:
            raise OperationsError(f"deployment {deployment!r} not found on the Prefect server ({type(e).__name__}); "
                                  "run `prefect deploy --all` first") from None
        for old in client.read_deployment_schedules(dep.id):
            client.delete_deployment_schedule(dep.id, old.id)
        client.create_deployment_schedules(dep.id, [
            DeploymentScheduleCreate(schedule=CronSchedule(cron=g.cron, timezone=g.timezone), active=True,
                                     parameters={"ids": list(g.ids)}, slug=g.slug)
            for g in groups
        ])
    return groups


def install_alerts(block: str) -> UUID:
    """Create (or replace) the automation that notifies through ``block`` (TYPE-SLUG/NAME) on a bad source."""
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    block_type, _, name = block.partition("/")
    if not name:
        raise OperationsError(f"--block must be TYPE/NAME, e.g. slack-webhook/equipe-data (got {block!r})")
    with get_client(sync_client=True) as client:
        try:
            doc = client.read_block_document_by_name(name=name, block_type_slug=block_type)
        except Exception:
            raise OperationsError(f"notification block {block!r} not found; create it in the Prefect UI "
                                  "(Blocks → Slack Webhook, Email, Custom Webhook…) or with its Python class") from None
        for old in client.read_automations_by_name(ALERT_AUTOMATION):
            client.delete_automation(old.id)
        automation: Any = AutomationCore(
            name=ALERT_AUTOMATION,
            description="Created by `partage alerts`: one notification per rejected or failed source.",
            enabled=True,
            trigger=EventTrigger(match={"prefect.resource.id": "partage.source.*"}, expect=ALERT_EVENTS,
                                 posture=Posture.Reactive, threshold=1, within=timedelta(0)),
            actions=[SendNotification(
                block_document_id=doc.id,
                subject="Partage : {{ event.payload.dataset }} — {{ event.payload.state }}",
                body="{{ event.payload.dataset }} · {{ event.payload.source }} : {{ event.payload.state }}\n"
                     "{{ event.payload.reason }}\nRapport : {{ event.payload.report }}",
            )],
        )
        return client.create_automation(automation)
