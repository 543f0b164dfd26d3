"""Streamed exports of a (filtered) version: CSV, Parquet, GeoJSON.

Each format is a generator of byte chunks fed by DuckDB record batches, so an
export of a million rows never sits whole in memory and the first bytes leave
at once. Geopoints (``STRUCT(lon, lat)``) are written ``lon,lat`` in CSV, as in
frictionless' default geopoint format, and become the geometry in GeoJSON.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..store.warehouse import ident
from .catalog_cache import Column

MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet",
               "geojson": "application/geo+json"}


def is_geopoint(column: Column) -> bool:
    t = column.sql_type.upper().replace(" ", "")
    return t.startswith("STRUCT(") and "LONDOUBLE" in t and "LATDOUBLE" in t


def csv_select(columns: Iterable[Column]) -> list[str]:
    out = []
    for c in columns:
        q = ident(c.name)
        if is_geopoint(c):
            out.append(f"CASE WHEN {q} IS NULL THEN NULL ELSE concat({q}.lon, ',', {q}.lat) END AS {q}")
        elif not c.sql_type.upper().startswith(("VARCHAR", "BIGINT", "INTEGER", "DOUBLE", "BOOLEAN", "DATE")):
            out.append(f"CAST({q} AS VARCHAR) AS {q}")  # timestamps, times, nested: their ISO/text form
        else:
            out.append(q)
    return out


def csv_chunks(batches: Iterator[pa.RecordBatch]) -> Iterator[bytes]:
    first = True
    for batch in batches:
        buf = io.BytesIO()
        pacsv.write_csv(batch, buf, pacsv.WriteOptions(include_header=first))
        first = False
        yield buf.getvalue()


class _Sink(io.RawIOBase):
    """A write-only file that hands what Parquet wrote so far to the response."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.pos = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self.chunks.append(data)
        self.pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self.pos

    def drain(self) -> bytes:
        out = b"".join(self.chunks)
        self.chunks.clear()
        return out


def parquet_chunks(batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> Iterator[bytes]:
    sink = _Sink()
    writer = pq.ParquetWriter(sink, schema, compression="zstd")
    try:
        for batch in batches:
            writer.write_batch(batch)
            data = sink.drain()
            if data:
                yield data
    finally:
        writer.close()
    yield sink.drain()


def geojson_chunks(batches: Iterator[pa.RecordBatch], geometry: str) -> Iterator[bytes]:
    yield b'{"type":"FeatureCollection","features":['
    first = True
    for batch in batches:
        parts = []
        for row in batch.to_pylist():
            point = row.pop(geometry, None)
            geom = None
            if point and point.get("lon") is not None and point.get("lat") is not None:
                geom = {"type": "Point", "coordinates": [point["lon"], point["lat"]]}
            parts.append(orjson.dumps({"type": "Feature", "geometry": geom, "properties": row}, default=str))
        if parts:
            yield (b"" if first else b",") + b",".join(parts)
            first = False
    yield b"]}"
