"""Several writers (#22): one lake (PostgreSQL catalog, data on S3 served by moto on 127.0.0.1) written
by several processes and machines at once.

- processes that open a fresh, empty catalog at the same moment all succeed (the first ATTACH creates
  DuckLake's tables; without a guard they race and all but one fail);
- a writer whose harvest planned on a version another machine has since replaced is refused with
  :class:`~partage.errors.DatasetConflict`, never committed over the other's version;
- a worker whose local warehouse directory is empty reads an earlier version's files from the bucket;
- two Prefect process workers of one real ``prefect server`` harvest twenty datasets into the lake at once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from .conftest import REPO

OPENER = textwrap.dedent("""
    import os, sys, time
    from partage.store.lake import LakeSpec, instance
    ready, go = sys.argv[1], sys.argv[2]
    open(ready, "w").close()
    while not os.path.exists(go):  # every process attaches at the same moment
        time.sleep(0.005)
    try:
        con = instance(LakeSpec(os.environ["LAKE_CATALOG"], os.environ["LAKE_DATA"]))
        print("ok", con.execute("SELECT count(*) FROM lake.snapshots()").fetchone()[0])
    except Exception as e:
        print(type(e).__name__, e)
""")


def test_processes_first_attaching_an_empty_postgres_catalog_at_once_all_succeed(pg_catalog_url: str,
                                                                                  tmp_path: Path) -> None:
    """Measured before the fix: 3 of 4 processes failed on DuckLake's ``CREATE TABLE ducklake_metadata``."""
    env = dict(os.environ, LAKE_CATALOG=pg_catalog_url, LAKE_DATA=str(tmp_path / "data"), PYTHONPATH=str(REPO / "src"))
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", OPENER, str(tmp_path / f"ready{i}"), str(go)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(4)]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready{i}").exists() for i in range(4)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.02)
    go.touch()
    outputs = [p.communicate(timeout=180)[0].strip() for p in procs]
    assert all(o.startswith("ok ") for o in outputs), outputs
    assert pg_catalog_url.split("@")[0].split(":")[-1] not in "".join(outputs)  # no password in any message
