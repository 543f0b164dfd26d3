"""A schema URL pinned with #sha256= is refused when the schema changed upstream."""

from __future__ import annotations

import json

import pytest

from partage.errors import SchemaError
from partage.schemas import canonical_hash, resolve_schema

SCHEMA = {"fields": [{"name": "code_insee", "type": "string", "constraints": {"pattern": "[0-9AB]{5}"}}]}


def test_pinned_url_schema_is_resolved_when_the_hash_matches(http_server) -> None:
    url = http_server.serve("/schema.json", json.dumps(SCHEMA))
    resolved = resolve_schema(f"{url}#sha256={canonical_hash(SCHEMA)}")
    assert resolved.descriptor == SCHEMA and resolved.origin == url


def test_pinned_url_schema_that_changed_is_refused_naming_both_hashes(http_server) -> None:
    changed = {"fields": [{"name": "code_insee", "type": "integer"}]}
    url = http_server.serve("/schema.json", json.dumps(changed))
    with pytest.raises(SchemaError) as e:
        resolve_schema(f"{url}#sha256={canonical_hash(SCHEMA)}")
    assert canonical_hash(changed) in str(e.value) and canonical_hash(SCHEMA) in str(e.value)
    assert "update the pin" in str(e.value)


def test_malformed_schema_error_names_the_bad_property(http_server) -> None:
    bad = {"fields": [{"name": "d", "type": "date", "constraints": {"pattern": "[0-9]{4}"}}]}
    url = http_server.serve("/bad.json", json.dumps(bad))
    with pytest.raises(SchemaError, match='constraint "pattern" is not supported by type "date"'):
        resolve_schema(url)
