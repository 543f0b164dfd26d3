"""One exception root for the whole engine.

Each message names the thing that went wrong (file, key, URL, row, field) and
what to do about it, because the people who read them are a data team, not the
authors. Whether a retry can help is carried by the type: Prefect and the
fetcher retry :class:`TransientError` only.
"""

from __future__ import annotations


class PartageError(Exception):
    """Root of every error Partage raises on purpose."""


class TransientError(PartageError):
    """Something that may work if tried again later (timeouts, 5xx, a busy file)."""


class TerminalError(PartageError):
    """Retrying will not help: the input or the configuration must change."""


class CatalogError(TerminalError):
    """The catalog (YAML files) is invalid. Carries every problem found, not just the first."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class CredentialError(TerminalError):
    """A credential reference could not be resolved. Never carries the secret itself."""


class SchemaError(TerminalError):
    """A Table Schema could not be found or read."""


class SourceFormatError(TerminalError):
    """A downloaded file holds no data Partage can read: a web page, a damaged or many-file archive."""


class NotDataError(SourceFormatError):
    """A web page (HTML) where data was expected. For a URL of the catalog it is a failure (the link
    needs fixing); for a resource a portal lists (a map viewer, a documentation page) it is not data
    at all, and the run loop skips it."""


class FetchError(PartageError):
    """Base for download problems; the subclass says whether retrying can help."""

    def __init__(
        self, message: str, *, url: str | None = None, status: int | None = None, retry_after: str | None = None
    ):
        self.url = url
        self.status = status
        self.retry_after = retry_after
        super().__init__(message)


class TransientFetchError(FetchError, TransientError):
    """Timeout, connection reset, HTTP 429/5xx."""


class TerminalFetchError(FetchError, TerminalError):
    """HTTP 4xx, size limit, forbidden redirect, missing file."""


class WarehouseError(PartageError):
    """The warehouse could not be read or written."""


class LegacyWarehouse(WarehouseError, TerminalError):
    """The warehouse has the layout before DuckLake (``partage.duckdb``): only ``partage migrate`` opens it."""


class WarehouseBusy(WarehouseError, TransientError):
    """The lake refused a commit several times over (other writers kept committing); run it again."""


class HarvestRunning(WarehouseBusy):
    """Another harvest on this machine is writing one of the datasets asked for (or gc is running).
    Refused at once, before any download; ``partage harvest`` exits with code 3."""


class DatasetConflict(WarehouseError):
    """Another writer (a harvest on another machine, beyond this one's harvest locks) stored a new version
    of the dataset after this harvest read the dataset's state. This harvest's version, planned on the
    older state (its unchanged sources' parts, their records), is not committed over the other one;
    harvesting the dataset again starts from the new version. The dataset is recorded failed, the
    other datasets of the run go on."""

    def __init__(self, dataset_id: str, planned: str | None, current: str | None):
        self.dataset_id, self.planned, self.current = dataset_id, planned, current
        super().__init__(
            f"{dataset_id!r} was written by another harvest meanwhile: its latest version is now "
            f"{current or 'none'}, this harvest had started from {planned or 'no version'}; nothing of this "
            f"harvest was stored for it, so the other harvest's version stays. Run the harvest of "
            f"{dataset_id!r} again (`partage harvest {dataset_id}`): it starts from the new version")


class PortalError(TerminalError):
    """A portal answered something we cannot use (HTML instead of JSON, a page that repeats for ever,
    an unknown API). Names the portal's URL and what to check."""


class TokenStoreError(TerminalError):
    """The API token store could not be read or changed. Never carries a token."""


class ApiQueryError(TerminalError):
    """A request to the tabular API asks for something that cannot be answered as asked (bad filter, column, value)."""


class DuckDBExtensionMissing(TerminalError):
    """A DuckDB extension Partage loads offline (DuckLake, SQLite, PostgreSQL, httpfs) is not installed
    as its Python package; the message names the package and the fix (`make install`)."""


class LakeLocationError(TerminalError):
    """The lake's catalog URL or data path is not one Partage can attach (SQLite file, PostgreSQL, local dir, s3://)."""
