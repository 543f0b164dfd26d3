#!/usr/bin/env bash
# The code before DuckLake (commit 0798d75: one DuckDB file, partage.duckdb) with its own venv, for
# bench/lake_harvest.py and bench/lake_worker.py's "before" rows:
#
#   bench/build-old.sh DIR        # once; does nothing if DIR/.venv/bin/partage exists
#
# DIR may be a worktree of 0798d75 already (git -C . worktree add --detach DIR 0798d75); otherwise its
# tree is extracted there (git archive: no worktree is registered). The old code had no lock file: its
# venv comes from the first lock the project wrote (commit c68786a: DuckDB 2.0.1, Prefect 3.9.1), as
# scripts/make-legacy-fixture.sh builds it. Needs this checkout's .venv (make install) for uv.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
old=${1:?usage: bench/build-old.sh DIR}
uv="${UV:-$here/.venv/bin/uv}"
[ -x "$old/.venv/bin/partage" ] && exit 0
if [ ! -f "$old/pyproject.toml" ]; then
    mkdir -p "$old"
    git -C "$here" archive 0798d75 | tar -x -C "$old"
    echo 0798d75 > "$old/.commit"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git -C "$here" show c68786a:uv.lock > "$work/uv.lock"
git -C "$here" show c68786a:pyproject.toml > "$work/pyproject.toml"
(cd "$work" && "$uv" export --frozen --no-hashes --no-emit-project -o req.txt >/dev/null)
python3.11 -m venv "$old/.venv"
"$uv" pip install --quiet --python "$old/.venv/bin/python" -r "$work/req.txt"
"$uv" pip install --quiet --python "$old/.venv/bin/python" --no-deps -e "$old"
echo "built $old (0798d75, $("$old/.venv/bin/python" -c 'import duckdb; print("duckdb", duckdb.__version__)'))"
