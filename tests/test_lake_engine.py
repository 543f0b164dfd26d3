"""The store's DuckDB engine: extensions loaded offline, the lake's ATTACH, and DuckLake on the
multi-machine setup (PostgreSQL catalog from `make pg`, data on moto's S3 server on 127.0.0.1).

What is checked here is DuckLake's own behaviour on the pinned version, as the store relies on it:
one snapshot per commit with its message and extra info, time travel, two processes committing
to one lake at once, and what a commit conflict raises and whether a retry succeeds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest

from partage.errors import DuckDBExtensionMissing, LakeLocationError, PartageError
from partage.store.engine import EXTENSIONS, OFFLINE_CONFIG, attach_sql, connect, prepare_catalog, s3_secret_sql

from .conftest import REPO, S3Bucket

Lake = Callable[[], duckdb.DuckDBPyConnection]


def _objects(bucket: S3Bucket) -> list[str]:
    import boto3

    listing = boto3.client("s3", endpoint_url=bucket.server.endpoint).list_objects_v2(Bucket=bucket.name)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def _opener(catalog_url: str, data_path: str) -> Iterator[Lake]:
    """Opens connections to one lake (each its own DuckDB instance, as separate processes would)."""
    opened: list[duckdb.DuckDBPyConnection] = []
    prepare_catalog(catalog_url)

    def open_lake() -> duckdb.DuckDBPyConnection:
        con = connect()
        con.execute(attach_sql(catalog_url, data_path))
        opened.append(con)
        return con

    yield open_lake
    for con in opened:
        con.close()


@pytest.fixture
def sqlite_lake(tmp_path: Path) -> Iterator[Lake]:
    yield from _opener(f"sqlite:{tmp_path / 'lake' / 'catalog.sqlite'}", str(tmp_path / "lake" / "data"))


@pytest.fixture
def pg_s3_lake(pg_catalog_url: str, s3_bucket: S3Bucket) -> Iterator[Lake]:
    yield from _opener(pg_catalog_url, f"{s3_bucket.url}/lake")


# -- loading the extensions offline ------------------------------------------------------


def test_connect_loads_every_extension_from_its_package_with_downloads_off() -> None:
    con = connect()
    loaded = {n for (n,) in con.execute("SELECT extension_name FROM duckdb_extensions() WHERE loaded").fetchall()}
    assert {"ducklake", "sqlite_scanner", "postgres_scanner", "httpfs"} <= loaded
    settings = dict(con.execute("SELECT name, value FROM duckdb_settings() WHERE name IN "
                                "('autoinstall_known_extensions', 'autoload_known_extensions')").fetchall())
    assert settings == {k: "false" for k in OFFLINE_CONFIG}


def test_a_missing_extension_package_names_the_package_and_make_install(tmp_path: Path) -> None:
    # a real interpreter in which the httpfs package is shadowed by an empty one (no extension file)
    shadow = tmp_path / "shadow" / "duckdb_extension_httpfs"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")
    code = "from partage.store.engine import connect\ntry:\n    connect()\nexcept Exception as e:\n" \
           "    print(type(e).__name__, e)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=str(tmp_path / "shadow")), check=True).stdout
    assert out.startswith("DuckDBExtensionMissing ")
    assert f"duckdb-extension-httpfs=={duckdb.__version__}" in out and "make install" in out
    assert issubclass(DuckDBExtensionMissing, PartageError)


def test_the_renamed_extensions_are_linked_in_the_users_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    connect().close()
    links = sorted(p.name for p in (tmp_path / "cache" / "partage" / "duckdb-extensions").rglob("*.duckdb_extension"))
    assert links == sorted(f"{e.internal}.duckdb_extension" for e in EXTENSIONS if e.internal != e.name)


@pytest.mark.parametrize(("env", "expected"), [
    ({}, None),
    ({"AWS_ENDPOINT_URL": "http://127.0.0.1:9000"}, None),  # no key: DuckDB's defaults (public buckets)
    ({"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s'x", "AWS_DEFAULT_REGION": "fr-par",
      "AWS_ENDPOINT_URL": "http://127.0.0.1:9000"},
     "CREATE OR REPLACE TEMPORARY SECRET partage_s3 (TYPE s3, KEY_ID 'k', SECRET 's''x', REGION 'fr-par', "
     "ENDPOINT '127.0.0.1:9000', URL_STYLE 'path', USE_SSL false)"),
    ({"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_ENDPOINT_URL": "https://s3.fr-par.scw.cloud"},
     "CREATE OR REPLACE TEMPORARY SECRET partage_s3 (TYPE s3, KEY_ID 'k', SECRET 's', "
     "ENDPOINT 's3.fr-par.scw.cloud', URL_STYLE 'path', USE_SSL true)"),
])
def test_the_s3_secret_comes_from_the_aws_environment(env: dict[str, str], expected: str | None) -> None:
    assert s3_secret_sql(env) == expected


# -- the ATTACH statement ----------------------------------------------------------------


@pytest.mark.parametrize(("catalog", "data", "expected"), [
    ("sqlite:/srv/lake/catalog.sqlite", "/srv/lake/data",
     "ATTACH 'ducklake:sqlite:/srv/lake/catalog.sqlite' AS lake (DATA_PATH '/srv/lake/data/')"),
    ("/srv/lake/catalog.sqlite", "s3://bucket/lake",
     "ATTACH 'ducklake:sqlite:/srv/lake/catalog.sqlite' AS lake (DATA_PATH 's3://bucket/lake/')"),
    ("postgresql://partage:pw@db.example:5432/lake", "s3://bucket/lake/",
     "ATTACH 'ducklake:postgres:postgresql://partage:pw@db.example:5432/lake' AS lake (DATA_PATH 's3://bucket/lake/')"),
    ("postgres:dbname=lake host=db user=o'neil", "/srv/d",
     "ATTACH 'ducklake:postgres:dbname=lake host=db user=o''neil' AS lake (DATA_PATH '/srv/d/')"),
])
def test_attach_sql_renders_each_catalog_and_data_path(catalog: str, data: str, expected: str) -> None:
    assert attach_sql(catalog, data) == expected


def test_attach_sql_makes_local_paths_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert attach_sql("sqlite:lake/c.sqlite", "lake/data", alias="wh") == (
        f"ATTACH 'ducklake:sqlite:{tmp_path}/lake/c.sqlite' AS wh (DATA_PATH '{tmp_path}/lake/data/')")


@pytest.mark.parametrize(("catalog", "data", "named"), [
    ("mysql://db/lake", "/d", "mysql://db/lake"),
    ("lake.duckdb", "/d", "lake.duckdb"),
    ("sqlite:/c.sqlite", "gs://bucket/d", "gs://bucket/d"),
])
def test_attach_sql_refuses_other_locations_naming_them_and_the_forms(catalog: str, data: str, named: str) -> None:
    with pytest.raises(LakeLocationError, match="sqlite:|s3://") as e:
        attach_sql(catalog, data)
    assert named in str(e.value)


# -- DuckLake on the pinned version ------------------------------------------------------


def _commit(con: duckdb.DuckDBPyConnection, statements: list[str], message: str, extra: dict[str, str]) -> None:
    con.execute("BEGIN")
    for sql in statements:
        con.execute(sql)
    con.execute("CALL lake.set_commit_message('partage', ?, extra_info => ?)", [message, json.dumps(extra)])
    con.execute("COMMIT")


def _snapshots_and_time_travel(lake: Lake) -> None:
    con = lake()
    _commit(con, ["CREATE TABLE lake.communes AS SELECT range AS n, 'v1' AS version FROM range(5000)"],
            "communes v1", {"version": "v1", "run": "r1"})
    (v1,) = con.execute("SELECT max(snapshot_id) FROM lake.snapshots()").fetchone() or (None,)
    time.sleep(0.05)
    (t1,) = con.execute("SELECT now()").fetchone() or (None,)
    _commit(con, ["DELETE FROM lake.communes", "INSERT INTO lake.communes SELECT range, 'v2' FROM range(7000)"],
            "communes v2", {"version": "v2", "run": "r2"})
    rows = con.execute("SELECT commit_message, commit_extra_info FROM lake.snapshots() "
                       "WHERE author = 'partage' ORDER BY snapshot_id").fetchall()
    assert [(m, json.loads(x)["version"]) for m, x in rows] == [("communes v1", "v1"), ("communes v2", "v2")]
    reader = lake()  # another instance sees the committed state and the history
    assert reader.execute("SELECT count(*), min(version) FROM lake.communes").fetchall() == [(7000, "v2")]
    assert reader.execute(f"SELECT count(*), min(version) FROM lake.communes AT (VERSION => {v1})").fetchall() == [
        (5000, "v1")]
    assert reader.execute("SELECT count(*) FROM lake.communes AT (TIMESTAMP => ?::TIMESTAMPTZ)", [t1]).fetchall() == [
        (5000,)]


def test_snapshots_and_time_travel_on_a_sqlite_catalog(sqlite_lake: Lake) -> None:
    _snapshots_and_time_travel(sqlite_lake)


@pytest.mark.slow
def test_snapshots_and_time_travel_on_postgres_with_data_on_s3(pg_s3_lake: Lake, s3_bucket: S3Bucket,
                                                               tmp_path: Path) -> None:
    _snapshots_and_time_travel(pg_s3_lake)
    keys = _objects(s3_bucket)
    assert keys and all(k.startswith("lake/main/communes/") and k.endswith(".parquet") for k in keys), keys
    assert not list(tmp_path.rglob("*.parquet")), "the data belongs in the bucket"


# -- commit conflicts --------------------------------------------------------------------


def _overlapping_commits(a: duckdb.DuckDBPyConnection, b: duckdb.DuckDBPyConnection, sql_a: list[str],
                         sql_b: list[str]) -> Exception | None:
    """a and b both open a transaction and write; a commits first. What b's COMMIT raises, if anything."""
    a.execute("BEGIN")
    b.execute("BEGIN")
    for sql in sql_a:
        a.execute(sql)
    for sql in sql_b:
        b.execute(sql)
    a.execute("COMMIT")
    try:
        b.execute("COMMIT")
    except duckdb.Error as e:
        return e
    return None


@pytest.mark.slow
def test_postgres_catalog_commits_overlapping_writes_to_other_tables_and_refuses_the_same_table(
        pg_s3_lake: Lake) -> None:
    a, b = pg_s3_lake(), pg_s3_lake()
    a.execute("CREATE TABLE lake.t AS SELECT range AS i FROM range(10)")
    a.execute("CREATE TABLE lake.u AS SELECT range AS i FROM range(10)")
    # other tables: both commit (DuckLake retries the snapshot id itself)
    assert _overlapping_commits(a, b, ["INSERT INTO lake.t SELECT range FROM range(1000)"],
                                ["INSERT INTO lake.u SELECT range FROM range(1000)"]) is None
    # the same table, both replacing its rows (a new version of one dataset): the second is refused ...
    replace = ["DELETE FROM lake.t", "INSERT INTO lake.t SELECT range FROM range(3)"]
    error = _overlapping_commits(a, b, replace, ["DELETE FROM lake.t", "INSERT INTO lake.t SELECT range FROM range(4)"])
    assert isinstance(error, duckdb.TransactionException) and "Transaction conflict" in str(error), error
    assert b.execute("SELECT count(*) FROM lake.t").fetchall() == [(3,)]
    # ... and succeeds when retried in a new transaction
    _commit(b, ["DELETE FROM lake.t", "INSERT INTO lake.t SELECT range FROM range(4)"], "retry", {})
    assert a.execute("SELECT count(*) FROM lake.t").fetchall() == [(4,)]


def test_sqlite_catalog_never_blocks_on_a_reader_and_refuses_the_later_of_two_overlapping_writers(
        sqlite_lake: Lake) -> None:
    a, b, reader = sqlite_lake(), sqlite_lake(), sqlite_lake()
    a.execute("CREATE TABLE lake.t AS SELECT range AS i FROM range(10)")
    a.execute("CREATE TABLE lake.u AS SELECT range AS i FROM range(10)")
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM lake.t").fetchall() == [(10,)]
    started = time.monotonic()
    a.execute("INSERT INTO lake.t SELECT range FROM range(1000)")  # a reader's open transaction: no wait
    assert time.monotonic() - started < 1
    assert reader.execute("SELECT count(*) FROM lake.t").fetchall() == [(10,)]  # its snapshot, until it ends
    reader.execute("COMMIT")
    assert reader.execute("SELECT count(*) FROM lake.t").fetchall() == [(1010,)]
    error = _overlapping_commits(a, b, ["INSERT INTO lake.t SELECT range FROM range(1000)"],
                                 ["INSERT INTO lake.u SELECT range FROM range(1000)"])
    assert isinstance(error, duckdb.TransactionException) and "database is locked" in str(error), error
    _commit(b, ["INSERT INTO lake.u SELECT range FROM range(1000)"], "retry", {})
    assert a.execute("SELECT count(*) FROM lake.u").fetchall() == [(1010,)]


# -- two processes writing into one lake at once ---------------------------------------------

WRITER = textwrap.dedent("""
    import json, os, sys, time
    from partage.store.engine import attach_sql, connect
    table, commits = sys.argv[1], int(sys.argv[2])
    con = connect()
    con.execute(attach_sql(os.environ["LAKE_CATALOG"], os.environ["LAKE_DATA"]))
    con.execute(f'CREATE TABLE lake."{table}" (n BIGINT, commit_no INTEGER)')
    open(os.environ["LAKE_READY"] + "." + table, "w").close()
    while not os.path.exists(os.environ["LAKE_READY"]):  # both start committing at the same moment
        time.sleep(0.01)
    latencies = []
    for i in range(commits):
        started = time.perf_counter()
        con.execute("BEGIN")
        con.execute(f'INSERT INTO lake."{table}" SELECT range, {i} FROM range(2000)')
        con.execute("CALL lake.set_commit_message('partage', ?, extra_info => ?)", [f"{table} {i}", "{}"])
        con.execute("COMMIT")
        latencies.append(time.perf_counter() - started)
    print(json.dumps(latencies))
""")


@pytest.mark.slow
def test_two_processes_commit_to_different_tables_of_one_lake_at_once(pg_catalog_url: str, s3_bucket: S3Bucket,
                                                                      tmp_path: Path) -> None:
    commits = 15
    prepare_catalog(pg_catalog_url)
    ready = tmp_path / "go"
    env = dict(os.environ, LAKE_CATALOG=pg_catalog_url, LAKE_DATA=f"{s3_bucket.url}/lake", LAKE_READY=str(ready),
               PYTHONPATH=str(REPO / "src"))
    con = connect()
    con.execute(attach_sql(pg_catalog_url, f"{s3_bucket.url}/lake"))  # the lake exists before the writers race
    procs = {t: subprocess.Popen([sys.executable, "-c", WRITER, t, str(commits)], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for t in ("communes", "bornes")}
    deadline = time.monotonic() + 120
    while not all(Path(f"{ready}.{t}").exists() for t in procs):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs.values()), \
            {t: p.communicate()[1][-2000:] for t, p in procs.items() if p.poll() is not None}
        time.sleep(0.05)
    ready.touch()
    results = {t: p.communicate(timeout=300) for t, p in procs.items()}
    assert all(p.returncode == 0 for p in procs.values()), {t: err[-2000:] for t, (_, err) in results.items()}
    for table in procs:
        assert con.execute(f'SELECT count(*), count(DISTINCT commit_no) FROM lake."{table}"').fetchall() == [
            (2000 * commits, commits)]
        messages = con.execute("SELECT count(*) FROM lake.snapshots() WHERE commit_message LIKE ?",
                               [f"{table} %"]).fetchone()
        assert messages == (commits,), "every commit is its own snapshot"
    con.close()
