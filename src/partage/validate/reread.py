"""A copy of a CSV file as frictionless-py reads it, for DuckDB's reader to read the same cells.

Python's csv (frictionless' reader) and DuckDB's reader disagree on some files: ``skipInitialSpace``
before quoted cells (``a, "b"``), a space beside a quote (``"2A004" ;``), a quote inside an unquoted cell
(``5"x``) or one never closed, which Python's csv reads leniently and DuckDB refuses or reads otherwise.
frictionless' reading is the reference, so rather than sending such a file to frictionless-py (about
110 s per 1M rows here), its own cell stream is written back, every cell quoted, in UTF-8, and the SQL
engine judges that copy: the cells are frictionless' by construction (about 10 s per 1M rows of 24
fields to write). Blank rows are left out and their row numbers returned: between multi-line cells,
an empty line cannot be told from a cell's own lines otherwise.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from ..dialect import Dialect

log = logging.getLogger("partage.validate")


def rewrite_as_frictionless_reads(path: Path, dialect: Dialect, dest: Path) -> tuple[int, ...] | None:
    """Write ``dest``; return the row numbers of the blank rows, or None when the file cannot be read so
    (bytes that are not its encoding, a NUL byte...: frictionless-py reports those itself)."""
    from frictionless import FrictionlessException

    from .engine import _resource

    blank: list[int] = []
    try:
        # no schema: its cells do not depend on it, and a schema frictionless calls invalid (some real ones
        # are, and the SQL engine reads them tolerantly) would stop the reading
        with _resource(path, None, dialect) as resource, open(dest, "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, delimiter=dialect.delimiter, quotechar='"', doublequote=True,
                                quoting=csv.QUOTE_ALL, lineterminator="\n")
            for number, cells in enumerate(resource.cell_stream, start=1):
                if not cells:
                    if number == 1:  # no header line to pair with the fields
                        return None
                    blank.append(number)
                else:
                    writer.writerow(cells)
    except (FrictionlessException, UnicodeError, csv.Error, OSError) as e:
        log.debug("no rewritten copy of %s: %s", path.name, e)
        dest.unlink(missing_ok=True)
        return None
    return tuple(blank)
