"""The store: the one owner of the lake's tables, paths and metadata (DuckLake). See :mod:`.engine`."""
