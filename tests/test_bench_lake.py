"""The lake benchmarks' quick mode (bench/lake_harvest.py, bench/lake_worker.py, `make bench-lake`).

Both scripts run for real, side by side (a few datasets, no Prefect, 5,000 validation rows): the
old code of 0798d75 in its own venv (bench/build-old.sh builds it if PARTAGE_BENCH_OLD or
~/.cache/partage-bench-old has none), this checkout on a SQLite catalog, and on PostgreSQL when
PARTAGE_TEST_PG_URL is set. Checked: every table has a row per code, the old code's harvest beside
a reader fails as it did (WarehouseBusy) while the lake's succeeds, the validation rows name both
DuckDB versions, and each script's output becomes the newest section of the results file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

pytestmark = pytest.mark.slow

OLD = Path(os.environ.get("PARTAGE_BENCH_OLD") or Path.home() / ".cache" / "partage-bench-old")
SQLITE = "after: main, DuckLake, SQLite catalog (DuckDB 1.5.5)"
PG = "after: main, DuckLake, PostgreSQL catalog (DuckDB 1.5.5)"
BEFORE = "before: 0798d75, partage.duckdb (DuckDB 2.0.1)"


def rows(text: str, heading: str) -> dict[str, str]:
    """The rows of the table under a heading, by their first cell."""
    part = text.split(heading, 1)[1].split("\n### ", 1)[0]
    return {line.split("|")[1].strip(): line for line in part.splitlines()
            if line.startswith("| ") and not line.startswith("| code") and not line.startswith("| Python")}


def test_quick_mode_has_every_row(tmp_path: Path) -> None:
    if not (OLD / ".venv" / "bin" / "python").exists():
        if subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", "0798d75^{commit}"], capture_output=True).returncode:
            pytest.skip("commit 0798d75 (the code before the lake) is not in this clone (a shallow one?): "
                        "the 'before' rows cannot be built; `git fetch --unshallow` to run this test")
        subprocess.run([str(REPO / "bench" / "build-old.sh"), str(OLD)], check=True, capture_output=True)
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\nintro\n\n## an earlier section\n\nkept\n", encoding="utf-8")
    (tmp_path / "w.md").write_text("# header\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    procs = {name: subprocess.Popen([sys.executable, str(REPO / "bench" / name), "--quick", "--old", str(OLD),
                                     "--results", str(results if name == "lake_harvest.py" else tmp_path / "w.md")],
                                    cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in ("lake_harvest.py", "lake_worker.py")}
    out = {}
    for name, p in procs.items():
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, f"{name}:\n{stdout[-2000:]}\n{stderr[-3000:]}"
        out[name] = stdout
    codes = [BEFORE, SQLITE] + ([PG] if os.environ.get("PARTAGE_TEST_PG_URL") else [])

    harvest = out["lake_harvest.py"]
    assert "- before: " in harvest and "duckdb 2.0.1" in harvest and "load average" in harvest
    table = rows(harvest, "### Harvest of 3 datasets")
    assert sorted(table) == sorted(codes)
    for line in table.values():
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert all(float(c) > 0 for c in cells[2:]), line  # wall s and commit ms, first and unchanged
    reader = rows(harvest, "### A reader holding one connection")
    assert sorted(reader) == sorted(codes)
    assert "**failed**" in reader[BEFORE] and "WarehouseBusy" in reader[BEFORE]
    for code in codes[1:]:
        cells = [c.strip() for c in reader[code].strip("|").split("|")]
        assert cells[-1].endswith("3 datasets written") and cells[-2] == "0", reader[code]
        assert int(cells[5]) > 0, "the reader queried during the harvest"
    validation = rows(harvest, "### Validation at 5,000 rows")
    assert [line.split("|")[3].strip() for line in validation.values()] == ["1.5.5", "2.0.1"]
    text = results.read_text(encoding="utf-8")
    assert text.index("lake vs old layout") < text.index("## an earlier section") and "kept" in text
    assert "| before: 0798d75" in text

    workers = rows(out["lake_worker.py"], "### Two workers against one")
    assert sorted(workers) == sorted(codes)
    assert "WarehouseBusy: another harvest is running" in workers[BEFORE]
    assert "all datasets stored" in workers[SQLITE]
    assert "Two workers against one" in (tmp_path / "w.md").read_text(encoding="utf-8")
