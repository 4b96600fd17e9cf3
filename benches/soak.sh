#!/usr/bin/env bash
# Soak test of the release server: --duration seconds (default 600) at --connections
# (default 64) of warm tile hits, cold misses, /points and overlays (benches/load/soak.lua),
# while the server's database connections are killed every --kill-every seconds (default 5),
# and its resident memory is sampled every --every seconds (default 10).
#
# Layers: the embedded `demo` memory layer; an imported PostGIS layer (`twine-heatmap import`
# of data/cities1000.csv.gz, with its bin pyramid); a declared table (the same places in SRID
# 4326 with a random integer weight `pop`, a filter parameter `minpop`, its trigger installed
# by `twine-heatmap db init`). They go into a database of their own, soakPID (created from
# DATABASE_URL and dropped on exit), when the role may create one: the server serves every
# layer imported into its database, and others' layers in a shared one would weigh on its
# memory and work. Otherwise, or with --shared-database, into DATABASE_URL's database, named
# after this script's PID (layer soakPID, table twine."points_soakPID", schema soakPID) and
# removed on exit.
#
# Database outages: every --kill-every seconds, pg_terminate_backend() ends the server's own
# sessions and no other: those whose application_name is `twine-heatmap` (the server's pool
# sets it) and whose client address and port are one of the server process's TCP
# connections to the database (ss -tnp), never this script's own session.
#
# Every answer is classified by the Lua response hook: ok (200, 304), db503 (503 with
# Retry-After, "the database is unavailable": the documented answer during an outage),
# busy503 (503 with Retry-After, "the server is busy": the documented answer when the overlay
# or points budget stays full), and errors (anything else; the first few are printed). wrk's
# socket errors (connect, read, write, timeout at 30 s) are counted apart.
#
# Reports: requests, req/s, latency, the classes, the statuses and X-Cache values, the kills,
# the RSS series (at each sample, and the peak of each interval between samples); after the
# warm-up (--warmup seconds, default 60, and not before the memory tier first holds 90 % of
# its budget) their mean, min and max; whether the server answers every layer again once
# the kills stop; ERROR and panic lines in its log. Ends with PASS/FAIL lines (exit status 1
# if any FAIL): errors and socket errors == 0; the interval peaks after warm-up within
# +-10 % of their mean; database connections were killed; recovery; no panic. The cache tiers
# are small by default (memory 32MB, disk 64MB); each sample prints what they hold.
#
# Run (from anywhere; needs psql, ss, curl, python3; as root it installs wrk when missing;
# the database must answer with PostGIS: scripts/test.sh sets one up on Debian):
#   benches/soak.sh                                   # 10 minutes, 64 connections, kill every 5 s
#   benches/soak.sh --duration 60 --warmup 20         # a short run
#   DATABASE_URL=postgres://u:p@127.0.0.1:5432/db benches/soak.sh
#   TWINE_BIN=/path/to/twine-heatmap benches/soak.sh  # skip `cargo build --release`
# The server listens on a free 127.0.0.1 port and is stopped on exit (by its PID).
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
  echo; cat <<'EOF'
Options:
  --duration S        seconds of load (default 600)
  --connections C     wrk connections (default 64)
  --threads T         wrk threads (default 2)
  --kill-every S      seconds between kills of the server's database sessions (default 5;
                      0: no kills)
  --every S           seconds between RSS samples (default 10)
  --warmup S          seconds after which RSS must stay flat (default 60; below --duration;
                      and not before the memory tier holds 90 % of its budget)
  --cache-memory SIZE memory tier budget (default 32MB)
  --cache-disk SIZE   disk tier budget, in a temporary folder (default 64MB; 0: no disk tier)
  --database-url URL  default: $DATABASE_URL or postgres://twine:twine@127.0.0.1:5432/twine
  --shared-database   put the layers in that database (schema and table named soakPID), not
                      in a database of their own (the default when the role may create one)
  --keep              keep the temporary folder (server log, wrk output, config) and print it
EOF
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_NAME=soak
# shellcheck source=SCRIPTDIR/lib.sh
. "$ROOT/benches/lib.sh"

DURATION=600
CONNECTIONS=64
THREADS=2
KILL_EVERY=5
EVERY=10
WARMUP=60
CACHE_MEMORY=32MB
CACHE_DISK=64MB
KEEP=0
SHARED_DATABASE=0
DATABASE_URL="${DATABASE_URL:-postgres://twine:twine@127.0.0.1:5432/twine}"
while [ $# -gt 0 ]; do
  case "$1" in
    --duration|--connections|--threads|--kill-every|--every|--warmup|--cache-memory|--cache-disk|--database-url)
      [ $# -ge 2 ] || die "$1 needs a value" ;;&
    --duration) DURATION="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --kill-every) KILL_EVERY="$2"; shift 2 ;;
    --every) EVERY="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --cache-memory) CACHE_MEMORY="$2"; shift 2 ;;
    --cache-disk) CACHE_DISK="$2"; shift 2 ;;
    --database-url) DATABASE_URL="$2"; shift 2 ;;
    --shared-database) SHARED_DATABASE=1; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
is_uint() { [[ "$1" =~ ^[0-9]+$ ]] && [ "${#1}" -le 6 ]; }
{ is_uint "$DURATION" && [ "$DURATION" -ge 10 ]; } || die "--duration must be whole seconds, at least 10 (got $DURATION)"
{ is_uint "$CONNECTIONS" && [ "$CONNECTIONS" -ge 1 ]; } || die "--connections must be a positive integer"
{ is_uint "$THREADS" && [ "$THREADS" -ge 1 ] && [ "$THREADS" -le "$CONNECTIONS" ]; } \
  || die "--threads must be 1..--connections"
is_uint "$KILL_EVERY" || die "--kill-every must be whole seconds (0: no kills)"
{ is_uint "$EVERY" && [ "$EVERY" -ge 1 ]; } || die "--every must be a positive number of seconds"
{ is_uint "$WARMUP" && [ "$WARMUP" -lt "$DURATION" ]; } || die "--warmup must be whole seconds below --duration ($DURATION)"
for tool in psql curl python3 ss; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is required but not installed"
done

# psql on URL, without the NOTICEs of DROP ... IF EXISTS: `psql_at URL SQL`.
psql_at() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -At "$1" -c "$2"; }
# SQL on the database given (DATABASE_URL), and on the one the layers are in (SOAK_URL).
sql() { psql_at "$DATABASE_URL" "$1"; }
soak_sql() { psql_at "$SOAK_URL" "$1"; }
sql 'SELECT postgis_lib_version()' >/dev/null 2>&1 || die "the database at $DATABASE_URL \
does not answer, or has no PostGIS: start it (pg_ctlcluster 15 main start), or let \
scripts/test.sh install PostgreSQL 15 + PostGIS on Debian, or pass --database-url"
DB_PORT=$(sql 'SELECT inet_server_port()')
[ -n "$DB_PORT" ] || [ "$KILL_EVERY" = 0 ] || die "the database is reached over a Unix \
socket; --kill-every needs a TCP DATABASE_URL to tell the server's sessions apart"

ensure_wrk
ensure_release_bin

ID="soak$$"
IMPORTED="$ID"
DECLARED="${ID}_decl"
SCHEMA="$ID"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/soak.XXXXXX")"
PID=""
WRK_PID=""
KILLER_PID=""
# The server serves every layer imported into its database, so in a shared database it would
# also serve (and hold the statistics of) whatever others imported there: the run gets a
# database of its own when the role may create one.
OWN_DATABASE=0
SOAK_URL="$DATABASE_URL"
if [ "$SHARED_DATABASE" = 0 ] && [ "$(sql "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user")" = t ]; then
  OWN_DATABASE=1
  SOAK_URL=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$DATABASE_URL" "$ID")
elif [ "$SHARED_DATABASE" = 0 ]; then
  echo "note: this role cannot create a database; the layers go into $DATABASE_URL, whose other imported layers the server serves too"
fi

# Removes what this run made in the database (names are this script's: plain SQL text).
drop_layers() {
  if [ "$OWN_DATABASE" = 1 ]; then
    # A bare `return` in the EXIT trap would return the script's exit status.
    sql "DROP DATABASE IF EXISTS $ID WITH (FORCE)" >/dev/null || return 1
    return 0
  fi
  soak_sql "DROP SCHEMA IF EXISTS $SCHEMA CASCADE;
       DROP TABLE IF EXISTS twine.\"points_$IMPORTED\" CASCADE;
       DROP TABLE IF EXISTS twine.\"bins_$IMPORTED\";
       DROP TABLE IF EXISTS twine.\"bins_${IMPORTED}_new\";
       DO \$\$ BEGIN
         IF to_regclass('twine.pyramids') IS NOT NULL THEN
           DELETE FROM twine.pyramids WHERE table_name = 'twine.points_$IMPORTED';
         END IF;
         IF to_regclass('twine.layers') IS NOT NULL THEN
           DELETE FROM twine.layers WHERE name = '$IMPORTED';
         END IF;
         IF to_regclass('twine.versions') IS NOT NULL THEN
           DELETE FROM twine.versions
            WHERE table_name IN ('twine.points_$IMPORTED', '$SCHEMA.places');
         END IF;
       END \$\$;" >/dev/null
}

# Stops a process this script started, by PID: TERM, then KILL after 15 s.
stop() { stop_pid "$1" 15; }

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  local rc=$?
  stop "$KILLER_PID"
  stop "$WRK_PID"
  stop "$PID"
  drop_layers 2>"$WORK/drop.err" \
    || echo "soak: could not remove database or layer $ID: $(cat "$WORK/drop.err")" >&2
  if [ "$KEEP" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "layers: demo, $IMPORTED (imported), $DECLARED (table $SCHEMA.places); database $SOAK_URL"
drop_layers
if [ "$OWN_DATABASE" = 1 ]; then
  sql "CREATE DATABASE $ID" >/dev/null
  soak_sql "CREATE EXTENSION postgis" >/dev/null
fi
SOAK_DB=$(soak_sql 'SELECT current_database()')
"$TWINE_BIN" import --database-url "$SOAK_URL" --layer "$IMPORTED" --attribution GeoNames \
  "$ROOT/data/cities1000.csv.gz" >"$WORK/import.log" 2>&1 \
  || { cat "$WORK/import.log" >&2; die "import failed"; }
soak_sql "CREATE SCHEMA $SCHEMA;
     SELECT setseed(0.19);
     CREATE TABLE $SCHEMA.places AS
       SELECT seq AS id, (1000 + 1000000 * random() ^ 4)::integer AS pop,
              ST_Transform(geom, 4326)::geometry(Point, 4326) AS geom
         FROM twine.\"points_$IMPORTED\";
     CREATE INDEX ON $SCHEMA.places USING gist (geom);
     ANALYZE $SCHEMA.places;" >/dev/null
cat >"$WORK/config.toml" <<EOF
database_url = "$SOAK_URL"
demo = true

[[layers]]
name = "$DECLARED"
table = "$SCHEMA.places"
geometry = "geom"
weight = "pop"
seq = "id"

[[layers.filters]]
param = "minpop"
column = "pop"
op = ">="
EOF
"$TWINE_BIN" db init --database-url "$SOAK_URL" --config "$WORK/config.toml" >"$WORK/db-init.log" 2>&1 \
  || { cat "$WORK/db-init.log" >&2; die "db init failed"; }

PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"
ARGS=(serve --config "$WORK/config.toml" --bind "127.0.0.1:$PORT" --cache-memory "$CACHE_MEMORY")
if [ "$CACHE_DISK" != 0 ]; then
  ARGS+=(--cache-dir "$WORK/cache" --cache-disk "$CACHE_DISK")
fi
"$TWINE_BIN" "${ARGS[@]}" >"$WORK/server.log" 2>&1 &
PID=$!
wait_for_health "$BASE" "$PID" "$WORK/server.log"
LAYERS="demo,$IMPORTED,$DECLARED"
for layer in ${LAYERS//,/ }; do
  ok=0
  for _ in $(seq 1 60); do
    curl -fsS -o /dev/null "$BASE/tiles/$layer.json" 2>/dev/null && { ok=1; break; }
    sleep 0.5
  done
  [ "$ok" = 1 ] || { tail -20 "$WORK/server.log" >&2; die "layer $layer is not served"; }
done
echo "server PID $PID on $BASE; memory tier $CACHE_MEMORY, disk tier $CACHE_DISK"
sleep 2
echo "RSS with the layers loaded: $(rss_kib "$PID" | awk '{printf "%.1f", $1 / 1024}') MiB"
echo "$CONNECTIONS connections, $THREADS wrk threads, ${DURATION}s; $([ "$KILL_EVERY" = 0 ] && echo "no kills" || echo "kills every ${KILL_EVERY}s"); RSS every ${EVERY}s, warm-up ${WARMUP}s"

# The server's own sessions: "'addr:port', ..." of its TCP connections to the database port.
server_sessions() {
  ss -Htnp state established "( dport = :$DB_PORT )" 2>/dev/null \
    | awk -v pid="pid=$PID," 'index($0, pid) {
        laddr = $3; port = laddr; sub(/.*:/, "", port); addr = laddr; sub(/:[0-9]+$/, "", addr)
        gsub(/[][]/, "", addr); sub(/^::ffff:/, "", addr)
        printf "%s'\''%s:%s'\''", (n++ ? "," : ""), addr, port }'
}

# Ends the server's database sessions; prints how many.
kill_sessions() {
  local sessions
  sessions=$(server_sessions)
  [ -n "$sessions" ] || { echo 0; return; }
  sql "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
        WHERE application_name = 'twine-heatmap' AND datname = '$SOAK_DB'
          AND pid <> pg_backend_pid()
          AND host(client_addr) || ':' || client_port IN ($sessions)" 2>/dev/null || echo 0
}

START=$(date +%s)
FILTER_LAYER="$DECLARED" FILTER_PARAM=minpop LAYERS="$LAYERS" \
  wrk -t "$THREADS" -c "$CONNECTIONS" -d "${DURATION}s" --timeout 30s \
  -s "$ROOT/benches/load/soak.lua" "$BASE" >"$WORK/wrk.out" 2>&1 &
WRK_PID=$!

: >"$WORK/kills"
if [ "$KILL_EVERY" -gt 0 ]; then
  (
    while kill -0 "$WRK_PID" 2>/dev/null; do
      sleep "$KILL_EVERY"
      kill -0 "$WRK_PID" 2>/dev/null || break
      echo "$(( $(date +%s) - START )) $(kill_sessions)" >>"$WORK/kills"
    done
  ) &
  KILLER_PID=$!
fi

killed_so_far() { awk '{s += $2} END {print s + 0}' "$WORK/kills"; }
# "memory tier X MiB, disk tier Y MiB" from /health (what the caches hold, beside RSS).
cache_bytes() {
  curl -fsS --max-time 5 "$BASE/health" 2>/dev/null | python3 -c '
import json, sys
c = json.load(sys.stdin)["cache"]
mib = lambda tier: "off" if not isinstance(c[tier], dict) else "%.1f MiB" % (c[tier]["bytes"] / 1048576)
print("memory tier %s, disk tier %s" % (mib("memory"), mib("disk")))' 2>/dev/null || echo "caches: /health did not answer"
}
: >"$WORK/rss"
# "BYTES BUDGET" of the memory tier from /health ("0 0" when it is off or does not answer).
memory_tier() {
  curl -fsS --max-time 5 "$BASE/health" 2>/dev/null | python3 -c '
import json, sys
m = json.load(sys.stdin)["cache"]["memory"]
print(m["bytes"], m["budget"]) if isinstance(m, dict) else print(0, 0)' 2>/dev/null || echo "0 0"
}
# The peak RSS of each interval, beside the RSS at its end: writing 5 to clear_refs sets
# VmHWM back to the current RSS (Linux 4.0 and later; the server is this user's process).
interval_peaks() { echo 5 >"/proc/$PID/clear_refs" 2>/dev/null; }
PEAKS=1
interval_peaks || PEAKS=0
while kill -0 "$WRK_PID" 2>/dev/null; do
  sleep "$EVERY"
  kill -0 "$PID" 2>/dev/null || { tail -30 "$WORK/server.log" >&2; die "the server died under load"; }
  t=$(( $(date +%s) - START ))
  [ "$t" -le "$DURATION" ] || break
  kib=$(rss_kib "$PID")
  peak=$(hwm_kib "$PID")
  [ "$PEAKS" = 1 ] && interval_peaks
  echo "$t $kib $peak $(memory_tier)" >>"$WORK/rss"
  threads=$(awk '/^Threads/ {print $2}' "/proc/$PID/status")
  printf '  t=%4ds RSS %7.1f MiB (interval peak %7.1f), %s threads; %s; sessions killed so far %s\n' "$t" \
    "$(echo "$kib" | awk '{print $1 / 1024}')" "$(echo "$peak" | awk '{print $1 / 1024}')" \
    "$threads" "$(cache_bytes)" "$(killed_so_far)"
done
wait "$WRK_PID" || true
WRK_PID=""
stop "$KILLER_PID"
KILLER_PID=""

# Recovery: once the kills stop, /health says ok and each layer draws a tile it has not
# drawn before, within 30 s.
recovered=0
for _ in $(seq 1 60); do
  all=1
  curl -fsS "$BASE/health" 2>/dev/null | grep -q '"status":"ok"' || all=0
  for layer in ${LAYERS//,/ }; do
    [ "$all" = 1 ] || break
    code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/tiles/$layer/3/4/2.png?radius=$(( RANDOM % 90 + 10 ))&blur=$(( RANDOM % 50 ))") || code=000
    [ "$code" = 200 ] || all=0
  done
  [ "$all" = 1 ] && { recovered=1; break; }
  sleep 0.5
done

echo
grep '^SAMPLE' "$WORK/wrk.out" | sed 's/^SAMPLE /  error answer: /' || true
RESULT=$(grep '^SOAK ' "$WORK/wrk.out" || true)
[ -n "$RESULT" ] || { cat "$WORK/wrk.out" >&2; die "wrk gave no result"; }
field() { printf '%s\n' "$RESULT" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
ERRORS=$(field errors)
SOCKET=$(( $(field connect) + $(field read) + $(field write) + $(field timeout) ))
echo "requests $(field requests) in $(field seconds) s: $(field rps) req/s; latency p50 $(field p50_ms) ms, p99 $(field p99_ms) ms, max $(field max_ms) ms"
echo "answers: ok (200/304) $(field ok), db503 $(field db503), busy503 $(field busy503), errors $ERRORS"
echo "socket errors: connect $(field connect), read $(field read), write $(field write), timeout $(field timeout)"
echo "statuses: $(field statuses)"
echo "X-Cache: $(field x_cache)"
KILLED=$(killed_so_far)
echo "database sessions killed: $KILLED in $(wc -l <"$WORK/kills") rounds ($(awk '{printf "%s%s", (NR > 1 ? " " : ""), $2}' "$WORK/kills"))"
PANICS=$(grep -c 'panicked' "$WORK/server.log" || true)
ERROR_LINES=$(grep -c ' ERROR ' "$WORK/server.log" || true)
echo "server log: $ERROR_LINES ERROR lines, $PANICS panics"
grep -E ' ERROR |panicked' "$WORK/server.log" | head -5 | sed 's/^/  /' || true

# The warm-up ends after --warmup seconds, and not before the memory tier first holds 90 %
# of its budget: until then RSS grows by what the tier takes in, by design.
FILLED=$(awk '$5 > 0 && $4 >= 0.9 * $5 {print $1; exit}' "$WORK/rss")
WARM_END=$WARMUP
if [ -n "$FILLED" ] && [ "$FILLED" -gt "$WARM_END" ]; then WARM_END=$FILLED; fi
if [ -z "$FILLED" ] && awk '$5 > 0 {found = 1} END {exit !found}' "$WORK/rss"; then
  echo "the memory tier never held 90 % of its budget: the warm-up ends at ${WARMUP}s"
fi
# Column 2: RSS at each sample; column 3: the peak of the interval before it.
stats() {
  awk -v w="$WARM_END" -v c="$1" '$1 >= w {n++; s += $c; if (min == "" || $c < min) min = $c; if ($c > max) max = $c}
    END {if (n) printf "%d %.1f %.1f %.1f\n", n, s / n / 1024, min / 1024, max / 1024; else print "0 0 0 0"}' "$WORK/rss"
}
read -r N MEAN MIN MAX < <(stats 3)
read -r _ SMEAN SMIN SMAX < <(stats 2)
echo "RSS peak (VmHWM of the last interval): $(hwm_kib "$PID" | awk '{printf "%.1f", $1 / 1024}') MiB"
echo "RSS series (s MiB): $(awk '{printf "%s%d %.1f", (NR > 1 ? ", " : ""), $1, $2 / 1024}' "$WORK/rss")"
echo "interval peaks (s MiB): $(awk '{printf "%s%d %.1f", (NR > 1 ? ", " : ""), $1, $3 / 1024}' "$WORK/rss")"
echo "warm-up ended at ${WARM_END}s (memory tier at 90 %: ${FILLED:-never}); after it, RSS at the samples: mean $SMEAN MiB, min $SMIN, max $SMAX"

verdict=0
check() { if [ "$1" = 1 ]; then echo "PASS $2"; else echo "FAIL $2"; verdict=1; fi; }
check "$([ "$ERRORS" = 0 ] && [ "$SOCKET" = 0 ] && echo 1)" "errors == 0 (errors $ERRORS, socket errors $SOCKET)"
if [ "$N" = 0 ]; then
  check 0 "RSS flat: no sample after the ${WARM_END}s warm-up"
elif [ "$PEAKS" = 0 ]; then
  check 0 "RSS flat: the kernel does not reset VmHWM (/proc/PID/clear_refs), so interval peaks are unknown"
else
  flat=$(awk -v mean="$MEAN" -v min="$MIN" -v max="$MAX" 'BEGIN {print (min >= 0.9 * mean && max <= 1.1 * mean) ? 1 : 0}')
  check "$flat" "RSS flat after ${WARM_END}s: interval peaks mean $MEAN MiB, min $MIN, max $MAX over $N intervals (within +-10 %: $(awk -v m="$MEAN" 'BEGIN {printf "%.1f-%.1f", 0.9 * m, 1.1 * m}'))"
fi
if [ "$KILL_EVERY" -gt 0 ]; then
  check "$([ "$KILLED" -gt 0 ] && echo 1)" "database sessions were killed ($KILLED)"
fi
check "$recovered" "recovered: /health ok and a new tile of every layer 200 within 30 s of the last kill"
check "$([ "$PANICS" = 0 ] && echo 1)" "no panic in the server log"
exit "$verdict"
