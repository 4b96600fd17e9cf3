#!/usr/bin/env bash
# Memory under key explosion: `serve` with a small memory budget and no disk tier, flooded by
# wrk with tiles it has never seen (random layer, zoom 0-14, tile, scale, style and options:
# benches/load/distinct-keys.lua), while VmRSS is sampled. Issue 19, point 5: RSS must stay
# within the memory budget + 64 MiB above what the server holds once its layers are loaded.
#
# Reports: RSS after load (the baseline: layers, pyramids, code), then RSS every --every
# seconds, its maximum, the growth over the baseline, the requests answered and their status
# classes (from wrk), and the cache's own count of bytes and evictions (/metrics).
#
# Run (from anywhere; installs wrk from Debian when missing, as root):
#   benches/key-explosion.sh                              # 120 s, 32 connections, 32MB budget
#   benches/key-explosion.sh --duration 600 --budget 32MB --points FILE.csv --points FILE2.csv
#   TWINE_BIN=/path/to/twine-heatmap benches/key-explosion.sh   # skip `cargo build --release`
#   MALLOC_ARENA_MAX=2 benches/key-explosion.sh           # what glibc's arenas cost
# The server listens on a free 127.0.0.1 port and is stopped on exit.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DURATION=120
CONNECTIONS=32
BUDGET=32MB
EVERY=10
POINTS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --budget) BUDGET="$2"; shift 2 ;;
    --every) EVERY="$2"; shift 2 ;;
    --points) POINTS+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

BENCH_NAME=key-explosion
# shellcheck source=SCRIPTDIR/lib.sh
. "$ROOT/benches/lib.sh"
ensure_wrk
ensure_release_bin

PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"
LAYERS=demo
ARGS=(serve --bind "127.0.0.1:$PORT" --cache-memory "$BUDGET" --cache-disk 0)
if [ ${#POINTS[@]} -gt 0 ]; then
  # With files the demo layer is not served unless the config asks; name the layers.
  LAYERS=""
  for file in "${POINTS[@]}"; do
    ARGS+=(--points "$file")
    name=$(basename "$file"); name=${name%%.*}
    LAYERS="${LAYERS:+$LAYERS,}$name"
  done
fi

LOG=$(mktemp)
"$TWINE_BIN" "${ARGS[@]}" 2>"$LOG" &
PID=$!
cleanup() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -f "$LOG"; }
trap cleanup EXIT
wait_for_health "$BASE" "$PID" "$LOG"
rss() { echo $(( $(rss_kib "$PID") / 1024 )); }
# Every layer's TileJSON once (it reads the layer's statistics), then settle.
for layer in ${LAYERS//,/ }; do curl -fsS "$BASE/tiles/$layer.json" >/dev/null; done
sleep 2
BASELINE=$(rss)
echo "layers: $LAYERS; budget $BUDGET; $CONNECTIONS connections for ${DURATION}s; MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-unset}"
echo "RSS after load: $BASELINE MiB"

WRK_OUT=$(mktemp)
LAYERS="$LAYERS" wrk -t 2 -c "$CONNECTIONS" -d "${DURATION}s" --latency \
  -s "$ROOT/benches/load/distinct-keys.lua" "$BASE" >"$WRK_OUT" 2>&1 &
WRK=$!
MAX=$BASELINE
start=$(date +%s)
while kill -0 "$WRK" 2>/dev/null; do
  sleep "$EVERY"
  kill -0 "$PID" 2>/dev/null || die "the server died under load"
  now=$(rss); [ "$now" -gt "$MAX" ] && MAX=$now
  echo "  t=$(( $(date +%s) - start ))s RSS $now MiB"
done
wait "$WRK" || true
FINAL=$(rss)
grep -E "Requests/sec|requests in|Non-2xx|Socket errors|99%" "$WRK_OUT" | sed 's/^/  wrk: /'
rm -f "$WRK_OUT"
curl -fsS "$BASE/metrics" | grep -E '^twine_cache_(bytes|evictions_total)\{tier="memory"\}' | sed 's/^/  /'
BUDGET_MIB=$(( $(numfmt --from=iec "${BUDGET%B}") / 1048576 ))
GROWTH=$(( MAX - BASELINE ))
echo "RSS max $MAX MiB, final $FINAL MiB; growth over the loaded baseline $GROWTH MiB (budget $BUDGET_MIB MiB + 64 MiB = $(( BUDGET_MIB + 64 )) MiB allowed)"
[ "$GROWTH" -le $(( BUDGET_MIB + 64 )) ] && echo "PASS" || echo "FAIL"
