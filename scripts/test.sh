#!/usr/bin/env bash
# The project's one test command (README, .ci/run): installs what the tests need on a fresh
# Debian machine (a C compiler; nginx; Chromium, Node.js and the browser test's npm packages;
# PostgreSQL 15 + PostGIS 3 when DATABASE_URL does not answer), then runs every test: unit,
# HTTP, CLI, reference images, seamlessness, PostGIS, cache, and the web map in Chromium.
# Safe to run again: installed pieces are detected and skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }
# Debian installs; the downloaded .deb files are dropped afterwards, since CI's disk is tight.
apt_install() {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
  apt-get clean
}

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
# The scale-out test (tests/scale_out.rs) runs deploy/nginx/twine.conf in Debian's nginx.
[ -x /usr/sbin/nginx ] || need_apt+=(nginx)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]}"
  apt_install "${need_apt[@]}"
fi

# The browser test (tests/browser.rs): Debian's chromium, driven by playwright-core from npm
# (pinned in tests/browser/package-lock.json; never a browser download).
if [ ! -x /usr/bin/chromium ]; then
  log "installing chromium"
  apt_install chromium
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  log "installing nodejs and npm"
  apt_install nodejs npm
fi
if [ ! -d tests/browser/node_modules ]; then
  log "installing the browser test's npm packages"
  npm ci --prefix tests/browser --no-audit --no-fund
fi

# PostGIS: the PostGIS tests run for real, never skipped. Use DATABASE_URL when it answers;
# otherwise install PostgreSQL 15 + PostGIS 3 from Debian, start the 15/main cluster, and
# create the default role and database.
DEFAULT_DATABASE_URL=postgres://twine:twine@127.0.0.1:5432/twine
export DATABASE_URL="${DATABASE_URL:-$DEFAULT_DATABASE_URL}"
db_answers() { command -v psql >/dev/null 2>&1 && psql "$DATABASE_URL" -qtAc 'SELECT 1' >/dev/null 2>&1; }
if ! db_answers; then
  if [ "$DATABASE_URL" != "$DEFAULT_DATABASE_URL" ]; then
    echo "DATABASE_URL=$DATABASE_URL does not answer; unset it to let this script set up a local PostGIS" >&2
    exit 1
  fi
  if ! dpkg -s postgresql-15-postgis-3 >/dev/null 2>&1; then
    log "installing PostgreSQL 15 and PostGIS 3"
    apt_install postgresql-15 postgresql-15-postgis-3
  fi
  if ! pg_lsclusters -h 2>/dev/null | grep -q '^15 *main'; then
    pg_createcluster 15 main
  fi
  log "starting the PostgreSQL 15/main cluster"
  pg_ctlcluster 15 main start || true
  for _ in $(seq 1 30); do
    su postgres -c "psql -qtAc 'SELECT 1'" >/dev/null 2>&1 && break
    sleep 1
  done
  su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname = 'twine'\"" | grep -q 1 \
    || su postgres -c "psql -qc \"CREATE ROLE twine LOGIN SUPERUSER PASSWORD 'twine'\""
  su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname = 'twine'\"" | grep -q 1 \
    || su postgres -c "psql -qc 'CREATE DATABASE twine OWNER twine'"
  psql "$DATABASE_URL" -qc 'CREATE EXTENSION IF NOT EXISTS postgis' >/dev/null
  db_answers || { echo "PostGIS did not come up at $DATABASE_URL" >&2; exit 1; }
fi
log "PostGIS at $DATABASE_URL: $(psql "$DATABASE_URL" -qtAc 'SELECT postgis_lib_version()' 2>/dev/null || echo 'extension not created yet')"

# A clean build of the lints and the tests needs about 2 GB under target/ (Cargo.toml's dev
# profile keeps it small); say so up front rather than die in the linker.
free_kb=$(df -Pk . | awk 'NR == 2 { print $4 }')
log "disk: $((free_kb / 1024)) MiB free here, target/ $(du -sh target 2>/dev/null | cut -f1 || echo absent)"
if [ "$free_kb" -lt $((3 * 1024 * 1024)) ]; then
  echo "warning: under 3 GiB free; the build may run out of disk" >&2
fi

log "format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

log "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --no-fail-fast "$@"
  # nextest does not run doctests.
  cargo test --locked --doc
else
  cargo test --locked --no-fail-fast "$@"
fi
log "all tests passed"
