#!/usr/bin/env bash
# Rebuild tests/fixtures/legacy-warehouse-0798d75.tar.gz: a warehouse of the layout before DuckLake
# (partage.duckdb + version directories), written by the code of commit 0798d75 itself.
#
#   scripts/make-legacy-fixture.sh            # extracts 0798d75 and builds its venv in a temp dir (bench/build-old.sh)
#   OLD=/path/to/0798d75 scripts/make-legacy-fixture.sh   # reuse one built by bench/build-old.sh (or a worktree with .venv/)
#
# Needs this checkout's .venv (make install) for uv and the export script. The old code had no lock file; its venv is built from the first lock the project wrote
# (commit c68786a, the next commit: DuckDB 2.0.1, Prefect 3.9.1), the environment it ran in.
# The catalog is made up here (no data from ../shared):
#   communes     two sources; three harvests change one of them, so 3 versions, the other
#                source's part carried over; the third version quarantines an invalid row
#   lieux-culture  policy reject: one file accepted, a partner file with errors rejected
#   tarifs       one source, one version; published to a `public` datapackage target
#   and every dataset in the `dcat` target (its rows in _partage.publications)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out="$here/tests/fixtures/legacy-warehouse-0798d75.tar.gz"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

OLD="${OLD:-$work/old}"
"$here/bench/build-old.sh" "$OLD" >/dev/null  # the code of 0798d75 and its venv (c68786a's lock), as the benchmarks use
commit=$(cat "$OLD/.commit" 2>/dev/null || git -C "$OLD" rev-parse --short=7 HEAD)
[ "$commit" = 0798d75 ] || { echo "$OLD is not at 0798d75" >&2; exit 2; }

hub="$work/hub"
mkdir -p "$hub/catalog" "$hub/data" "$hub/schemas/test/communes/1.0" "$hub/schemas/test/lieux/1.0" \
         "$hub/schemas/test/tarifs/1.0"
cat > "$hub/schemas/test/communes/1.0/schema.json" <<'JSON'
{"fields": [
  {"name": "code_insee", "title": "Code INSEE", "description": "Code officiel géographique", "type": "string",
   "constraints": {"required": true, "pattern": "^([013-9][0-9]|2[AB1-9])[0-9]{3}$"}},
  {"name": "nom", "title": "Nom de la commune", "type": "string", "constraints": {"required": true}},
  {"name": "population", "type": "integer", "constraints": {"minimum": 0}},
  {"name": "surface_km2", "type": "number"},
  {"name": "date_maj", "type": "date"}],
 "primaryKey": ["code_insee"]}
JSON
cat > "$hub/schemas/test/lieux/1.0/schema.json" <<'JSON'
{"fields": [
  {"name": "id", "type": "string", "constraints": {"required": true}},
  {"name": "nom", "type": "string", "constraints": {"required": true}},
  {"name": "code_insee", "type": "string", "constraints": {"pattern": "^([013-9][0-9]|2[AB1-9])[0-9]{3}$"}},
  {"name": "ouvert", "type": "boolean"}]}
JSON
cat > "$hub/schemas/test/tarifs/1.0/schema.json" <<'JSON'
{"fields": [
  {"name": "service", "type": "string", "constraints": {"required": true}},
  {"name": "prix", "type": "number", "constraints": {"minimum": 0}}]}
JSON
cat > "$hub/catalog/communes.yaml" <<'YAML'
id: communes
title: Communes de Corse et d'ailleurs
description: Population et surface
license: etalab-2.0
access: open
policy: quarantine
schema: test/communes@1.0
sources:
  - file: ../data/communes-nord.csv
  - file: ../data/communes-sud.csv
YAML
cat > "$hub/catalog/lieux-culture.yaml" <<'YAML'
id: lieux-culture
title: Lieux culturels
license: etalab-2.0
access: open
policy: reject
schema: test/lieux@1.0
sources:
  - file: ../data/lieux-metropole.csv
  - file: ../data/lieux-partenaire.csv
YAML
cat > "$hub/catalog/tarifs.yaml" <<'YAML'
id: tarifs
title: Tarifs des services
license: etalab-2.0
access: open
policy: quarantine
schema: test/tarifs@1.0
sources:
  - file: ../data/tarifs.csv
YAML
cat > "$hub/catalog/_targets.yaml" <<'YAML'
public:
  datapackage: warehouse/public
dcat:
  dcat: warehouse/dcat
  base_url: https://data.example.test/partage/
YAML
d="$hub/data"
printf 'code_insee,nom,population,surface_km2,date_maj\n01001,L'"'"'Abergement-Clémenciat,832,15.95,2024-01-01\n01053,Bourg-en-Bresse,41000,23.86,2024-01-01\n' > "$d/communes-nord.csv"
printf 'code_insee,nom,population,surface_km2,date_maj\n2A004,Ajaccio,73000,82.03,2024-01-01\n2B033,Bastia,48000,19.38,2024-01-01\n' > "$d/communes-sud.csv"
printf 'id,nom,code_insee,ouvert\nL1,Médiathèque,2A004,true\nL2,Théâtre,01053,false\n' > "$d/lieux-metropole.csv"
printf 'id,nom,code_insee,ouvert\nP1,,99999,peut-être\n' > "$d/lieux-partenaire.csv"
printf 'service,prix\npiscine,3.5\nbibliothèque,0\n' > "$d/tarifs.csv"

harvest() { (cd "$hub" && PARTAGE_NO_CKAN=1 "$OLD/.venv/bin/partage" harvest "$@") || [ $? -eq 1 ]; }
harvest                      # communes v1, lieux-culture v1 (partner rejected), tarifs v1
sleep 1
printf '01283,Oyonnax,22000,36.1,2024-06-01\n' >> "$d/communes-nord.csv"
harvest communes             # v2: the nord part is new, the sud part carried over
sleep 1
printf '2A999,,-5,abc,2024-13-01\n' >> "$d/communes-nord.csv"
harvest communes             # v3: one row quarantined
(cd "$hub" && "$OLD/.venv/bin/partage" publish --target public tarifs)
(cd "$hub" && "$OLD/.venv/bin/partage" publish --target dcat)   # _partage.publications rows
(cd "$hub" && "$OLD/.venv/bin/partage" status)

rm -rf "$hub/warehouse/public" "$hub/warehouse/dcat" "$hub/warehouse/.prefect"
# DuckDB 1.5.5 cannot open a file DuckDB 2.0.1 wrote, so the fixture carries the metadata export
# `partage migrate --legacy-python` makes: the same script, run by the old venv's DuckDB.
"$here/.venv/bin/python" -c 'from partage.store.migrate import EXPORT_SCRIPT; print(EXPORT_SCRIPT)' > "$work/export.py"
"$OLD/.venv/bin/python" "$work/export.py" "$hub/warehouse/partage.duckdb" "$hub/warehouse/partage.export"
# The catalog, schemas and data files go along, so a test can harvest again after migrating.
tar -C "$hub" --sort=name --owner=0 --group=0 --numeric-owner -czf "$out" warehouse catalog schemas data
ls -l "$out"
