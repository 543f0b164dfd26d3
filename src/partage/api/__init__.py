"""The tabular API: ``partage serve``, read-only HTTP over the warehouse.

It never keeps ``partage.duckdb`` open (a harvest must be able to write it):
metadata is read in short read-only connections and cached
(:mod:`.catalog_cache`), rows are read by in-memory DuckDB connections straight
from the immutable Parquet files of a pinned version (:mod:`.engine`). Who may see
what follows the catalog's ``access`` key (:mod:`.tokens`).
"""
