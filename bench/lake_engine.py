"""DuckLake on the pinned DuckDB: commit latency per catalog, object-store writes and reads, conflicts.

    make bench-lake      (or, with PARTAGE_TEST_PG_URL set: .venv/bin/python bench/lake_engine.py
                          [--commits 30] [--rows 1000000])

Every connection comes from `partage.store.engine.connect` (extensions loaded offline). The lakes:
a SQLite catalog with local data; a PostgreSQL catalog (PARTAGE_TEST_PG_URL, `make pg`; a fresh
database per lake, dropped after) with local data, then with data on moto's S3 server started here
on 127.0.0.1. A "small" commit inserts 10 rows (DuckLake inlines them in the catalog); a "version"
commit replaces a 10 000-row table (DELETE + INSERT, one Parquet file) with a commit message, as a
dataset's harvest would. Prints the machine, the versions and tables (ms).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

from partage.store.engine import attach_sql, connect, prepare_catalog  # noqa: E402


def ms(xs: list[float]) -> str:
    xs = sorted(xs)
    p99 = xs[min(len(xs) - 1, round(0.99 * (len(xs) - 1)))]
    return f"{statistics.median(xs) * 1000:8.1f} | {p99 * 1000:8.1f}"


def lake(catalog: str, data: str) -> duckdb.DuckDBPyConnection:
    con = connect()
    con.execute(attach_sql(catalog, data))
    return con


def commits(con: duckdb.DuckDBPyConnection, n: int) -> tuple[list[float], list[float]]:
    con.execute("CREATE TABLE lake.small (i BIGINT)")
    con.execute("CREATE TABLE lake.version (i BIGINT, s VARCHAR)")
    small, version = [], []
    for k in range(n):
        t = time.perf_counter()
        con.execute("INSERT INTO lake.small SELECT range FROM range(10)")
        small.append(time.perf_counter() - t)
        t = time.perf_counter()
        con.execute("BEGIN")
        con.execute("DELETE FROM lake.version")
        con.execute(f"INSERT INTO lake.version SELECT range, 'v{k}' FROM range(10000)")
        con.execute("CALL lake.set_commit_message('bench', ?, extra_info => '{}')", [f"v{k}"])
        con.execute("COMMIT")
        version.append(time.perf_counter() - t)
    return small, version


class Postgres:
    """Fresh databases on the server of PARTAGE_TEST_PG_URL (its role has CREATEDB)."""

    def __init__(self, url: str):
        self.url, self.names = url, []
        self.con = connect()
        self.con.execute(f"ATTACH '{url}' AS pg (TYPE postgres)")

    def database(self) -> str:
        name = f"bench_{uuid.uuid4().hex[:10]}"
        self.con.execute(f"CALL postgres_execute('pg', 'CREATE DATABASE {name}', use_transaction := false)")
        self.names.append(name)
        return urlunsplit(urlsplit(self.url)._replace(path=f"/{name}"))

    def close(self) -> None:
        for name in self.names:
            self.con.execute(f"CALL postgres_execute('pg', 'DROP DATABASE IF EXISTS {name} WITH (FORCE)', "
                             "use_transaction := false)")
        self.con.close()


def moto() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION="us-east-1")
    import boto3

    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
    return proc, endpoint


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--commits", type=int, default=30)
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    url = os.environ.get("PARTAGE_TEST_PG_URL")
    if not url:
        sys.exit("PARTAGE_TEST_PG_URL is not set: run `make pg` and `set -a; . ~/.cache/partage-pg/pg.env; set +a`")
    print(describe(("duckdb", "duckdb-extension-ducklake", "duckdb-extension-postgres", "moto")))
    t = []
    for _ in range(5):
        t0 = time.perf_counter()
        connect().close()
        t.append(time.perf_counter() - t0)
    print(f"\nconnect() with the 4 extensions loaded: median {statistics.median(t) * 1000:.0f} ms\n")
    pg = Postgres(url)
    proc, _ = moto()
    tmp = Path(tempfile.mkdtemp(prefix="lake-bench-"))
    try:
        lakes = {
            "SQLite catalog, local data": (f"sqlite:{tmp / 'a' / 'c.sqlite'}", str(tmp / "a" / "data")),
            "PostgreSQL catalog, local data": (pg.database(), str(tmp / "b" / "data")),
            "PostgreSQL catalog, data on S3 (moto)": (pg.database(), "s3://bench/lake"),
        }
        print(f"commit latency, {args.commits} commits each (ms)\n")
        print("| lake | small: median | p99 | version: median | p99 |")
        print("|---|---:|---:|---:|---:|")
        for label, (catalog, data) in lakes.items():
            prepare_catalog(catalog)
            con = lake(catalog, data)
            small, version = commits(con, args.commits)
            con.close()
            print(f"| {label} | {ms(small)} | {ms(version)} |")
        catalog, data = pg.database(), "s3://bench/big"
        con = lake(catalog, data)
        t0 = time.perf_counter()
        con.execute("CREATE TABLE lake.big AS SELECT range AS id, 'FRA' || lpad(range::VARCHAR, 9, '0') AS code, "
                    f"random() AS x FROM range({args.rows})")
        write = time.perf_counter() - t0
        con.close()
        reader = lake(catalog, data)
        timings = {}
        for name, sql in [("count(*)", "SELECT count(*) FROM lake.big"),
                          ("full scan sum(x)", "SELECT sum(x) FROM lake.big"),
                          ("lookup by id", f"SELECT code FROM lake.big WHERE id = {args.rows // 2}")]:
            t0 = time.perf_counter()
            reader.execute(sql).fetchall()
            timings[name] = time.perf_counter() - t0
        reader.close()
        print(f"\nS3 (moto on 127.0.0.1), PostgreSQL catalog, {args.rows:,} rows\n")
        print("| operation | ms |\n|---|---:|")
        print(f"| write (CREATE TABLE AS) | {write * 1000:.0f} |")
        for name, s in timings.items():
            print(f"| read, fresh connection: {name} | {s * 1000:.0f} |")
    finally:
        proc.terminate()
        proc.wait(30)
        pg.close()


if __name__ == "__main__":
    main()
