"""Partage: a data-sharing hub for French territories.

Harvest public and partner datasets, validate them against Frictionless Table
Schemas, store accepted versions as typed Parquet behind DuckDB, and publish
catalog entries.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("partage")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+local"

USER_AGENT = f"Partage/{__version__} (+https://github.com/partage-hub/partage)"
