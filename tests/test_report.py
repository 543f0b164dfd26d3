"""The quality site: content checked from the pages, and rendered in a real headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from partage.cli import app

from .conftest import COMMUNES_CSV, COMMUNES_SCHEMA, REPO, CatalogBuilder

pytestmark = pytest.mark.slow
OUTPUT = REPO / "tests" / "output"


@pytest.fixture
def site(hub: CatalogBuilder, harvest) -> Path:
    hub.schema("test/communes@1.0", COMMUNES_SCHEMA)
    hub.file("ok.csv", COMMUNES_CSV)
    hub.file("bad.csv", COMMUNES_CSV + "<b>1053</b>,Bourg,41000,23.86,2024-06-01\n01053,Bourg,beaucoup,1,2024-06-01\n")
    hub.dataset("communes", ["file: ../data/ok.csv", "file: ../data/bad.csv"], schema="test/communes@1.0",
                extra="description: Les communes du territoire\n")
    hub.dataset("secret", ["file: ../data/ok.csv"], schema="test/communes@1.0", access="internal", policy="reject")
    harvest()
    out = hub.root / "site"
    r = CliRunner().invoke(app, ["report", "--warehouse", str(hub.warehouse), "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out


def test_site_has_both_languages_and_no_external_asset(site: Path) -> None:
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html"))
    assert pages == ["en/communes.html", "en/index.html", "en/secret.html", "fr/communes.html", "fr/index.html",
                     "fr/secret.html", "index.html"]
    for page in site.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        assert "<script" not in html and not re.search(r'(src|href)="(https?:)?//', html), page
    fr = (site / "fr" / "communes.html").read_text(encoding="utf-8")
    en = (site / "en" / "communes.html").read_text(encoding="utf-8")
    assert "Contrainte non respectée" in fr and "Valeur du mauvais type" in fr and 'lang="fr"' in fr
    assert "Constraint not met" in en and "Wrong type" in en and 'lang="en"' in en
    assert "&lt;b&gt;1053&lt;/b&gt;" in fr and "<b>1053</b>" not in fr  # what producers send is escaped


def test_open_only_leaves_other_datasets_out(hub: CatalogBuilder, site: Path) -> None:
    out = hub.root / "public-site"
    CliRunner().invoke(app, ["report", "--warehouse", str(hub.warehouse), "--out", str(out), "--open-only"])
    assert not (out / "fr" / "secret.html").exists() and (out / "fr" / "communes.html").exists()


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    reason = "no Chromium on this machine (`make test` installs Debian's chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail("CI=true but " + reason)
    pytest.skip(reason)


def _browse(page: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chrome-profile'}", *extra, page.as_uri()],
        capture_output=True, text=True, timeout=120)


def test_pages_render_in_headless_chromium(site: Path, tmp_path: Path) -> None:
    index = _browse(site / "fr" / "index.html", tmp_path, "--dump-dom")
    assert index.returncode == 0, index.stderr[-2000:]
    dom = index.stdout
    assert "Jeux de données (2)" in dom and "Jeu communes" in dom and "avec réserves" in dom
    page = _browse(site / "en" / "communes.html", tmp_path, "--dump-dom").stdout
    assert "Validation errors" in page and "code_insee" in page and "row 5" in page and "row 6" in page
    assert "Les communes du territoire" in page
    OUTPUT.mkdir(parents=True, exist_ok=True)
    shot = OUTPUT / "quality-page-fr.png"
    shot.unlink(missing_ok=True)
    r = _browse(site / "fr" / "communes.html", tmp_path, f"--screenshot={shot}", "--window-size=1280,1600")
    assert r.returncode == 0 and shot.stat().st_size > 10_000
