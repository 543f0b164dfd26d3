"""The words of the quality site, in French and English."""

from __future__ import annotations

LANGUAGES = ("fr", "en")

TEXT: dict[str, dict[str, str]] = {
    "fr": {
        "site_title": "Qualité des données partagées", "datasets": "Jeux de données", "dataset": "Jeu de données",
        "access": "Accès", "license": "Licence", "publisher": "Producteur", "schema": "Schéma", "policy": "Règle",
        "last_update": "Dernière mise à jour", "last_check": "Dernière vérification", "rows": "Lignes",
        "quarantined": "En quarantaine", "sources": "Sources", "state": "État", "decided_by": "Décidé par",
        "reason": "Raison", "versions": "Versions", "version": "Version", "created": "Créée le",
        "errors": "Erreurs de validation", "field": "Champ", "type": "Type d'erreur", "count": "Nombre",
        "examples": "Exemples", "row": "ligne", "no_errors": "Aucune erreur : le dernier fichier est valide.",
        "file_errors": "Erreurs sur le fichier lui-même", "never": "jamais", "today": "aujourd'hui",
        "days_ago": "il y a {n} jours", "generated": "Page générée le", "back": "← Tous les jeux de données",
        "health_good": "conforme", "health_warn": "avec réserves", "health_bad": "à corriger",
        "none_yet": "aucune version publiée", "of_rows": "sur {n} lignes", "choose": "Choisissez une langue",
        "state_updated": "mis à jour", "state_unchanged": "inchangé", "state_rejected": "refusé", "state_failed": "en échec",
        "state_gone": "retirée par la source", "state_skipped": "ignorée (pas des données)",
        "what_to_do": "Que faire ? Corrigez les lignes indiquées dans le fichier source puis déposez-le à nouveau : "
                      "il sera revalidé au prochain passage.",
    },
    "en": {
        "site_title": "Shared data quality", "datasets": "Datasets", "dataset": "Dataset",
        "access": "Access", "license": "Licence", "publisher": "Publisher", "schema": "Schema", "policy": "Policy",
        "last_update": "Last update", "last_check": "Last check", "rows": "Rows", "quarantined": "Quarantined",
        "sources": "Sources", "state": "State", "decided_by": "Decided by", "reason": "Reason", "versions": "Versions",
        "version": "Version", "created": "Created", "errors": "Validation errors", "field": "Field",
        "type": "Error type", "count": "Count", "examples": "Examples", "row": "row",
        "no_errors": "No error: the last file is valid.", "file_errors": "Errors about the file itself",
        "never": "never", "today": "today", "days_ago": "{n} days ago", "generated": "Page generated on",
        "back": "← All datasets", "health_good": "valid", "health_warn": "with reservations",
        "health_bad": "needs fixing", "none_yet": "no version published", "of_rows": "of {n} rows",
        "choose": "Choose a language", "state_updated": "updated", "state_unchanged": "unchanged",
        "state_rejected": "rejected", "state_failed": "failed", "state_gone": "gone from its source",
        "state_skipped": "skipped (not data)",
        "what_to_do": "What to do? Fix the rows listed in the source file and drop it again: it will be validated "
                      "again on the next run.",
    },
}

ERROR_TITLES: dict[str, dict[str, str]] = {
    "fr": {
        "type-error": "Valeur du mauvais type", "constraint-error": "Contrainte non respectée",
        "primary-key": "Identifiant en double (clé primaire)", "unique-error": "Valeur en double",
        "foreign-key": "Référence introuvable", "missing-cell": "Cellule manquante", "extra-cell": "Cellule en trop",
        "blank-row": "Ligne vide", "incorrect-label": "En-tête de colonne incorrect", "missing-label": "Colonne manquante",
        "extra-label": "Colonne en trop", "duplicate-label": "En-tête en double", "blank-label": "En-tête vide",
        "encoding-error": "Encodage illisible", "source-error": "Fichier illisible", "format-error": "Format non reconnu",
        "partage-cast-error": "Valeur impossible à stocker", "header-error": "En-tête différent du schéma",
    },
    "en": {
        "type-error": "Wrong type", "constraint-error": "Constraint not met", "primary-key": "Duplicate key (primary key)",
        "unique-error": "Duplicate value", "foreign-key": "Reference not found", "missing-cell": "Missing cell",
        "extra-cell": "Extra cell", "blank-row": "Blank row", "incorrect-label": "Incorrect column header",
        "missing-label": "Missing column", "extra-label": "Extra column", "duplicate-label": "Duplicate header",
        "blank-label": "Blank header", "encoding-error": "Unreadable encoding", "source-error": "Unreadable file",
        "format-error": "Unknown format", "partage-cast-error": "Value that cannot be stored",
        "header-error": "Header that differs from the schema",
    },
}


def number_fr(n: int) -> str:
    """10 003, as French writes it (a narrow no-break space between thousands), not 10,003."""
    return f"{n:,}".replace(",", "\u202f")
