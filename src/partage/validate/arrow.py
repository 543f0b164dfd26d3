"""Table Schema types -> Arrow types, and typed Parquet writing.

The schema decides every column's type: an INSEE code declared ``string``
stays a string (``01001`` keeps its zero), whatever the values look like.
Choices an analyst needs to know (also in warehouse/README.md):

* ``number`` -> DOUBLE, ``integer`` -> BIGINT, ``year`` -> INTEGER
* ``datetime`` -> TIMESTAMP WITH TIME ZONE; values without an offset are read
  in the entry's ``timezone`` (Europe/Paris by default), not as UTC
* ``geopoint`` -> STRUCT(lon DOUBLE, lat DOUBLE)
* ``yearmonth`` -> 'YYYY-MM', ``duration`` -> ISO 8601 text,
  ``object``/``array``/``geojson`` -> JSON text, ``any`` -> text
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq

GEOPOINT = pa.struct([("lon", pa.float64()), ("lat", pa.float64())])
SOURCE_COLUMN = "_source"
ROW_COLUMN = "_row_number"
ERRORS_COLUMN = "_errors"
BATCH_ROWS = 20_000


def arrow_type(field: dict[str, Any]) -> pa.DataType:
    return {
        "integer": pa.int64(),
        "number": pa.float64(),
        "boolean": pa.bool_(),
        "date": pa.date32(),
        "datetime": pa.timestamp("us", tz="UTC"),
        "time": pa.time64("us"),
        "year": pa.int32(),
        "geopoint": GEOPOINT,
    }.get(field.get("type", "string"), pa.string())


class CastError(ValueError):
    """A value frictionless accepted but Arrow cannot hold (e.g. an integer over 64 bits)."""


def make_converter(field: dict[str, Any], tz: ZoneInfo):
    """A function turning frictionless' typed value into what Arrow stores."""
    kind = field.get("type", "string")

    def _int(v: Any) -> Any:
        if not -(2**63) <= v < 2**63:
            raise CastError(f"integer {v} does not fit in 64 bits")
        return int(v)

    def _num(v: Any) -> Any:
        return float(v) if isinstance(v, Decimal) else float(v)

    def _datetime(v: Any) -> Any:
        if isinstance(v, dt.datetime):
            return v.replace(tzinfo=tz) if v.tzinfo is None else v
        return v

    def _geopoint(v: Any) -> Any:
        lon, lat = (float(x) for x in list(v)[:2])
        return {"lon": lon, "lat": lat}

    def _yearmonth(v: Any) -> Any:
        year, month = (int(x) for x in list(v)[:2])
        return f"{year:04d}-{month:02d}"

    def _duration(v: Any) -> Any:
        import isodate

        return isodate.duration_isoformat(v)

    def _json(v: Any) -> Any:
        return json.dumps(v, ensure_ascii=False, default=str)

    def _text(v: Any) -> Any:
        return v if isinstance(v, str) else str(v)

    fn = {
        "integer": _int, "number": _num, "datetime": _datetime, "geopoint": _geopoint,
        "yearmonth": _yearmonth, "duration": _duration, "object": _json, "array": _json,
        "geojson": _json, "list": _json, "any": _text, "string": _text,
    }.get(kind)
    if fn is None:
        return lambda v: v
    return lambda v: None if v is None else fn(v)


def data_schema(fields: list[dict[str, Any]]) -> pa.Schema:
    meta_fields = [
        pa.field(f["name"], arrow_type(f), metadata={"title": f.get("title", ""), "description": f.get("description", "")})
        for f in fields
    ]
    return pa.schema(meta_fields + [pa.field(SOURCE_COLUMN, pa.string()), pa.field(ROW_COLUMN, pa.int64())])


def quarantine_schema(fields: list[dict[str, Any]]) -> pa.Schema:
    """Invalid rows keep their original text, so nothing is lost or re-interpreted."""
    return pa.schema(
        [pa.field(f["name"], pa.string()) for f in fields]
        + [pa.field(SOURCE_COLUMN, pa.string()), pa.field(ROW_COLUMN, pa.int64()), pa.field(ERRORS_COLUMN, pa.string())]
    )


class BatchWriter:
    """Accumulate rows column by column and write zstd Parquet in batches (memory stays flat)."""

    def __init__(self, path: Path, schema: pa.Schema):
        self.path = path
        self.schema = schema
        self.rows = 0
        self._cols: list[list[Any]] = [[] for _ in schema]
        self._writer: pq.ParquetWriter | None = None

    def append(self, values: list[Any]) -> None:
        for col, v in zip(self._cols, values):
            col.append(v)
        self.rows += 1
        if len(self._cols[0]) >= BATCH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.path, self.schema, compression="zstd")
        arrays = [pa.array(col, type=f.type) for col, f in zip(self._cols, self.schema)]
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        self._cols = [[] for _ in self.schema]

    def close(self) -> None:
        """Always leave a file, even with 0 rows, so the view keeps its columns."""
        if self._cols[0] or self._writer is None:
            self._flush()
        assert self._writer is not None
        self._writer.close()
