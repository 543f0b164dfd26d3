"""Benchmark of validation: frictionless-py vs DuckDB's load floor vs Partage validate+store.

    .venv/bin/python bench/validate.py [--rows 1000000 5000000] [--fl-rows 100000] [--runs 1]
    (or: make bench-validate)

Data: a seeded IRVE-like CSV (24 fields: patterns, enums, bounds, booleans, dates, datetimes,
geopoint arrays, e-mails, primaryKey), ~1 % rows with one injected error, ~0.5 % valid but
SQL-tricky values (" 7", "1e1", "2024-1-5"…), generated once into bench/out/.

Methods, each in a fresh process (peak RSS from os.wait4 of that process):
  * frictionless: frictionless-py ``validate(limit_errors=0)`` on the first --fl-rows rows (its rate)
  * duckdb floor: DuckDB typed ``read_csv`` -> Parquet (ignore_errors: the floor, no checks)
  * duckdb floor, sorted: the same, sorted by the primary key as the warehouse stores rows (issue #5),
    within Partage's memory limit; for reference only: the target is set against the unsorted floor
  * partage: ``validate_and_type(policy="quarantine")``: every check, typed Parquet sorted by the
    primary key, quarantine, report; also on four copies of the smallest file: one with empty lines and
    rows of other widths, one with distinct e-mail addresses on every row, one with 14-decimal
    coordinates, one with every row shifted by a cell (--no-messy skips them)

Prints the machine, the versions and a table; targets: partage rows/s >= 60x frictionless, partage
time <= 1.3x the floor at 1M rows, peak RSS <= 1 GB at 5M rows.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
PY = sys.executable

ENUM_ACCES = ["Accès libre", "Accès réservé"]
ENUM_IMPL = ["Voirie", "Parking public", "Parking privé à usage public", "Parking privé réservé à la clientèle",
             "Station dédiée à la recharge rapide"]
SCHEMA = {
    "fields": [
        {"name": "nom_amenageur", "type": "string"},
        {"name": "siren_amenageur", "type": "string", "constraints": {"pattern": "[0-9]{9}"}},
        {"name": "contact_amenageur", "type": "string", "format": "email"},
        {"name": "nom_operateur", "type": "string"},
        {"name": "contact_operateur", "type": "string", "format": "email", "constraints": {"required": True}},
        {"name": "id_station_itinerance", "type": "string",
         "constraints": {"required": True, "pattern": "(?:(?:^|,)(FR[A-Z0-9]{4,33}|Non concerné))+"}},
        {"name": "nom_station", "type": "string", "constraints": {"required": True}},
        {"name": "implantation_station", "type": "string", "constraints": {"required": True, "enum": ENUM_IMPL}},
        {"name": "adresse_station", "type": "string", "constraints": {"required": True}},
        {"name": "code_insee_commune", "type": "string", "constraints": {"pattern": "([013-9]\\d|2[AB1-9])\\d{3}"}},
        {"name": "coordonneesXY", "type": "geopoint", "format": "array", "constraints": {"required": True}},
        {"name": "nbre_pdc", "type": "integer", "constraints": {"required": True, "minimum": 0, "maximum": 100}},
        {"name": "id_pdc_itinerance", "type": "string",
         "constraints": {"required": True, "pattern": "(?:(?:^|,)(FR[A-Z0-9]{4,33}|Non concerné))+"}},
        {"name": "puissance_nominale", "type": "number", "constraints": {"required": True, "minimum": 1.3, "maximum": 400}},
        {"name": "prise_type_2", "type": "boolean", "constraints": {"required": True}},
        {"name": "prise_type_combo_ccs", "type": "boolean"},
        {"name": "gratuit", "type": "boolean"},
        {"name": "paiement_cb", "type": "boolean"},
        {"name": "condition_acces", "type": "string", "constraints": {"required": True, "enum": ENUM_ACCES}},
        {"name": "accessibilite_pmr", "type": "string",
         "constraints": {"required": True, "enum": ["Accessible mais non réservé PMR", "Réservé PMR", "Non accessible", "Accessibilité inconnue"]}},
        {"name": "raccordement", "type": "string", "constraints": {"enum": ["Direct", "Indirect"]}},
        {"name": "date_mise_en_service", "type": "date"},
        {"name": "date_maj", "type": "date", "constraints": {"required": True}},
        {"name": "horodatage", "type": "datetime"},
    ],
    "primaryKey": ["id_pdc_itinerance"],
}
NAMES = [f["name"] for f in SCHEMA["fields"]]
COL = {n: i for i, n in enumerate(NAMES)}
ERRORS = [  # (field, bad value): ~1 % of rows get one
    ("nbre_pdc", "deux"), ("nbre_pdc", "150"), ("puissance_nominale", "0.5"), ("puissance_nominale", "22kW"),
    ("code_insee_commune", "7505"), ("siren_amenageur", "12345"), ("condition_acces", "Libre"),
    ("implantation_station", "Rue"), ("date_maj", "2024-13-01"), ("contact_operateur", "pas-un-email"),
    ("coordonneesXY", "[200.1, 48.8]"), ("gratuit", "oui"), ("date_maj", ""), ("id_pdc_itinerance", "DUP"),
]
TRICKY = [("nbre_pdc", " 7"), ("puissance_nominale", "1e1"), ("date_mise_en_service", "2024-1-5"),
          ("prise_type_2", "True"), ("horodatage", "2024-03-10T10:20:00.5+01:00"), ("coordonneesXY", "[2.3,48.8]")]


def generate(path: Path, rows: int, seed: int = 42) -> None:
    rnd = random.Random(seed)
    tmp = path.with_suffix(".part")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(NAMES)
        for i in range(rows):
            pdc = f"FR{'ABC'[i % 3]}{i:09d}"
            row = [
                f"Aménageur {i % 97}", f"{rnd.randrange(10**8, 10**9)}", f"contact{i % 500}@amenageur.fr",
                f"Opérateur {i % 31}", f"support{i % 200}@operateur.fr", f"FRS{i // 4:08d}", f"Station {i // 4}",
                ENUM_IMPL[i % 5], f"{i % 300} rue de la République, Ville {i % 50}",
                rnd.choice(["01001", "2A004", "2B033", "75056", "97411", "69123"]),
                f"[{rnd.uniform(-5, 9):.6f}, {rnd.uniform(41, 51):.6f}]", str(1 + i % 8), pdc,
                f"{rnd.choice([3.7, 7.4, 11, 22, 50, 150])}", rnd.choice(["true", "false"]),
                rnd.choice(["true", "false"]), rnd.choice(["true", "false"]), rnd.choice(["true", "false"]),
                ENUM_ACCES[i % 2], "Accessibilité inconnue", rnd.choice(["Direct", "Indirect", ""]),
                f"20{10 + i % 14}-{1 + i % 12:02d}-{1 + i % 28:02d}", f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}",
                f"2024-03-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00+01:00",
            ]
            r = rnd.random()
            if r < 0.01:
                field, value = rnd.choice(ERRORS)
                if value == "DUP":
                    value = f"FR{'ABC'[(i - 1) % 3]}{i - 1:09d}" if i else pdc
                row[COL[field]] = value
            elif r < 0.015:
                field, value = rnd.choice(TRICKY)
                row[COL[field]] = value
            w.writerow(row)
    tmp.rename(path)


CHILD = r"""
import json, sys, time
from pathlib import Path
method, path, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
schema = json.loads(sys.argv[4])
t0 = time.perf_counter()
if method == "frictionless":
    from frictionless import Resource, Schema
    from frictionless.formats import CsvControl
    from frictionless import Dialect
    report = Resource(path=path.name, basepath=str(path.parent), schema=Schema.from_descriptor(schema),
                      dialect=Dialect(controls=[CsvControl(delimiter=",")])).validate(limit_errors=0)
    task = report.tasks[0]
    result = {"rows": task.stats["rows"], "errors": len(task.errors)}
elif method in ("floor", "floor-sorted"):
    import duckdb
    types = {"integer": "BIGINT", "number": "DOUBLE", "boolean": "BOOLEAN", "date": "DATE", "datetime": "TIMESTAMPTZ"}
    cols = "{" + ", ".join(f"'{f['name']}': '{types.get(f.get('type'), 'VARCHAR')}'" for f in schema["fields"]) + "}"
    con = duckdb.connect()
    order = ""
    if method == "floor-sorted":  # in Partage's memory limit: unbounded, this sort took 3.7 GB at 5M rows
        from partage.validate.sqlengine import MEMORY_LIMIT
        con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        order = " ORDER BY " + ", ".join(f'"{k}"' for k in schema["primaryKey"])
    con.execute(f"COPY (SELECT * FROM read_csv('{path}', header=true, auto_detect=false, columns={cols}, ignore_errors=true)"
                f"{order}) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
    n = con.execute(f"SELECT count(*) FROM '{out}'").fetchall()[0][0]
    result = {"rows": n, "errors": None}
else:
    from partage.dialect import detect
    from partage.validate import validate_and_type
    res = validate_and_type(path, schema, detect(path), policy="quarantine", source_key="bench",
                            data_path=out, quarantine_path=out.with_suffix(".q.parquet"))
    engine = res.report.descriptor.get("partage_engine", {})
    result = {"rows": res.report.row_count, "errors": res.report.error_count, "stored": res.rows,
              "quarantined": res.quarantined, "engine": engine.get("engine"), "scan": engine.get("scan"),
              "phases": engine.get("phases", {}), "oracle_values": engine.get("oracle_values")}
result["seconds"] = time.perf_counter() - t0
print(json.dumps(result))
"""


def messy_copy(path: Path) -> Path:
    """The same file as French open data often comes: an empty line in the middle and two at the end, a row
    one cell short and one a cell long (before #3's later work, such a file went to frictionless-py)."""
    messy = path.with_name(path.stem + "_messy.csv")
    if messy.exists() and messy.stat().st_mtime >= path.stat().st_mtime:
        return messy
    with open(path, "rb") as src, open(messy, "wb") as out:
        for i, line in enumerate(src):
            if i == 400_000:
                line = line.rstrip(b"\n").rsplit(b",", 1)[0] + b"\n"
            elif i == 600_000:
                line = line.rstrip(b"\n") + b",en trop\n"
            out.write(line)
            if i == 500_000:
                out.write(b"\n")
        out.write(b"\n\n")
    return messy


def _rewritten(path: Path, suffix: str, change: Callable[[int, list[str]], list[str]]) -> Path:
    """A copy of the generated file with each data row changed (made once, kept while the file is older)."""
    copy = path.with_name(f"{path.stem}_{suffix}.csv")
    if copy.exists() and copy.stat().st_mtime >= path.stat().st_mtime:
        return copy
    with open(path, encoding="utf-8", newline="") as src, open(copy, "w", encoding="utf-8", newline="") as out:
        reader, writer = csv.reader(src), csv.writer(out, lineterminator="\n")
        writer.writerow(next(reader))
        for i, row in enumerate(reader):
            writer.writerow(change(i, row))
    return copy


def contacts_copy(path: Path) -> Path:
    """The same file with e-mail addresses of its own on every row, as a registry's contact columns have:
    as many distinct values as rows, where the generated file repeats a few hundred."""
    first, second = NAMES.index("contact_amenageur"), NAMES.index("contact_operateur")

    def change(i: int, row: list[str]) -> list[str]:
        for column, domain in ((first, "amenageur"), (second, "operateur")):
            if "@" in row[column]:  # the injected errors stay as they are
                row[column] = f"contact.{i}@{domain}-{i % 997}.fr"
        return row
    return _rewritten(path, "contacts", change)


def coordinates_copy(path: Path) -> Path:
    """The same file with its coordinates exported with 14 decimals, as GIS tools write them
    ([5.34272020620408, 45.954232106707]): a distinct value per row, past a double's 15 digits."""
    column = NAMES.index("coordonneesXY")

    def change(i: int, row: list[str]) -> list[str]:
        try:
            lon, lat = json.loads(row[column])
            if -179 < lon < 179 and -89 < lat < 89:  # the injected errors stay as they are
                row[column] = f"[{lon + i % 9973 * 1.23456789e-9:.14f}, {lat + i % 9967 * 9.87654321e-10:.14f}]"
        except (ValueError, TypeError):
            pass
        return row
    return _rewritten(path, "coords", change)


def shifted_copy(path: Path) -> Path:
    """The same file with a column added in the middle of its rows, not of its header (the commune code,
    twice): every later cell is one column off, and nearly every row is bad, with several type errors."""
    column = NAMES.index("code_insee_commune")
    return _rewritten(path, "shifted", lambda i, row: row[:column + 1] + row[column:-1])


def run_child(method: str, path: Path) -> dict:
    out = OUT / f"{method}-{path.stem}.parquet"
    t0 = time.perf_counter()
    proc = subprocess.Popen([PY, "-c", CHILD, method, str(path), str(out), json.dumps(SCHEMA)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{method} on {path.name} failed:\n{stderr[-3000:]}")
    result = json.loads([x for x in stdout.splitlines() if x.startswith("{")][-1])
    result["wall"] = wall
    result["peak_mb"] = usage.ru_maxrss / 1024
    for p in OUT.glob(f"{method}-{path.stem}*.parquet"):
        p.unlink()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    ap.add_argument("--fl-rows", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--no-messy", dest="messy", action="store_false",
                    help="skip the runs on the changed copies (empty lines and ragged rows; distinct e-mails)")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    files = {}
    for n in sorted(set(args.rows + [args.fl_rows])):
        path = OUT / f"irve_{n}.csv"
        if not path.exists():
            print(f"generating {path.name} …", file=sys.stderr)
            generate(path, n)
        files[n] = path
    print(describe(("frictionless", "duckdb", "pyarrow")))
    print(f"- data: seeded IRVE-like CSV, {len(NAMES)} fields, ~1 % rows with an error, ~0.5 % tricky-valid; "
          f"runs per cell: {args.runs} (median)\n")
    print("| rows | method | s (inside process) | rows/s | wall s | peak MB | errors found | rows stored |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    fl = None
    summary = []
    plan = [(args.fl_rows, "frictionless")] + [(n, m) for n in args.rows for m in ("floor", "floor-sorted", "partage")]
    medians: dict[tuple[int, str], dict] = {}
    for n, method in plan:
        results = [run_child(method, files[n]) for _ in range(args.runs)]
        results.sort(key=lambda r: r["seconds"])
        r = results[len(results) // 2]
        medians[(n, method)] = r
        rate = r["rows"] / r["seconds"]
        if method == "frictionless":
            fl = rate
        label = {"frictionless": "frictionless-py validate(limit_errors=0)", "floor": "DuckDB typed read_csv → Parquet (floor)",
                 "floor-sorted": "same, sorted by the primary key as stored (#5), in Partage's memory limit",
                 "partage": f"Partage validate+store (engine: {r.get('engine')})"}[method]
        errors = "–" if r["errors"] is None else f"{r['errors']:,}"
        print(f"| {n:,} | {label} | {r['seconds']:.2f} | {rate:,.0f} | {r['wall']:.2f} | {r['peak_mb']:.0f} | "
              f"{errors} | {r.get('stored', r['rows']):,} |")
    print("\n| rows | Partage rows/s ÷ frictionless rows/s (target ≥ 60) | Partage s ÷ floor s (target ≤ 1.3 at 1M) "
          "| Partage peak MB (target ≤ 1024 at 5M) | floor rows/s ÷ frictionless rows/s | Partage s ÷ sorted floor s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n in args.rows:
        p, f = medians[(n, "partage")], medians[(n, "floor")]
        summary.append((n, p["rows"] / p["seconds"] / (fl or 1), p["seconds"] / f["seconds"], p["peak_mb"]))
        sorted_floor = medians[(n, "floor-sorted")]
        print(f"| {n:,} | {summary[-1][1]:.1f}× | {summary[-1][2]:.2f}× | {summary[-1][3]:.0f} | "
              f"{f['rows'] / f['seconds'] / (fl or 1):.1f}× | {p['seconds'] / sorted_floor['seconds']:.2f}× |")
    n = min(args.rows)
    if args.messy and n > 600_000:
        variants = [("an empty line in the middle, two at the end, a row one cell short and one a cell long", messy_copy),
                    ("its own two e-mail addresses on every row (2M distinct values)", contacts_copy),
                    ("its coordinates with 14 decimals on every row (1M distinct values)", coordinates_copy),
                    ("a cell added in the middle of every row: every later column one off (all rows bad)", shifted_copy)]
        print(f"\nThe same {n:,} rows, changed (median run)\n")
        print("| rows | the file with | Partage s | engine | values frictionless judged | errors found "
              "| ÷ the clean file's s | frictionless-py at its rate, s (estimate) |")
        print("|---:|---|---:|---|---:|---:|---:|---:|")
        for what, make in variants:
            results = sorted((run_child("partage", make(files[n])) for _ in range(args.runs)), key=lambda r: r["seconds"])
            m, clean = results[len(results) // 2], medians[(n, "partage")]
            print(f"| {m['rows']:,} | {what} | {m['seconds']:.2f} | {m.get('engine')} ({m.get('scan')}) | "
                  f"{m.get('oracle_values') or 0:,} | {m['errors']:,} | {m['seconds'] / clean['seconds']:.2f}× | "
                  f"{m['rows'] / (fl or 1):,.0f} |")
    phases = ["read_header", "scan", "oracle", "checks", "report", "write"]
    print("\nWhere Partage's time went (s; the median run; `partage_engine.phases` of its report; dialect detection, "
          "which reads the whole file once, schema compilation and clean-up are the rest)\n")
    print("| rows | scan kind | " + " | ".join(phases) + " | total |")
    print("|---:|---|" + "---:|" * (len(phases) + 1))
    for n in args.rows:
        p = medians[(n, "partage")]
        print(f"| {n:,} | {p.get('scan')} | " + " | ".join(f"{p['phases'].get(k, 0):.2f}" for k in phases)
              + f" | {p['seconds']:.2f} |")


if __name__ == "__main__":
    main()
