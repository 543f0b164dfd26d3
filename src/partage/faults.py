"""Named crash points, for the crash-safety tests.

``checkpoint("renamed")`` does nothing unless the environment variable
``PARTAGE_CRASH_AT`` names that point: then the process kills itself with
SIGKILL there — no clean-up, no ``finally``, exactly like a power cut or the
OOM killer. The tests use it to prove that every stage of a store leaves the
warehouse whole (see tests/test_crash.py). Reading one environment variable
is all it costs in production.
"""

from __future__ import annotations

import os
import signal

POINTS = (
    "raw-written",        # a download is in raw/tmp, not yet renamed to its sha256
    "validated",          # a source's Parquet is written in the staging directory
    "staged",             # the whole version is staged (schema, datapackage), nothing renamed
    "before-rename",      # the database is open, the version directory not yet in place
    "renamed",            # the version directory is in place, no transaction yet
    "in-transaction",     # the version row is inserted, the views not yet repointed
    "views-repointed",    # views repointed, not yet committed
    "committed",          # committed, connection still open
    "gc-removing",        # partage gc has removed its first item
    "migrate-in-transaction",  # partage migrate: a version's tables written in its snapshot, not committed
    "migrate-committed",  # partage migrate: the first version's snapshot committed
    "migrate-before-retire",  # partage migrate: every snapshot committed, partage.duckdb not yet renamed
)


def checkpoint(name: str) -> None:
    if os.environ.get("PARTAGE_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
