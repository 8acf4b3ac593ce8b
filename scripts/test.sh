#!/usr/bin/env bash
# Install everything the tests need (including Debian's chromium for the browser test) and run them all.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=test,ray bash scripts/install.sh  # Ray: the prodfusion[ray] tests run in CI too
# Debian packages for the browser test (chromium) and the PostgreSQL event-store tests.
need=""
command -v chromium >/dev/null 2>&1 || need="$need chromium"
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need="$need postgresql"
if [ -n "$need" ] && command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need >/dev/null
fi
. .venv/bin/activate
ruff check prodfusion tests benchmarks
python -m pytest -q "$@"
