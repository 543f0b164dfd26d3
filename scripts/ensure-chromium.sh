#!/usr/bin/env bash
# The quality-site tests run in a real headless Chromium, from Debian's packages. Installs it if missing.
set -euo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
command -v apt-get >/dev/null 2>&1 || { echo "partage: no chromium and no apt-get; the browser tests will be skipped" >&2; exit 0; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "partage: need root (or sudo) to install chromium" >&2; exit 1; fi; }
echo "partage: installing chromium (apt-get) for the browser tests" >&2
as_root apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
