"""The FastAPI application behind ``partage serve``.

Read-only. Most endpoints are plain ``def`` functions that Starlette runs in its
thread pool. Row pages, the hot path, are computed one of two ways:

- one server process (the default): on a pool of their own with one thread per core
  (``PARTAGE_API_QUERY_THREADS``). Each page query runs on one DuckDB thread, DuckDB
  releases the GIL while it scans, and queuing the rest in order kept the 99th percentile
  at a third of what 16 requests sharing 2 cores in Starlette's 40 threads gave;
- several processes (``partage serve --workers N``): on the event loop itself, one page
  at a time per process, like a prefork server's sync workers. Handing each page to a
  thread and back cost about a fifth of a page's CPU (thread wake-ups, GIL hand-offs);
  the processes give the parallelism, without a GIL to share.
A dataset the caller may not read answers exactly like one that does not
exist — same status, same body, same headers — so ids do not leak.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import duckdb
import orjson
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import ApiQueryError, PartageError, TokenStoreError
from ..store.warehouse import Warehouse, ident
from . import exports, openapi, query
from .catalog_cache import CatalogCache, Column, Dataset, Snapshot, Version, indexed_columns
from .engine import Engine, QueryTimeout
from .lru import LRU
from .tokens import READABLE, TokenStore

log = logging.getLogger("partage.api")

# Query-string names other APIs take a credential under (Opendatasoft's ``apikey``, ``?token=``…).
# A URL ends up in access logs, proxies and browser histories, so Partage never reads a token from
# it: such a request is answered 400 (pointing at the header) and the value is masked in the log.
# A dataset column of one of these names cannot be filtered with ``name=value`` (``name__exact=``
# still works).
CREDENTIAL_PARAMS = frozenset({"token", "apikey", "api_key", "api-key", "access_token", "auth_token", "jwt"})
_CREDENTIAL_IN_URL = re.compile(r"([?&](?:%s)=)[^&#\s]*" % "|".join(re.escape(n) for n in sorted(CREDENTIAL_PARAMS)),
                                re.IGNORECASE)


# a cheap first look on the raw query string of every request (row pages are the hot path)
_CREDENTIAL_NAME = re.compile(rb"(?:^|[&;])(?:%s)(?:=|&|$)" % b"|".join(re.escape(n.encode()) for n in sorted(CREDENTIAL_PARAMS)),
                              re.IGNORECASE)


def mask_url_credentials(path: str) -> str:
    """``/rows?apikey=abc&x=1`` -> ``/rows?apikey=***&x=1``: what the access log may keep of a URL."""
    return _CREDENTIAL_IN_URL.sub(r"\1***", path)


class _MaskCredentials(logging.Filter):
    """On uvicorn's access logger: the request line is logged with any URL credential masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], mask_url_credentials(args[2]), *args[3:])
        return True


def _mask_access_log() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _MaskCredentials) for f in access.filters):
        access.addFilter(_MaskCredentials())


class _RefuseUrlCredentials:
    """ASGI middleware: a token in the query string answers 400 before any route reads the request."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        qs = scope.get("query_string") if scope["type"] == "http" else None
        if qs and _CREDENTIAL_NAME.search(qs.replace(b"%5F", b"_").replace(b"%5f", b"_").replace(b"%2D", b"-")):
            from urllib.parse import parse_qsl  # the rare case: exact names, percent-decoded

            names = {k.lower() for k, _ in parse_qsl(qs.decode("latin-1"), keep_blank_values=True)}
            found = sorted(names & CREDENTIAL_PARAMS)
            if found:
                body = orjson.dumps({"detail": (
                    f"a credential in the URL ({', '.join(found)}=) is never accepted: URLs are kept in logs, proxies "
                    "and browser histories. Send the token in the Authorization header "
                    "(`Authorization: Bearer <token>`) and treat this one as exposed (ask for a new one)")})
                await send({"type": "http.response.start", "status": 400,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


@dataclass(frozen=True)
class Settings:
    default_page_size: int = 20
    max_page_size: int = 50
    query_timeout: float = 10.0
    export_timeout: float = 600.0
    refresh: float = 1.0
    threads: int | None = 1
    query_threads: int | None = None  # None: one per core in a single process, 0 (inline) in several
    workers: int = 1  # server processes serving the same warehouse (set by `partage serve --workers`)
    cache_rows: int = 20_000_000
    preload_wait: float = 60.0
    response_cache_mb: float = 64.0

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            default_page_size=int(env.get("PARTAGE_API_PAGE_SIZE", 20)),
            max_page_size=int(env.get("PARTAGE_API_MAX_PAGE_SIZE", 50)),
            query_timeout=float(env.get("PARTAGE_API_QUERY_TIMEOUT", 10)),
            export_timeout=float(env.get("PARTAGE_API_EXPORT_TIMEOUT", 600)),
            refresh=float(env.get("PARTAGE_API_REFRESH", 1)),
            threads=int(env.get("PARTAGE_API_THREADS") or 1),
            query_threads=int(env["PARTAGE_API_QUERY_THREADS"]) if env.get("PARTAGE_API_QUERY_THREADS") else None,
            workers=int(env.get("PARTAGE_API_WORKERS") or 1),
            cache_rows=int(env.get("PARTAGE_API_CACHE_ROWS", 20_000_000)),
            preload_wait=float(env.get("PARTAGE_API_PRELOAD_WAIT", 60)),
            response_cache_mb=float(env.get("PARTAGE_API_RESPONSE_CACHE_MB", 64)),
        )

    @property
    def page_threads(self) -> int:
        """Threads computing row pages; 0: on the event loop (see the module's docstring)."""
        if self.query_threads is not None:
            return max(self.query_threads, 0)
        return 0 if self.workers > 1 else (os.cpu_count() or 2)


class ApiError(Exception):
    def __init__(self, status: int, detail: str, **extra: Any):
        self.status, self.detail, self.extra = status, detail, extra


# Rows fetched for a page found by an index, so that its total needs no count (see rows_page).
LOOKUP_ROWS = 100


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body, default=str, option=orjson.OPT_NON_STR_KEYS), status_code=status,
                    media_type="application/json", headers=headers)


def not_found(dataset_id: str) -> ApiError:
    # The same words whether the dataset is missing or hidden: nothing tells them apart.
    return ApiError(404, f"no dataset {dataset_id!r} readable with your credentials; GET /datasets lists those you can read")


def create_app(warehouse: Path | str, *, tokens: TokenStore | None = None, settings: Settings | None = None,
               catalog: Path | str | None = None) -> FastAPI:
    """``catalog``: the catalog directory, when the API runs beside it: access then follows each
    entry as it is now, not as the last harvest recorded it."""
    wh = Warehouse(warehouse)
    settings = settings or Settings.from_env()
    store = tokens or TokenStore(str(wh.root / ".tokens.json"))
    engine = Engine(threads=settings.threads, cache_rows=settings.cache_rows, register=wh.register,
                    lake=wh.lake.attach_sql(read_only=True))  # versions are read by time travel (catalog_cache.relation_of)
    query_pool = ThreadPoolExecutor(settings.page_threads, thread_name_prefix="partage-query") \
        if settings.page_threads else None
    responses = LRU(int(settings.response_cache_mb * 1024 * 1024))  # (dataset, version, query) -> body
    counts = LRU(4 * 1024 * 1024)  # (dataset, version, where, params) -> total
    indexed_by_version: dict[tuple[str, str], tuple[str, ...]] = {}

    def prepare(datasets: dict[str, Dataset]) -> None:
        """Before a new snapshot is served, copy its new latest versions into memory (for up to
        preload_wait seconds): the first requests on a new version are then as fast as the others."""
        engine.retain({(ds.id, v.version) for ds in datasets.values() for v in ds.versions})
        keys = []
        for ds in datasets.values():
            v = ds.latest
            if v is not None and v.has_data:
                try:
                    cols = cache.columns(ds, v)
                except duckdb.Error:
                    continue
                keys.append(engine.source((ds.id, v.version), v.relation, v.row_count,
                                          indexed_columns(cols, cache.schema(ds.id, v.version))))
        if keys:
            engine.wait_loaded(settings.preload_wait)

    cache = CatalogCache(wh, refresh=settings.refresh, prepare=prepare,
                         catalog=Path(catalog) if catalog is not None and Path(catalog).is_dir() else None)
    app = FastAPI(title="Partage tabular API", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.cache, app.state.engine, app.state.tokens, app.state.settings = cache, engine, store, settings
    openapi_cache: dict[tuple[int, str | None], bytes] = {}

    try:
        from fastapi.staticfiles import StaticFiles
        from fastapi_offline.core import _STATIC_PATH

        app.mount("/static-docs", StaticFiles(directory=str(_STATIC_PATH)), name="static-docs")
        docs_assets = True
    except ImportError:  # pragma: no cover - fastapi-offline is a dependency; without it /docs uses the CDN
        docs_assets = False

    # -- plumbing ---------------------------------------------------------------------

    @app.exception_handler(ApiError)
    def _api_error(request: Request, exc: ApiError) -> Response:
        retry = exc.extra.get("retry_after")
        return _json({"detail": exc.detail, **exc.extra}, exc.status,
                     headers={"Retry-After": str(retry)} if retry is not None else None)

    @app.exception_handler(StarletteHTTPException)
    def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _json({"detail": exc.detail}, exc.status_code)

    @app.exception_handler(PartageError)
    def _partage_error(request: Request, exc: PartageError) -> Response:
        log.error("%s %s: %s", request.method, request.url.path, exc)
        return _json({"detail": f"the server cannot read the warehouse now: {exc}"}, 503)

    def level(request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        try:
            return store.level_of(token.strip())
        except TokenStoreError:
            log.exception("token store unreadable; every request is served as anonymous")
            return None

    def visible(request: Request) -> tuple[Snapshot, list[Dataset], str | None]:
        lvl = level(request)
        snap = cache.snapshot()
        allowed = READABLE[lvl]
        return snap, [d for d in snap.datasets.values() if d.access in allowed], lvl

    def dataset_for(request: Request, dataset_id: str) -> tuple[Dataset, str | None]:
        lvl = level(request)
        ds = cache.snapshot().datasets.get(dataset_id)
        if ds is None or ds.access not in READABLE[lvl]:
            raise not_found(dataset_id)
        return ds, lvl

    def headers_for(ds: Dataset, lvl: str | None, version: Version | None = None) -> dict[str, str]:
        h = {"X-Partage-Access": lvl or "anonymous", "Vary": "Authorization"}
        h["Cache-Control"] = "public, max-age=30" if ds.access == "open" else "private, no-store"
        if version is not None:
            h["X-Partage-Version"] = version.version
        return h

    def pick_version(ds: Dataset, reserved: dict[str, str]) -> Version:
        if "version" in reserved and "as_of" in reserved:
            raise ApiError(400, "give version= or as_of=, not both")
        if "version" in reserved:
            v = ds.find(reserved["version"])
            if v is None:
                v = unseen_version(ds, reserved["version"])
            if v is None:
                raise ApiError(404, f"dataset {ds.id!r} has no version {reserved['version']!r}; "
                                    f"GET /datasets/{ds.id} lists its versions")
            return v
        if "as_of" in reserved:
            raw = reserved["as_of"].strip()
            try:
                when = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
            except ValueError:
                raise ApiError(400, f"as_of={raw!r} is not an ISO 8601 date or datetime "
                                    "(e.g. 2026-11-01 or 2026-11-01T12:00:00+01:00)") from None
            if when.tzinfo is None:
                when = when.replace(tzinfo=query.PARIS)
            if len(raw) == 10:  # a date: as it stood at the end of that day
                when += dt.timedelta(days=1) - dt.timedelta(microseconds=1)
            v = ds.as_of(when)
            if v is None:
                raise ApiError(404, f"dataset {ds.id!r} had no version yet at {when.isoformat()}")
            return v
        if ds.latest is None:
            raise ApiError(404, f"dataset {ds.id!r} has no stored version yet (its sources were never accepted)")
        return ds.latest

    def unseen_version(ds: Dataset, version: str) -> Version | None:
        """A version newer than this process's snapshot, if the catalog now has it (see
        CatalogCache.refresh_now); the dataset's access is checked again on the fresh snapshot."""
        snap = cache.refresh_now()
        if snap is None:
            raise ApiError(503, f"version {version!r} of {ds.id!r} may have just landed and the catalog is being "
                                "written by a harvest; retry in a few seconds", retry_after=2)
        fresh = snap.datasets.get(ds.id)
        return fresh.find(version) if fresh is not None and fresh.access == ds.access else None

    def columns_of(ds: Dataset, v: Version) -> tuple[Column, ...]:
        try:
            return cache.columns(ds, v)
        except duckdb.IOException:
            raise gone(ds, v) from None
        except duckdb.InvalidInputException as e:
            if is_expired(e):
                raise gone(ds, v) from None
            raise

    def is_expired(e: duckdb.Error) -> bool:
        """DuckLake's answer for a snapshot gc has expired (its version removed by retention)."""
        return "no snapshot found" in str(e).lower()

    def gone(ds: Dataset, v: Version) -> ApiError:
        return ApiError(410, f"version {v.version} of {ds.id!r} is no longer stored (removed by retention); "
                             f"start again without version= to read the latest")

    def summary(ds: Dataset) -> dict[str, Any]:
        latest = ds.latest
        base = f"/datasets/{ds.id}"
        return {
            "id": ds.id, "title": ds.title, "description": ds.description, "publisher": ds.publisher,
            "license": ds.license, "access": ds.access, "keywords": ds.keywords, "schema": ds.schema_ref,
            "latest_version": latest.version if latest else None,
            "last_update": latest.created_at.isoformat() if latest else None,
            "last_check": ds.last_check.isoformat() if ds.last_check else None,
            "rows": latest.row_count if latest else None, "quarantined": latest.quarantined if latest else None,
            "source_states": ds.source_states,
            "links": {"self": base, "rows": base + "/rows", "csv": base + "/export.csv",
                      "parquet": base + "/export.parquet", "openapi": "/openapi.json"},
        }

    # -- endpoints ----------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def root() -> Response:
        return _json({"name": "Partage tabular API", "version": __version__,
                      "links": {"datasets": "/datasets", "openapi": "/openapi.json", "docs": "/docs"}})

    @app.get("/datasets")
    def list_datasets(request: Request) -> Response:
        snap, readable, lvl = visible(request)
        return _json({"data": [summary(d) for d in readable], "meta": {"total": len(readable),
                                                                         "access": lvl or "anonymous"}},
                     headers={"X-Partage-Access": lvl or "anonymous", "Vary": "Authorization",
                              "Cache-Control": "private, max-age=5"})

    @app.get("/datasets/{dataset_id}")
    def get_dataset(dataset_id: str, request: Request) -> Response:
        ds, lvl = dataset_for(request, dataset_id)
        body = summary(ds)
        latest = ds.latest
        if latest is not None:
            cols = columns_of(ds, latest)
            body["columns"] = [{"name": c.name, "type": (c.field or {}).get("type") or c.sql_type.lower(),
                                "sql_type": c.sql_type, "title": (c.field or {}).get("title"),
                                "description": (c.field or {}).get("description"),
                                "filters": [f"{c.name}__{op}" for op in query.OPERATORS]} for c in cols]
            body["table_schema"] = cache.schema(ds.id, latest.version)
            body["quality"] = latest.summary
        body["versions"] = [{"version": v.version, "created_at": v.created_at.isoformat(), "rows": v.row_count,
                             "quarantined": v.quarantined, "schema": v.schema_ref, "schema_sha256": v.schema_sha256}
                            for v in reversed(ds.versions)]
        return _json(body, headers=headers_for(ds, lvl, latest))

    def _prepare(request: Request, dataset_id: str) -> tuple[Dataset, str | None, Version, query.RowQuery,
                                                             query.Page, tuple[Column, ...]]:
        ds, lvl = dataset_for(request, dataset_id)
        params = list(request.query_params.multi_items())
        reserved = {k: v for k, v in params if k in ("version", "as_of")}
        if sum(1 for k, _ in params if k in ("version", "as_of")) > len(reserved):
            raise ApiError(400, "version= / as_of= given twice")
        v = pick_version(ds, reserved)
        cols = columns_of(ds, v)
        try:
            q, page, _ = query.build(params, cols, max_page_size=settings.max_page_size,
                                     default_page_size=settings.default_page_size)
        except ApiQueryError as e:
            raise ApiError(400, str(e), allowed_operators=list(query.OPERATORS),
                           columns=[c.name for c in cols]) from None
        return ds, lvl, v, q, page, cols

    def indexed(ds: Dataset, v: Version, cols: tuple[Column, ...]) -> tuple[str, ...]:
        """The columns the version's in-memory copy has an index on (worked out once per version)."""
        key = (ds.id, v.version)
        found = indexed_by_version.get(key)
        if found is None:
            if len(indexed_by_version) > 1024:
                indexed_by_version.clear()
            found = indexed_by_version[key] = tuple(indexed_columns(cols, cache.schema(ds.id, v.version)))
        return found

    def run(ds: Dataset, v: Version, q: query.RowQuery, cols: tuple[Column, ...], *,
            limit: int | None = None, offset: int = 0, count: bool = False) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run on the version's in-memory table if it is ready, else on its Parquet files."""
        key = (ds.id, v.version)
        source = engine.source(key, v.relation, v.row_count, indexed(ds, v, cols))
        for attempt in (1, 2):
            try:
                matches = engine.matches(source, q, settings.query_timeout)
                sql, params = q.count_sql(source, matches) if count else q.sql(source, limit=limit, offset=offset,
                                                                               matches=matches)
                return engine.fetch(sql, params, settings.query_timeout)
            except QueryTimeout as e:
                raise ApiError(503, f"{e}; add filters or ask for fewer rows "
                                    f"(limit PARTAGE_API_QUERY_TIMEOUT={settings.query_timeout:g} s)") from None
            except duckdb.CatalogException:
                if attempt == 2:
                    raise
                engine.forget(key)  # its table was evicted under us: read the files
                source = query.Source(v.relation)
            except duckdb.IOException:
                raise gone(ds, v) from None
            except (duckdb.ConversionException, duckdb.InvalidInputException, duckdb.OutOfRangeException) as e:
                if is_expired(e):
                    raise gone(ds, v) from None
                raise ApiError(400, f"a value cannot be compared with its column: {e}") from None
        raise AssertionError("unreachable")

    @app.get("/datasets/{dataset_id}/rows")
    async def get_rows(dataset_id: str, request: Request) -> Response:
        # Async to hand the whole page (parsing, query, JSON) to the query threads, or to compute it
        # right here when this is one of several processes (no pool).
        if query_pool is None:
            return rows_response(dataset_id, request)
        return await asyncio.get_running_loop().run_in_executor(query_pool, rows_response, dataset_id, request)

    async def rows_fast(dataset_id: str, request: Request) -> Response:
        """get_rows for RowsFastPath, with the exception handlers FastAPI would have applied."""
        try:
            return await get_rows(dataset_id, request)
        except ApiError as e:
            return _api_error(request, e)
        except PartageError as e:
            return _partage_error(request, e)

    app.add_middleware(RowsFastPath, rows=rows_fast)
    app.add_middleware(_RefuseUrlCredentials)  # added last: outermost, before the rows fast path too
    _mask_access_log()

    def rows_response(dataset_id: str, request: Request) -> Response:
        ds, lvl, v, q, page, cols = _prepare(request, dataset_id)
        cache_key = (ds.id, v.version, request.url.query)
        body = responses.get(cache_key)
        if body is None:
            body = orjson.dumps(rows_page(ds, v, q, page, cols, request), default=str)
            responses.put(cache_key, body, len(body))
        return Response(body, media_type="application/json", headers=headers_for(ds, lvl, v))

    def rows_page(ds: Dataset, v: Version, q: query.RowQuery, page: query.Page, cols: tuple[Column, ...],
                  request: Request) -> dict[str, Any]:
        if not v.has_data:
            names, total = [c.name for c in q.columns], 0
            rows: list[tuple[Any, ...]] = []
        else:
            # One row more than the page says whether there is a next page. When an index finds the
            # rows (an __exact / __in on an indexed column), DuckDB fetches every match before the
            # LIMIT anyway: taking up to LOOKUP_ROWS of them then gives the total without counting.
            offset = (page.page - 1) * page.page_size
            lookup = any(c.lookup in indexed(ds, v, cols) for c in q.where if c.lookup)
            limit = max(page.page_size, LOOKUP_ROWS if lookup else 0) + 1
            names, fetched = run(ds, v, q, cols, limit=limit, offset=offset)
            rows = fetched[:page.page_size]
            if not q.where:
                total = v.row_count
            elif len(fetched) < limit and (fetched or page.page == 1):  # every row from the offset on
                total = offset + len(fetched)
            else:
                count_key = (ds.id, v.version, q.filter_key())
                total = counts.get(count_key)
                if total is None:
                    total = run(ds, v, q, cols, count=True)[1][0][0]
                    counts.put(count_key, total, 64)
        pinned = [(k, val) for k, val in request.query_params.multi_items() if k not in ("page", "as_of", "version")]
        pinned.append(("version", v.version))

        def link(p: int) -> str:
            return f"/datasets/{ds.id}/rows?" + urlencode([*pinned, ("page", str(p))])

        return {
            "data": [dict(zip(names, r, strict=True)) for r in rows],
            "meta": {"dataset": ds.id, "version": v.version, "page": page.page, "page_size": page.page_size,
                     "total": total},
            "links": {"next": link(page.page + 1) if page.page * page.page_size < total else None,
                      "prev": link(page.page - 1) if page.page > 1 else None, "dataset": f"/datasets/{ds.id}"},
        }

    @app.get("/datasets/{dataset_id}/export.{fmt}")
    def export(dataset_id: str, fmt: str, request: Request) -> Response:
        if fmt not in exports.MEDIA_TYPES:
            raise ApiError(404, f"no export format {fmt!r}; use export.csv, export.parquet or export.geojson")
        ds, lvl, v, q, page, cols = _prepare(request, dataset_id)
        if any(k in request.query_params for k in ("page", "page_size")):
            raise ApiError(400, "exports are not paginated: remove page= and page_size=")
        geometry = None
        if fmt == "geojson":
            geometry = next((c.name for c in q.columns if exports.is_geopoint(c)), None) or next(
                (c.name for c in cols if exports.is_geopoint(c)), None)
            if geometry is None:
                raise ApiError(400, f"dataset {ds.id!r} has no geopoint column, so no GeoJSON; use export.csv")
            if geometry not in {c.name for c in q.columns}:
                q.columns.append(next(c for c in cols if c.name == geometry))
        if not v.has_data:
            raise ApiError(404, f"dataset {ds.id!r} version {v.version} has no rows stored")
        source = v.relation
        select = exports.csv_select(q.columns) if fmt == "csv" else [ident(c.name) for c in q.columns]
        sql, params = q.sql(source, select=select)
        try:
            schema, batches = engine.stream(sql, params, settings.export_timeout)
        except QueryTimeout as e:
            raise ApiError(503, str(e)) from None
        except duckdb.IOException:
            raise gone(ds, v) from None
        except (duckdb.ConversionException, duckdb.InvalidInputException) as e:
            if is_expired(e):
                raise gone(ds, v) from None
            raise ApiError(400, f"a value cannot be compared with its column: {e}") from None
        if fmt == "csv":
            body = exports.csv_chunks(batches)
        elif fmt == "parquet":
            body = exports.parquet_chunks(batches, schema)
        else:
            body = exports.geojson_chunks(batches, geometry or "")
        headers = headers_for(ds, lvl, v)
        headers["Content-Disposition"] = f'attachment; filename="{ds.id}-{v.version}.{fmt}"'
        return StreamingResponse(body, media_type=exports.MEDIA_TYPES[fmt], headers=headers)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_json(request: Request) -> Response:
        snap, readable, lvl = visible(request)
        key = (snap.generation, lvl)
        doc = openapi_cache.get(key)
        if doc is None:
            items = []
            for ds in readable:
                try:
                    items.append((ds, cache.columns(ds, ds.latest) if ds.latest else None))
                except duckdb.Error:
                    items.append((ds, None))
            doc = orjson.dumps(openapi.build(items, title=app.title, version=__version__,
                                             max_page_size=settings.max_page_size))
            if len(openapi_cache) > 16:
                openapi_cache.clear()
            openapi_cache[key] = doc
        return Response(doc, media_type="application/json",
                        headers={"Vary": "Authorization", "Cache-Control": "private, max-age=5"})

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        if docs_assets:
            return get_swagger_ui_html(openapi_url="/openapi.json", title="Partage tabular API",
                                       swagger_js_url="/static-docs/swagger-ui-bundle.js",
                                       swagger_css_url="/static-docs/swagger-ui.css",
                                       swagger_favicon_url="/static-docs/favicon.png")
        return get_swagger_ui_html(openapi_url="/openapi.json", title="Partage tabular API")

    def _shutdown() -> None:
        if query_pool is not None:
            query_pool.shutdown(wait=False, cancel_futures=True)
        cache.close()
        engine.close()

    def _startup() -> None:
        # What is built by now (modules, the app) lives as long as the server: out of the collector's
        # way, so its full passes, which stop every thread, no longer walk it.
        gc.freeze()

    app.router.on_startup.append(_startup)
    app.router.on_shutdown.append(_shutdown)
    return app


class RowsFastPath:
    """ASGI middleware sending ``GET /datasets/{id}/rows`` straight to the page function.

    Row pages are the requests data services send by the thousand; FastAPI's routing, dependency
    solving and inner middleware cost about a twentieth of a page's CPU and give it nothing: the
    page reads the raw query string itself. The route stays declared (and documented) as usual;
    errors get the same handlers and bodies; anything else goes to the application as before.
    """

    def __init__(self, app: Any, rows: Any) -> None:
        self.app, self.rows = app, rows

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            m = ROWS_PATH.fullmatch(scope["path"])
            if m is not None:
                response = await self.rows(m.group(1), Request(scope, receive))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


ROWS_PATH = re.compile(r"/datasets/([^/]+)/rows")


def app_from_env() -> FastAPI:
    """The app of one worker process of `partage serve --workers N` (uvicorn imports it by name)."""
    location = os.environ["PARTAGE_API_TOKENS"]
    if location.startswith("prefect-secret:"):
        import flows.harvest  # noqa: F401  (registers the prefect-secret: backend)
    return create_app(os.environ["PARTAGE_API_WAREHOUSE"], tokens=TokenStore(location),
                      catalog=os.environ.get("PARTAGE_API_CATALOG") or None)
