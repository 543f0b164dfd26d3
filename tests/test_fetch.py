"""HTTP behaviour against a real server on 127.0.0.1: conditional GET, retries, limits, redirects."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from partage.errors import TerminalFetchError, TransientFetchError
from partage.fetch import RetryPolicy, Validators, fetch, redact
from partage.rawstore import RawStore

from .conftest import FixtureServer

FAST = RetryPolicy(attempts=3, backoff=0.01)


@pytest.fixture
def raw(tmp_path: Path) -> RawStore:
    return RawStore(tmp_path / "raw")


def test_download_is_content_addressed(http_server: FixtureServer, raw: RawStore) -> None:
    url = http_server.serve("/a.csv", "a,b\n1,2\n")
    out = fetch(url, raw, retry=FAST)
    assert out.status == "downloaded" and out.http_status == 200
    assert raw.path_for(out.sha256).read_bytes() == b"a,b\n1,2\n"
    assert out.etag and out.last_modified
    assert not list((raw.root / "tmp").iterdir())  # no partial file left behind


def test_unchanged_source_downloads_no_body(http_server: FixtureServer, raw: RawStore) -> None:
    url = http_server.serve("/a.csv", "a,b\n1,2\n")
    first = fetch(url, raw, retry=FAST)
    second = fetch(url, raw, previous=Validators(first.etag, first.last_modified), retry=FAST)
    assert second.status == "not-modified" and second.body_bytes == 0
    log = http_server.requests("/a.csv")
    assert [r.status for r in log] == [200, 304] and log[1].body_bytes == 0
    assert log[1].headers.get("If-None-Match") == first.etag


def test_last_modified_alone_is_used_when_there_is_no_etag(http_server: FixtureServer, raw: RawStore) -> None:
    url = http_server.serve("/a.csv", "a\n1\n", etag=False)
    first = fetch(url, raw, retry=FAST)
    assert first.etag is None and first.last_modified
    second = fetch(url, raw, previous=Validators(None, first.last_modified), retry=FAST)
    assert second.status == "not-modified"


def test_500_then_200_is_retried(http_server: FixtureServer, raw: RawStore) -> None:
    url = http_server.serve("/flaky.csv", "a\n1\n", script=[500, 503])
    out = fetch(url, raw, retry=FAST)
    assert out.status == "downloaded" and out.attempts == 3
    assert [r.status for r in http_server.requests("/flaky.csv")] == [500, 503, 200]


def test_persistent_5xx_gives_up_as_transient(http_server: FixtureServer, raw: RawStore) -> None:
    url = http_server.serve("/down.csv", "a\n", script=[502, 502, 502, 502])
    with pytest.raises(TransientFetchError) as exc:
        fetch(url, raw, retry=FAST)
    assert "502" in str(exc.value) and "3 attempts" in str(exc.value)
    assert len(http_server.requests("/down.csv")) == 3


def test_404_is_final_at_once_and_names_the_url(http_server: FixtureServer, raw: RawStore) -> None:
    url = http_server.url("/missing.csv")
    with pytest.raises(TerminalFetchError) as exc:
        fetch(url, raw, retry=FAST)
    assert url in str(exc.value) and "404" in str(exc.value)
    assert len(http_server.requests("/missing.csv")) == 1  # not retried


def test_size_limit_stops_the_download(http_server: FixtureServer, raw: RawStore) -> None:
    url = http_server.serve("/big.csv", "x" * 10_000)
    with pytest.raises(TerminalFetchError) as exc:
        fetch(url, raw, max_bytes=1_000, retry=FAST)
    assert "limit" in str(exc.value) and "max_bytes" in str(exc.value)
    assert not any(p.is_file() for p in raw.root.rglob("*"))


def test_timeout_is_transient(http_server: FixtureServer, raw: RawStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARTAGE_READ_TIMEOUT", "0.2")
    url = http_server.serve("/slow.csv", "a\n", delay=0.6)
    with pytest.raises(TransientFetchError) as exc:
        fetch(url, raw, retry=RetryPolicy(attempts=2, backoff=0.01))
    assert "timed out" in str(exc.value)


def test_redirect_to_file_scheme_is_refused(http_server: FixtureServer, raw: RawStore) -> None:
    url = http_server.serve("/r.csv", "", redirect="file:///etc/passwd")
    with pytest.raises(TerminalFetchError) as exc:
        fetch(url, raw, retry=FAST)
    assert "only http(s) redirects" in str(exc.value)


def test_http_redirect_is_followed(http_server: FixtureServer, raw: RawStore) -> None:
    target = http_server.serve("/real.csv", "a\n1\n")
    url = http_server.serve("/old.csv", "", redirect=target)
    out = fetch(url, raw, retry=FAST)
    assert out.status == "downloaded" and raw.path_for(out.sha256).read_bytes() == b"a\n1\n"


def test_credentials_are_not_forwarded_to_another_host(http_server: FixtureServer, raw: RawStore) -> None:
    other_host = http_server.serve("/elsewhere.csv", "a\n1\n").replace("127.0.0.1", "localhost")
    url = http_server.serve("/start.csv", "", redirect=other_host)
    fetch(url, raw, headers={"Authorization": "Bearer t0p", "X-Api-Key": "k3y"},
          secret_headers=frozenset({"Authorization", "X-Api-Key"}), retry=FAST)
    start, elsewhere = http_server.requests("/start.csv")[0], http_server.requests("/elsewhere.csv")[0]
    assert start.headers.get("Authorization") == "Bearer t0p"
    assert "Authorization" not in elsewhere.headers and "X-Api-Key" not in elsewhere.headers


def test_user_agent_names_partage(http_server: FixtureServer, raw: RawStore) -> None:
    fetch(http_server.serve("/a.csv", "a\n"), raw, retry=FAST)
    assert http_server.requests("/a.csv")[0].headers["User-Agent"].startswith("Partage/")


def test_redact_hides_userinfo_and_secret_query_values() -> None:
    shown = redact("https://bob:pw@example.org/x.csv?apikey=SECRET&annee=2024")
    assert "pw" not in shown and "SECRET" not in shown and "annee=2024" in shown


def test_retry_logs_never_contain_the_token(http_server: FixtureServer, raw: RawStore, caplog: pytest.LogCaptureFixture) -> None:
    url = http_server.serve("/flaky.csv", "a\n", script=[500])
    with caplog.at_level(logging.DEBUG):
        fetch(url, raw, headers={"Authorization": "Bearer very-secret"}, retry=FAST)
    assert "very-secret" not in caplog.text and "retry" in caplog.text


def test_a_trickling_download_is_stopped_at_the_deadline(http_server: FixtureServer, raw: RawStore,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """#26: the deadline was only checked once 64 KiB had arrived, so a server sending less never
    tripped it (this one would take 10 s; it is stopped near the 0.5 s deadline)."""
    import time

    monkeypatch.setenv("PARTAGE_SOURCE_TIMEOUT", "0.5")
    url = http_server.serve("/lent.csv", "x" * 10000, trickle=0.1)  # 10 s in all, never idle 120 s
    t0 = time.monotonic()
    with pytest.raises(TransientFetchError) as exc:
        fetch(url, raw, retry=RetryPolicy(attempts=1, backoff=0.01))
    assert time.monotonic() - t0 < 3
    assert "PARTAGE_SOURCE_TIMEOUT" in str(exc.value)
    assert not any(p.is_file() for p in raw.root.rglob("*"))


def test_a_trickling_portal_answer_is_stopped_at_the_listing_deadline(http_server: FixtureServer,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """#26: portal listings had no overall deadline: a page trickled byte by byte held its source forever."""
    import time

    from partage.fetch import get_document

    monkeypatch.setenv("PARTAGE_LISTING_TIMEOUT", "0.5")
    url = http_server.serve("/api/3/action/package_search", '{"result": ' + " " * 10000 + "}", trickle=0.1,
                            content_type="application/json")
    t0 = time.monotonic()
    with pytest.raises(TransientFetchError) as exc:
        get_document(url, retry=RetryPolicy(attempts=1, backoff=0.01))
    assert time.monotonic() - t0 < 3 and "PARTAGE_LISTING_TIMEOUT" in str(exc.value)
