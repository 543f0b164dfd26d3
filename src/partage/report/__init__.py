"""The quality site: static HTML a data producer can read, in French and English.

``partage report`` writes ``index.html`` (the choice of language) and, per
language, an index of datasets and one page per dataset: freshness, versions,
the state of each source and why, and the validation errors grouped by field
and type with example rows. No JavaScript, no external asset: the folder can
be served by any web server or opened from disk.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..store import metadata
from ..store.metadata import SourceState, VersionRecord
from ..store.warehouse import Warehouse
from .i18n import ERROR_TITLES, LANGUAGES, TEXT

EXAMPLES_PER_GROUP = 3


@dataclass
class ErrorGroup:
    field_name: str
    type: str
    count: int
    examples: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SourceView:
    label: str
    state: SourceState | None
    layer: str | None
    reason: str
    checked_at: dt.datetime | None
    changed_at: dt.datetime | None
    errors_total: int = 0
    rows: int | None = None
    groups: list[ErrorGroup] = field(default_factory=list)
    file_errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class DatasetView:
    id: str
    title: str
    description: str
    access: str
    license: str
    publisher: str | None
    schema_ref: str | None
    policy: str
    versions: list[VersionRecord]  # newest first
    sources: list[SourceView]

    @property
    def latest(self) -> VersionRecord | None:
        return self.versions[0] if self.versions else None

    @property
    def health(self) -> str:
        states = {s.state for s in self.sources}
        if "failed" in states or "rejected" in states:
            return "bad"
        if any(s.errors_total for s in self.sources) or (self.latest and self.latest.quarantined_rows):
            return "warn"
        return "good"


def _groups(report: dict[str, Any]) -> tuple[list[ErrorGroup], list[dict[str, Any]], int, int | None]:
    task = (report.get("tasks") or [{}])[0]
    errors = task.get("errors", [])
    counts: Counter[tuple[str, str]] = Counter()
    examples: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    file_errors = []
    for e in errors:
        if not e.get("rowNumber"):
            file_errors.append(e)
            continue
        key = (e.get("fieldName") or "—", e.get("type", "?"))
        counts[key] += 1
        if len(examples[key]) < EXAMPLES_PER_GROUP:
            examples[key].append({"row": e.get("rowNumber"), "cell": e.get("cell"), "message": e.get("message")})
    groups = [ErrorGroup(f, t, n, examples[(f, t)]) for (f, t), n in counts.most_common()]
    total = int(task.get("stats", {}).get("errors") or len(errors))
    return groups, file_errors, total, task.get("stats", {}).get("rows")


def collect(warehouse: Warehouse, *, only_open: bool = False) -> list[DatasetView]:
    records = metadata.datasets(warehouse)
    by_ds: dict[str, list[VersionRecord]] = defaultdict(list)
    for v in metadata.versions(warehouse, newest_first=True):
        by_ds[v.dataset_id].append(v)
    latest_report = {(r.dataset_id, r.source_key): r.report for r in metadata.latest_reports(warehouse)}
    src_by_ds: dict[str, list[SourceView]] = defaultdict(list)
    for s in metadata.sources(warehouse):
        view = SourceView(s.label, s.state, s.layer, s.reason or "", s.checked_at, s.changed_at)
        report = latest_report.get((s.dataset_id, s.source_key))
        if report is not None:
            view.groups, view.file_errors, view.errors_total, view.rows = _groups(report)
        src_by_ds[s.dataset_id].append(view)
    out = []
    for d in records:
        if only_open and d.access != "open":
            continue
        out.append(DatasetView(d.id, d.title, d.description or "", d.access, d.license, d.publisher, d.schema_ref,
                               d.policy, by_ds[d.id], src_by_ds[d.id]))
    return out


def build_site(warehouse: Warehouse, out: Path, *, only_open: bool = False, now: dt.datetime | None = None) -> list[Path]:
    """Write the site into ``out``; returns the pages written."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("partage.report", "templates"), autoescape=select_autoescape(["html"]))
    now = now or dt.datetime.now(dt.timezone.utc)
    datasets = collect(warehouse, only_open=only_open)

    def age(when: dt.datetime | None, lang: str) -> str:
        if when is None:
            return TEXT[lang]["never"]
        days = (now - when).days
        return TEXT[lang]["today"] if days < 1 else TEXT[lang]["days_ago"].format(n=days)

    def fmt_date(when: dt.datetime | None) -> str:
        return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if when else "—"

    written = []
    out.mkdir(parents=True, exist_ok=True)
    common = {"languages": LANGUAGES, "generated": fmt_date(now), "fmt_date": fmt_date}
    page = env.get_template("choose.html").render(**common, t=TEXT["fr"], datasets=datasets)
    written.append(_write(out / "index.html", page))
    for lang in LANGUAGES:
        ctx = {**common, "lang": lang, "t": TEXT[lang], "errors_titles": ERROR_TITLES[lang],
               "age": lambda w, _l=lang: age(w, _l)}
        written.append(_write(out / lang / "index.html", env.get_template("index.html").render(**ctx, datasets=datasets)))
        for d in datasets:
            html = env.get_template("dataset.html").render(**ctx, d=d)
            written.append(_write(out / lang / f"{d.id}.html", html))
    return written


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
