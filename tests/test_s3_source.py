"""Partner drops on an S3 prefix, against moto's S3 server on 127.0.0.1 (a real HTTP S3 API)."""

from __future__ import annotations

import pytest

from .conftest import COMMUNES_CSV, COMMUNES_SCHEMA, CatalogBuilder, S3Bucket, query

pytest.importorskip("s3fs", reason="the optional extra partage[s3] (s3fs) is not installed")
pytest.importorskip("moto.server", reason="moto[server] (test extra) is not installed")
pytestmark = pytest.mark.slow
SCHEMA = "test/communes@1.0"


@pytest.fixture
def s3(s3_bucket: S3Bucket) -> object:
    """A boto3 client on the test's bucket of the session's moto server (conftest)."""
    import boto3

    return boto3.client("s3", endpoint_url=s3_bucket.server.endpoint)


def test_s3_prefix_harvest_then_unchanged_objects_download_nothing(hub: CatalogBuilder, harvest, s3, s3_bucket: S3Bucket) -> None:
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    s3.put_object(Bucket=s3_bucket.name, Key="enedis/2024-01.csv", Body=COMMUNES_CSV.encode("cp1252").replace(b",", b";"))
    s3.put_object(Bucket=s3_bucket.name, Key="enedis/2024-02.csv", Body=COMMUNES_CSV.replace("Ajaccio", "Aiacciu").encode())
    s3.put_object(Bucket=s3_bucket.name, Key="enedis/notes.txt", Body=b"not data")
    hub.dataset("enedis", [f"file: {s3_bucket.url}/enedis/*.csv"], schema=SCHEMA, access="partners", extra="duplicates: keep  # the same communes in every file\n")
    first = harvest()
    assert sorted(s.state for s in first.sources) == ["updated", "updated"], [s.reason for s in first.sources]
    assert query(hub, "SELECT count(*) FROM enedis")[0][0] == 6
    assert query(hub, "SELECT nom FROM enedis WHERE code_insee = '01001' ORDER BY 1")[0] == ("L'Abergement-Clémenciat",)
    second = harvest()
    assert [(s.state, s.layer, s.body_bytes) for s in second.sources] == [("unchanged", "etag", 0)] * 2
    s3.delete_object(Bucket=s3_bucket.name, Key="enedis/2024-01.csv")
    third = harvest()
    assert sorted(s.state for s in third.sources) == ["gone", "unchanged"]
    assert query(hub, "SELECT count(*) FROM enedis")[0][0] == 3


def test_s3_empty_prefix_fails_naming_it(hub: CatalogBuilder, harvest, s3, s3_bucket: S3Bucket) -> None:
    hub.schema(SCHEMA, COMMUNES_SCHEMA)
    hub.dataset("vide", [f"file: {s3_bucket.url}/personne/*.csv"], schema=SCHEMA)
    (src,) = harvest().sources
    assert src.state == "failed" and f"{s3_bucket.url}/personne/*.csv" in src.reason
