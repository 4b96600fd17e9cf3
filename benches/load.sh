#!/usr/bin/env bash
# HTTP load test of `twine-heatmap serve` on the embedded demo layer, against nginx serving the
# same PNGs as static files.
#
# Tile mix (benches/load/tiles.py): N distinct tiles (default 2,000) over zooms 0..12, drawn
# from data/cities1000.csv.gz with places weighted by population (jittered around each city)
# and zooms weighted 1/(z+1); ranked by how often they were drawn; the request sequence is
# i.i.d. draws with Zipf popularity (s = 1) over that rank. Paths only, no query string.
# wrk (benches/load/wrk.lua) cycles through the sequence, each thread from its own offset,
# prints p50/p95/p99 from latency:percentile() and wrk's own count of answers with a status
# of 400 or more (no Lua response() hook: it would copy every body into Lua at the cost of
# the client's CPU, which the server shares).
#
# Scenarios (each measured for --duration, default 10 s):
#   warm-memory  default memory tier (--cache-memory, 256MB), after one pass over all tiles
#   warm-disk    --cache-memory 0 --cache-dir DIR, after a warm-up pass (every request is a disk
#                hit; the cache files sit in the page cache, so this measures the disk tier's
#                code path, not the device)
#   cold         --cache-memory 0 and no cache dir: every request renders (fewer connections)
#   nginx        the same PNGs fetched once into DIR/z/x/y.png, served by nginx (sendfile on,
#                access_log off, one worker per core it may use); the same request sequence with
#                /tiles/demo/ mapped to /
# Per scenario: req/s, p50/p95/p99 latency, errors (HTTP >= 400 + socket errors), the cache tiers
# that answered (/metrics deltas) and the CPU split between server, wrk and other processes.
# The server's VmHWM/VmRSS (/proc/PID/status) are read after the warm-memory run, and VmHWM is
# compared with the memory budget + 64 MiB.
#
# Cores (--layout): wrk and the server run on one machine.
#   split (default)  the server (or nginx, with one worker per server core) on the last core,
#                    wrk on the others (taskset): each side has its own core, so the figures
#                    are the server's and not the scheduler's interleaving of wrk with it;
#   shared           all processes on all cores, as the scheduler likes (nginx: one worker per
#                    core); both servers then share their cores with the client, and the tail
#                    latencies move a lot from run to run.
# Each scenario runs --rounds times (default 5) on the same warm server; the table shows the
# median of each figure over the rounds and the range of req/s and p99, and the targets are
# judged on the medians: single 10 s runs on this kind of machine (a 2-core VM) differ by tens
# of percent, for nginx as much as for this server. warm-memory and nginx, which the first
# target compares, run in alternating rounds (both up, one measured at a time; warm-memory
# first in odd rounds, nginx first in even ones), so the host's slow and fast phases, which
# last minutes, fall on both alike; the script also prints their ratio round by round.
# The host is part of that noise, so the script shows it: before any server starts, a 3 s busy
# loop on each core (benches/load/stalls.py) reports the time the core was taken away (on a VM:
# the hypervisor not running the vCPU); each round reports the steal time per core (/proc/stat)
# and the server's CPU time per request (user + system, from /proc/PID/stat), which for the
# same binary and tiles moves with the speed the host gives the core.
# Other work on the machine skews all of this: before each round the script waits (at most
# --quiet-wait seconds) for other processes to use under 15% of a core, reports the CPU they
# took during the round (column other%; the busy time in /proc/stat that is neither the server's
# nor wrk's, so on a VM it includes the host's steal time), and runs a round again (up to
# --retries times) when that was over 25% of a core, keeping the least disturbed attempt.
# The server runs with its default logging (errors only: successful requests log at debug).
#
# Run (from anywhere; as root it installs wrk, nginx and curl from Debian when missing):
#   benches/load.sh                                   # 5 rounds of 10 s, 64 connections, 2,000 tiles
#   benches/load.sh --layout shared --rounds 3
#   benches/load.sh --duration 5s --connections 128 --tiles 5000
#   TWINE_BIN=/path/to/twine-heatmap benches/load.sh  # skip `cargo build --release`
# Everything listens on 127.0.0.1 free ports; servers are stopped and the temp folder removed
# on exit. Whole run at the defaults: about 5 minutes after the build on a quiet machine; at
# worst 4 scenarios x --rounds x (1 + --retries) x (--duration + --quiet-wait), 27 minutes at
# the defaults.
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
  echo; cat <<'EOF'
Options:
  --duration D          length of each measured run, e.g. 10s, 30s, 1m (default 10s, max 10m)
  --connections C       connections for warm-memory, warm-disk and nginx (default 64)
  --cold-connections C  connections for the cold scenario (default min(16, --connections))
  --layout L            split (default): server on the last core, wrk on the others;
                        shared: everything on all cores (see above)
  --rounds N            measured runs per scenario, 1..9 (default 5); medians are reported
  --threads T           wrk threads (default: the cores wrk may use, at most the connections)
  --tiles N             distinct tiles in the mix (default 2000)
  --cache-memory SIZE   memory budget for warm-memory (default 256MB, as the server's default)
  --seed S              seed of the tile mix (default 1)
  --quiet-wait S        before each measured run, wait up to S seconds (default 30; 0 = don't)
                        for other processes to use under 15% of one core; the CPU they used
                        during each run is reported either way
  --retries R           run a scenario again, up to R times (default 1), when other processes
                        took over 25% of a core during it; the least disturbed is kept
  --keep                keep the temp folder (URL lists, logs, static tree) and print its path
EOF
}

die() { printf 'load.sh: %s\n' "$*" >&2; exit 1; }
say() { printf '%s\n' "$*"; }

ARGS=("$@")
DURATION=10s
CONNS=64
COLD_CONNS=
THREADS=
TILES=2000
CACHE_MEMORY=256MB
SEED=1
KEEP=0
QUIET_WAIT=30
RETRIES=1
MAX_OTHER=25
LAYOUT="split"
ROUNDS=5
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) [ $# -ge 2 ] || die "--duration needs a value"; DURATION="$2"; shift 2 ;;
    --connections) [ $# -ge 2 ] || die "--connections needs a value"; CONNS="$2"; shift 2 ;;
    --cold-connections) [ $# -ge 2 ] || die "--cold-connections needs a value"; COLD_CONNS="$2"; shift 2 ;;
    --threads) [ $# -ge 2 ] || die "--threads needs a value"; THREADS="$2"; shift 2 ;;
    --layout) [ $# -ge 2 ] || die "--layout needs a value"; LAYOUT="$2"; shift 2 ;;
    --rounds) [ $# -ge 2 ] || die "--rounds needs a value"; ROUNDS="$2"; shift 2 ;;
    --tiles) [ $# -ge 2 ] || die "--tiles needs a value"; TILES="$2"; shift 2 ;;
    --cache-memory) [ $# -ge 2 ] || die "--cache-memory needs a value"; CACHE_MEMORY="$2"; shift 2 ;;
    --seed) [ $# -ge 2 ] || die "--seed needs a value"; SEED="$2"; shift 2 ;;
    --quiet-wait) [ $# -ge 2 ] || die "--quiet-wait needs a value"; QUIET_WAIT="$2"; shift 2 ;;
    --retries) [ $# -ge 2 ] || die "--retries needs a value"; RETRIES="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
is_uint() { [[ "$1" =~ ^[0-9]+$ ]] && [ "${#1}" -le 9 ]; }
case "$DURATION" in
  *m) is_uint "${DURATION%m}" && DUR_S=$(( ${DURATION%m} * 60 )) || die "bad --duration $DURATION" ;;
  *s) is_uint "${DURATION%s}" && DUR_S=${DURATION%s} || die "bad --duration $DURATION" ;;
  *) is_uint "$DURATION" && DUR_S=$DURATION && DURATION="${DURATION}s" || die "bad --duration $DURATION" ;;
esac
[ "$DUR_S" -ge 1 ] && [ "$DUR_S" -le 600 ] || die "--duration must be 1s..10m (got $DURATION)"
is_uint "$CONNS" && [ "$CONNS" -ge 1 ] && [ "$CONNS" -le 10000 ] || die "--connections must be 1..10000"
[ -n "$COLD_CONNS" ] || COLD_CONNS=$(( CONNS < 16 ? CONNS : 16 ))
is_uint "$COLD_CONNS" && [ "$COLD_CONNS" -ge 1 ] && [ "$COLD_CONNS" -le 10000 ] || die "--cold-connections must be 1..10000"
CORES=$(nproc)
# The CPUs this process may use, as a list (the split layout and the host check use it).
mapfile -t ALLOWED < <(python3 -c 'import os; print("\n".join(str(c) for c in sorted(os.sched_getaffinity(0))))')
is_uint "$ROUNDS" && [ "$ROUNDS" -ge 1 ] && [ "$ROUNDS" -le 9 ] || die "--rounds must be 1..9"
case "$LAYOUT" in
  split)
    [ "$CORES" -ge 2 ] || die "--layout split needs 2 or more cores (this machine has $CORES); use --layout shared"
    command -v taskset >/dev/null 2>&1 || die "--layout split needs taskset (util-linux)"
    # The server takes the last allowed CPU, wrk the rest.
    SERVER_CPUS=${ALLOWED[-1]}
    CLIENT_CPUS=$(IFS=,; echo "${ALLOWED[*]:0:${#ALLOWED[@]}-1}")
    SERVER_CORES=1
    CLIENT_CORES=$(( ${#ALLOWED[@]} - 1 ))
    SERVER_PIN=(taskset -c "$SERVER_CPUS")
    CLIENT_PIN=(taskset -c "$CLIENT_CPUS")
    ;;
  shared)
    SERVER_CORES=$CORES; CLIENT_CORES=$CORES; SERVER_PIN=(); CLIENT_PIN=() ;;
  *) die "--layout must be split or shared (got $LAYOUT)" ;;
esac
[ -n "$THREADS" ] || THREADS=$CLIENT_CORES
is_uint "$THREADS" && [ "$THREADS" -ge 1 ] || die "--threads must be a positive integer"
is_uint "$TILES" && [ "$TILES" -ge 1 ] && [ "$TILES" -le 200000 ] || die "--tiles must be 1..200000"
is_uint "$SEED" || die "--seed must be a non-negative integer"
is_uint "$QUIET_WAIT" && [ "$QUIET_WAIT" -le 600 ] || die "--quiet-wait must be 0..600 seconds"
is_uint "$RETRIES" && [ "$RETRIES" -le 5 ] || die "--retries must be 0..5"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$REPO/benches/load"
CITIES="$REPO/data/cities1000.csv.gz"
for f in "$HERE/tiles.py" "$HERE/wrk.lua" "$HERE/stalls.py" "$CITIES"; do [ -f "$f" ] || die "missing $f"; done

# ---- tools -------------------------------------------------------------------------------
APT_UPDATED=0
apt_install() {
  [ "$(id -u)" -eq 0 ] || die "need $* (apt-get install -y $*), and not root to install it"
  command -v apt-get >/dev/null 2>&1 || die "need $* and there is no apt-get"
  say "installing $* from Debian ..."
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q "$@" >/dev/null 2>&1; then
    [ "$APT_UPDATED" -eq 1 ] || { apt-get update -q >/dev/null 2>&1 || true; APT_UPDATED=1; }
    apt-get install -y -q "$@" >/dev/null || return 1
  fi
}
command -v python3 >/dev/null 2>&1 || apt_install python3 || die "python3 is required"
command -v curl >/dev/null 2>&1 || apt_install curl || die "curl is required"
command -v wrk >/dev/null 2>&1 || apt_install wrk || die "wrk could not be installed from Debian"
NGINX=$(command -v nginx || true)
[ -n "$NGINX" ] || [ ! -x /usr/sbin/nginx ] || NGINX=/usr/sbin/nginx
if [ -z "$NGINX" ]; then apt_install nginx || die "nginx could not be installed from Debian"; NGINX=$(command -v nginx || echo /usr/sbin/nginx); fi
[ -x "$NGINX" ] || die "nginx not found after install"
# curl's %header{} write-out needs 7.84+.
curl -sS -o /dev/null -w '%header{x}' file:///dev/null 2>/dev/null || die "curl 7.84 or newer is required (for -w %header{})"

if [ -n "${TWINE_BIN:-}" ]; then
  BIN="$TWINE_BIN"
else
  command -v cargo >/dev/null 2>&1 || die "cargo is required (or set TWINE_BIN)"
  say "building: cargo build --release (in $REPO)"
  (cd "$REPO" && cargo build --release --quiet) || die "cargo build --release failed"
  BIN="$REPO/target/release/twine-heatmap"
fi
[ -x "$BIN" ] || die "no executable at $BIN"

# ---- state and cleanup ------------------------------------------------------------------
WORK=$(mktemp -d /tmp/twine-load.XXXXXX)
SERVER_PID=
NGINX_PID=
stop_pid() {  # stop one process we started, by its id
  local pid="$1"
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  stop_pid "$SERVER_PID"; SERVER_PID=
  stop_pid "$NGINX_PID"; NGINX_PID=
  if [ "$KEEP" -eq 1 ]; then say "kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
wait_http() {  # URL SECONDS PID
  local url="$1" secs="$2" pid="$3"
  for _ in $(seq $((secs * 10))); do
    kill -0 "$pid" 2>/dev/null || return 1
    curl -s -o /dev/null --max-time 2 "$url" && return 0
    sleep 0.1
  done
  return 1
}

SERVER_PORT=
SERVER_LOG=
start_server() {  # NAME ARGS...
  local name="$1"; shift
  SERVER_PORT=$(free_port)
  SERVER_LOG="$WORK/server-$name.log"
  SERVER_CMD="${SERVER_PIN[*]}${SERVER_PIN[*]:+ }$BIN serve --bind 127.0.0.1:$SERVER_PORT $*"
  "${SERVER_PIN[@]}" "$BIN" serve --bind "127.0.0.1:$SERVER_PORT" "$@" >"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
  if ! wait_http "http://127.0.0.1:$SERVER_PORT/metrics" 60 "$SERVER_PID"; then
    tail -20 "$SERVER_LOG" >&2
    die "server ($name) did not come up"
  fi
}
stop_server() { stop_pid "$SERVER_PID"; SERVER_PID=; }

metrics() {  # prints: memory_hits disk_hits misses rendered tile_count tile_seconds tile_under_500us
  curl -s --max-time 10 "http://127.0.0.1:$SERVER_PORT/metrics" | awk '
    /^twine_cache_hits_total\{tier="memory"\}/ {m=$2}
    /^twine_cache_hits_total\{tier="disk"\}/   {d=$2}
    /^twine_cache_misses_total /               {x=$2}
    /^twine_tiles_rendered_total /             {r=$2}
    /^twine_request_seconds_count\{route="tile"\}/ {n=$2}
    /^twine_request_seconds_sum\{route="tile"\}/   {t=$2}
    /^twine_request_seconds_bucket\{route="tile",le="0.0005"\}/ {u=$2}
    END {printf "%d %d %d %d %d %.6f %d\n", m, d, x, r, n, t, u}'
}

# One pass over every distinct tile with curl (4 in parallel); prints "N 200s, x-cache: ...".
pass() {  # BASE_URL PREFIX_TO_REPLACE_/tiles/demo/ [OUTPUT_TREE]
  local base="$1" to="$2" tree="${3:-}" cfg="$WORK/pass.curl"
  awk -v base="$base" -v to="$to" -v tree="$tree" '
    NF { p = $0; if (to != "") sub("^/tiles/demo/", to, p)
         printf "url = \"%s%s\"\n", base, p
         if (tree != "") { q = $0; sub("^/tiles/demo/", "", q); printf "output = \"%s/%s\"\n", tree, q }
         else printf "output = \"/dev/null\"\n" }' "$WORK/tiles.txt" >"$cfg"
  timeout 600 curl -sS --parallel --parallel-max 4 --max-time 120 --create-dirs -K "$cfg" \
      -w '%{http_code} %header{x-cache}\n' >"$WORK/pass.out" 2>>"$WORK/pass.err" || true
  awk '{c[$1]++; x[($2 == "" ? "-" : $2)]++; n++}
       END {printf "%d requests, %d with 200, x-cache:", n, c["200"]
            for (k in x) printf " %s=%d", k, x[k]; printf "\n"}' "$WORK/pass.out"
}
pass_all() {  # true when the last pass had every tile answered 200 (and x-cache = $1 if given)
  local want="${1:-}"
  awk -v n="$TILES" -v want="$want" '$1 == 200 && (want == "" || $2 == want) {k++}
       END {exit !(k == n)}' "$WORK/pass.out"
}

# One read of /proc/stat: "BUSY CPU STEAL CPU STEAL ...", busy ticks of all cores (steal
# included), then each core's number and steal ticks.
stat_snapshot() {
  awk '/^cpu / {b = $2+$3+$4+$7+$8+$9} /^cpu[0-9]+ / {s = s " " substr($1, 4) " " $9}
       END {print b s}' /proc/stat
}
cpu_busy() { stat_snapshot | cut -d' ' -f1; }
# "cpu0 10 ms, cpu1 0 ms": steal per core between two snapshots' "CPU STEAL ..." parts.
steal_text() {  # BEFORE AFTER
  awk -v a="$1" -v b="$2" -v tck="$TCK" 'BEGIN {
    n = split(a, x, " "); split(b, y, " "); sep = ""
    for (i = 1; i < n; i += 2) { printf "%scpu%s %d ms", sep, x[i], (y[i+1] - x[i+1]) * 1000 / tck; sep = ", " } }'
}
proc_cpu() {  # utime+stime ticks of the given pids
  local t=0 p v
  for p in "$@"; do
    v=$(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$p/stat" 2>/dev/null || echo 0)
    t=$((t + v))
  done
  echo "$t"
}
TCK=$(getconf CLK_TCK)

# Other sessions may share the machine: wait (bounded) until the CPU is nearly idle. Only our
# idle server or nginx runs now, so busy time is someone else's.
wait_quiet() {
  [ "$QUIET_WAIT" -gt 0 ] || return 0
  local start=$SECONDS b0 b1 pct
  while :; do
    b0=$(cpu_busy); sleep 1; b1=$(cpu_busy)
    pct=$(( (b1 - b0) * 100 / TCK ))
    [ "$pct" -lt 15 ] && break
    if [ $((SECONDS - start)) -ge "$QUIET_WAIT" ]; then
      say "  machine still busy after ${QUIET_WAIT}s (other processes at ${pct}% of a core); measuring anyway"
      return 0
    fi
  done
  [ $((SECONDS - start)) -le 1 ] || say "  waited $((SECONDS - start))s for other processes to go quiet"
}

declare -a ROWS=()
RUN_RPS=''; RUN_P99=''; RUN_ERR=''
median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR]=$1} END {if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2] + v[NR/2+1]) / 2}'; }
range() { tr ' ' '\n' | grep . | sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {print lo, hi}'; }
# run_wrk NAME CONNS PIDS_OF_SERVER... -- URL [FROM TO]
# Runs --rounds measured rounds (each retried when other processes disturbed it) and records
# the medians in ROWS and RUN_RPS/RUN_P99/RUN_ERR.
# Per scenario, the figures of its rounds so far (space-separated), for wrk_summary.
declare -A ACC_RPS ACC_P50 ACC_P95 ACC_P99 ACC_OTHER ACC_CPUREQ ACC_ERR ACC_TIERS

# wrk_round NAME ROUND CONNS PID... -- URL [FROM TO]: one round of NAME (with its retries).
# With ROUND 0 it only prints the wrk command.
wrk_round() {
  local name="$1" round="$2" conns="$3"; shift 3
  local pids=() url from='' to=''
  while [ "$1" != "--" ]; do pids+=("$1"); shift; done; shift
  url="$1"; from="${2:-}"; to="${3:-}"
  local threads=$(( THREADS < conns ? THREADS : conns ))
  local out="$WORK/wrk-$name.out" tfile="$WORK/wrk-$name.time"
  local cmd=("${CLIENT_PIN[@]}" wrk -t"$threads" -c"$conns" -d"$DURATION" --latency --timeout 10s
             -s "$HERE/wrk.lua" "$url" -- "$WORK/requests.txt" "$threads")
  [ -z "$from" ] || cmd+=("$from" "$to")
  if [ "$round" -eq 0 ]; then say "  $name: \$ ${cmd[*]}"; return; fi
  local attempt best_other best_line best_tiers best_err
  local b0 s0 b1 s1 m0 m1 t0 t1 line req rps p50 p95 p99 non200 sockerr cpu other tiers counted served
  local snap0 snap1 cpureq
  local TIMEFORMAT='%U %S'
  best_other=100000; best_line=''; best_tiers='-'; best_err=0
  for attempt in $(seq $((RETRIES + 1))); do
    wait_quiet
    m0=$( [ "$name" != nginx ] && metrics || echo "")
    snap0=$(stat_snapshot); s0=$(proc_cpu "${pids[@]}"); t0=$(date +%s.%N)
    { time timeout $((DUR_S + 60)) "${cmd[@]}" >"$out" 2>&1; } 2>"$tfile" || true
    t1=$(date +%s.%N); snap1=$(stat_snapshot); s1=$(proc_cpu "${pids[@]}")
    b0=${snap0%% *}; b1=${snap1%% *}
    m1=$( [ -n "$m0" ] && metrics || echo "")
    line=$(grep '^RESULT ' "$out" | tail -1) || { sed 's/^/    /' "$out"; die "wrk ($name) printed no RESULT line"; }
    kv() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
    req=$(kv requests); rps=$(kv rps); p50=$(kv p50_us); p95=$(kv p95_us); p99=$(kv p99_us)
    non200=$(kv http_errors)
    sockerr=$(( $(kv connect) + $(kv read) + $(kv write) + $(kv timeout) ))
    # CPU split over the run, in % of one core (100% = one core busy).
    cpu=$(awk -v w="$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" -v tck="$TCK" \
              -v busy="$((b1 - b0))" -v srv="$((s1 - s0))" -v wt="$(tail -1 "$tfile")" \
              -v cores="$CORES" 'BEGIN {
        split(wt, a, " "); wrk = (a[1] + a[2]) * tck
        other = busy - srv - wrk; if (other < 0) other = 0
        printf "server %.0f%%, wrk %.0f%%, other processes %.0f%% (of %d cores = %d%%)",
               100*srv/tck/w, 100*wrk/tck/w, 100*other/tck/w, cores, 100*cores }')
    other=$(sed -n 's/.*other processes \([0-9]*\)%.*/\1/p' <<<"$cpu")
    # The server's (or nginx's) CPU time per answered request, kernel included.
    cpureq=$(awk -v s="$((s1 - s0))" -v n="$req" -v tck="$TCK" 'BEGIN {printf "%.1f", (n > 0 ? s / tck * 1e6 / n : 0)}')
    say "  $name round $round: $(printf '%.0f req/s, p50 %s, p95 %s, p99 %s ms' "$rps" "$(ms "$p50")" "$(ms "$p95")" "$(ms "$p99")"); errors $non200 HTTP >= 400, $sockerr socket; CPU $cpu"
    say "    server CPU $cpureq us per request; host steal: $(steal_text "${snap0#* }" "${snap1#* }")"
    tiers="-"
    if [ -n "$m0" ] && [ -n "$m1" ]; then
      read -r mm0 dd0 xx0 rr0 nn0 tt0 uu0 <<<"$m0"; read -r mm1 dd1 xx1 rr1 nn1 tt1 uu1 <<<"$m1"
      counted=$(( (mm1 - mm0) + (dd1 - dd0) + (xx1 - xx0) ))
      tiers="memory $((mm1 - mm0)), disk $((dd1 - dd0)), miss $((xx1 - xx0)) (rendered $((rr1 - rr0))), joined $((req > counted ? req - counted : 0))"
      # The server's own time per tile request (its request histogram: from the request
      # parsed to the response built), against the client's latencies above: the rest is
      # sockets, scheduling and the client.
      served=$(awk -v n="$((nn1 - nn0))" -v t0="$tt0" -v t1="$tt1" -v u="$((uu1 - uu0))" \
        'BEGIN { if (n > 0) printf "mean %.1f us, %.2f%% under 0.5 ms", (t1 - t0) / n * 1e6, 100 * u / n; else printf "-" }')
      say "    answered from (/metrics deltas over $req requests; 'joined' = waited on another request's in-flight disk read or render): $tiers; server time per tile request $served"
      tiers="$tiers; server time $served"
    fi
    if [ "$other" -lt "$best_other" ]; then
      best_other=$other; best_line="$rps $p50 $p95 $p99 $cpureq"; best_tiers=$tiers; best_err=$((non200 + sockerr))
    fi
    [ "$other" -gt "$MAX_OTHER" ] || break
    if [ "$attempt" -le "$RETRIES" ]; then
      say "  other processes took ${other}% of a core (> ${MAX_OTHER}%): running round $round again"
    else
      say "  other processes took over ${MAX_OTHER}% of a core in every attempt: keeping the least disturbed one (${best_other}%)"
    fi
  done
  read -r rps p50 p95 p99 cpureq <<<"$best_line"
  ACC_RPS[$name]+=" $rps"; ACC_P50[$name]+=" $p50"; ACC_P95[$name]+=" $p95"; ACC_P99[$name]+=" $p99"
  ACC_OTHER[$name]+=" $best_other"; ACC_CPUREQ[$name]+=" $cpureq"
  ACC_ERR[$name]=$(( ${ACC_ERR[$name]:-0} + best_err )); ACC_TIERS[$name]=$best_tiers
}

# wrk_summary NAME CONNS: the medians of NAME's rounds, into RUN_* and a row of the table.
wrk_summary() {
  local name="$1" conns="$2" rps_range p99_range
  RUN_RPS=$(median <<<"${ACC_RPS[$name]}"); RUN_P99=$(median <<<"${ACC_P99[$name]}")
  RUN_ERR=${ACC_ERR[$name]}
  rps_range=$(range <<<"${ACC_RPS[$name]}" | awk '{printf "%.0f-%.0f", $1, $2}')
  p99_range=$(range <<<"${ACC_P99[$name]}" | awk '{printf "%.2f-%.2f", $1 / 1000, $2 / 1000}')
  say "  $name, median of $ROUNDS round(s): $(printf '%.0f' "$RUN_RPS") req/s ($rps_range), p99 $(ms "$RUN_P99") ms ($p99_range)"
  ROWS+=("$name|$conns|$RUN_RPS|$rps_range|$(median <<<"${ACC_P50[$name]}")|$(median <<<"${ACC_P95[$name]}")|$RUN_P99|$p99_range|$RUN_ERR|$(range <<<"${ACC_OTHER[$name]}" | cut -d' ' -f2)|$(median <<<"${ACC_CPUREQ[$name]}")|${ACC_TIERS[$name]}")
}

# run_wrk NAME CONNS PID... -- URL [FROM TO]: all rounds of one scenario, then its summary.
run_wrk() {
  local round
  wrk_round "$1" 0 "${@:2}"
  for round in $(seq "$ROUNDS"); do wrk_round "$1" "$round" "${@:2}"; done
  wrk_summary "$1" "$2"
}

ms() { awk -v u="$1" 'BEGIN {printf "%.2f", u / 1000}'; }

# ---- tile mix ------------------------------------------------------------------------------
say "machine: $CORES cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), load average $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$LAYOUT" = split ]; then
  LAYOUT_TEXT="layout split: server (or nginx) on CPU $SERVER_CPUS, wrk on CPU $CLIENT_CPUS"
else
  LAYOUT_TEXT="layout shared: server (or nginx) and wrk on all $CORES cores"
fi
say "$LAYOUT_TEXT; wrk uses $THREADS thread(s); $ROUNDS round(s) of $DURATION per scenario."
# Time each core loses to others (on a VM, mostly the host), all cores at once, before any
# server runs: a stall on the server's or wrk's core delays every request in flight.
if command -v taskset >/dev/null 2>&1; then
  PROBE_PIDS=()
  for c in "${ALLOWED[@]}"; do
    taskset -c "$c" python3 "$HERE/stalls.py" --seconds 3 >"$WORK/stalls-$c.txt" 2>&1 &
    PROBE_PIDS+=($!)
  done
  wait "${PROBE_PIDS[@]}" || true
  for c in "${ALLOWED[@]}"; do
    say "host check, CPU $c (busy loop, gaps over 0.2 ms): $(cat "$WORK/stalls-$c.txt")"
  done
else
  say "host check skipped: no taskset"
fi
python3 "$HERE/tiles.py" --cities "$CITIES" --out "$WORK" --tiles "$TILES" --seed "$SEED"
BUDGET_BYTES=$(python3 - "$CACHE_MEMORY" <<'EOF'
import re, sys
t = sys.argv[1].strip().lower()
m = re.fullmatch(r"([0-9.]+)\s*([a-z]*)", t)
f = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
     "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}
if not m or m.group(2) not in f: sys.exit("load.sh: bad --cache-memory " + sys.argv[1])
print(int(float(m.group(1)) * f[m.group(2)]))
EOF
) || exit 1
[ "$BUDGET_BYTES" -gt 0 ] || die "--cache-memory must be > 0 for the warm-memory scenario"

# ---- a. warm memory ------------------------------------------------------------------------
say ""
say "== warm-memory: --cache-memory $CACHE_MEMORY, no disk tier"
start_server memory --cache-memory "$CACHE_MEMORY"
MEM_CMD=$SERVER_CMD
RSS_IDLE_KB=$(awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status")
say "  warm-up pass: $(pass "http://127.0.0.1:$SERVER_PORT" "")"
say "  check pass:   $(pass "http://127.0.0.1:$SERVER_PORT" "")"
pass_all hit-memory || say "  WARNING: not every tile was a memory hit after the warm-up"
# The static tree for nginx: the same bytes, fetched from the warm server.
TREE="$WORK/static"
mkdir -p "$TREE"
say "  static copy for nginx: $(pass "http://127.0.0.1:$SERVER_PORT" "" "$TREE")"
pass_all || die "could not fetch every tile for the nginx tree"
say "  static tree: $(find "$TREE" -type f -name '*.png' | wc -l) PNGs, $(du -sh "$TREE" | cut -f1) in $TREE/z/x/y.png"

# ---- b. nginx ------------------------------------------------------------------------------
say ""
say "== nginx: the same PNGs as static files ($($NGINX -v 2>&1 | sed 's/.*: //'))"
NG="$WORK/nginx"
mkdir -p "$NG/tmp"
NGINX_PORT=$(free_port)
cat >"$NG/nginx.conf" <<EOF
user root;
worker_processes $SERVER_CORES;
daemon off;
pid $NG/nginx.pid;
error_log $NG/error.log warn;
events { worker_connections 4096; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
    client_body_temp_path $NG/tmp/body;
    proxy_temp_path $NG/tmp/proxy;
    fastcgi_temp_path $NG/tmp/fastcgi;
    uwsgi_temp_path $NG/tmp/uwsgi;
    scgi_temp_path $NG/tmp/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $TREE;
    }
}
EOF
[ -f /etc/nginx/mime.types ] || sed -i 's|include /etc/nginx/mime.types;|types { image/png png; }|' "$NG/nginx.conf"
"$NGINX" -t -q -p "$NG" -e "$NG/error.log" -c "$NG/nginx.conf" || die "nginx -t failed: $(cat "$NG/error.log")"
"${SERVER_PIN[@]}" "$NGINX" -p "$NG" -e "$NG/error.log" -c "$NG/nginx.conf" >"$NG/stdout.log" 2>&1 &
NGINX_PID=$!
first=$(sed -n '1s|^/tiles/demo/|/|p' "$WORK/tiles.txt")
wait_http "http://127.0.0.1:$NGINX_PORT$first" 30 "$NGINX_PID" || die "nginx did not come up: $(cat "$NG/error.log")"
sleep 0.5
NGINX_WORKERS=$(pgrep -P "$NGINX_PID" | tr '\n' ' ')
say "  nginx master $NGINX_PID, workers: $NGINX_WORKERS; keepalive_requests 1000000, open_file_cache off"
say "  warm-up pass: $(pass "http://127.0.0.1:$NGINX_PORT" "/")"
pass_all || say "  WARNING: nginx did not answer 200 for every tile"

# ---- c. warm memory and nginx, measured in alternating rounds ----------------------------
say ""
say "== warm-memory and nginx in alternating rounds (warm-memory first in odd rounds, nginx first in even ones)"
# Alternating puts the host's slow and fast phases (see the README) on both sides alike;
# measured one after the other, minutes apart, they decided the comparison before.
MEM_ARGS=("$CONNS" "$SERVER_PID" -- "http://127.0.0.1:$SERVER_PORT")
# shellcheck disable=SC2206
NGINX_ARGS=("$CONNS" "$NGINX_PID" $NGINX_WORKERS -- "http://127.0.0.1:$NGINX_PORT" /tiles/demo/ /)
wrk_round warm-memory 0 "${MEM_ARGS[@]}"
wrk_round nginx 0 "${NGINX_ARGS[@]}"
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then
    wrk_round warm-memory "$round" "${MEM_ARGS[@]}"; wrk_round nginx "$round" "${NGINX_ARGS[@]}"
  else
    wrk_round nginx "$round" "${NGINX_ARGS[@]}"; wrk_round warm-memory "$round" "${MEM_ARGS[@]}"
  fi
done
wrk_summary warm-memory "$CONNS"
MEM_RPS=$RUN_RPS; MEM_P99=$RUN_P99; MEM_ERR=$RUN_ERR
wrk_summary nginx "$CONNS"
NGINX_RPS=$RUN_RPS; NGINX_P99=$RUN_P99
# Round by round, warm-memory's req/s over nginx's in the same round.
PAIRED=$(paste <(tr ' ' '\n' <<<"${ACC_RPS[warm-memory]}" | sed '/^$/d') \
               <(tr ' ' '\n' <<<"${ACC_RPS[nginx]}" | sed '/^$/d') |
         awk '{printf "%s%.0f%%", (NR > 1 ? " " : ""), 100 * $1 / $2}')
say "  warm-memory req/s as % of nginx's, round by round: $PAIRED"
HWM_KB=$(awk '/^VmHWM/ {print $2}' "/proc/$SERVER_PID/status")
RSS_KB=$(awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status")
MEM_CACHE_BYTES=$(curl -s "http://127.0.0.1:$SERVER_PORT/metrics" | awk '/^twine_cache_bytes\{tier="memory"\}/ {print $2}')
say "  RSS: VmHWM $((HWM_KB / 1024)) MiB, VmRSS $((RSS_KB / 1024)) MiB after the run (idle after start: $((RSS_IDLE_KB / 1024)) MiB); memory tier holds $((MEM_CACHE_BYTES / 1024 / 1024)) MiB"
stop_pid "$NGINX_PID"; NGINX_PID=
stop_server

# ---- d. warm disk --------------------------------------------------------------------------
say ""
say "== warm-disk: --cache-memory 0 --cache-dir DIR (default --cache-disk 1GB); files in the page cache"
start_server disk --cache-memory 0 --cache-dir "$WORK/disk-cache"
DISK_CMD=$SERVER_CMD
say "  warm-up pass: $(pass "http://127.0.0.1:$SERVER_PORT" "")"
for _ in 1 2 3 4 5; do
  say "  check pass:   $(pass "http://127.0.0.1:$SERVER_PORT" "")"
  pass_all hit-disk && break
  sleep 1
done
pass_all hit-disk || say "  WARNING: not every tile was a disk hit after the warm-up"
run_wrk warm-disk "$CONNS" "$SERVER_PID" -- "http://127.0.0.1:$SERVER_PORT"
DISK_P99=$RUN_P99; DISK_ERR=$RUN_ERR
stop_server

# ---- e. cold -------------------------------------------------------------------------------
say ""
say "== cold: --cache-memory 0, no cache dir (every request renders; concurrent requests for one tile may share a render)"
start_server cold --cache-memory 0
COLD_CMD=$SERVER_CMD
run_wrk cold "$COLD_CONNS" "$SERVER_PID" -- "http://127.0.0.1:$SERVER_PORT"
stop_server

# ---- report --------------------------------------------------------------------------------
LIMIT_BYTES=$((BUDGET_BYTES + 64 * 1024 * 1024))
say ""
say "== results ($ROUNDS round(s) of ${DURATION} per scenario, medians; wrk $THREADS thread(s); $TILES tiles, seed $SEED; latencies in ms;"
say "   $LAYOUT_TEXT;"
say "   other% = most CPU used by processes other than wrk and the server (host steal included) in a round, in % of one core;"
say "   cpu/req = the server's (nginx's) CPU time per request in us, kernel included)"
printf '%-12s %5s %8s %13s %6s %6s %6s %11s %6s %6s %7s  %s\n' scenario conns req/s "req/s range" p50 p95 p99 "p99 range" errors other% cpu/req "answered from (last round, /metrics)"
for r in "${ROWS[@]}"; do
  IFS='|' read -r n c rps rrange p50 p95 p99 prange err other cpureq tiers <<<"$r"
  printf '%-12s %5s %8.0f %13s %6s %6s %6s %11s %6s %6s %7s  %s\n' "$n" "$c" "$rps" "$rrange" "$(ms "$p50")" "$(ms "$p95")" "$(ms "$p99")" "$prange" "$err" "$other" "$cpureq" "$tiers"
done
say ""
printf 'RSS under warm-memory load: VmHWM %.1f MiB, VmRSS %.1f MiB; budget %s + 64 MiB = %.1f MiB\n' \
  "$(awk -v k="$HWM_KB" 'BEGIN{print k/1024}')" "$(awk -v k="$RSS_KB" 'BEGIN{print k/1024}')" \
  "$CACHE_MEMORY" "$(awk -v b="$LIMIT_BYTES" 'BEGIN{print b/1048576}')"
say ""
say "targets:"
verdict() { if [ "$1" -eq 1 ]; then echo PASS; else echo FAIL; fi; }
ok=$(awk -v a="$MEM_RPS" -v b="$NGINX_RPS" -v p="$MEM_P99" -v e="$MEM_ERR" 'BEGIN{print (a >= b && p <= 2000 && e == 0) ? 1 : 0}')
say "  $(verdict "$ok")  warm memory >= nginx req/s at $CONNS connections with p99 <= 2 ms: $(printf '%.0f' "$MEM_RPS") vs $(printf '%.0f' "$NGINX_RPS") req/s ($(awk -v a="$MEM_RPS" -v b="$NGINX_RPS" 'BEGIN{printf "%.0f%%", 100*a/b}') of nginx), p99 $(ms "$MEM_P99") ms (nginx $(ms "$NGINX_P99")), $MEM_ERR errors (medians over $ROUNDS rounds, $LAYOUT layout)"
ok=$(awk -v p="$DISK_P99" -v e="$DISK_ERR" 'BEGIN{print (p <= 5000 && e == 0) ? 1 : 0}')
say "  $(verdict "$ok")  warm disk p99 <= 5 ms: p99 $(ms "$DISK_P99") ms, $DISK_ERR errors"
ok=$(( HWM_KB * 1024 <= LIMIT_BYTES ? 1 : 0 ))
say "  $(verdict "$ok")  RSS under load <= memory budget + 64 MiB: VmHWM $((HWM_KB / 1024)) MiB <= $((LIMIT_BYTES / 1048576)) MiB (the $TILES tiles fill $((MEM_CACHE_BYTES / 1024 / 1024)) MiB of the $CACHE_MEMORY budget)"
say ""
say "command: ${TWINE_BIN:+TWINE_BIN=$(printf '%q' "$TWINE_BIN") }$(printf '%q ' "$REPO/benches/load.sh" "${ARGS[@]}")"
say "servers: $MEM_CMD"
say "         $DISK_CMD"
say "         $COLD_CMD"
say "         ${SERVER_PIN[*]}${SERVER_PIN[*]:+ }$NGINX -p $NG -e $NG/error.log -c $NG/nginx.conf"
