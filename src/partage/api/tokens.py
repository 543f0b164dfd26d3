"""API tokens: generated once, stored hashed, compared in constant time.

A token is 32 random bytes (``secrets.token_urlsafe``), so a plain SHA-256 is
enough to store it: there is nothing to brute-force, and a per-request scrypt
would cost more than the query. The store is a JSON file (``PARTAGE_TOKENS``,
default ``<warehouse>/.tokens.json``, mode 0600) or, read-only, a Prefect Secret
or environment variable holding the same JSON (``PARTAGE_TOKENS=prefect-secret:NAME``).
The clear token is printed once by ``partage tokens add`` and never stored or logged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from .. import credentials
from ..errors import TokenStoreError

Level = Literal["partners", "internal"]
LEVELS: tuple[str, ...] = get_args(Level)
PREFIX = "ptg_"

# Which catalog access levels a token level may read.
READABLE: dict[str | None, frozenset[str]] = {
    None: frozenset({"open"}),
    "partners": frozenset({"open", "partners"}),
    "internal": frozenset({"open", "partners", "internal"}),
}


@dataclass(frozen=True)
class TokenEntry:
    name: str
    level: Level
    sha256: str
    created_at: str


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def default_location(warehouse: Path) -> str:
    return os.environ.get("PARTAGE_TOKENS") or str(Path(warehouse) / ".tokens.json")


def _parse(text: str, where: str) -> list[TokenEntry]:
    try:
        raw = json.loads(text) if text.strip() else {"tokens": []}
        entries = [TokenEntry(e["name"], e["level"], e["sha256"], e.get("created_at", "")) for e in raw["tokens"]]
    except (ValueError, KeyError, TypeError) as e:
        raise TokenStoreError(
            f"token store {where} is not valid ({e}); it must be JSON like "
            '{"tokens": [{"name": ..., "level": "partners", "sha256": ...}]}; fix or remove it'
        ) from None
    for entry in entries:
        if entry.level not in LEVELS:
            raise TokenStoreError(
                f"token {entry.name!r} in {where} has level {entry.level!r}; allowed: {', '.join(LEVELS)}")
    return entries


class TokenStore:
    """Reads the store lazily and again whenever the file changes, so a new token works without a restart."""

    def __init__(self, location: str):
        self.location = location
        self.is_reference = location.startswith(("env:", "prefect-secret:"))
        self._entries: list[TokenEntry] = []
        self._stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self._loaded = False

    # -- reading -----------------------------------------------------------------

    def entries(self) -> list[TokenEntry]:
        if self.is_reference:
            if not self._loaded:
                self._entries = _parse(credentials.resolve(self.location), self.location)
                self._loaded = True
            return self._entries
        path = Path(self.location)
        try:
            st = path.stat()
        except FileNotFoundError:
            return []
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    self._entries = _parse(path.read_text(encoding="utf-8"), str(path))
                    self._stamp = stamp
        return self._entries

    def level_of(self, token: str | None) -> Level | None:
        """The level a presented token grants, or None. Every entry is compared, match or not,
        with :func:`hmac.compare_digest`, so the time taken does not tell how close a guess was."""
        if not token:
            return None
        presented = digest(token)
        found: Level | None = None
        for e in self.entries():
            if hmac.compare_digest(presented, e.sha256):
                found = e.level
        return found

    # -- writing (file stores only) ------------------------------------------------

    def _writable(self) -> Path:
        if self.is_reference:
            raise TokenStoreError(
                f"the token store is {self.location}, which Partage only reads; add the entry printed "
                "with --print-entry to that secret yourself, or point PARTAGE_TOKENS at a file"
            )
        return Path(self.location)

    def _write(self, entries: list[TokenEntry]) -> None:
        path = self._writable()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"tokens": [e.__dict__ for e in entries]}, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)

    def add(self, name: str, level: str) -> tuple[str, TokenEntry]:
        """Create a token; returns the clear token (show it once) and its stored entry."""
        if level not in LEVELS:
            raise TokenStoreError(f"level {level!r} is not one of {', '.join(LEVELS)}")
        entries = [] if self.is_reference else self.entries()
        if any(e.name == name for e in entries):
            raise TokenStoreError(f"a token named {name!r} exists; revoke it first or choose another name")
        token = PREFIX + secrets.token_urlsafe(32)
        entry = TokenEntry(name, level, digest(token), dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))  # type: ignore[arg-type]
        if not self.is_reference:
            self._write([*entries, entry])
        return token, entry

    def revoke(self, name: str) -> bool:
        entries = self.entries()
        kept = [e for e in entries if e.name != name]
        if len(kept) == len(entries):
            return False
        self._write(kept)
        return True


def entry_json(entry: TokenEntry) -> dict[str, Any]:
    return dict(entry.__dict__)
