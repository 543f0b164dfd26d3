"""The harvest of one dataset, stage by stage, without Prefect.

``flows/harvest.py`` composes these functions into Prefect tasks; tests and
other callers can use them directly. Data goes one way: source -> raw file ->
validated Parquet -> version -> catalog entry.

A dataset's version is made of *parts*, one per source. A source that did not
change keeps its part from the previous version (hard-linked, not copied); a
source whose new file is rejected keeps its previous part too. So one bad
partner file never takes the others' data down.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from .catalog import Catalog, CatalogEntry
from .catalog import Dialect as DialectConfig
from .consolidate import find_duplicates, primary_key
from .dialect import Dialect, detect, find_mixed_encoding, sniff_format
from .errors import DatasetConflict, NotDataError, PartageError, SourceFormatError, TransientError
from .faults import checkpoint
from .publish import datapackage
from .references import foreign_references, harvest_order, referenced_datasets
from .schemas import ResolvedSchema, resolve_schema, schema_from_descriptor
from .sources import Acquired, SourceResource, acquire, expand
from .unpack import plain_file
from .validate import infer_schema, validate_and_type
from .store.metadata import SourceState
from .validate.infer import describe_inferred
from .store.warehouse import DatasetState, Part, Planned, SourceRecord, Warehouse, new_version_id, now

log = logging.getLogger("partage.harvest")
progress = logging.getLogger("partage.progress")  # one record per source and per dataset, for the CLI's live lines

# a resource the portal no longer lists is news, not a failure; nor is a portal's link to a web page (skipped)
OK_STATES = ("unchanged", "updated", "gone", "skipped")


@dataclass(frozen=True)
class SourceOutcome:
    dataset_id: str
    source_key: str
    label: str
    state: SourceState
    reason: str
    layer: str | None = None
    body_bytes: int = 0
    rows: int | None = None
    quarantined: int | None = None
    errors: int | None = None
    first_errors: tuple[dict[str, Any], ...] = ()  # a few errors (row, field, type, message) for alerts and artifacts
    report_path: str | None = None
    repeat: bool = False  # the same rejected file as last run: still not ok, but not news (no new alert)


_STILL = "; still the file rejected earlier, not validated again ("


def _rejection(record: SourceRecord) -> str:
    """Why the source's current file was rejected, from its record (the first rejection's words, not
    a repeat's repeated)."""
    reason = record.reason or "see its validation report"
    if _STILL in reason:  # a repeat already: keep the words of the first rejection
        reason = reason.split(_STILL, 1)[1].rsplit("); ", 1)[0]
    return reason


def read_as(path: Path, config: DialectConfig, name: str, workdir: Path) -> tuple[Path, Dialect]:
    """The file to validate and how to read it: the dialect the catalog imposes, the rest detected.

    A CSV mixing UTF-8 lines with cp1252 ones (no encoding imposed) is validated from a UTF-8 copy
    made line by line, so neither its UTF-8 letters become mojibake nor its other lines fail; the
    dialect records which lines were converted, for the harvest line and the report."""
    mixed = None
    if config.encoding is None and (config.format or sniff_format(path, name)) == "csv":
        mixed = find_mixed_encoding(path)
        if mixed is not None:
            path = mixed.convert(path, workdir / "utf8" / path.name)
    dialect = detect(path, config, name)
    return path, (replace(dialect, mixed=mixed, detected=(*dialect.detected, "mixed-encoding"))
                  if mixed is not None else dialect)


def _not_readable(a: Acquired, error: SourceFormatError) -> tuple[SourceState, str]:
    """The state and reason of a file that holds no readable data.

    A web page that a *portal* lists among a dataset's resources (a map viewer, a documentation
    page) is not a failure of the data, and its URL is not in the catalog to be fixed: it is
    skipped, with the fix that applies (``formats:``). Anything else fails, with its own advice."""
    if isinstance(error, NotDataError) and a.resource.origin:
        return "skipped", (f"{a.resource.location}: the portal lists a web page (HTML) here, not a data file; "
                           "skipped. To leave such links out, give the portal source `formats:` (e.g. "
                           "[csv, xlsx, json])")
    return "failed", str(error)


def _rejected_report(warehouse: Warehouse, dataset_id: str, key: str) -> str | None:
    """The report of the source's latest rejected file (``<dataset>/rejected/<run id>-<key>.json``;
    run ids sort by time)."""
    return warehouse.latest_rejected_report(dataset_id, key)


@dataclass
class DatasetOutcome:
    dataset_id: str
    sources: list[SourceOutcome]
    version: str | None = None
    rows: int | None = None
    quarantined: int | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return all(s.state in OK_STATES for s in self.sources)


@dataclass
class HarvestSummary:
    run_id: str
    datasets: list[DatasetOutcome] = field(default_factory=list)

    @property
    def sources(self) -> list[SourceOutcome]:
        return [s for d in self.datasets for s in d.sources]

    @property
    def exit_code(self) -> int:
        """0: every source updated or unchanged; 1: some were rejected or failed."""
        return 0 if all(d.ok for d in self.datasets) else 1

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in ("updated", "unchanged", "rejected", "failed")}
        for s in self.sources:
            out[s.state] = out.get(s.state, 0) + 1
        return out


def new_run_id() -> str:
    return now().strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def default_schemas_dir(catalog: Catalog) -> Path:
    import os

    env = os.environ.get("PARTAGE_SCHEMAS")
    return Path(env) if env else catalog.root.parent / "schemas"


def schema_descriptor(entry: CatalogEntry, schemas_dir: Path | None) -> dict[str, Any] | None:
    """The entry's schema, if it names a local one (for ordering datasets by their foreign keys; a schema
    pinned by URL is not fetched for that, the hub's own schemas being the ones that point to its datasets)."""
    if not entry.dataset.schema_ or entry.dataset.schema_.lower().startswith(("http://", "https://")):
        return None
    return resolve_schema(entry.dataset.schema_, catalog_dir=entry.path.parent, schemas_dir=schemas_dir).descriptor


def plan(entry: CatalogEntry, state: DatasetState | None = None) -> tuple[list[SourceResource], list[Acquired]]:
    """The dataset's resources (portals are listed here, over the network) and what failed to expand."""
    return expand(entry, state.records if state else None)


def acquire_source(resource: SourceResource, warehouse: Warehouse) -> Acquired:
    record = warehouse.source_records(resource.dataset_id).get(resource.key)
    acquired = acquire(resource, record, warehouse.raw)
    log.debug("%s/%s acquired: %s (%s)", resource.dataset_id, resource.key, acquired.state, acquired.reason)
    return acquired


def source_dialect(dataset: DialectConfig, own: DialectConfig | None) -> DialectConfig:
    """The dialect a source's files are read with: the dataset's, with the keys the source sets replaced."""
    return dataset if own is None else dataset.model_copy(update=own.model_dump(exclude_none=True))


def fingerprint(entry: CatalogEntry, schema_sha256: str, references: dict[str, str] | None = None,
                source_dialect: DialectConfig | None = None) -> str:
    """What a validation depends on besides the file: a change here revalidates unchanged files.

    ``references``: the version of each dataset the schema's foreign keys point to;
    ``source_dialect``: the source's own ``dialect:``, if it has one."""
    ds = entry.dataset
    what: dict[str, Any] = {"schema": schema_sha256, "policy": ds.policy, "dialect": ds.dialect.model_dump(),
                            "timezone": ds.timezone}
    if ds.duplicates != "first-source":  # only when set, so fingerprints of existing warehouses stay valid
        what["duplicates"] = ds.duplicates
    if references:
        what["references"] = references
    if source_dialect is not None:  # only when set, as above
        what["source_dialect"] = source_dialect.model_dump(exclude_none=True)
    blob = json.dumps(what, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _dataset_row(entry: CatalogEntry) -> dict[str, Any]:
    ds = entry.dataset
    return {"id": ds.id, "title": ds.title, "description": ds.description, "publisher": ds.publisher,
            "license": ds.license, "access": ds.access, "keywords": list(ds.keywords), "schema_ref": ds.schema_,
            "policy": ds.policy, "catalog_file": str(entry.path)}


def _source_update(a: Acquired, state: SourceState, reason: str, **extra: Any) -> dict[str, Any]:
    r = a.resource
    ok = a.state != "failed"
    location = r.canonical or (r.location if r.kind == "file" else None)
    return {"source_key": r.key, "kind": r.kind, "label": r.label, "state": state, "reason": reason, "layer": a.layer,
            "etag": a.etag if ok else None, "last_modified": a.last_modified if ok else None,
            "sha256": a.sha256 if ok else None, "bytes": a.bytes if ok else None, "body_bytes": a.body_bytes,
            "origin": r.origin, "location": location, "remote_id": r.remote_id,
            "remote_modified": r.remote_modified if ok else None, "gone_since": None, **extra}


def _gone(entry: CatalogEntry, acquired: list[Acquired], records: dict[str, SourceRecord]) -> list[dict[str, Any]]:
    """Records of resources no source lists any more: marked gone (with the date), never dropped.

    Their data leaves the next version but stays in every earlier one (``history.<id>``).
    A portal's own row (kept only while the portal cannot be listed) is removed once it lists again.
    """
    current = {a.resource.key for a in acquired}
    out: list[dict[str, Any]] = []
    for key, rec in records.items():
        if key in current or rec.state == "gone":
            continue
        if rec.origin == key:
            out.append({"source_key": key, "delete": True})
            continue
        where = ("no longer listed by its portal" if rec.origin else
                 "no longer in the folder or bucket" if rec.kind in ("file", "s3") else "no longer in the catalog entry")
        out.append({"source_key": key, "kind": rec.kind or "url", "label": rec.label or key, "state": "gone",
                    "layer": None, "reason": f"{where}; its data stays in the earlier versions",
                    "body_bytes": 0, "gone_since": now()})
    return out


def store_dataset(
    entry: CatalogEntry,
    acquired: list[Acquired],
    warehouse: Warehouse,
    *,
    run_id: str,
    schemas_dir: Path | None = None,
    state: DatasetState | None = None,
) -> DatasetOutcome:
    """Validate what changed, apply the policy, and publish a new version if any part changed.

    ``state`` is the dataset's state read before acquiring (the harvest lock keeps it current);
    passing it saves opening the database again.
    """
    ds = entry.dataset
    dataset_row = _dataset_row(entry)
    state = state or warehouse.dataset_state(ds.id)
    records = state.records
    latest = state.latest
    previous_parts = {p.source_key: p for p in latest[1]} if latest else {}
    latest_version = latest[0] if latest else None
    planned = Planned(latest_version)  # every write below is refused if another machine wrote a version since
    outcomes: list[SourceOutcome] = []
    updates: list[dict[str, Any]] = []
    reports: list[dict[str, Any]] = []

    def done(a: Acquired, state: SourceState, reason: str, **extra: Any) -> None:
        counts = {k: extra.pop(k) for k in ("rows", "quarantined", "errors", "first_errors", "report_path", "repeat")
                  if k in extra}
        outcomes.append(SourceOutcome(ds.id, a.resource.key, a.resource.label, state, reason, a.layer,
                                      a.body_bytes, **counts))
        updates.append(_source_update(a, state, reason, **extra))

    # The schema: resolved once per dataset; a bad reference fails every source with the same clear reason.
    schema: ResolvedSchema | None = None
    references: dict[str, Any] = {}
    ref_versions: dict[str, str] = {}
    if ds.schema_:
        try:
            schema = resolve_schema(ds.schema_, catalog_dir=entry.path.parent, schemas_dir=schemas_dir)
            references, ref_versions = foreign_references(schema.descriptor, warehouse, ds.id)
        except PartageError as e:
            for a in acquired:
                done(a, "failed", a.reason if a.state == "failed" else str(e))
            warehouse.record_sources(run_id, dataset_row, updates, reports, planned=planned)
            return DatasetOutcome(ds.id, outcomes, message=str(e))

    version = new_version_id(after=latest_version)
    staging = warehouse.root / ds.id / f".staging-{version}-{uuid.uuid4().hex[:6]}"
    unpacked = warehouse.root / ds.id / f".unpacked-{version}-{uuid.uuid4().hex[:6]}"  # archives' data, deleted below
    new_parts: dict[str, Part] = {}
    inferred = ""  # without a schema in the catalog: what inference decided, for the harvest lines
    try:
        for a in acquired:
            key = a.resource.key
            if a.state == "failed":
                done(a, "failed", a.reason)
                continue
            record = records.get(key)
            assert a.sha256 is not None  # every acquisition that did not fail names its raw file
            raw_path = warehouse.raw.path_for(a.sha256)
            dialect = None
            if schema is None:  # no schema in the catalog: infer from the data, whole columns
                try:
                    raw_path = plain_file(raw_path, unpacked / key, a.resource.location)
                except SourceFormatError as e:
                    done(a, *_not_readable(a, e))
                    continue
                raw_path, dialect = read_as(raw_path, source_dialect(ds.dialect, a.resource.dialect),
                                            a.resource.location, unpacked / key)
                try:
                    schema = schema_from_descriptor(infer_schema(raw_path, dialect), "(inferred)")
                except Exception as e:  # noqa: BLE001 - whatever this file does to inference fails it alone; the next source infers
                    done(a, "failed", f"{a.reason}; {dialect.describe()}; no schema could be inferred from this file "
                                      f"({type(e).__name__}: {str(e).splitlines()[0][:300]}): fix the file, or give "
                                      "the dataset a `schema:`")
                    continue
                inferred = "; " + describe_inferred(schema.descriptor)
            fp = fingerprint(entry, schema.sha256, ref_versions, a.resource.dialect)
            if record is not None and record.validated_sha256 == a.sha256 and record.fingerprint == fp:
                if record.accepted_sha256 != a.sha256:
                    # The current file is the one that was rejected: it stays rejected (not ok, exit 1)
                    # until a new file is accepted; `repeat` keeps alerts to one per new bad file.
                    kept = "the previous data of this source is kept" if key in previous_parts else \
                        "no data of this source is stored yet"
                    done(a, "rejected", f"{a.reason}; still the file rejected earlier, not validated again "
                                        f"({_rejection(record)}); {kept}. Send a corrected file",
                         report_path=_rejected_report(warehouse, ds.id, key), repeat=True)
                    continue
                done(a, "unchanged", a.reason)
                continue
            why = a.reason if a.state == "changed" else \
                a.reason + "; revalidated because the schema, policy or dialect changed" + \
                (" (or a dataset its foreign keys point to has a new version)" if ref_versions else "")
            try:  # a .csv.gz or a one-file zip is read unpacked; a web page is refused (after the unchanged check: no work)
                raw_path = plain_file(raw_path, unpacked / key, a.resource.location)
            except SourceFormatError as e:
                done(a, *_not_readable(a, e))
                continue
            if dialect is None:
                raw_path, dialect = read_as(raw_path, source_dialect(ds.dialect, a.resource.dialect),
                                            a.resource.location, unpacked / key)
            data_rel, q_rel = f"data/{key}.parquet", f"quarantine/{key}.parquet"
            result = validate_and_type(
                raw_path, schema, dialect, policy=ds.policy, source_key=key,
                data_path=staging / data_rel, quarantine_path=staging / q_rel, timezone=ds.timezone,
                references=references, name=ds.id,
            )
            checkpoint("validated")
            report_desc = result.report.descriptor
            report_desc["partage"] = {"source": a.resource.label, "sha256": a.sha256, "dialect": dialect.to_dict(),
                                      "policy": ds.policy, "schema": schema.ref, "accepted": result.accepted}
            report_json = json.dumps(report_desc, ensure_ascii=False, default=str)
            (staging / "reports").mkdir(parents=True, exist_ok=True)
            (staging / "reports" / f"{key}.json").write_text(report_json, encoding="utf-8")
            first = tuple({"row": e.get("rowNumber"), "field": e.get("fieldName"), "type": e.get("type"),
                           "message": e.get("message")} for e in result.report.errors[:10])
            reports.append({"source_key": key, "sha256": a.sha256, "accepted": result.accepted,
                            "valid": result.report.valid, "error_count": result.report.error_count,
                            "report": report_json, "version": None})
            validated = {"validated_sha256": a.sha256, "fingerprint": fp}
            if result.accepted:
                new_parts[key] = Part(key, data_rel, q_rel if result.quarantine_path else None, a.sha256 or "",
                                      result.rows, result.quarantined, version)
                report_path = f"{warehouse.location(ds.id, version)}/reports/{key}.json"  # the bucket's, if remote
                done(a, "updated", f"{why}; {dialect.describe()}{inferred}; {result.reason}", rows=result.rows, quarantined=result.quarantined,
                     errors=result.report.error_count, first_errors=first, report_path=report_path,
                     accepted_sha256=a.sha256, **validated)
            else:
                kept = "; the previous data of this source is kept" if key in previous_parts else ""
                report_file = warehouse.keep_rejected_report(ds.id, f"{run_id}-{key}.json", report_json)
                done(a, "rejected", f"{why}; {dialect.describe()}{inferred}; {result.reason}{kept}", errors=result.report.error_count,
                     first_errors=first, report_path=report_file, **validated)

        current_keys = {a.resource.key for a in acquired}
        removed = [k for k in previous_parts if k not in current_keys]
        for g in _gone(entry, acquired, records):
            updates.append(g)
            if not g.get("delete"):
                outcomes.append(SourceOutcome(ds.id, g["source_key"], g["label"], "gone", g["reason"]))
        if not new_parts and not removed:
            warehouse.record_sources(run_id, dataset_row, updates, reports, planned=planned)
            return DatasetOutcome(ds.id, outcomes, message="no change")

        # Assemble the version: new parts, plus the previous parts of sources that did not change.
        parts: list[Part] = []
        for a in acquired:
            key = a.resource.key
            if key in new_parts:
                parts.append(new_parts[key])
            elif key in previous_parts and latest_version is not None:
                old = previous_parts[key]
                warehouse.carry_over(ds.id, latest_version, old.data, staging / old.data)
                if old.quarantine:
                    warehouse.carry_over(ds.id, latest_version, old.quarantine, staging / old.quarantine)
                parts.append(old)
        if not parts:
            warehouse.record_sources(run_id, dataset_row, updates, reports, planned=planned)
            return DatasetOutcome(ds.id, outcomes, message="no accepted data")
        assert schema is not None
        # Consolidation: a key claimed by several sources is settled by the entry's rule (and reported).
        dups = find_duplicates(staging, parts, primary_key(schema.descriptor), ds.duplicates,
                               [a.resource.key for a in acquired])
        summary = {
            "rows": sum(p.rows for p in parts) - dups.dropped,
            "quarantined": sum(p.quarantined for p in parts),
            "sources": len(parts),
            "valid": all(r["valid"] for r in reports) if reports else True,
            "errors": sum(r["error_count"] for r in reports),
            "removed_sources": removed,
            "duplicates": dups.summary(),
        }
        (staging / "schema.json").write_text(json.dumps(schema.descriptor, ensure_ascii=False, indent=2), encoding="utf-8")
        labels = {a.resource.key: a.resource.label for a in acquired}
        package = datapackage.build(
            ds, version=version, version_dir=staging, schema=schema.descriptor, schema_ref=schema.ref,
            schema_sha256=schema.sha256, parts=[p.to_dict() for p in parts],
            sources=[{"title": labels[p.source_key], "path": labels[p.source_key]} for p in parts], summary=summary,
        )
        (staging / "datapackage.json").write_text(json.dumps(package, ensure_ascii=False, indent=2), encoding="utf-8")
        checkpoint("staged")
        warehouse.publish_version(
            run_id=run_id, dataset=dataset_row, version=version, staged=staging, parts=parts,
            columns=schema.fields, schema_ref=schema.ref, schema_sha256=schema.sha256, summary=summary,
            updates=updates, reports=reports, planned=planned,
        )
        if dups.rows:
            log.warning("%s: %s", ds.id, dups.describe().replace('"<id>"', f'"{ds.id}"'))
        return DatasetOutcome(ds.id, outcomes, version, summary["rows"], summary["quarantined"],
                              f"version {version}: {summary['rows']} rows" +
                              (f", {summary['quarantined']} quarantined" if summary["quarantined"] else "") +
                              (f"; {dups.describe()}".replace('"<id>"', f'"{ds.id}"') if dups.rows else ""))
    finally:
        for work in (staging, unpacked):
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)


def fail_dataset(entry: CatalogEntry, acquired: list[Acquired], warehouse: Warehouse, run_id: str, error: BaseException) -> DatasetOutcome:
    """Record an unexpected crash of a dataset's store step as 'failed' on each source, and go on."""
    if isinstance(error, DatasetConflict):
        reason = str(error)  # the version kept is the other writer's, and the message says so
    elif isinstance(error, PartageError):
        reason = f"{error}; the previous version is kept"
    else:
        reason = f"internal error while storing: {type(error).__name__}: {error}; the previous version is kept"
    outcomes = [SourceOutcome(entry.id, a.resource.key, a.resource.label, "failed",
                              a.reason if a.state == "failed" else reason, a.layer, a.body_bytes) for a in acquired]
    try:
        warehouse.record_sources(run_id, _dataset_row(entry),
                                 [_source_update(a, "failed", o.reason) for a, o in zip(acquired, outcomes)], [])
    except PartageError:
        log.exception("could not record the failure of %s", entry.id)
    return DatasetOutcome(entry.id, outcomes, message=reason)


class TransientSourceFailure(TransientError):
    """An acquisition that failed for a reason worth retrying (a time-out, a 503).

    A scheduler's acquire stage raises it so that its own retry machinery (Prefect's task retries)
    tries again; once the retries are spent, the run loop records the acquisition it carries."""

    def __init__(self, acquired: Acquired):
        self.acquired = acquired
        super().__init__(acquired.reason)


class Pending(Protocol):
    """What a stage hands back: a Prefect future's wrapper, or a value computed at once (:class:`Done`)."""

    def result(self) -> Any: ...

    def done(self) -> bool: ...


@dataclass(frozen=True)
class Done:
    """A stage that ran inline: its value, or the exception it raised (re-raised by ``result``)."""

    value: Any = None
    error: BaseException | None = None

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value

    def done(self) -> bool:
        return True

    @staticmethod
    def of(work: Callable[[], Any]) -> "Done":
        try:
            return Done(work())
        except Exception as e:  # noqa: BLE001 (the loop turns it into a failed source; nothing is lost)
            return Done(error=e)


class Stages(Protocol):
    """How the run loop's three stages are executed: inline (:class:`InlineStages`) or as Prefect tasks
    (``flows/harvest.py``). The loop itself, and so what each source's state means, is the same."""

    def expand(self, entry: CatalogEntry, state: DatasetState) -> Pending: ...

    def acquire(self, resource: SourceResource, record: SourceRecord | None) -> Pending: ...

    def store(self, entry: CatalogEntry, acquired: list[Acquired], run_id: str, state: DatasetState) -> DatasetOutcome: ...


def store_or_fail(entry: CatalogEntry, acquired: list[Acquired], warehouse: Warehouse, *, run_id: str,
                  schemas_dir: Path | None, state: DatasetState | None) -> DatasetOutcome:
    """``store_dataset``, with a crash recorded as ``failed`` on the dataset's sources: one dataset never stops the others."""
    try:
        return store_dataset(entry, acquired, warehouse, run_id=run_id, schemas_dir=schemas_dir, state=state)
    except Exception as e:
        log.exception("storing %s failed", entry.id)
        return fail_dataset(entry, acquired, warehouse, run_id, e)


@dataclass
class InlineStages:
    """Each stage called in this process, one after the other: no scheduler, no retries between tasks."""

    warehouse: Warehouse
    schemas_dir: Path | None

    def expand(self, entry: CatalogEntry, state: DatasetState) -> Pending:
        return Done.of(lambda: plan(entry, state))

    def acquire(self, resource: SourceResource, record: SourceRecord | None) -> Pending:
        return Done.of(lambda: acquire(resource, record, self.warehouse.raw))

    def store(self, entry: CatalogEntry, acquired: list[Acquired], run_id: str, state: DatasetState) -> DatasetOutcome:
        return store_or_fail(entry, acquired, self.warehouse, run_id=run_id, schemas_dir=self.schemas_dir, state=state)


def _expanded(entry: CatalogEntry, pending: Pending) -> tuple[list[SourceResource], list[Acquired]]:
    try:
        resources, failures = pending.result()
    except Exception as e:  # a crashed expansion fails this dataset's sources, not the run
        res = SourceResource(entry.id, "expansion", "url", str(entry.path), entry.id)
        return [], [Acquired(res, "failed", f"{entry.id}: could not list its sources: {type(e).__name__}: {e}")]
    for f in failures:
        log.warning("%s: %s", f.resource.label, f.reason)
    return resources, failures


def _settle(resource: SourceResource, pending: Pending) -> Acquired:
    """The stage's acquisition, or a failed one saying why (retries exhausted, a crash, a time-out)."""
    try:
        return pending.result()
    except TransientSourceFailure as e:
        return e.acquired
    except Exception as e:  # a crashed acquisition
        return Acquired(resource, "failed", f"{resource.label}: {type(e).__name__}: {e}")


def _earlier_references(entries: list[CatalogEntry], schemas_dir: Path | None) -> dict[str, set[str]]:
    """For each dataset, the datasets of this run its foreign keys point to that come before it in
    ``entries`` (the harvest order): it is stored after them, so it is checked against this run's rows.
    Only earlier ones count, so a cycle never makes two datasets wait for each other."""
    out: dict[str, set[str]] = {}
    seen: set[str] = set()
    for e in entries:
        try:
            desc = schema_descriptor(e, schemas_dir)
        except Exception:  # noqa: BLE001 - resolving fails again, with its reason, when the dataset is stored
            desc = None
        out[e.id] = set(referenced_datasets(desc or {}, e.id)) & seen
        seen.add(e.id)
    return out


def run_harvest(catalog: Catalog, warehouse: Warehouse, stages: Stages, ids: list[str] | None = None,
                schemas_dir: Path | None = None) -> HarvestSummary:
    """The harvest's one run loop, whatever executes its stages.

    1. The datasets' locks are taken (a second harvest of the same dataset is refused at once) and
       each dataset's state is read, **before** its sources are listed: a portal that cannot be
       listed then keeps its resources' rows ("not checked; data kept") instead of losing them.
    2. Every dataset's sources are listed, then every source is acquired (a scheduler runs these
       concurrently).
    3. Datasets are stored one by one, each in one lake snapshot, as soon as their sources are all
       in — a slow source never holds up the datasets after it — but never before a dataset their
       foreign keys point to (they are checked against this run's rows). A crash fails that dataset only.
    The run is recorded in ``_partage.runs`` at its start and end.
    """
    schemas_dir = schemas_dir or default_schemas_dir(catalog)
    entries = harvest_order(catalog.select(ids), lambda e: schema_descriptor(e, schemas_dir))
    summary = HarvestSummary(run_id=new_run_id())
    with warehouse.harvest_lock([e.id for e in entries]):
        warehouse.init()
        started = now()
        warehouse.record_run(summary.run_id, started)
        log.info("run %s: %d dataset(s) from %s into %s", summary.run_id, len(entries), catalog.root,
                 warehouse.data_root)
        states = {entry.id: warehouse.dataset_state(entry.id) for entry in entries}
        expansions = [(entry, stages.expand(entry, states[entry.id])) for entry in entries]
        pending = []
        for entry, expansion in expansions:
            resources, failures = _expanded(entry, expansion)
            records = states[entry.id].records
            pending.append((entry, [(r, stages.acquire(r, records.get(r.key))) for r in resources], failures))
        waits_for = _earlier_references(entries, schemas_dir)
        stored: set[str] = set()
        while pending:
            # The first dataset whose sources are all in, and whose referenced datasets are stored:
            # a slow source delays its own dataset only, never the ones after it.
            ready = next((p for p in pending if waits_for[p[0].id] <= stored and all(a.done() for _, a in p[1])), None)
            if ready is None:
                time.sleep(0.1)
                continue
            pending.remove(ready)
            entry, acquisitions, failures = ready
            acquired = [_settle(r, p) for r, p in acquisitions] + failures
            outcome = stages.store(entry, acquired, summary.run_id, states[entry.id])
            stored.add(entry.id)
            summary.datasets.append(outcome)
            for s in outcome.sources:
                log.info("%s · %s: %s — %s", s.dataset_id, s.label, s.state, s.reason)
                progress.info("%s", s.state, extra={"partage_source": s})
            progress.info("%s", outcome.message, extra={"partage_dataset": outcome})
        if ids is None:  # the whole catalog was harvested: what it no longer has is gone, not "not ok"
            for removed in warehouse.mark_removed(summary.run_id, set(catalog.entries)):
                log.info("%s: removed from the catalog; its sources are marked gone, its versions kept", removed)
        warehouse.record_run(summary.run_id, started, {"counts": summary.counts(), "exit_code": summary.exit_code})
    return summary


def harvest_without_prefect(catalog_dir: Path | str, warehouse_dir: Path | str,
                            ids: list[str] | None = None) -> HarvestSummary:
    """The run loop with its stages called inline: no Prefect, no retries between tasks, one source at a time.

    For embedding Partage in another scheduler, and for the crash and
    concurrency tests, which kill or race this process many times and need it
    to start in a second rather than Prefect's several.
    """
    from .catalog import load_catalog

    cat = load_catalog(catalog_dir)
    wh = Warehouse(warehouse_dir)
    schemas_dir = default_schemas_dir(cat)
    return run_harvest(cat, wh, InlineStages(wh, schemas_dir), ids, schemas_dir)
