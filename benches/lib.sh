# shellcheck shell=bash
# Helpers the bench scripts share (sourced, not run): the server binary, wrk, a free port,
# waiting for /health, and the server's resident memory. Each script sets BENCH_NAME first
# (the prefix of its error messages) and ROOT (the repository).

# Prints "BENCH_NAME: message" on stderr and exits 1.
die() { printf '%s: %s\n' "${BENCH_NAME:-bench}" "$*" >&2; exit 1; }

# wrk from Debian when it is missing (as root), else a clear error.
ensure_wrk() {
  command -v wrk >/dev/null 2>&1 && return 0
  [ "$(id -u)" = 0 ] || die "wrk is missing (apt-get install wrk)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk
}

# Cargo's target folder, as an absolute path: $CARGO_TARGET_DIR when set (relative to ROOT,
# as cargo takes it), else ROOT/target.
target_dir() {
  local target="${CARGO_TARGET_DIR:-$ROOT/target}"
  case "$target" in /*) ;; *) target="$ROOT/$target" ;; esac
  echo "$target"
}

# Sets TWINE_BIN to the release binary, built with `cargo build --release` unless TWINE_BIN
# is already set.
ensure_release_bin() {
  if [ -z "${TWINE_BIN:-}" ]; then
    (cd "$ROOT" && cargo build --release --locked --quiet --bin twine-heatmap)
    TWINE_BIN="$(target_dir)/release/twine-heatmap"
  fi
  [ -x "$TWINE_BIN" ] || die "TWINE_BIN=$TWINE_BIN is not an executable"
}

# A TCP port on 127.0.0.1 free right now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits (up to 120 s) for BASE/health to answer while process PID lives; on its exit prints
# LOG and dies.
wait_for_health() {
  local base="$1" pid="$2" log="$3"
  for _ in $(seq 1 600); do
    curl -fsS "$base/health" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "the server exited"; }
    sleep 0.2
  done
  die "the server did not answer $base/health within 120 s"
}

# VmRSS of process PID in KiB.
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# VmHWM (peak RSS) of process PID in KiB.
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }

# The point count BASE/layers gives LAYER; nothing when it does not list it (yet) or does
# not answer.
layer_count() {
  curl -s --max-time 5 "$1/layers" 2>/dev/null | python3 -c '
import json, sys
try:
    layers = json.load(sys.stdin)
except ValueError:
    sys.exit(0)
print(next((l.get("count", 0) for l in layers if l.get("name") == sys.argv[1]), ""))
' "$2" 2>/dev/null || true
}

# 1000000 as 1m, 5000 as 5k, anything else as it is (for file names).
label() {
  local n="$1"
  if [ $((n % 1000000)) -eq 0 ]; then echo "$((n / 1000000))m"
  elif [ $((n % 1000)) -eq 0 ]; then echo "$((n / 1000))k"
  else echo "$n"; fi
}

# Stops process PID that the script started: SIGTERM, then SIGKILL after SECS (default 5)
# seconds; reaps it when it is the script's child. No PID, or one gone already, is fine.
stop_pid() {
  local pid="$1" secs="${2:-5}"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 $((secs * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# For an EXIT trap: after a failure (RC not 0) shows the end of each log in DIR and keeps DIR;
# after a success removes DIR.
show_logs_or_remove() {
  local rc="$1" dir="$2" log
  if [ "$rc" -eq 0 ]; then rm -rf "$dir"; return 0; fi
  for log in "$dir"/*.log; do
    [ -s "$log" ] || continue
    printf '== last lines of %s (kept):\n' "$log" >&2; tail -n 20 "$log" >&2
  done
}
