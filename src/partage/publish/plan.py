"""What publishing will do, dataset by dataset: the plan `partage publish` prints, then carries out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .exports import ExportFile

Action = Literal["create", "update", "unchanged", "skip", "delete"]


@dataclass
class ResourceChange:
    role: str
    op: Literal["create", "upload", "patch", "delete"]
    fields: list[str] = field(default_factory=list)
    export: ExportFile | None = None
    resource_id: str | None = None


@dataclass
class PlanItem:
    target: str
    dataset_id: str
    action: Action
    detail: str
    changes: dict[str, Any] = field(default_factory=dict)
    resources: list[ResourceChange] = field(default_factory=list)
    remote_id: str | None = None
    desired: dict[str, Any] | None = None
    version: str | None = None
    access: str | None = None
    removed_since: Any = None
    status: Literal["planned", "done", "failed"] = "planned"
    error: str | None = None
