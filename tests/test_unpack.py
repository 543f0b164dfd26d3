"""Archives are read unpacked, web pages refused by name, and nothing is left half-written."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import pytest

from partage.errors import SourceFormatError
from partage.unpack import plain_file

CSV = "code_insee;nom\n01001;L'Abergement-Clémenciat\n2A004;Ajaccio\n".encode("cp1252")


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


def test_a_plain_file_is_returned_as_is(tmp_path: Path) -> None:
    path = tmp_path / "raw"
    path.write_bytes(CSV)
    assert plain_file(path, tmp_path / "work") == path
    assert not (tmp_path / "work").exists()


def test_gzip_is_unpacked_byte_for_byte_and_twice_is_harmless(tmp_path: Path) -> None:
    path = tmp_path / "raw"
    path.write_bytes(gzip.compress(CSV))
    out = plain_file(path, tmp_path / "work", "https://www.data.gouv.fr/fr/datasets/r/x.csv.gz")
    assert out != path and out.read_bytes() == CSV  # the encoding is kept for detection to find
    assert plain_file(out, tmp_path / "work") == out


def test_a_zip_with_one_data_file_gives_that_file_whatever_its_path_inside(tmp_path: Path) -> None:
    path = tmp_path / "raw"
    path.write_bytes(zipped({"../../evil/données.csv": CSV, "__MACOSX/._données.csv": b"\x00\x05", "LISEZMOI.pdf": b"%PDF"}))
    out = plain_file(path, tmp_path / "work")
    assert out.read_bytes() == CSV and out.suffix == ".csv"
    assert out.resolve().is_relative_to((tmp_path / "work").resolve())  # the member's own path is never used


def test_a_zip_with_several_data_files_is_refused_naming_them(tmp_path: Path) -> None:
    path = tmp_path / "raw"
    path.write_bytes(zipped({"2023.csv": CSV, "2024.csv": CSV}))
    with pytest.raises(SourceFormatError, match=r"export\.zip: a zip archive holding 2 data file\(s\) \(2023\.csv, 2024\.csv\)"):
        plain_file(path, tmp_path / "work", "export.zip")


def test_spreadsheets_are_zips_left_to_the_format_detection(tmp_path: Path) -> None:
    path = tmp_path / "raw"
    path.write_bytes(zipped({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<workbook/>"}))
    assert plain_file(path, tmp_path / "work") == path


@pytest.mark.parametrize("page", [b"<!DOCTYPE html><html><body>Page introuvable</body></html>",
                                  b"\xef\xbb\xbf\r\n  <html lang='fr'><head><title>Connexion</title></head></html>",
                                  b"<HTML>\n<BODY>Service indisponible</BODY></HTML>"])
def test_a_web_page_is_refused_with_what_to_do(tmp_path: Path, page: bytes) -> None:
    path = tmp_path / "raw"
    path.write_bytes(page)
    with pytest.raises(SourceFormatError, match=r"https://portail\.fr/x\.csv: the server sent a web page \(HTML\).*URL"):
        plain_file(path, tmp_path / "work", "https://portail.fr/x.csv")


def test_a_csv_that_only_mentions_html_is_data(tmp_path: Path) -> None:
    path = tmp_path / "raw"
    path.write_bytes(b"balise,role\n<html>,racine\n<body>,corps\n")
    assert plain_file(path, tmp_path / "work") == path


def test_an_archive_that_expands_past_the_limit_is_refused_and_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARTAGE_MAX_UNPACKED_BYTES", str(1 << 20))
    path = tmp_path / "raw"
    path.write_bytes(gzip.compress(b"0" * (5 << 20)))  # 5 MB of zeros: a few KB compressed
    with pytest.raises(SourceFormatError, match="PARTAGE_MAX_UNPACKED_BYTES"):
        plain_file(path, tmp_path / "work")
    assert not any((tmp_path / "work").rglob("*.unpacked*"))


def test_a_cut_short_gzip_is_refused_as_damaged(tmp_path: Path) -> None:
    path = tmp_path / "raw"
    path.write_bytes(gzip.compress(CSV * 1000)[:-40])
    with pytest.raises(SourceFormatError, match="damaged or cut short"):
        plain_file(path, tmp_path / "work", "big.csv.gz")
    assert not any((tmp_path / "work").rglob("*.unpacked*"))


def test_a_gzipped_zip_is_unpacked_to_its_data_file(tmp_path: Path) -> None:
    path = tmp_path / "raw"
    path.write_bytes(gzip.compress(zipped({"a.csv": CSV})))
    assert plain_file(path, tmp_path / "work").read_bytes() == CSV
