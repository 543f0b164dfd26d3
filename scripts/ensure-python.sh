#!/usr/bin/env bash
# Make sure a Python >= 3.11 with venv support is there; on Debian/Ubuntu, install what is missing.
# Called by the Makefile before it creates .venv, so `make demo` / `make test` work on a fresh Debian 12.
set -euo pipefail
PYTHON="${1:-python3}"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "partage: need root (or sudo) to run: $*" >&2; exit 1; fi; }

apt_install() {
  if ! command -v apt-get >/dev/null; then
    echo "partage: please install $* with your system's package manager" >&2; exit 1
  fi
  echo "partage: installing $* (apt-get)" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

command -v "$PYTHON" >/dev/null || apt_install python3
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "partage: $PYTHON is $("$PYTHON" -V 2>&1); Partage needs Python >= 3.11 (Debian 12 ships 3.11)" >&2; exit 1; }
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv python3-pip
