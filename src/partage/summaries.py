"""What a run tells people: table rows and markdown built from its outcomes.

Prefect-free, so the flows turn these into artifacts and events, and tests can
read them directly.
"""

from __future__ import annotations

import re
from typing import Any

from .pipeline import DatasetOutcome, HarvestSummary


def artifact_key(*parts: str) -> str:
    """Prefect artifact keys allow lower-case letters, digits and dashes only."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", "-".join(parts).lower())).strip("-")[:100]


def run_table(summary: HarvestSummary) -> list[dict[str, Any]]:
    return [
        {"dataset": s.dataset_id, "source": s.label, "state": s.state, "rows": s.rows, "quarantined": s.quarantined,
         "errors": s.errors, "reason": s.reason if len(s.reason) <= 300 else s.reason[:297] + "…"}
        for s in summary.sources
    ]


def needs_attention(d: DatasetOutcome) -> bool:
    return any(s.state in ("rejected", "failed") or (s.quarantined or 0) > 0 for s in d.sources)


def dataset_markdown(d: DatasetOutcome, report_site: str | None = None) -> str:
    """The first errors of a dataset's rejected or quarantined sources, and where the full reports are."""
    lines = [f"# {d.dataset_id}", ""]
    if d.version:
        lines.append(f"New version `{d.version}`: {d.rows} rows stored, {d.quarantined or 0} in quarantine "
                     f"(`SELECT * FROM quarantine.\"{d.dataset_id}\"`).")
    else:
        lines.append("No new version: the previous one stays published.")
    for s in d.sources:
        if s.state not in ("rejected", "failed") and not s.quarantined:
            continue
        lines += ["", f"## {s.label} — **{s.state}**", "", s.reason, ""]
        if s.first_errors:
            lines += ["| row | field | error | message |", "|---|---|---|---|"]
            for e in s.first_errors:
                message = str(e.get("message") or "").replace("|", "\\|").replace("\n", " ")
                lines.append(f"| {e.get('row') or ''} | {e.get('field') or ''} | {e.get('type') or ''} | {message} |")
            lines.append("")
        if s.report_path:
            lines.append(f"Full report: `{s.report_path}`")
    if report_site:
        lines += ["", f"Quality page: `{report_site}`"]
    return "\n".join(lines) + "\n"
