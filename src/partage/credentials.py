"""Credential references: ``env:NAME`` and ``prefect-secret:NAME``.

Secrets are resolved at the last moment, only where a request is built, and are
never stored on objects that get logged or returned. The Prefect backend is
registered by the flows layer, so the engine itself never imports Prefect.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from .errors import CredentialError

Resolver = Callable[[str], str]


def _from_env(name: str) -> str:
    value = os.environ.get(name)
    if value is None or value == "":
        raise CredentialError(f"environment variable {name} is not set; export it before the run (the catalog refers to env:{name})")
    return value


_BACKENDS: dict[str, Resolver] = {"env": _from_env}


def register_backend(scheme: str, resolver: Resolver) -> None:
    """Plug a secret store in (the flows register ``prefect-secret``)."""
    _BACKENDS[scheme] = resolver


def resolve(ref: str) -> str:
    scheme, _, name = ref.partition(":")
    backend = _BACKENDS.get(scheme)
    if backend is None:
        if scheme == "prefect-secret":
            raise CredentialError(
                f"{ref} needs Prefect: run through `partage harvest` or the Prefect flow, which can read Secret blocks"
            )
        raise CredentialError(f"unknown credential scheme {scheme!r} in {ref!r}; use env:NAME or prefect-secret:NAME")
    return backend(name)

