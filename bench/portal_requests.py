"""Requests per resource for each portal kind, first run and unchanged second run.

    .venv/bin/python bench/portal_requests.py [--resources 20]   (or: make bench)

A real HTTP server on 127.0.0.1 (the tests' FixtureServer) plays a CKAN, a udata, an
Opendatasoft (exports without ETag, as the real ones) and a DCAT catalog, each listing N
small CSV files; plain url: sources are the baseline. The engine (plan, acquire, store;
the same calls the Prefect flow makes) harvests twice; the server's request log gives the
counts. Prints the machine, the versions and a table.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.machine import describe  # noqa: E402
from tests.conftest import COMMUNES_CSV, COMMUNES_SCHEMA, CatalogBuilder, FixtureServer  # noqa: E402

JSON = {"content_type": "application/json"}


def serve_portals(server: FixtureServer, n: int) -> dict[str, str]:
    """One portal of each kind listing n files; returns the catalog source of each."""
    files = {}
    for kind in ("ckan", "udata", "ods", "dcat", "url"):
        for i in range(n):
            path = f"/files/{kind}/{i}.csv"
            server.serve(path, COMMUNES_CSV.replace("Ajaccio", f"Ajaccio {kind} {i}"),
                         **({"etag": False, "last_modified": False} if kind == "ods" else {}))
            files[(kind, i)] = server.url(path)
    server.serve("/ckan/api/action/package_search", json.dumps({"success": True, "result": {"count": n, "results": [
        {"id": f"p{i}", "resources": [{"id": f"r{i}", "url": files[("ckan", i)], "format": "CSV"}]} for i in range(n)]}}), **JSON)
    server.serve("/udata/api/1/datasets/", json.dumps({"next_page": None, "data": [
        {"id": f"d{i}", "resources": [{"id": f"r{i}", "url": files[("udata", i)], "format": "csv",
                                       "schema": {"name": "test/communes"}, "last_modified": "2024-01-01"}]}
        for i in range(n)]}), **JSON)
    server.serve("/ods/api/explore/v2.1/catalog/datasets", json.dumps({"total_count": n, "results": [
        {"dataset_id": f"ds{i}", "metas": {"default": {"data_processed": "2024-01-01T00:00:00+00:00"}}} for i in range(n)]}), **JSON)
    for i in range(n):
        server.routes[f"/ods/api/explore/v2.1/catalog/datasets/ds{i}/exports/csv"] = server.routes[f"/files/ods/{i}.csv"]
    ttl = "@prefix dcat: <http://www.w3.org/ns/dcat#> .\n" + "".join(
        f"<urn:ds:{i}> a dcat:Dataset ; dcat:distribution [ dcat:downloadURL <{files[('dcat', i)]}> ] .\n" for i in range(n))
    server.serve("/dcat/catalog.ttl", ttl, content_type="text/turtle")
    return {
        "ckan": f"ckan: {server.url('/ckan')}\n    formats: [CSV]",
        "udata": f"udata: {server.url('/udata')}\n    schema: test/communes",
        "ods": f"ods: {server.url('/ods')}\n    q: communes",
        "dcat": f"dcat: {server.url('/dcat/catalog.ttl')}",
        "url": "\n  - ".join(f"url: {files[('url', i)]}" for i in range(n)),
    }


def harvest_once(hub: CatalogBuilder, ds_id: str) -> tuple[list[str], float]:
    from partage.catalog import load_catalog
    from partage.pipeline import new_run_id, plan, store_dataset
    from partage.sources import acquire
    from partage.store.warehouse import Warehouse

    wh = Warehouse(hub.warehouse)
    wh.init()
    entry = load_catalog(hub.catalog).entries[ds_id]
    start = time.perf_counter()
    state = wh.dataset_state(ds_id)
    resources, failures = plan(entry, state)
    acquired = [acquire(r, state.records.get(r.key), wh.raw) for r in resources] + failures
    out = store_dataset(entry, acquired, wh, run_id=new_run_id(), schemas_dir=hub.schemas, state=state)
    return [f"{s.state}/{s.layer}" for s in out.sources], time.perf_counter() - start


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resources", type=int, default=20)
    n = ap.parse_args().resources
    server = FixtureServer()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            hub = CatalogBuilder(Path(tmp))
            hub.schema("test/communes@1.0", COMMUNES_SCHEMA)
            for kind, source in serve_portals(server, n).items():
                hub.dataset(kind, [source], schema="test/communes@1.0", extra="duplicates: keep\n")
                for run in ("first", "second (unchanged)"):
                    before = len(server.log)
                    states, secs = harvest_once(hub, kind)
                    log = server.log[before:]
                    files = [r for r in log if r.path.startswith("/files/") or "/exports/" in r.path]
                    api = len(log) - len(files)
                    rows.append((kind, len(states), run, api, len(files), len(log) / max(len(states), 1),
                                 sum(r.body_bytes for r in files), ", ".join(f"{k} {v}" for k, v in Counter(states).items()),
                                 secs))
    finally:
        server.close()
    print(describe())
    print(f"\n### Requests per resource, {n} resources per source kind (engine, no Prefect)\n")
    print("| kind | resources | run | API requests | file requests | requests per resource | file body bytes | states/deciding layer | s |")
    print("|---|---:|---|---:|---:|---:|---:|---|---:|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {r[5]:.2f} | {r[6]:,} | {r[7]} | {r[8]:.2f} |")


if __name__ == "__main__":
    main()
