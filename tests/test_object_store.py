"""A warehouse whose data lives in an S3-compatible object store, against a real one on 127.0.0.1.

The store is moto's standalone server (`moto[server]` from PyPI), reached by
s3fs exactly as a MinIO, Garage or Scaleway bucket would be, through the usual
AWS_* environment. The DuckDB file, raw downloads and staging stay local
(PARTAGE_LOCAL_DIR); every version's Parquet goes to the bucket, and views read
it through fsspec (DuckDB's httpfs extension is not needed).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from partage.catalog import load_catalog
from partage.gc import collect_garbage
from partage.pipeline import harvest_without_prefect
from partage.publish.exports import exports
from partage.store.warehouse import Warehouse

from .conftest import COMMUNES_CSV, COMMUNES_SCHEMA, CatalogBuilder, S3Bucket

pytestmark = pytest.mark.slow
SCHEMA = "test/communes@1.0"


def objects(prefix: str) -> list[str]:
    import fsspec

    fs = fsspec.filesystem("s3")
    fs.invalidate_cache()
    return sorted(fs.find(prefix.removeprefix("s3://")))


def test_harvest_query_history_gc_and_crash_with_data_in_s3(s3_bucket: S3Bucket, hub: CatalogBuilder, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"{s3_bucket.url}/{uuid.uuid4().hex[:8]}"
    local = tmp_path / "local"
    monkeypatch.setenv("PARTAGE_LOCAL_DIR", str(local))
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    hub.file("a.csv", COMMUNES_CSV)
    hub.file("b.csv", "code_insee,nom,population,surface_km2,date_maj\n75056,Paris,2100000,105.4,2024-01-01\n")
    hub.dataset("communes", ["file: ../data/a.csv", "file: ../data/b.csv"], schema=SCHEMA,
                extra="retention: {keep: 1}\n")

    first = harvest_without_prefect(hub.catalog, url)
    assert first.exit_code == 0, [s.reason for s in first.sources]
    stored = objects(url)
    assert sum(o.endswith(".parquet") for o in stored) == 2
    assert not list(local.rglob("*.parquet")), "the data belongs in the bucket, not on the local disk"
    assert (local / "lake.sqlite").is_file()

    wh = Warehouse(url)
    with wh.connect(read_only=True) as con:
        got = sorted(con.execute('SELECT code_insee, population FROM main."communes"').fetchall())
        (path,) = con.execute("SELECT path FROM _partage.versions").fetchall()[0]
    assert got == [("01001", 832), ("2A004", 73000), ("2B033", 48000), ("75056", 2100000)]
    assert path.startswith(url + "/communes/")

    # the analysts' command, in another process, from the environment alone
    env = dict(os.environ, PARTAGE_WAREHOUSE=url, PARTAGE_LOCAL_DIR=str(local))
    cli = subprocess.run([str(Path(sys.executable).with_name("partage")), "sql",
                          "SELECT nom FROM communes WHERE code_insee = '2A004'"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert cli.returncode == 0 and "Ajaccio" in cli.stdout, cli.stdout + cli.stderr

    # a second version: one source changes, the other's part is carried over into the new version
    hub.file("b.csv", "code_insee,nom,population,surface_km2,date_maj\n75056,Paris,2110000,105.4,2025-01-01\n")
    second = harvest_without_prefect(hub.catalog, url)
    assert [s.state for s in second.sources] == ["unchanged", "updated"]
    v1, v2 = (r[0] for r in _q(wh, "SELECT version FROM _partage.versions ORDER BY version"))
    assert sum(o.endswith(".parquet") and f"/{v2}/" in o for o in objects(url)) == 2
    assert _q(wh, "SELECT _version, count(*) FROM history.\"communes\" GROUP BY 1 ORDER BY 1") == [(v1, 4), (v2, 4)]
    assert _q(wh, "SELECT population FROM communes WHERE code_insee = '75056'") == [(2110000,)]

    # exports for publishing read the bucket too
    info = wh.latest_version_info("communes")
    assert info is not None
    csv = next(f for f in exports(wh, info) if f.role == "data-csv")
    assert "2110000" in csv.path.read_text(encoding="utf-8")

    # a harvest killed after its upload, before its commit: the bucket holds an orphan nobody sees
    hub.file("a.csv", COMMUNES_CSV.replace("73000", "74000"))
    child = subprocess.run([sys.executable, "-c", "import sys\nfrom partage.pipeline import harvest_without_prefect as h\n"
                            "h(sys.argv[1], sys.argv[2])", str(hub.catalog), url],
                           env=dict(env, PARTAGE_CRASH_AT="renamed"), capture_output=True, timeout=120)
    assert child.returncode == -signal.SIGKILL
    prefixes = {o.split("/communes/")[1].split("/")[0] for o in objects(url)}
    assert len(prefixes) == 3  # v1, v2 and the orphan
    assert _q(wh, "SELECT population FROM communes WHERE code_insee = '2A004'") == [(73000,)]

    # gc: retention (keep 1) removes v1 from the bucket, and the orphan goes too
    report = collect_garbage(wh, load_catalog(hub.catalog))
    assert report.versions == [("communes", v1)] and len(report.remote_orphans) == 1
    assert {o.split("/communes/")[1].split("/")[0] for o in objects(url)} == {v2}
    assert _q(wh, "SELECT count(*) FROM communes") == [(4,)]

    third = harvest_without_prefect(hub.catalog, url)
    assert third.exit_code == 0
    assert _q(wh, "SELECT population FROM communes WHERE code_insee = '2A004'") == [(74000,)]


def test_the_prefect_flow_writes_to_the_bucket(s3_bucket: S3Bucket, prefect_harness: None, hub: CatalogBuilder,
                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.harvest import harvest

    url = f"{s3_bucket.url}/{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("PARTAGE_LOCAL_DIR", str(tmp_path / "local"))
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    hub.file("a.csv", COMMUNES_CSV)
    hub.dataset("communes", ["file: ../data/a.csv"], schema=SCHEMA)
    summary = harvest(catalog=str(hub.catalog), warehouse=url)
    assert summary.exit_code == 0
    assert any(o.endswith(".parquet") for o in objects(url))
    assert _q(Warehouse(url), "SELECT count(*) FROM communes") == [(3,)]


def _q(wh: Warehouse, sql: str) -> list[tuple]:
    with wh.connect(read_only=True) as con:
        return con.execute(sql).fetchall()
