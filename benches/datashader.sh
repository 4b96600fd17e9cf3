#!/usr/bin/env bash
# Cold tiles, the seed's overlay, load time and memory of file layers, side by side with
# datashader (Python + numba, from PyPI), in one run.
#
# What it measures, for each point count (issue 17, point 3):
# - every z0-z3 tile (1 + 4 + 16 + 64) of `twine-heatmap serve --points FILE.csv` with both
#   cache tiers off (every request renders), in the default style and in style=density and
#   style=dots, over one keep-alive HTTP connection: per zoom the median, the worst tile (the
#   slowest tile by its median over the rounds) and the slowest single request, client side,
#   and the server's own median from /metrics;
# - datashader on the same points for the same tile extent: Canvas(256 x 256) + points
#   aggregation (count, or sum of weight) + shade (eq_hist) + PNG to bytes, warm (numba's
#   compilation excluded: every tile is rendered once untimed first; the first call's cost is
#   shown on its own);
# - the seed's bounds-sized overlay, /heatmap.png over the layer's bounds, style=dots with the
#   seed's defaults, 1024 x 1024, against datashader at the same size and extent (and the proof
#   of concept's /twine.heatmap route, when the server has it);
# - the server's load time (process start to /health ok with all points loaded) and VmHWM /
#   VmRSS from /proc/PID/status after load and after all requests.
# The two sides are interleaved tile by tile (each round visits every tile: the server's
# styles, then datashader), so the machine's speed drift hits both alike. The table marks
# PASS/FAIL against the targets: tiles >= 4x faster than datashader (medians, every zoom),
# worst tile < 10 ms at 10M points, overlay no slower than datashader at 1M points.
#
# The points: `clustered_points(N, SEED, whole world)` of src/synth.rs, written to CSV
# (lon,lat) by examples/synth_points.rs, so both sides read the very same file. Files are
# cached under target/datashader-bench/, named after N, the seed and a hash of the generator.
# datashader runs in its own virtualenv (target/datashader-venv, or $DATASHADER_VENV),
# created and installed from benches/datashader/requirements.txt when missing or outdated.
#
# Run (from anywhere; needs python3 >= 3.9 with venv, cargo unless TWINE_BIN is set and the
# point files are cached; PyPI must answer the first time):
#   benches/datashader.sh                                  # 1M points, 5 rounds
#   benches/datashader.sh --points 1000000,10000000        # 1M then 10M, one table
#   benches/datashader.sh --points 10000000 --repeats 3 --budget 1800
#   TWINE_BIN=/path/to/twine-heatmap benches/datashader.sh # skip `cargo build --release`
# On 2 CPUs: generating 10M points takes about 5 s and 360 MB of disk, the server loads them
# in about 7 s and pandas in 2 s; `--points 1000000,10000000` takes about 3 minutes after the
# builds. Each point count is bounded by --budget seconds of tile rounds (after which the
# remaining rounds are skipped) and by a hard limit of budget + 30 min for the whole size.
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
  echo; cat <<'EOF'
Options:
  --points N[,N...]   point counts, each run in turn (default 1000000; at least 1000)
  --seed S            random seed, a non-negative integer (default 42)
  --repeats R         rounds over all 85 tiles, each side (default 5, 1..100)
  --styles LIST       server styles (default smooth,density,dots)
  --weighted          weighted points (lon,lat,weight; datashader sums the weight)
  --how HOW           datashader's shade `how`: eq_hist (default), log, cbrt, linear
  --overlay-size WxH  overlay image size (default 1024x1024)
  --budget SECS       time for one point count's tile rounds (default 1200)
  --keep DIR          keep the per-size JSON results and server logs in DIR
EOF
}

die() { printf 'datashader.sh: %s\n' "$*" >&2; exit 1; }
say() { printf '== %s\n' "$*" >&2; }

ARGS=("$@")
POINTS_LIST=1000000
SEED=42
REPEATS=5
STYLES=smooth,density,dots
WEIGHTED=""
HOW=eq_hist
OVERLAY_SIZE=1024x1024
BUDGET=1200
KEEP=""
while [ $# -gt 0 ]; do
  case "$1" in
    --points) [ $# -ge 2 ] || die "--points needs a value"; POINTS_LIST="$2"; shift 2 ;;
    --seed) [ $# -ge 2 ] || die "--seed needs a value"; SEED="$2"; shift 2 ;;
    --repeats) [ $# -ge 2 ] || die "--repeats needs a value"; REPEATS="$2"; shift 2 ;;
    --styles) [ $# -ge 2 ] || die "--styles needs a value"; STYLES="$2"; shift 2 ;;
    --weighted) WEIGHTED=1; shift ;;
    --how) [ $# -ge 2 ] || die "--how needs a value"; HOW="$2"; shift 2 ;;
    --overlay-size) [ $# -ge 2 ] || die "--overlay-size needs a value"; OVERLAY_SIZE="$2"; shift 2 ;;
    --budget) [ $# -ge 2 ] || die "--budget needs a value"; BUDGET="$2"; shift 2 ;;
    --keep) [ $# -ge 2 ] || die "--keep needs a value"; KEEP="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
is_uint() { [[ "$1" =~ ^[0-9]+$ ]] && [ "${#1}" -le 12 ]; }
IFS=, read -r -a POINTS <<<"$POINTS_LIST"
[ "${#POINTS[@]}" -ge 1 ] || die "--points needs at least one count"
for n in "${POINTS[@]}"; do
  is_uint "$n" && [ "$n" -ge 1000 ] && [ "$n" -le 4000000000 ] || die "--points: $n is not a count in 1000..4e9"
done
is_uint "$SEED" || die "--seed must be a non-negative integer (got $SEED)"
is_uint "$REPEATS" && [ "$REPEATS" -ge 1 ] && [ "$REPEATS" -le 100 ] || die "--repeats must be 1..100 (got $REPEATS)"
is_uint "$BUDGET" && [ "$BUDGET" -ge 1 ] || die "--budget must be a positive integer (got $BUDGET)"
[[ "$OVERLAY_SIZE" =~ ^[0-9]{1,4}x[0-9]{1,4}$ ]] || die "--overlay-size must be WxH (got $OVERLAY_SIZE)"
[[ "$STYLES" =~ ^(smooth|density|dots)(,(smooth|density|dots))*$ ]] || die "--styles: a comma list of smooth, density, dots (got $STYLES)"
case "$HOW" in eq_hist|log|cbrt|linear) ;; *) die "--how must be eq_hist, log, cbrt or linear (got $HOW)" ;; esac
command -v python3 >/dev/null 2>&1 || die "python3 is required"
command -v timeout >/dev/null 2>&1 || die "timeout (coreutils) is required"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HELPER="$REPO/benches/datashader/bench.py"
REQUIREMENTS="$REPO/benches/datashader/requirements.txt"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$REPO/$TARGET_DIR" ;; esac
VENV="${DATASHADER_VENV:-$TARGET_DIR/datashader-venv}"
DATA_DIR="$TARGET_DIR/datashader-bench"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/datashader-bench.XXXXXX")"
PIDFILE="$WORK/server.pid"
HELPER_PID=""
# On any exit: stop the helper (SIGTERM: it stops its server and exits), then the server by its
# PID from the pidfile in case the helper could not; keep the logs when the run failed or
# --keep asks.
cleanup() {
  local rc=$?
  if [ -n "$HELPER_PID" ] && kill -0 "$HELPER_PID" 2>/dev/null; then
    kill "$HELPER_PID" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$HELPER_PID" 2>/dev/null || break; sleep 0.1; done
  fi
  if [ -s "$PIDFILE" ]; then
    local pid
    pid="$(cat "$PIDFILE")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
  if [ -n "$KEEP" ]; then
    mkdir -p "$KEEP" && cp -r "$WORK"/. "$KEEP"/ && say "results and logs kept in $KEEP"
  fi
  if [ "$rc" -ne 0 ]; then
    for log in "$WORK"/server-*.log; do
      [ -s "$log" ] || continue
      say "last lines of $log (kept):"; tail -n 20 "$log" >&2
    done
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# 1. datashader's virtualenv: created once, reinstalled only when the pinned requirements
#    change (a stamp holds their hash), so reruns start at once and run offline.
REQ_HASH="$(sha256sum "$REQUIREMENTS" | cut -c1-16)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements-hash" 2>/dev/null || true)" != "$REQ_HASH" ]; then
  say "creating the datashader virtualenv in $VENV (pip install -r benches/datashader/requirements.txt) ..."
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" || die "python3 -m venv failed (install python3-venv)"
  timeout --foreground 900 "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS" \
    || die "pip install failed (is PyPI reachable?)"
  echo "$REQ_HASH" >"$VENV/.requirements-hash"
fi
PY="$VENV/bin/python"

# ---------------------------------------------------------------------------------------------
# 2. The server binary: TWINE_BIN as given, or this checkout's release build.
if [ -n "${TWINE_BIN:-}" ]; then
  BIN="$TWINE_BIN"
  [ -x "$BIN" ] || die "TWINE_BIN=$BIN is not an executable"
else
  command -v cargo >/dev/null 2>&1 || die "cargo is required to build the server (or set TWINE_BIN)"
  say "cargo build --release ..."
  (cd "$REPO" && timeout --foreground 3600 cargo build --release --quiet --bin twine-heatmap) \
    || die "cargo build --release failed"
  BIN="$TARGET_DIR/release/twine-heatmap"
fi
BIN_VERSION="$("$BIN" --version 2>/dev/null || echo '?')"

# ---------------------------------------------------------------------------------------------
# 3. The points, from the project's own generator, cached by N, seed and generator hash (so a
#    change to src/synth.rs never reuses stale files). Layer name = file name up to its dot.
GEN_HASH="$(cat "$REPO/src/synth.rs" "$REPO/examples/synth_points.rs" | sha256sum | cut -c1-8)"
mkdir -p "$DATA_DIR"
label() {
  local n="$1"
  if [ $((n % 1000000)) -eq 0 ]; then echo "$((n / 1000000))m"
  elif [ $((n % 1000)) -eq 0 ]; then echo "$((n / 1000))k"
  else echo "$n"; fi
}
csv_of() { echo "$DATA_DIR/clustered_$(label "$1")_s${SEED}${WEIGHTED:+_w}_$GEN_HASH.csv"; }
SYNTH=""
for n in "${POINTS[@]}"; do
  csv="$(csv_of "$n")"
  [ -s "$csv" ] && continue
  if [ -z "$SYNTH" ]; then
    command -v cargo >/dev/null 2>&1 || die "cargo is required to generate $csv"
    say "cargo build --release --example synth_points ..."
    (cd "$REPO" && timeout --foreground 3600 cargo build --release --quiet --example synth_points) \
      || die "building examples/synth_points.rs failed"
    SYNTH="$TARGET_DIR/release/examples/synth_points"
  fi
  say "generating $n points (seed $SEED) into $csv ..."
  start=$SECONDS
  timeout --foreground 1800 "$SYNTH" --count "$n" --seed "$SEED" ${WEIGHTED:+--weighted} --out "$csv" \
    || die "generating $csv failed"
  say "generated in $((SECONDS - start)) s ($(du -h "$csv" | cut -f1))"
done

# ---------------------------------------------------------------------------------------------
# 4. One helper run per point count: pandas load, datashader warm-up, server start, tiles
#    interleaved with datashader, overlay, memory. Each in its own process, so one size's
#    memory is gone before the next starts; each bounded by its budget plus 30 minutes.
RESULTS=()
for n in "${POINTS[@]}"; do
  csv="$(csv_of "$n")"
  layer="$(basename "$csv")"; layer="${layer%%.*}"
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  out="$WORK/result-$(label "$n").json"
  say "$n points: $REPEATS rounds over the z0-z3 tiles, styles $STYLES, server on 127.0.0.1:$port"
  : >"$PIDFILE"
  # In the background with `wait`: a signal to this script then runs its trap at once (bash
  # runs traps only after a foreground command ends), and the trap stops the helper.
  timeout --signal=TERM --kill-after=30 $((BUDGET + 1800)) \
    "$PY" "$HELPER" run --bin "$BIN" --csv "$csv" --layer "$layer" --points "$n" --seed "$SEED" \
      ${WEIGHTED:+--weighted} --port "$port" --pidfile "$PIDFILE" --out "$out" \
      --repeats "$REPEATS" --styles "$STYLES" --how "$HOW" --overlay-size "$OVERLAY_SIZE" \
      --budget "$BUDGET" &
  HELPER_PID=$!
  rc=0
  wait "$HELPER_PID" || rc=$?
  HELPER_PID=""
  [ "$rc" -eq 0 ] || die "the helper failed for $n points (exit $rc$([ "$rc" -eq 124 ] && echo ': timed out'))"
  RESULTS+=("$out")
done

# ---------------------------------------------------------------------------------------------
# 5. One table for all sizes, with the setup needed to reproduce it.
"$PY" "$HELPER" report "${RESULTS[@]}"
echo
echo "server: $BIN ($BIN_VERSION), commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')"
echo "host: $(nproc) CPUs, $(uname -sr); pip $("$PY" -m pip --version | cut -d' ' -f2)"
echo "command: benches/datashader.sh${ARGS[*]:+ ${ARGS[*]}}"
