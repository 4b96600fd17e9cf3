#!/usr/bin/env bash
# The project's one test command (README, .ci/run): installs what the tests need on a fresh
# Debian machine, then runs every test: unit, HTTP, CLI, reference images, seamlessness.
# Safe to run again: installed pieces are detected and skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
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
