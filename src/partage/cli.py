"""``partage``: the command line of the hub.

Exit codes follow DESIGN.md: ``harvest`` 0 when every source is updated or
unchanged, 1 when some were rejected or failed, 2 for a bad configuration;
``validate`` 0 valid, 1 invalid, 2 could not validate; ``sql`` 2 on an SQL error.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__
from .errors import CatalogError, HarvestRunning, PartageError, WarehouseBusy

app = typer.Typer(
    help="Partage: harvest, validate, store and publish the data of a territory.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)
catalog_app = typer.Typer(help="Work on the catalog (catalog/*.yaml).", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
schemas_app = typer.Typer(help="The local schema cache, filled from schema.data.gouv.fr.", no_args_is_help=True)
app.add_typer(schemas_app, name="schemas")

# Not a terminal (CI logs, pipes): rich would wrap at 80 columns and squeeze the tables.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

CatalogOpt = Annotated[Path, typer.Option("--catalog", envvar="PARTAGE_CATALOG", help="Catalog directory.")]
WarehouseOpt = Annotated[str, typer.Option(
    "--warehouse", envvar="PARTAGE_WAREHOUSE",
    help="Warehouse directory, or an object-store URL (s3://bucket/prefix) with PARTAGE_LOCAL_DIR for the DuckDB file.")]

STATE_STYLE = {"updated": "green", "unchanged": "dim", "rejected": "yellow", "failed": "red", "gone": "magenta",
               "skipped": "dim"}
STATE_MARK = {"updated": "✓", "unchanged": "=", "rejected": "✗", "failed": "!", "gone": "-", "skipped": "~"}
UNREADABLE = {"source-error", "scheme-error", "format-error", "encoding-error", "resource-error", "general-error",
              "io-error", "compression-error", "package-error", "schema-error", "field-error"}


def _version(value: bool) -> None:
    if value:
        out.print(f"partage {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool | None, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")] = None,
) -> None:
    pass


def _fail(message: str, code: int) -> None:
    err.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(code)


def _catalog_problems(e: CatalogError, consequence: str) -> None:
    """Every problem of the catalog, then exit 2 (a configuration error)."""
    err.print(f"[red]The catalog has {len(e.problems)} problem(s){consequence}:[/red]")
    for p in e.problems:
        err.print(f"  • {escape(p)}")
    raise typer.Exit(2) from None


@contextmanager
def _progress(handler: logging.Handler) -> Iterator[None]:
    """Route the flows' progress records (logger partage.progress) to the terminal, for this command only."""
    progress = logging.getLogger("partage.progress")
    progress.addHandler(handler)
    progress.setLevel(logging.INFO)
    progress.propagate = False
    try:
        yield
    finally:
        progress.removeHandler(handler)


# -- catalog ----------------------------------------------------------------


SchemasOpt = Annotated[Path | None, typer.Option(
    "--schemas", envvar="PARTAGE_SCHEMAS", help="Local schema cache (default: schemas/ beside the catalog).")]


@catalog_app.command("check")
def catalog_check(catalog: CatalogOpt = Path("catalog"), schemas: SchemasOpt = None) -> None:
    """Check every catalog file at once: keys and values (with 'did you mean'), licences, schema refs,
    credential variables. Exit 2 on any problem; warnings alone exit 0."""
    from .catalog import check_catalog

    result = check_catalog(catalog, schemas_dir=schemas)
    for w in result.warnings:
        err.print(f"[yellow]warning:[/yellow] {escape(w)}")
    if result.problems:
        _catalog_problems(CatalogError(result.problems), "")
    cat = result.catalog
    n_sources = sum(len(e.dataset.sources) for e in cat.entries.values())
    warned = f", {len(result.warnings)} warning(s)" if result.warnings else ""
    out.print(f"[green]✓[/green] {cat.root}: {len(cat.entries)} dataset(s), {n_sources} source(s), "
              f"{len(cat.targets)} publication target(s): OK{warned}")


# -- schemas ----------------------------------------------------------------

CacheOpt = Annotated[Path, typer.Option("--schemas", envvar="PARTAGE_SCHEMAS", help="Local schema cache.")]
FromOpt = Annotated[str | None, typer.Option(
    "--from", envvar="PARTAGE_SCHEMA_BASE_URL",
    help="Address of schema.data.gouv.fr or of a mirror serving the same paths (/schemas.json, /schemas/...).")]


@schemas_app.command("add")
def schemas_add(
    refs: Annotated[list[str], typer.Argument(help="publisher/name@version (publisher/name: the latest version).")],
    schemas: CacheOpt = Path("schemas"),
    source: FromOpt = None,
) -> None:
    """Fetch national schemas into the local cache, byte for byte, with their sha256."""
    from .errors import SchemaError
    from .schemas import add_schema, schema_base_url

    failed = 0
    for ref in refs:
        try:
            outcome = add_schema(ref, schemas, schema_base_url(source))
        except SchemaError as e:
            err.print(f"[red]✗[/red] {escape(str(e))}")
            failed += 1
            continue
        c = outcome.cached
        out.print(f"[green]✓[/green] {escape(c.ref)} {outcome.state}: {escape(str(c.path))} [dim]sha256 {c.sha256}[/dim]")
        out.print(f"  [dim]pin it in a catalog entry:[/dim] schema: {escape(c.ref)}")
    if failed:
        raise typer.Exit(1)


@schemas_app.command("list")
def schemas_list(schemas: CacheOpt = Path("schemas")) -> None:
    """The schemas of the local cache, their file, sha256 and origin."""
    from .schemas import list_cached

    cached = list_cached(schemas)
    if not cached:
        out.print(f"No schema in {escape(str(schemas))}; `partage schemas add publisher/name@version` fetches one.")
        return
    table = Table("schema", "sha256", "from")
    for c in cached:
        table.add_row(escape(c.ref), c.sha256[:16] + "…", escape(c.url or "(copied by hand)"))
    out.print(table)


@schemas_app.command("update")
def schemas_update(
    check: Annotated[bool, typer.Option("--check", help="Only say what is newer or changed; write nothing.")] = False,
    schemas: CacheOpt = Path("schemas"),
    source: FromOpt = None,
) -> None:
    """Newer published versions of the cached schemas (added unless --check; catalog pins are never changed)."""
    from .errors import SchemaError
    from .schemas import add_schema, check_updates, schema_base_url

    try:
        base = schema_base_url(source)
        found = check_updates(schemas, base)
    except SchemaError as e:
        _fail(str(e), 2)
    behind = 0
    for u in found:
        if u.missing:
            out.print(f"[yellow]?[/yellow] {escape(u.name)}: no longer in the national catalog (cached: {', '.join(u.cached)})")
            continue
        for v in u.changed:
            behind += 1
            out.print(f"[red]![/red] {escape(u.name)}@{v}: the published file differs from the cache; compare before trusting either")
        if not u.newer:
            out.print(f"[green]=[/green] {escape(u.name)}: up to date ({u.cached[-1]})")
            continue
        behind += 1
        if check:
            out.print(f"[yellow]↑[/yellow] {escape(u.name)}: {', '.join(u.newer)} published (cached: {', '.join(u.cached)})")
            continue
        try:
            outcome = add_schema(f"{u.name}@{u.newer[-1]}", schemas, base)
        except SchemaError as e:
            err.print(f"[red]✗[/red] {escape(str(e))}")
            continue
        out.print(f"[green]✓[/green] {escape(outcome.cached.ref)} added; the catalog entries still pin their version")
    if check and behind:
        raise typer.Exit(1)


# -- harvest ----------------------------------------------------------------


class _ProgressHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        s = getattr(record, "partage_source", None)
        if s is not None:
            style = STATE_STYLE[s.state]
            out.print(f"  [{style}]{STATE_MARK[s.state]} {s.state:<9}[/{style}] {escape(s.dataset_id)} · "
                      f"{escape(s.label)} [dim]— {escape(s.reason)}[/dim]", highlight=False)


def _quiet_prefect(verbose: bool) -> None:
    """Prefect's own INFO lines drown the per-source progress; keep them for --verbose."""
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "partage")
    # The ephemeral server's telemetry heartbeat races the first flow run for its SQLite file
    # ("database is locked") and phones home, which a hub without internet cannot do anyway.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@app.command()
def harvest(
    ids: Annotated[list[str] | None, typer.Argument(help="Dataset ids (default: the whole catalog).")] = None,
    catalog: CatalogOpt = Path("catalog"),
    warehouse: WarehouseOpt = "warehouse",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's logs too.")] = False,
) -> None:
    """Run the harvest flow: a line per source, then a summary table."""
    from .local_prefect import EarlyServer

    _quiet_prefect(verbose)
    with _harvest_locks(ids, catalog, warehouse):
        server = EarlyServer()
        server.start()
        _harvest(ids, catalog, warehouse, server)


EXIT_RUNNING = 3  # another harvest is writing one of these datasets (or gc is running): nothing was done


@contextmanager
def _harvest_locks(ids: list[str] | None, catalog: Path, warehouse: str) -> Iterator[None]:
    """Take the datasets' harvest locks before Prefect starts, and lend them to the flow.

    A second harvest of the same dataset is then refused at once (exit 3, no traceback, nothing
    downloaded), instead of after Prefect's start-up."""
    from .catalog import load_catalog
    from .store.warehouse import Warehouse

    try:
        entries = load_catalog(catalog).select(ids)
    except CatalogError:
        yield  # _harvest reports every problem of the catalog
        return
    with ExitStack() as held:
        try:
            held.enter_context(Warehouse(warehouse).harvest_lock([e.id for e in entries], lend=True))
        except HarvestRunning as e:
            _fail(f"{e}; nothing was harvested", EXIT_RUNNING)
        yield


def _harvest(ids: list[str] | None, catalog: Path, warehouse: str, server: Any) -> None:
    from .catalog import load_catalog
    from .store.warehouse import Warehouse

    try:
        cat = load_catalog(catalog)
        entries = cat.select(ids)
    except CatalogError as e:
        _catalog_problems(e, "; nothing was harvested")
    out.print(f"Harvesting {len(entries)} dataset(s) from {cat.root} into {Warehouse(warehouse).data_root} …")
    try:
        with _progress(_ProgressHandler()):
            from flows.harvest import harvest as harvest_flow  # imports Prefect while the early server boots

            server.wait_ready()
            summary = harvest_flow(catalog=str(catalog), warehouse=str(warehouse), ids=list(ids) if ids else None)
    except HarvestRunning as e:
        _fail(f"{e}; nothing was harvested", EXIT_RUNNING)
    except WarehouseBusy as e:
        _fail(str(e), 1)
    except CatalogError as e:
        _fail(str(e), 2)
    except PartageError as e:
        _fail(str(e), 1)
    table = Table(title=f"Harvest {summary.run_id}", title_justify="left")
    shown = ("updated", "unchanged", "rejected", "failed") + tuple(k for k in ("gone", "skipped") if summary.counts().get(k))
    for col in ("dataset", "sources", *shown, "rows", "quarantined", "version"):
        table.add_column(col, justify="right" if col not in ("dataset", "version") else "left")
    for d in summary.datasets:
        states: list[str] = [s.state for s in d.sources]
        table.add_row(
            d.dataset_id, str(len(states)),
            *[f"[{STATE_STYLE[k]}]{states.count(k)}[/]" if states.count(k) else "0" for k in shown],
            "" if d.rows is None else f"{d.rows:,}", "" if d.quarantined is None else f"{d.quarantined:,}",
            d.version or ("(unchanged)" if d.ok else "(kept previous)"),
        )
    out.print(table)
    counts = summary.counts()
    out.print(", ".join(f"{v} {k}" for k, v in counts.items()) +
              ("" if summary.exit_code == 0 else " — see the reasons above; `partage status --sources` keeps them"))
    raise typer.Exit(summary.exit_code)


# -- publish ------------------------------------------------------------------

ACTION_STYLE = {"create": "green", "update": "cyan", "unchanged": "dim", "skip": "yellow", "delete": "magenta"}


class _PublishHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        items = getattr(record, "partage_plan", None)
        if items is not None:
            table = Table(title=f"Plan for {getattr(record, 'partage_target', '')}", title_justify="left")
            for col in ("dataset", "action", "what / why"):
                table.add_column(col, overflow="fold")
            for i in items:
                style = "red" if i.status == "failed" else ACTION_STYLE[i.action]
                table.add_row(escape(i.dataset_id), f"[{style}]{'failed' if i.status == 'failed' else i.action}[/]",
                              escape(i.detail))
            out.print(table)
        item = getattr(record, "partage_published", None)
        if item is not None and item.action not in ("unchanged", "skip") or (item is not None and item.status == "failed"):
            mark = "[red]✗ failed[/red]" if item.status == "failed" else "[green]✓ done[/green]  "
            out.print(f"  {mark} {escape(item.target)} · {escape(item.dataset_id)}: {item.action}"
                      + (f" [dim]— {escape(item.error)}[/dim]" if item.error else ""), highlight=False)


@app.command()
def publish(
    target: Annotated[list[str] | None, typer.Option("--target", help="Only this target (repeatable).")] = None,
    ids: Annotated[list[str] | None, typer.Argument(help="Dataset ids (default: the whole catalog).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and change nothing.")] = False,
    catalog: CatalogOpt = Path("catalog"),
    warehouse: WarehouseOpt = "warehouse",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's logs too.")] = False,
) -> None:
    """Publish catalog entries to the targets of _targets.yaml: prints the plan, then does it."""
    from .catalog import load_catalog

    try:
        cat = load_catalog(catalog)
        cat.select(ids)
    except CatalogError as e:
        _catalog_problems(e, "; nothing was published")
    if not cat.targets:
        _fail(f"no publication target: add one to {cat.root / '_targets.yaml'}", 2)
    unknown = [t for t in (target or []) if t not in cat.targets]
    if unknown:
        _fail(f"unknown target(s) {', '.join(unknown)}; _targets.yaml has: {', '.join(sorted(cat.targets))}", 2)
    _quiet_prefect(verbose)
    from .local_prefect import EarlyServer

    server = EarlyServer()
    server.start()
    _publish(target, ids, dry_run, catalog, warehouse, server)


def _publish(target: list[str] | None, ids: list[str] | None, dry_run: bool, catalog: Path, warehouse: str,
             server: Any) -> None:
    try:
        with _progress(_PublishHandler()):
            from flows.publish import publish as publish_flow  # imports Prefect while the early server boots

            server.wait_ready()
            summary = publish_flow(catalog=str(catalog), warehouse=str(warehouse),
                                   targets=list(target) if target else None, ids=list(ids) if ids else None,
                                   dry_run=dry_run)
    except CatalogError as e:
        _fail(str(e), 2)
    except PartageError as e:
        _fail(str(e), 1)
    if dry_run:
        out.print("[dim]dry run: nothing was changed[/dim]")
    else:
        failed = sum(1 for i in summary.items if i.status == "failed")
        out.print(", ".join(f"{name}: {n} write(s)" for name, n in summary.writes.items())
                  + (f" — [red]{failed} failed[/red]" if failed else ""))
    raise typer.Exit(summary.exit_code)


# -- gc -----------------------------------------------------------------------


@app.command()
def gc(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would go; delete nothing.")] = False,
    grace: Annotated[float, typer.Option("--grace", min=0, help=(
        "Hours a lake snapshot no kept version needs, or a data file nothing refers to, is left alone before "
        "it goes: a transaction an analyst opened on it reads on until then."))] = 24.0,
    catalog: CatalogOpt = Path("catalog"),
    warehouse: WarehouseOpt = "warehouse",
) -> None:
    """Apply each dataset's `retention:`, expire the lake snapshots no kept version needs, and remove what
    crashes left behind (never the latest version)."""
    from .catalog import load_catalog
    from .gc import collect_garbage
    from .store.warehouse import Warehouse

    wh = Warehouse(warehouse)
    if not wh.exists():
        _fail(f"no warehouse at {wh.db_path}: nothing to collect", 2)
    try:
        cat = load_catalog(catalog)
    except CatalogError as e:
        _catalog_problems(e, "; nothing was collected")
    try:
        r = collect_garbage(wh, cat, dry_run=dry_run, grace=dt.timedelta(hours=grace))
    except HarvestRunning as e:
        _fail(f"{e}; nothing was collected", EXIT_RUNNING)
    except WarehouseBusy as e:
        _fail(str(e), 1)
    verb = "would remove" if dry_run else "removed"
    out.print(f"{verb}: {len(r.versions)} old version(s), {len(r.orphans) + len(r.remote_orphans)} orphan(s), {len(r.raw_files)} raw file(s); "
              f"{r.bytes_freed / 1024**2:.1f} MiB")
    for ds_id, v in r.versions:
        out.print(f"  version {escape(ds_id)}/{v} (retention)")
    for p in r.orphans:
        out.print(f"  orphan {escape(str(p))}")
    for url in r.remote_orphans:
        out.print(f"  orphan {escape(url)}")
    out.print(f"lake: {len(r.snapshots)} snapshot(s) {'to expire' if dry_run else 'expired'} (older than {grace:g} h, "
              f"needed by no kept version), {len(r.lake_files)} data file(s) {'due for deletion' if dry_run else 'deleted'}")


# -- report -------------------------------------------------------------------


@app.command()
def report(
    out_dir: Annotated[Path | None, typer.Option("--out", help="Where to write the site (default: <warehouse>/report).")] = None,
    only_open: Annotated[bool, typer.Option("--open-only", help="Leave out partners and internal datasets.")] = False,
    warehouse: WarehouseOpt = "warehouse",
) -> None:
    """Write the quality site (static HTML, French and English) for producers and the data team."""
    from .report import build_site
    from .store.warehouse import Warehouse

    wh = Warehouse(warehouse)
    if not wh.exists():
        _fail(f"no warehouse at {wh.db_path}: run `partage harvest` first", 2)
    target = out_dir or wh.root / "report"
    try:
        pages = build_site(wh, target, only_open=only_open)
    except PartageError as e:
        _fail(str(e), 2)
    out.print(f"[green]✓[/green] {len(pages)} page(s) written; open {target / 'index.html'}")


# -- operations with a Prefect server -----------------------------------------


@app.command()
def schedules(
    apply: Annotated[bool, typer.Option("--apply", help="Replace the deployment's schedules on the Prefect server.")] = False,
    deployment: Annotated[str, typer.Option(help="The harvest deployment, FLOW/NAME.")] = "harvest/harvest-nightly",
    default_cron: Annotated[str, typer.Option(help="For datasets without `schedule:`.")] = "0 3 * * *",
    catalog: CatalogOpt = Path("catalog"),
) -> None:
    """Turn the catalog's per-dataset `schedule:` keys into schedules of the harvest deployment."""
    from .catalog import load_catalog
    from .scheduling import schedule_groups

    try:
        groups = schedule_groups(load_catalog(catalog), default_cron)
    except CatalogError as e:
        _fail("; ".join(e.problems), 2)
    table = Table(title=f"Schedules of {deployment}", title_justify="left")
    for col in ("cron", "time zone", "datasets"):
        table.add_column(col)
    for g in groups:
        table.add_row(g.cron, g.timezone, ", ".join(g.ids))
    out.print(table)
    if not apply:
        out.print("[dim]--apply to set them on the Prefect server (PREFECT_API_URL)[/dim]")
        return
    if not os.environ.get("PREFECT_API_URL"):
        _fail("--apply needs a Prefect server: set PREFECT_API_URL (see README, Scheduling with Prefect)", 2)
    from flows.operations import apply_schedules

    try:
        apply_schedules(str(catalog), deployment, default_cron)
    except PartageError as e:
        _fail(str(e), 1)
    out.print(f"[green]✓[/green] {len(groups)} schedule(s) set on {deployment}")


@app.command()
def alerts(
    block: Annotated[str, typer.Option("--block", help="Notification block TYPE/NAME, e.g. slack-webhook/equipe-data.")],
) -> None:
    """Create the Prefect automation that notifies through BLOCK on every rejected or failed source."""
    if not os.environ.get("PREFECT_API_URL"):
        _fail("alerts need a Prefect server: set PREFECT_API_URL (automations do not run in ephemeral mode)", 2)
    from flows.operations import install_alerts

    try:
        automation = install_alerts(block)
    except PartageError as e:
        _fail(str(e), 1)
    out.print(f"[green]✓[/green] automation {automation} notifies through {block} on rejected or failed sources")


# -- validate -----------------------------------------------------------------


@app.command()
def validate(
    target: Annotated[str, typer.Argument(metavar="FILE_OR_URL", help="A local file or an http(s) URL.")],
    schema: Annotated[str | None, typer.Option("--schema", help="publisher/name@version, a path or a URL; inferred if omitted.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the frictionless-shaped report as JSON.")] = False,
    encoding: Annotated[str | None, typer.Option(help="Force the encoding (default: detected).")] = None,
    delimiter: Annotated[str | None, typer.Option(help="Force the delimiter (default: detected).")] = None,
    decimal_char: Annotated[str | None, typer.Option("--decimal-char", help="Decimal separator for numbers, e.g. ','.")] = None,
    schemas_dir: Annotated[Path, typer.Option("--schemas", envvar="PARTAGE_SCHEMAS", help="Local schema cache.")] = Path("schemas"),
    max_errors: Annotated[int, typer.Option(help="Errors shown (not --json).")] = 20,
    warehouse: Annotated[str, typer.Option(envvar="PARTAGE_WAREHOUSE",
                                           help="Where the datasets the schema's foreign keys point to are read.")] = "warehouse",
) -> None:
    """Validate one file against a Table Schema: exit 0 valid, 1 invalid, 2 could not validate."""
    from pydantic import ValidationError

    from .catalog import Dialect as DialectConfig
    from .rawstore import RawStore
    from .schemas import resolve_schema, schema_from_descriptor
    from .validate import infer_schema
    from .validate import validate as run_validate

    try:
        config = DialectConfig(encoding=encoding, delimiter=delimiter, decimalChar=decimal_char)
    except ValidationError as e:
        _fail("; ".join(x["msg"] for x in e.errors()), 2)
    with tempfile.TemporaryDirectory(prefix="partage-validate-") as tmp:
        try:
            if target.lower().startswith(("http://", "https://")):
                from .fetch import fetch

                store = RawStore(Path(tmp))
                outcome = fetch(target, store)
                path = store.path_for(outcome.sha256 or "")
            else:
                path = Path(target)
                if not path.is_file():
                    _fail(f"{target}: no such file", 2)
            from .unpack import plain_file

            path = plain_file(path, Path(tmp) / "unpacked", target)  # a .csv.gz, a one-file zip; a web page: refused
            from .pipeline import read_as

            path, dialect = read_as(path, config, target, Path(tmp) / "unpacked")  # a mix of encodings: line by line
            resolved = (resolve_schema(schema, catalog_dir=None, schemas_dir=schemas_dir) if schema
                        else schema_from_descriptor(infer_schema(path, dialect)))
            from .references import foreign_references
            from .store.warehouse import Warehouse

            # keys to datasets this warehouse lacks are reported as not checked (the report's warnings)
            references, _ = foreign_references(resolved.descriptor, Warehouse(warehouse), None, strict=False)
        except PartageError as e:
            _fail(str(e), 2)
        report = run_validate(path, resolved, dialect, references=references)
    report.descriptor["partage"] = {"source": target, "schema": resolved.ref, "dialect": dialect.to_dict()}
    unreadable = bool(report.errors) and all(e.get("type") in UNREADABLE for e in report.errors)
    code = 0 if report.valid else 2 if unreadable else 1
    if as_json:
        sys.stdout.write(report.to_json(indent=2) + "\n")
        raise typer.Exit(code)
    d = dialect
    out.print(f"[dim]{escape(target)}: {escape(d.describe())}; schema {escape(resolved.ref)}[/dim]")
    for warning in report.descriptor.get("warnings") or []:
        out.print(f"[yellow]! {escape(str(warning))}[/yellow]")
    if report.valid:
        out.print(f"[green]✓ valid[/green]: {report.row_count:,} rows")
        raise typer.Exit(0)
    label = "could not validate" if unreadable else "invalid"
    out.print(f"[red]✗ {label}[/red]: {report.error_count:,} error(s) in {report.invalid_rows:,} row(s) of {report.row_count:,}")
    table = Table(show_lines=False)
    for col in ("row", "field", "type", "message"):
        table.add_column(col)
    for item in report.errors[:max_errors]:
        table.add_row(str(item.get("rowNumber", "")), escape(str(item.get("fieldName", ""))), item.get("type", ""),
                      escape(item.get("message", "")))
    out.print(table)
    if report.error_count > max_errors:
        out.print(f"… and {report.error_count - max_errors:,} more (use --json for the full report)")
    raise typer.Exit(code)


# -- warehouse reads ----------------------------------------------------------


def _open_ro(warehouse: str) -> Any:
    """The warehouse to read, or exit 0 saying there is none yet (a fresh install is not an error)."""
    from .store.warehouse import Warehouse

    wh = Warehouse(warehouse)
    if not wh.exists():
        out.print(f"No warehouse at {wh.db_path} yet: run `partage harvest` first.")
        raise typer.Exit(0)
    return wh


def _when(at: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return at.strftime(fmt) if at else ""


@app.command()
def status(
    dataset: Annotated[str | None, typer.Argument(help="Limit to one dataset.")] = None,
    sources: Annotated[bool, typer.Option("--sources", help="One line per source, with the reason of its state.")] = False,
    warehouse: WarehouseOpt = "warehouse",
) -> None:
    """Datasets, their latest version and the last state of their sources."""
    from .store import metadata

    try:
        wh = _open_ro(warehouse)
        rows = metadata.dataset_statuses(wh, dataset)
        src_rows = metadata.sources(wh, dataset) if sources else []
    except PartageError as e:
        _fail(str(e), 2)
    table = Table(title="Datasets", title_justify="left")
    for col in ("dataset", "access", "latest version", "rows", "quarantined", "sources", "not ok", "last checked"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.id, r.access, r.latest_version or "(none yet)", "" if r.rows is None else f"{r.rows:,}",
                      "" if r.quarantined is None else f"{r.quarantined:,}", str(r.sources),
                      f"[red]{r.not_ok}[/red]" if r.not_ok else "0", _when(r.last_checked))
    out.print(table)
    if sources:
        st = Table(title="Sources", title_justify="left", show_lines=True)
        for col in ("dataset", "source", "remote id", "state", "decided by", "reason", "changed"):
            st.add_column(col, overflow="fold")
        for s in src_rows:
            style = STATE_STYLE.get(s.state or "", "")
            state = s.state or ""
            if s.gone_since:
                state += f" since {s.gone_since.strftime('%Y-%m-%d')}"
            st.add_row(s.dataset_id, escape(s.label or ""), escape(s.remote_id or ""), f"[{style}]{state}[/]",
                       s.layer or "", escape(s.reason or ""), _when(s.changed_at))
        out.print(st)


@app.command()
def history(
    dataset: Annotated[str, typer.Argument(help="Dataset id.")],
    warehouse: WarehouseOpt = "warehouse",
    as_json: Annotated[bool, typer.Option("--json", help="One object per version, with its snapshot and SQL.")] = False,
) -> None:
    """Every stored version of a dataset, newest first, with the lake snapshot to read it by time travel."""
    from .store import metadata

    try:
        wh = _open_ro(warehouse)
        entries = metadata.history(wh, dataset)
        known = bool(entries) or bool(metadata.dataset_statuses(wh, dataset))
    except PartageError as e:
        _fail(str(e), 2)
    if not known:
        _fail(f"no dataset {dataset!r} in the warehouse {wh.spec}; `partage status` lists the datasets it has", 2)
    if as_json:
        sys.stdout.write(json.dumps([{
            "version": e.version.version, "created_at": e.version.created_at.isoformat(),
            "rows": e.version.row_count, "quarantined": e.version.quarantined_rows, "schema": e.version.schema_ref,
            "new_parts": e.version.new_parts, "path": e.version.path, "snapshot_id": e.snapshot_id,
            "snapshot_time": e.snapshot_time.isoformat() if e.snapshot_time else None,
            "sql": e.time_travel_sql()} for e in entries], ensure_ascii=False, indent=2) + "\n")
        return
    if not entries:
        out.print(f"No version of {dataset!r} yet.")
        return
    table = Table(title=f"History of {dataset}", title_justify="left")
    table.add_column("version", no_wrap=True)
    table.add_column("snapshot", no_wrap=True, justify="right")
    for col in ("committed", "rows", "quarantined", "schema", "new parts", "path"):
        table.add_column(col, overflow="fold")
    for e in entries:
        v = e.version
        table.add_row(v.version, "" if e.snapshot_id is None else str(e.snapshot_id),
                      _when(e.snapshot_time or v.created_at, "%Y-%m-%d %H:%M:%S"), f"{v.row_count:,}",
                      f"{v.quarantined_rows:,}", v.schema_ref or "", ", ".join(v.new_parts), v.path)
    out.print(table)
    example = next((e for e in reversed(entries) if e.snapshot_id is not None), None)
    if example is not None:  # the oldest version still reachable: the case time travel is for
        out.print(f"Read a version as it was stored (DuckLake time travel), here {example.version.version}; "
                  "put another version's snapshot in its place:", highlight=False, soft_wrap=True)
        out.print(f"  {escape(example.time_travel_sql() or '')};", highlight=False, soft_wrap=True)
        out.print("[dim]in `partage sql`, or in DuckDB after `duckdb -init attach.sql` (the warehouse's attach.sql); "
                  'history."<id>" has every version, with _version saying which[/dim]', soft_wrap=True)


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="SQL, run read-only on the warehouse.")],
    warehouse: WarehouseOpt = "warehouse",
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    max_rows: Annotated[int, typer.Option(help="Rows printed in table format.")] = 200,
) -> None:
    """Run a read-only query on the warehouse (exit 2 on an SQL error)."""
    import duckdb

    if fmt not in ("table", "csv", "json"):
        _fail("--format must be table, csv or json", 2)
    try:
        with _open_ro(warehouse).connect(read_only=True) as con:
            cur = con.execute(query)
            names = [d[0] for d in cur.description] if cur.description else []
            rows = cur.fetchall() if names else []
    except duckdb.Error as e:
        _fail(f"SQL error: {e}", 2)
    except PartageError as e:
        _fail(str(e), 2)
    if fmt == "csv":
        import csv

        w = csv.writer(sys.stdout)
        w.writerow(names)
        w.writerows(rows)
        return
    if fmt == "json":
        sys.stdout.write(json.dumps([dict(zip(names, r)) for r in rows], ensure_ascii=False, default=str, indent=2) + "\n")
        return
    table = Table()
    for n in names:
        table.add_column(escape(n))
    for r in rows[:max_rows]:
        table.add_row(*[escape("NULL" if v is None else str(v)) for v in r])
    out.print(table)
    if len(rows) > max_rows:
        out.print(f"[dim]{len(rows) - max_rows:,} more row(s) not shown; use --format csv[/dim]")

@app.command()
def migrate(
    warehouse: WarehouseOpt = "warehouse",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and change nothing.")] = False,
    legacy_python: Annotated[str | None, typer.Option(
        "--legacy-python", help="The Python of the old installation (its .venv/bin/python), when this DuckDB cannot "
                                "read the old partage.duckdb: it exports the _partage tables, nothing else.")] = None,
) -> None:
    """Turn a warehouse of the layout before DuckLake (partage.duckdb) into the lake, keeping every version."""
    from .store.migrate import migrate as run_migration
    from .store.warehouse import Warehouse

    try:
        result = run_migration(Warehouse(warehouse), dry_run=dry_run, legacy_python=legacy_python,
                               say=lambda line: out.print(escape(line), highlight=False))
    except PartageError as e:
        _fail(str(e), 2)
    if result.state == "migrated":
        out.print(f"Migrated: {result.committed} snapshot(s) committed. Next: `partage status`, `partage history ID`.")


def _refuse_legacy(args: list[str]) -> None:
    """Any command but ``migrate`` on a warehouse of the old layout stops here, exit 2, naming ``partage migrate``.

    The store refuses it too (``Warehouse.refuse_legacy``); this check makes every command answer
    the same way before it starts (status would otherwise report "no warehouse yet")."""
    from .errors import LegacyWarehouse
    from .store.warehouse import Warehouse

    if "--help" in args:
        return
    cmd: Any = typer.main.get_command(app)
    try:  # typer's click parses the line; duck-typed, as typer vendors its own click
        ctx = cmd.make_context("partage", list(args), resilient_parsing=True)
        while hasattr(cmd, "resolve_command"):
            rest = [*getattr(ctx, "protected_args", getattr(ctx, "_protected_args", [])), *ctx.args]
            if not rest:
                return
            name, sub, sub_args = cmd.resolve_command(ctx, rest)
            if sub is None or name == "migrate":
                return
            cmd = sub
            ctx = cmd.make_context(name or "", sub_args, parent=ctx, resilient_parsing=True)
    except Exception:  # a bad command line: typer reports it; the store refuses the old layout anyway
        return
    option = next((p for p in cmd.params if p.name == "warehouse"), None)
    if option is None:
        return
    spec = ctx.params.get("warehouse") or option.get_default(ctx)
    try:
        Warehouse(str(spec)).refuse_legacy()
    except LegacyWarehouse as e:
        _fail(str(e), 2)


# -- the tabular API ------------------------------------------------------------

tokens_app = typer.Typer(help="API tokens for partners and internal datasets (stored hashed).", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")
TokensOpt = Annotated[str | None, typer.Option(
    "--tokens", envvar="PARTAGE_TOKENS",
    help="Token store: a JSON file (default <warehouse>/.tokens.json) or prefect-secret:NAME / env:NAME (read-only).")]


def _token_store(warehouse: Path | str, tokens: str | None) -> Any:
    from .api.tokens import TokenStore

    location = tokens or str(Path(warehouse).resolve() / ".tokens.json")
    if location.startswith("prefect-secret:"):
        import flows.harvest  # noqa: F401  (registers the prefect-secret: backend)
    return TokenStore(location)


@tokens_app.command("add")
def tokens_add(
    name: Annotated[str, typer.Argument(help="Who the token is for (a partner, a service).")],
    level: Annotated[str, typer.Option("--level", help="partners (open + partners datasets) or internal (all).")],
    warehouse: WarehouseOpt = "warehouse",
    tokens: TokensOpt = None,
) -> None:
    """Create a token and print it once: only its SHA-256 is stored."""
    from .api.tokens import entry_json

    store = _token_store(warehouse, tokens)
    try:
        token, entry = store.add(name, level)
    except PartageError as e:
        _fail(str(e), 2)
    err.print(f"Token {escape(name)!s} ({level}) created; it is shown once, keep it now:")
    sys.stdout.write(token + "\n")
    if store.is_reference:
        err.print(f"{escape(store.location)} is read-only here: add this entry to its JSON \"tokens\" list:")
        err.print(json.dumps(entry_json(entry)))


@tokens_app.command("list")
def tokens_list(warehouse: WarehouseOpt = "warehouse", tokens: TokensOpt = None) -> None:
    """Names and levels of the tokens (never the tokens)."""
    store = _token_store(warehouse, tokens)
    try:
        entries = store.entries()
    except PartageError as e:
        _fail(str(e), 2)
    table = Table("name", "level", "created")
    for entry in entries:
        table.add_row(escape(entry.name), entry.level, entry.created_at)
    out.print(table)


@tokens_app.command("revoke")
def tokens_revoke(name: Annotated[str, typer.Argument(help="Token name.")], warehouse: WarehouseOpt = "warehouse",
                  tokens: TokensOpt = None) -> None:
    """Remove a token; a running `partage serve` stops accepting it at once."""
    try:
        removed = _token_store(warehouse, tokens).revoke(name)
    except PartageError as e:
        _fail(str(e), 2)
    if not removed:
        _fail(f"no token named {name!r}; `partage tokens list` shows them", 1)
    out.print(f"Token {escape(name)} revoked.")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    warehouse: WarehouseOpt = "warehouse",
    catalog: Annotated[Path, typer.Option("--catalog", envvar="PARTAGE_CATALOG", help=(
        "Catalog directory: each dataset's access follows its entry as it is now (a dataset made internal "
        "leaves the API within a refresh, no harvest needed). Without it, the access the last harvest recorded."))]
        = Path("catalog"),
    tokens: TokensOpt = None,
    workers: Annotated[int, typer.Option(min=1, help="Server processes: one per core for the most requests per second "
                                                      "(each keeps its own in-memory copies; see docs/serving.md).")] = 1,
    access_log: Annotated[bool, typer.Option("--access-log/--no-access-log", help="Log each request (never its token).")] = True,
) -> None:
    """Serve the warehouse as a read-only tabular API (OpenAPI at /docs)."""
    import uvicorn

    from .api.app import Settings, create_app
    from .store.warehouse import Warehouse

    wh = Warehouse(warehouse)
    if not wh.exists():
        _fail(f"no warehouse at {wh.db_path}; run `partage harvest` first or pass --warehouse", 2)
    try:
        store = _token_store(wh.root, tokens)
        Settings.from_env()  # a bad PARTAGE_API_* value stops here, before any worker starts
        catalog_dir = catalog.resolve() if catalog.is_dir() else None
        application = create_app(wh.spec, tokens=store, catalog=catalog_dir) if workers == 1 else None
    except PartageError as e:
        _fail(str(e), 2)
    except ValueError as e:  # a PARTAGE_API_* variable that is not a number
        _fail(f"a PARTAGE_API_* setting is not a number ({e}); see docs/serving.md for the allowed values", 2)
    err.print(f"Serving {escape(wh.data_root)} on http://{host}:{port} (docs: /docs)"
              + (f" with {workers} processes" if workers > 1 else "")
              + (f"; access follows the catalog {escape(str(catalog_dir))}" if catalog_dir else
                 "; access as the last harvest recorded it (no catalog directory)"))
    if application is not None:
        uvicorn.run(application, host=host, port=port, access_log=access_log, log_level="info",
                    timeout_graceful_shutdown=5)
    else:  # several processes: each builds the app from the environment (uvicorn needs an import string)
        os.environ["PARTAGE_API_WAREHOUSE"] = wh.spec
        os.environ["PARTAGE_API_TOKENS"] = store.location
        os.environ["PARTAGE_API_CATALOG"] = str(catalog_dir or "")
        os.environ["PARTAGE_API_WORKERS"] = str(workers)  # each process then computes its pages on its event loop
        uvicorn.run("partage.api.app:app_from_env", factory=True, workers=workers, host=host, port=port,
                    access_log=access_log, log_level="info", timeout_graceful_shutdown=5)


def main() -> None:
    try:
        _refuse_legacy(sys.argv[1:])
    except typer.Exit as e:
        sys.exit(e.exit_code)
    app()


if __name__ == "__main__":
    main()
