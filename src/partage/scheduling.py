"""Per-dataset schedules: the catalog's ``schedule:`` keys grouped into cron schedules.

Datasets sharing a cron expression are harvested by one scheduled run (with
``ids`` as its parameter); datasets without one follow the default. The flows
layer turns these groups into schedules of the harvest deployment
(`partage schedules --apply`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .catalog import Catalog

DEFAULT_CRON = "0 3 * * *"
DEFAULT_TIMEZONE = "Europe/Paris"


@dataclass(frozen=True)
class ScheduleGroup:
    cron: str
    timezone: str
    ids: tuple[str, ...]

    @property
    def slug(self) -> str:
        """A stable name for the schedule, so re-applying replaces it rather than adding one."""
        import hashlib

        return "partage-" + hashlib.sha1(f"{self.cron}|{self.timezone}".encode()).hexdigest()[:10]


def schedule_groups(catalog: Catalog, default_cron: str = DEFAULT_CRON) -> list[ScheduleGroup]:
    groups: dict[tuple[str, str], list[str]] = {}
    for entry in catalog.entries.values():
        ds = entry.dataset
        key = (ds.schedule or default_cron, ds.timezone if ds.schedule else DEFAULT_TIMEZONE)
        groups.setdefault(key, []).append(ds.id)
    return [ScheduleGroup(cron, tz, tuple(sorted(ids))) for (cron, tz), ids in sorted(groups.items())]
