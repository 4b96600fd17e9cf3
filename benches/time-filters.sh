#!/usr/bin/env bash
# Cold filtered tiles over time (issue 20, point 3): latency of tiles filtered by a time window
# and by category, per zoom z0-z8, from a file layer and from PostGIS, against the targets for
# day-aligned windows on 10M points over two years (p95 <= 10 ms for file layers, <= 50 ms for
# PostGIS), and what the time dimension costs in load time, memory and pyramid size.
#
# The data (SYNTHETIC): the benchmarks' clustered points (src/synth.rs, the very positions
# benches/datashader.sh writes for the same count and seed), each with a made-up time over
# 2023-01-01 .. 2024-12-31 (weekly, seasonal and daily rhythms and a trend, whole seconds,
# ISO 8601 local time with its offset) and a category `kind` of six skewed values, written by
# examples/synth_time_points.rs to target/time-bench/synthetic_time_<N>_s<seed>_<hash>.csv
# (`lon,lat,t,kind`; the hash is the generator's, so a change to it makes a new file).
#
# Sources (--source, a comma list):
# - file: `serve --config` with the file as a layer (`time = "t"`, `categories = ["kind"]`);
# - postgis: `import --time t --category kind` into a fresh table, then `serve --database-url`;
# - declared: the same imported table declared in a config (`table`, `time = "t"`,
#   `categories = ["kind"]`), as a layer over an existing table is;
# - filters: what main offers today: the points loaded by psql into a plain table
#   (public."timebench_filters_..."), declared with `[[layers.filters]]` from (t >=), to
#   (t <) and category (kind =), no pyramid; cases without cat2 (`=` takes one value).
# Every server runs with both tile cache tiers off (--cache-memory 0 --cache-disk 0), so each
# request renders; each request also has its own random filter and tile. What a server keeps
# besides tiles still counts: the file layers' per-filter count grids (an LRU keyed by the
# filter), which the category cases (6 and 15 distinct filters) reuse, the random windows not.
#
# Requests (benches/time-filters/client.py): one client, one keep-alive connection, one request
# at a time, timed to the whole body. Cases none (unfiltered reference), day (whole days,
# length 1..730, random start), unaligned (random seconds, random UTC offsets), cat1 (one
# kind), cat2 (two kinds), day+cat1; the tile of a random point of the file at each zoom.
# Rounds over every (case, zoom) until --requests each or --budget seconds per source. Per
# zoom and overall: p50 / p95 / max (nearest rank), PASS/FAIL for day windows.
#
# Also per source: load time (process start until /layers lists every point), RSS after
# load and after the requests, VmHWM, the log's "bin pyramid built" line (file; medians of
# --loads loads) or the import's time and the layer's tables' sizes (PostGIS); and, unless
# --no-plain, the same points loaded without time and category columns, for the difference.
#
# Output: markdown on stdout, copied with the CSVs (summary and one row per request) to
# target/time-bench/results/<date>-<commit>-<N>/.
#
# Run (from anywhere; needs curl, python3 >= 3.9, cargo unless TWINE_BIN is set and the data
# is cached; psql for PostGIS):
#   benches/time-filters.sh                                  # file layer, 10M points
#   benches/time-filters.sh --points 1000000 --requests 50
#   benches/time-filters.sh --source file,postgis,declared   # needs `import --time`
#   benches/time-filters.sh --points 1000000 --source filters  # main's PostGIS filters
#   TWINE_BIN=/path/to/twine-heatmap benches/time-filters.sh # skip `cargo build --release`
# On 2 CPUs shared with other work, generating 10M points takes about a minute and 700 MB
# of disk (once), and a whole file-layer run at the defaults 6 to 7 minutes: 3 + 3 loads of
# 10 to 20 s each, then at most --budget seconds (300) of requests.
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
  echo; cat <<'EOF'
Options:
  --points N          points (default 10000000, at least 1000)
  --seed S            random seed of the data and of the requests (default 42)
  --source LIST       file, postgis, declared, filters, comma-separated (default file)
  --requests R        requests per zoom and case (default 30, 1..10000)
  --zooms A-B         zooms (default 0-8)
  --cases LIST        none,day,unaligned,cat1,cat2,day+cat1 (default: all)
  --budget SECS       seconds of requests per source at most (default 300)
  --loads K           file layer: load it K times with time and categories and K times
                      without, alternating; medians reported (default 3, 1..20)
  --no-plain          skip the loads without time and categories
  --database-url URL  default: $DATABASE_URL or postgres://twine:twine@127.0.0.1:5432/twine
  --reuse-table       PostGIS: keep an imported table from an earlier run of the same file
                      instead of importing it again, and keep it (default: drop it, import
                      afresh, drop it at the end)
  --keep-table        PostGIS: leave the imported tables in place at the end
EOF
}

export BENCH_NAME=time-filters
say() { printf '== %s\n' "$*" >&2; }

ARGS=("$@")
POINTS=10000000
SEED=42
SOURCES="file"
REQUESTS=30
ZOOMS=0-8
CASES=none,day,unaligned,cat1,cat2,day+cat1
BUDGET=300
PLAIN=1
LOADS=3
REUSE_TABLE=0
KEEP_TABLE=0
DATABASE_URL="${DATABASE_URL:-postgres://twine:twine@127.0.0.1:5432/twine}"
while [ $# -gt 0 ]; do
  case "$1" in
    --points|--seed|--source|--requests|--zooms|--cases|--budget|--loads|--database-url)
      [ $# -ge 2 ] || { printf 'time-filters: %s needs a value\n' "$1" >&2; exit 1; }
      case "$1" in
        --points) POINTS="$2" ;; --seed) SEED="$2" ;; --source) SOURCES="$2" ;;
        --requests) REQUESTS="$2" ;; --zooms) ZOOMS="$2" ;; --cases) CASES="$2" ;;
        --budget) BUDGET="$2" ;; --loads) LOADS="$2" ;; --database-url) DATABASE_URL="$2" ;;
      esac
      shift 2 ;;
    --no-plain) PLAIN=0; shift ;;
    --reuse-table) REUSE_TABLE=1; KEEP_TABLE=1; shift ;;
    --keep-table) KEEP_TABLE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; printf 'time-filters: unknown argument: %s\n' "$1" >&2; exit 1 ;;
  esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=SCRIPTDIR/lib.sh
. "$ROOT/benches/lib.sh"

is_uint() { [[ "$1" =~ ^[0-9]+$ ]] && [ "${#1}" -le 12 ]; }
is_uint "$POINTS" && [ "$POINTS" -ge 1000 ] || die "--points must be an integer >= 1000 (got $POINTS)"
is_uint "$SEED" || die "--seed must be a non-negative integer (got $SEED)"
is_uint "$REQUESTS" && [ "$REQUESTS" -ge 1 ] && [ "$REQUESTS" -le 10000 ] || die "--requests must be 1..10000 (got $REQUESTS)"
is_uint "$BUDGET" && [ "$BUDGET" -ge 1 ] || die "--budget must be a positive integer (got $BUDGET)"
is_uint "$LOADS" && [ "$LOADS" -ge 1 ] && [ "$LOADS" -le 20 ] || die "--loads must be 1..20 (got $LOADS)"
[[ "$ZOOMS" =~ ^([0-9]|1[0-9]|2[0-2])(-([0-9]|1[0-9]|2[0-2]))?$ ]] || die "--zooms must be A-B within 0-22 (got $ZOOMS)"
[[ "$CASES" =~ ^(none|day|unaligned|cat1|cat2|day\+cat1)(,(none|day|unaligned|cat1|cat2|day\+cat1))*$ ]] \
  || die "--cases: a comma list of none, day, unaligned, cat1, cat2, day+cat1 (got $CASES)"
[[ "$SOURCES" =~ ^(file|postgis|declared|filters)(,(file|postgis|declared|filters))*$ ]] \
  || die "--source: a comma list of file, postgis, declared, filters (got $SOURCES)"
for tool in curl python3 timeout; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is required but not installed"
done
case ",$SOURCES," in *,postgis,*|*,declared,*|*,filters,*)
  command -v psql >/dev/null 2>&1 || die "psql is required for --source postgis, declared and filters" ;;
esac

DATA_DIR="$(target_dir)/time-bench"
CLIENT="$ROOT/benches/time-filters/client.py"
LOADS_SUMMARY="$ROOT/benches/time-filters/loads.py"
mkdir -p "$DATA_DIR"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/time-filters.XXXXXX")"
SERVER_PID=""
DROP_AT_EXIT=()
DROP_TABLES_AT_EXIT=()
CASES_OVERRIDE=""
EXTRA_CLIENT_ARGS=()
stop_server() { stop_pid "$SERVER_PID"; SERVER_PID=""; }
cleanup() {
  local rc=$?
  stop_server
  for layer in "${DROP_AT_EXIT[@]}"; do drop_layer "$layer" || true; done
  for table in "${DROP_TABLES_AT_EXIT[@]}"; do
    "${PSQL[@]}" -c "SET client_min_messages = warning; DROP TABLE IF EXISTS $table" >/dev/null || true
  done
  show_logs_or_remove "$rc" "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Wall-clock seconds with a fraction.
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$(now)"; }

# ---------------------------------------------------------------------------------------------
# 1. The binary and the data.
ensure_release_bin
BIN="$TWINE_BIN"
# PostGIS needs a database that answers and an `import` that keeps time and category columns
# (DESIGN.md, "Time and categories"): checked before any data is made or loaded.
case ",$SOURCES," in *,postgis,*|*,declared,*)
  psql -X -q -At -c "SELECT 1" "$DATABASE_URL" >/dev/null 2>&1 \
    || die "the database at $DATABASE_URL does not answer (psql failed)"
  IMPORT_HELP="$("$BIN" import --help 2>&1 || true)"
  if ! grep -q -- '--time' <<<"$IMPORT_HELP" || ! grep -q -- '--category' <<<"$IMPORT_HELP"; then
    die "$BIN has no \`import --time COLUMN --category COLUMN\` (the PostGIS time filters of issue 20, DESIGN.md \"Time and categories\"), so --source postgis/declared cannot run; use --source file, or a build that has them"
  fi ;;
esac
GEN_HASH="$(cat "$ROOT/src/synth.rs" "$ROOT/examples/synth_time_points.rs" | sha256sum | cut -c1-8)"
CSV="$DATA_DIR/synthetic_time_$(label "$POINTS")_s${SEED}_$GEN_HASH.csv"
if [ ! -s "$CSV" ]; then
  command -v cargo >/dev/null 2>&1 || die "cargo is required to generate $CSV"
  say "cargo build --release --example synth_time_points ..."
  (cd "$ROOT" && timeout --foreground 3600 cargo build --release --locked --quiet --example synth_time_points) \
    || die "building examples/synth_time_points.rs failed"
  say "generating $POINTS synthetic points with times and kinds (seed $SEED) into $CSV ..."
  t0="$(now)"
  timeout --foreground 1800 "$(target_dir)/release/examples/synth_time_points" \
    --count "$POINTS" --seed "$SEED" --out "$CSV" || die "generating $CSV failed"
  say "generated in $(since "$t0") s ($(du -h "$CSV" | cut -f1))"
fi
COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
DIRTY="$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo '+changes')"
RESULTS="$DATA_DIR/results/$(date -u +%Y%m%dT%H%M%SZ)-$COMMIT$DIRTY-$(label "$POINTS")"
mkdir -p "$RESULTS"
REPORT="$RESULTS/report.md"
: >"$REPORT"
# Prints to stdout and into the report.
out() { printf '%s\n' "$*" | tee -a "$REPORT"; }

LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
out "# time-filters: $POINTS synthetic points over two years, cold tiles"
out ""
out "- data: $(basename "$CSV") ($(du -h "$CSV" | cut -f1)), SYNTHETIC (examples/synth_time_points.rs)"
out "- server: $BIN ($("$BIN" --version 2>/dev/null || echo '?')), commit $COMMIT$DIRTY"
out "- host: $(nproc) CPUs, $(uname -sr); load average $LOAD_START at the start"
out "- command: benches/time-filters.sh${ARGS[*]:+ ${ARGS[*]}}"
out "- tile cache off (--cache-memory 0 --cache-disk 0); each request its own random tile and filter"

# ---------------------------------------------------------------------------------------------
# 2. A server, started and waited for: `start_server NAME LAYER ARGS...` runs `serve ARGS`
#    on a free port with both cache tiers off, then waits until /layers lists LAYER with every
#    point. Sets BASE, LOAD_S, RSS_MIB (after load) and the log $WORK/NAME.log.
start_server() {
  local name="$1" layer="$2"; shift 2
  local port; port="$(free_port)"
  BASE="http://127.0.0.1:$port"
  local log="$WORK/$name.log"
  local t0; t0="$(now)"
  env -u TWINE_CONFIG -u TWINE_BIND -u TWINE_PUBLIC_URL -u TWINE_CACHE_DIR -u TWINE_CACHE_MEMORY \
    -u TWINE_CACHE_DISK -u DATABASE_URL RUST_LOG=info NO_COLOR=1 \
    "$BIN" serve "$@" --bind "127.0.0.1:$port" --cache-memory 0 --cache-disk 0 >"$log" 2>&1 &
  SERVER_PID=$!
  local deadline=$((SECONDS + 900)) count=""
  # /health first, by curl alone: a Python process every 0.1 s would take CPU from the load.
  until curl -fs --max-time 5 -o /dev/null "$BASE/health" 2>/dev/null; do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    [ $SECONDS -lt $deadline ] || die "the $name server did not answer /health within 900 s"
    sleep 0.1
  done
  while :; do
    kill -0 "$SERVER_PID" 2>/dev/null || { SERVER_PID=""; tail -n 20 "$log" >&2; die "the $name server exited (its log is above)${START_HINT:+; $START_HINT}"; }
    count="$(layer_count "$BASE" "$layer")"
    [ "$count" = "$POINTS" ] && break
    [ $SECONDS -lt $deadline ] || die "after 900 s /layers lists $layer with count '${count:-absent}', not $POINTS"
    sleep 0.2
  done
  LOAD_S="$(since "$t0")"
  START_HINT=""
  sleep 1
  RSS_MIB=$(( $(rss_kib "$SERVER_PID") / 1024 ))
}
hwm_mib() { echo $(( $(hwm_kib "$1") / 1024 )); }
# The "bin pyramid built" lines of a log, as `bins=... bytes=... ms=...`.
# The "time cube built" line's fields follow, prefixed `cube_`.
pyramid_lines() {
  local clean
  clean="$(sed 's/\x1b\[[0-9;]*m//g' "$1")"
  {
    grep 'bin pyramid built' <<<"$clean" | sed -E 's/.*bin pyramid built[^ ]*//' \
      | grep -oE '(points|levels|bins|bytes|ms)=[0-9]+'
    grep 'time cube built' <<<"$clean" | sed -E 's/.*time cube built[^ ]*//' \
      | grep -oE '(levels|entries|bytes|ms)=[0-9]+' | sed 's/^/cube_/'
  } | paste -sd' ' - || true
}
# `load_once NAME LAYER CONFIG`: a server on CONFIG, its load figures appended to
# $WORK/NAME.loads as `load_s rss_mib hwm_mib key=value...` (the pyramid line); left running.
load_once() {
  start_server "$1" "$2" --config "$3"
  printf '%s %s %s %s\n' "$LOAD_S" "$RSS_MIB" "$(hwm_mib "$SERVER_PID")" "$(pyramid_lines "$WORK/$1.log")" >>"$WORK/$1.loads"
}
# `measure SOURCE LAYER TARGET_MS`: the client's rounds against the running server.
measure() {
  local source="$1" layer="$2" target="$3"
  timeout --foreground $((BUDGET + 300)) python3 "$CLIENT" --base "$BASE" --layer "$layer" \
    --points-file "$CSV" --source "$source" --points "$POINTS" --zooms "$ZOOMS" --cases "${CASES_OVERRIDE:-$CASES}" \
    --requests "$REQUESTS" --budget "$BUDGET" --seed "$SEED" --target-ms "$target" "${EXTRA_CLIENT_ARGS[@]}" \
    --csv "$RESULTS/summary.csv" --raw "$RESULTS/requests.csv" | tee -a "$REPORT" \
    || die "the client failed against the $source server"
}
# The server's figures after its requests, then stop it.
finish_server() {
  out ""
  out "RSS after the requests: $(( $(rss_kib "$SERVER_PID") / 1024 )) MiB; VmHWM $(hwm_mib "$SERVER_PID") MiB"
  local problems warnings
  problems="$(sed 's/\x1b\[[0-9;]*m//g' "$WORK/$1.log" | grep -E ' (WARN|ERROR) ' || true)"
  warnings="$(grep -c . <<<"$problems" || true)"
  [ -z "$problems" ] || out "server log: $warnings WARN/ERROR lines, the first: $(head -n 1 <<<"$problems" | cut -c1-300)"
  stop_server
}

# ---------------------------------------------------------------------------------------------
# 3. File layer.
run_file() {
  local layer="timebench"
  cat >"$WORK/file.toml" <<EOF
[[layers]]
name = "$layer"
file = "$CSV"
weighted = false
time = "t"
categories = ["kind"]
EOF
  printf '[[layers]]\nname = "%s"\nfile = "%s"\nweighted = false\n' "$layer" "$CSV" >"$WORK/plain.toml"
  # Loads alternate between the two configs, so the machine's drift hits both alike; the
  # last server, with time and categories, stays up for the requests.
  local i
  for i in $(seq 1 "$LOADS"); do
    if [ "$PLAIN" = 1 ]; then
      say "file layer without time and categories: load $i of $LOADS ..."
      load_once plain "$layer" "$WORK/plain.toml"
      stop_server
    fi
    say "file layer with time and categories: load $i of $LOADS ..."
    load_once with-time "$layer" "$WORK/file.toml"
    [ "$i" = "$LOADS" ] || stop_server
  done
  out ""
  out "## file layer (\`time = \"t\"\`, \`categories = [\"kind\"]\`, \`weighted = false\`)"
  out ""
  out "Loads (process start until /layers lists every point; \`plain\` is the same file without \`time\` and \`categories\`):"
  out ""
  local loads=("$WORK/with-time.loads")
  [ "$PLAIN" = 0 ] || loads+=("$WORK/plain.loads")
  python3 "$LOADS_SUMMARY" "${loads[@]}" | tee -a "$REPORT"
  measure file "$layer" 10
  finish_server with-time
}

# ---------------------------------------------------------------------------------------------
# 4. PostGIS: import (fresh unless --reuse-table), serve, measure.
PSQL=(psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL")
sql() { "${PSQL[@]}" -At -c "$1"; }
PG_LAYER="timebench_$(label "$POINTS")_s${SEED}_$GEN_HASH"
# Drops an imported layer: its pyramid's bins tables, its rows in the twine schema's
# registries, its points table. Names are the bench's own (letters, digits, '_').
drop_layer() {
  local layer="$1"
  "${PSQL[@]}" >/dev/null <<EOF
SET client_min_messages = warning;
DO \$\$
DECLARE r record;
BEGIN
  IF to_regclass('twine.pyramids') IS NOT NULL THEN
    FOR r IN SELECT bins_table FROM twine.pyramids WHERE table_name = 'twine.points_$layer' LOOP
      EXECUTE format('DROP TABLE IF EXISTS twine.%I', r.bins_table);
    END LOOP;
    DELETE FROM twine.pyramids WHERE table_name = 'twine.points_$layer';
  END IF;
  IF to_regclass('twine.time_pyramids') IS NOT NULL THEN
    FOR r IN SELECT bins_table FROM twine.time_pyramids WHERE table_name = 'twine.points_$layer' LOOP
      EXECUTE format('DROP TABLE IF EXISTS twine.%I', r.bins_table);
    END LOOP;
    DELETE FROM twine.time_pyramids WHERE table_name = 'twine.points_$layer';
  END IF;
  IF to_regclass('twine.layers') IS NOT NULL THEN DELETE FROM twine.layers WHERE name = '$layer'; END IF;
  IF to_regclass('twine.versions') IS NOT NULL THEN DELETE FROM twine.versions WHERE table_name = 'twine.points_$layer'; END IF;
  EXECUTE format('DROP TABLE IF EXISTS twine.%I', 'points_$layer');
END
\$\$;
EOF
}
# Sizes of the layer's tables in schema twine (points, index, bins), one line.
layer_sizes() {
  sql "SELECT coalesce(string_agg(relname || ' ' || pg_size_pretty(pg_total_relation_size(oid)), ', ' ORDER BY relname), 'none')
       || ' (total ' || pg_size_pretty(coalesce(sum(pg_total_relation_size(oid)), 0)) || ')'
       FROM pg_class WHERE relnamespace = 'twine'::regnamespace AND relkind = 'r' AND relname LIKE '%$1%'"
}
# The pyramid lines and the summary an import printed, into the report.
import_lines() {
  sed 's/\x1b\[[0-9;]*m//g' "$1" | grep -iE 'pyramid|total' | tail -n 6 | cut -c1-300 \
    | sed 's/^/    import: /' | tee -a "$REPORT"
}
PG_READY=0
prepare_postgis() {
  [ "$PG_READY" = 1 ] && return 0
  local rows=""
  if [ "$REUSE_TABLE" = 1 ]; then
    rows="$(sql "SELECT count(*) FROM twine.\"points_$PG_LAYER\"" 2>/dev/null || true)"
  fi
  if [ "$rows" = "$POINTS" ]; then
    out ""
    out "PostGIS: twine.points_$PG_LAYER reused (--reuse-table; $rows rows), not imported"
    IMPORT_NOTE="reused"
  else
    drop_layer "$PG_LAYER"
    say "import --time t --category kind into layer $PG_LAYER ..."
    local t0; t0="$(now)"
    timeout --foreground 3600 "$BIN" import --database-url "$DATABASE_URL" --layer "$PG_LAYER" \
      --time t --category kind "$CSV" >"$WORK/import.log" 2>&1 || { tail -n 20 "$WORK/import.log" >&2; die "import failed"; }
    IMPORT_NOTE="$(since "$t0") s"
  fi
  [ "$KEEP_TABLE" = 1 ] || DROP_AT_EXIT+=("$PG_LAYER")
  local columns
  columns="$(sql "SELECT string_agg(column_name, ',' ORDER BY column_name) FROM information_schema.columns WHERE table_schema = 'twine' AND table_name = 'points_$PG_LAYER' AND column_name IN ('t', 'kind')")"
  [ "$columns" = "kind,t" ] || die "twine.points_$PG_LAYER has no columns t and kind after the import (found: '${columns}'): does \`import --time t --category kind\` keep them under other names?"
  out ""
  out "## PostGIS import"
  out ""
  out "\`import --time t --category kind\`: $IMPORT_NOTE; tables: $(layer_sizes "$PG_LAYER")"
  [ ! -s "$WORK/import.log" ] || import_lines "$WORK/import.log"
  if [ "$PLAIN" = 1 ] && [ "$IMPORT_NOTE" != reused ]; then
    local xy
    xy="$DATA_DIR/$(basename "$CSV" .csv)_xy.csv"
    if [ ! -s "$xy" ]; then
      cut -d, -f1,2 "$CSV" >"$xy.partial" && mv "$xy.partial" "$xy" || die "writing $xy failed"
    fi
    drop_layer "${PG_LAYER}_plain"
    DROP_AT_EXIT+=("${PG_LAYER}_plain")
    say "import of the same points without time and categories (${PG_LAYER}_plain) ..."
    t0="$(now)"
    timeout --foreground 3600 "$BIN" import --database-url "$DATABASE_URL" --layer "${PG_LAYER}_plain" "$xy" \
      >"$WORK/import-plain.log" 2>&1 || { tail -n 20 "$WORK/import-plain.log" >&2; die "the plain import failed"; }
    out "Without time and categories (lon,lat only): $(since "$t0") s; tables: $(layer_sizes "${PG_LAYER}_plain")"
    import_lines "$WORK/import-plain.log"
    drop_layer "${PG_LAYER}_plain"
  fi
  PG_READY=1
}
run_postgis() {
  prepare_postgis
  say "PostGIS: starting the server ..."
  start_server postgis "$PG_LAYER" --database-url "$DATABASE_URL"
  out ""
  out "## PostGIS, imported layer"
  out ""
  out "ready: $LOAD_S s to /layers listing all points; RSS $RSS_MIB MiB"
  measure postgis "$PG_LAYER" 50
  finish_server postgis
}
run_declared() {
  prepare_postgis
  local layer="${PG_LAYER}_decl"
  cat >"$WORK/declared.toml" <<EOF
[[layers]]
name = "$layer"
table = "twine.points_$PG_LAYER"
geometry = "geom"
time = "t"
categories = ["kind"]
EOF
  say "PostGIS, declared table: starting the server ..."
  START_HINT="a server without \`time\`/\`categories\` on declared tables (the PostGIS time filters of issue 20) refuses this config"
  start_server declared "$layer" --config "$WORK/declared.toml" --database-url "$DATABASE_URL"
  out ""
  out "## PostGIS, declared table (\`table\`, \`time = \"t\"\`, \`categories = [\"kind\"]\`)"
  out ""
  out "ready: $LOAD_S s to /layers listing all points; RSS $RSS_MIB MiB"
  measure declared "$layer" 50
  finish_server declared
}

# ---------------------------------------------------------------------------------------------
# 5. main's PostGIS filters: the points in a plain table (lon/lat as geom in 3857, t
#    timestamptz, kind text, GiST index), declared with `[[layers.filters]]` from (t >=),
#    to (t <) and category (kind =). No pyramid: every tile sums its rows in SQL. One value
#    per `=`, so no cat2.
FILTERS_TABLE="timebench_filters_$(label "$POINTS")_s${SEED}_$GEN_HASH"
run_filters() {
  sql "SELECT 1" >/dev/null 2>&1 || die "the database at $DATABASE_URL does not answer (psql failed)"
  local table="public.\"$FILTERS_TABLE\"" comment
  comment="time-filters bench: $(basename "$CSV")"
  if [ "$REUSE_TABLE" = 1 ] \
    && [ "$(sql "SELECT obj_description(to_regclass('$table'), 'pg_class')" 2>/dev/null || true)" = "$comment" ] \
    && [ "$(sql "SELECT count(*) FROM $table" 2>/dev/null || true)" = "$POINTS" ]; then
    out ""
    out "main's PostGIS filters: $table reused (--reuse-table)"
  else
    say "loading $CSV into $table with psql (\\copy, GiST index) ..."
    local t0; t0="$(now)"
    "${PSQL[@]}" >/dev/null <<EOF || die "loading $table failed (see the psql error above)"
SET client_min_messages = warning;
DROP TABLE IF EXISTS $table;
CREATE TEMP TABLE staging (lon float8, lat float8, t timestamptz, kind text);
\\copy staging FROM '$CSV' WITH (FORMAT csv, HEADER true)
CREATE TABLE $table AS
  SELECT row_number() OVER () AS seq,
         ST_SetSRID(ST_MakePoint(lon * 20037508.342789244 / 180,
                                 ln(tan(radians(90 + lat) / 2)) * 6378137), 3857) AS geom,
         t, kind
  FROM staging;
CREATE INDEX ON $table USING gist (geom);
ANALYZE $table;
COMMENT ON TABLE $table IS '$comment';
EOF
    out ""
    out "main's PostGIS filters: $table loaded in $(since "$t0") s ($(sql "SELECT pg_size_pretty(pg_total_relation_size('$table'))"))"
  fi
  [ "$KEEP_TABLE" = 1 ] || DROP_TABLES_AT_EXIT+=("$table")
  local layer="${FILTERS_TABLE}_f" cases
  cat >"$WORK/filters.toml" <<EOF
[[layers]]
name = "$layer"
table = "public.$FILTERS_TABLE"
geometry = "geom"
seq = "seq"
[[layers.filters]]
param = "from"
column = "t"
op = ">="
[[layers.filters]]
param = "to"
column = "t"
op = "<"
[[layers.filters]]
param = "category"
column = "kind"
op = "="
EOF
  cases="$(tr ',' '\n' <<<"$CASES" | grep -vx cat2 | paste -sd, -)"
  [ -n "$cases" ] || { out "main's PostGIS filters: no case left (cat2 needs two values, \`=\` takes one)"; return 0; }
  say "main's PostGIS filters: starting the server ..."
  start_server filters "$layer" --config "$WORK/filters.toml" --database-url "$DATABASE_URL"
  out ""
  out "## PostGIS, main's declared filters (\`[[layers.filters]]\` from/to/category, no pyramid)"
  out ""
  out "ready: $LOAD_S s to /layers listing all points; RSS $RSS_MIB MiB; cases $cases (cat2 needs \`IN\`)"
  CASES_OVERRIDE="$cases"
  EXTRA_CLIENT_ARGS=(--time-extent "2023-01-01T00:00:00+00:00,2024-12-31T23:59:59+00:00"
    --values "alpha,bravo,charlie,delta,echo,foxtrot")
  measure filters "$layer" 50
  CASES_OVERRIDE=""
  EXTRA_CLIENT_ARGS=()
  finish_server filters
}

IFS=, read -r -a SOURCE_LIST <<<"$SOURCES"
for source in "${SOURCE_LIST[@]}"; do
  case "$source" in
    file) run_file ;;
    postgis) run_postgis ;;
    declared) run_declared ;;
    filters) run_filters ;;
  esac
done
out ""
out "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); results: $RESULTS"
