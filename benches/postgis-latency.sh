#!/usr/bin/env bash
# Cold tile latency of the PostGIS source, end to end over HTTP.
#
# What it measures: how long `twine-heatmap serve --database-url` takes to answer
# GET /tiles/{layer}/{z}/{x}/{y}.png for a large clustered PostGIS layer when nothing is cached
# (the server runs with both cache tiers off, so every request queries PostGIS and renders).
# Seven tiles: the whole world (z0 0/0/0), the densest z4 tile, the densest z10 tile, the
# densest z11, z12 and z13 tiles inside that z10 tile, and a sparse z14 tile with a few background
# points.
# Per tile: 1 + R requests in a row with curl; the first is reported on its own ("first ms"),
# p50/p95/min/max are over the R that follow (nearest-rank percentiles). Also shown: where
# the tile was read from ("pyramid": the layer's precomputed bin pyramid; "points": PostGIS
# queries over the points table, by the server's query counters), the PNG size, the points
# in the tile (without the style's margin), and, for the densest z4 to z13 tiles, the raw
# PostGIS time of `SELECT count(*) FROM t WHERE geom && ST_TileEnvelope(z, x, y)` from
# EXPLAIN (ANALYZE, BUFFERS): the floor that index lookup and row fetch put under a tile.
#
# The data (benches/postgis-latency.sql, generated in SQL, seeded, reproducible): N points
# (default 10,000,000) in 2,000 Gaussian "cities" with Zipf populations over latitudes
# -60..70 plus 10% uniform background, weight 1, in twine."points_bench<N>" (bench10m for
# 10M), laid out like `twine-heatmap import` does (Hilbert row order, GiST index, version
# trigger, registered in twine.layers, bin pyramid built by `twine-heatmap pyramid`). An
# existing table with the same N and seed is reused, and so is its pyramid while current.
#
# Run (from anywhere; needs psql, curl, python3, cargo; the database must answer):
#   benches/postgis-latency.sh                       # 10M points, seed 42, 20 requests per tile
#   benches/postgis-latency.sh --points 1000000 --seed 7 --requests 50
#   DATABASE_URL=postgres://u:p@127.0.0.1:5432/db benches/postgis-latency.sh
#   TWINE_BIN=/path/to/twine-heatmap benches/postgis-latency.sh   # skip `cargo build --release`
#   benches/postgis-latency.sh --query style=density --requests 1   # density's first tile per zoom
#   benches/postgis-latency.sh --without-pyramid --query style=density --requests 1
# --without-pyramid serves the same points as a declared table that has no pyramid: a copy,
# public."<layer>_nopyr" (made once, GiST index, reused while it holds N rows of that seed),
# declared in a config file, so every dense tile and density reference reads the points.
# Generation of 10M points takes about 2 minutes the first time, its bin pyramid 2.5 more.
# The server listens on a free 127.0.0.1 port and is stopped on exit; a request over 60 s
# aborts the run, and each tile stops after --tile-budget seconds of requests (default 300).
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
  echo; cat <<'EOF'
Options:
  --points N          points in the layer (default 10000000, at least 10000)
  --seed S            random seed, a non-negative integer (default 42)
  --requests R        measured requests per tile after the first (default 20, 1..1000)
  --tile-budget SECS  stop a tile's requests once they took this long in total (default 300)
  --database-url URL  default: $DATABASE_URL or postgres://twine:twine@127.0.0.1:5432/twine
  --without-pyramid   serve a copy of the table declared in a config file, without a pyramid
  --query QUERY       style parameters for every tile request, e.g. style=density (each of
                      the seven tiles is another zoom, so "first ms" is that zoom's first
                      tile: for density, the one that finds the zoom's reference)
EOF
}

die() { printf 'postgis-latency: %s\n' "$*" >&2; exit 1; }
say() { printf '%s\n' "$*" >&2; }

ARGS=("$@")
POINTS=10000000
SEED=42
REQUESTS=20
QUERY=""
TILE_BUDGET=300
WITHOUT_PYRAMID=0
DATABASE_URL="${DATABASE_URL:-postgres://twine:twine@127.0.0.1:5432/twine}"
REQUEST_TIMEOUT=60
LAYER_WAIT=600
while [ $# -gt 0 ]; do
  case "$1" in
    --points) [ $# -ge 2 ] || die "--points needs a value"; POINTS="$2"; shift 2 ;;
    --seed) [ $# -ge 2 ] || die "--seed needs a value"; SEED="$2"; shift 2 ;;
    --requests) [ $# -ge 2 ] || die "--requests needs a value"; REQUESTS="$2"; shift 2 ;;
    --tile-budget) [ $# -ge 2 ] || die "--tile-budget needs a value"; TILE_BUDGET="$2"; shift 2 ;;
    --database-url) [ $# -ge 2 ] || die "--database-url needs a value"; DATABASE_URL="$2"; shift 2 ;;
    --query) [ $# -ge 2 ] || die "--query needs a value"; QUERY="$2"; shift 2 ;;
    --without-pyramid) WITHOUT_PYRAMID=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
is_uint() { [[ "$1" =~ ^[0-9]+$ ]] && [ "${#1}" -le 12 ]; }
is_uint "$POINTS" && [ "$POINTS" -ge 10000 ] || die "--points must be an integer >= 10000 (got $POINTS)"
is_uint "$SEED" || die "--seed must be a non-negative integer (got $SEED)"
is_uint "$REQUESTS" && [ "$REQUESTS" -ge 1 ] && [ "$REQUESTS" -le 1000 ] || die "--requests must be 1..1000 (got $REQUESTS)"
is_uint "$TILE_BUDGET" && [ "$TILE_BUDGET" -ge 1 ] || die "--tile-budget must be a positive integer (got $TILE_BUDGET)"
for tool in psql curl python3; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is required but not installed"
done

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT="$REPO"
BENCH_NAME=postgis-latency
# shellcheck source=SCRIPTDIR/lib.sh
. "$ROOT/benches/lib.sh"
SQL_FILE="$REPO/benches/postgis-latency.sql"
[ -f "$SQL_FILE" ] || die "missing $SQL_FILE"

# Layer name from N: bench10m, bench250k, bench123456.
LAYER="bench$(label "$POINTS")"
TABLE="points_$LAYER"
TABLE_KEY="twine.$TABLE"
INDEX="points_${LAYER}_geom"
CITIES=2000
[ "$POINTS" -lt 200000 ] && CITIES=$((POINTS / 100))
CLUSTERED=$((POINTS - POINTS / 10))
# setseed() takes a number in [-1, 1].
SEEDF="$(python3 -c "import sys; print(repr((int(sys.argv[1]) % 1000000007) / 1000000007))" "$SEED")"
COMMENT="twine-heatmap bench v1: points=$POINTS seed=$SEED cities=$CITIES"

PSQL=(psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL")
sql() { "${PSQL[@]}" -At -c "$1"; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/postgis-latency.XXXXXX")"
SERVER_PID=""
cleanup() {
  local rc=$?
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ "$rc" -ne 0 ] && [ -s "$WORK/server.log" ]; then
    say "--- last lines of the server log ($WORK/server.log, kept) ---"
    tail -n 30 "$WORK/server.log" >&2 || true
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now() { python3 -c 'import time; print(f"{time.monotonic():.3f}")'; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }

LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
say "== postgis-latency: $POINTS points (seed $SEED, layer $LAYER), $REQUESTS requests per tile"
sql "SELECT 1" >/dev/null 2>&1 || die "the database at $DATABASE_URL does not answer (psql failed)"

# ---------------------------------------------------------------------------------------------
# 1. The layer's table.
existing="$(sql "SELECT CASE WHEN to_regclass('twine.\"$TABLE\"') IS NULL THEN '' ELSE coalesce(obj_description(to_regclass('twine.\"$TABLE\"'), 'pg_class'), '?') END")"
GEN_NOTE=""
if [ "$existing" = "$COMMENT" ] && [ "$(sql "SELECT count(*) FROM twine.\"$TABLE\"")" = "$POINTS" ]; then
  say "== $TABLE_KEY already holds $POINTS rows from seed $SEED: generation skipped"
  # Make sure it is still registered and versioned (both idempotent).
  sql "SELECT 1 FROM twine.layers WHERE name = '$LAYER' AND table_name = '$TABLE_KEY'" | grep -q 1 \
    || sql "INSERT INTO twine.layers (name, table_name) VALUES ('$LAYER', '$TABLE_KEY') ON CONFLICT (name) DO UPDATE SET table_name = EXCLUDED.table_name" >/dev/null
  GEN_NOTE="skipped (table already holds $POINTS rows from seed $SEED)"
else
  [ -n "$existing" ] && say "== $TABLE_KEY exists but is not N=$POINTS seed=$SEED (${existing}): regenerating"
  say "== generating $POINTS points in SQL into $TABLE_KEY ($CITIES cities + 10% background) ..."
  # A pyramid of an earlier table of that name describes other points.
  sql "DO \$\$ BEGIN IF to_regclass('twine.pyramids') IS NOT NULL THEN DELETE FROM twine.pyramids WHERE table_name = '$TABLE_KEY'; END IF; END \$\$" >/dev/null
  t0="$(now)"
  "${PSQL[@]}" -v points="$POINTS" -v clustered="$CLUSTERED" -v cities="$CITIES" -v seedf="$SEEDF" \
    -v layer="$LAYER" -v table="$TABLE" -v table_key="$TABLE_KEY" -v index="$INDEX" \
    -v comment="$COMMENT" -f "$SQL_FILE" >/dev/null || die "generating the table failed (see the psql error above)"
  gen_s="$(elapsed "$t0")"
  size="$(sql "SELECT pg_size_pretty(pg_table_size('twine.\"$TABLE\"')) || ' table + ' || pg_size_pretty(pg_indexes_size('twine.\"$TABLE\"')) || ' index'")"
  say "== generated $POINTS rows in $gen_s s ($size)"
  GEN_NOTE="$gen_s s ($size)"
fi

# ---------------------------------------------------------------------------------------------
# 2. The tiles to measure, found in SQL (world units as the server computes them).
say "== finding the densest z4 / z10 tiles and a sparse z14 tile ..."
WX="(ST_X(geom) + 20037508.342789244) / 40075016.685578488"
WY="(20037508.342789244 - ST_Y(geom)) / 40075016.685578488"
TILES="$("${PSQL[@]}" -At -F ' ' <<EOF
CREATE TEMP TABLE z10 AS
  SELECT least(floor($WX * 1024), 1023)::int AS tx, least(floor($WY * 1024), 1023)::int AS ty, count(*) AS n
  FROM twine."$TABLE" GROUP BY 1, 2;
SELECT 0, 0, 0, (SELECT count(*) FROM twine."$TABLE");
(SELECT 4, tx / 64, ty / 64, sum(n) FROM z10 GROUP BY 2, 3 ORDER BY 4 DESC, 2, 3 LIMIT 1);
(SELECT 10, tx, ty, n FROM z10 ORDER BY n DESC, tx, ty LIMIT 1);
-- Beyond z10: the densest z11, z12 and z13 tiles inside the densest z10 tile.
CREATE TEMP TABLE dense AS
  SELECT $WX AS x, $WY AS y FROM twine."$TABLE", (SELECT tx, ty FROM z10 ORDER BY n DESC, tx, ty LIMIT 1) d
  WHERE geom && ST_TileEnvelope(10, d.tx, d.ty);
(SELECT 11, floor(x * 2048)::int, floor(y * 2048)::int, count(*) FROM dense GROUP BY 2, 3 ORDER BY 4 DESC, 2, 3 LIMIT 1);
(SELECT 12, floor(x * 4096)::int, floor(y * 4096)::int, count(*) FROM dense GROUP BY 2, 3 ORDER BY 4 DESC, 2, 3 LIMIT 1);
(SELECT 13, floor(x * 8192)::int, floor(y * 8192)::int, count(*) FROM dense GROUP BY 2, 3 ORDER BY 4 DESC, 2, 3 LIMIT 1);
-- Sparse: 200 z10 tiles with a handful of points (background, away from cities), spread over
-- the world by a hash; of their z14 tiles, the one with the most points (usually 2).
WITH c AS (SELECT tx, ty FROM z10 ORDER BY (n BETWEEN 2 AND 5) DESC, n DESC, md5(tx || '/' || ty) LIMIT 200)
SELECT 14, least(floor($WX * 16384), 16383)::int, least(floor($WY * 16384), 16383)::int, count(*)
FROM c CROSS JOIN LATERAL (
  SELECT geom FROM twine."$TABLE" WHERE geom && ST_TileEnvelope(10, c.tx, c.ty)
    AND least(floor($WX * 1024), 1023) = c.tx AND least(floor($WY * 1024), 1023) = c.ty) p
GROUP BY 2, 3 ORDER BY 4 DESC, 2, 3 LIMIT 1;
EOF
)" || die "finding the tiles failed"
[ "$(printf '%s\n' "$TILES" | wc -l)" -eq 7 ] || die "expected 7 tiles, got: $TILES"
printf '%s\n' "$TILES" | sed 's/^/   z x y points: /' >&2

# ---------------------------------------------------------------------------------------------
# 3. The server.
if [ -n "${TWINE_BIN:-}" ]; then
  BIN="$TWINE_BIN"
  [ -x "$BIN" ] || die "TWINE_BIN=$BIN is not an executable"
else
  command -v cargo >/dev/null 2>&1 || die "cargo is required to build the server (or set TWINE_BIN)"
  say "== cargo build --release ..."
  (cd "$REPO" && cargo build --release --quiet --bin twine-heatmap) \
    || die "cargo build --release failed (if someone is editing the sources, retry in a few minutes)"
  BIN="$REPO/target/release/twine-heatmap"
fi
# The layer's bin pyramid, as `import` builds it (for the server's default aggregate_above):
# rebuilt unless one from the table's current data version is there (and records its zooms'
# heaviest pixels, which pyramids built before that do not).
SERVE_ARGS=(--database-url "$DATABASE_URL")
if [ "$WITHOUT_PYRAMID" = 1 ]; then
  # The same rows in a table no pyramid was built for, declared in a config file.
  COPY="${LAYER}_nopyr"
  copy_comment="$(sql "SELECT coalesce(obj_description(to_regclass('public.\"$COPY\"'), 'pg_class'), '')")"
  if [ "$copy_comment" != "$COMMENT" ] || [ "$(sql "SELECT count(*) FROM public.\"$COPY\"" 2>/dev/null || echo 0)" != "$POINTS" ]; then
    say "== copying $TABLE_KEY into public.$COPY (no pyramid) ..."
    "${PSQL[@]}" <<EOF >/dev/null || die "copying the table failed"
DROP TABLE IF EXISTS public."$COPY";
CREATE TABLE public."$COPY" AS SELECT seq, weight, geom FROM twine."$TABLE";
CREATE INDEX ON public."$COPY" USING gist (geom);
ANALYZE public."$COPY";
COMMENT ON TABLE public."$COPY" IS '$COMMENT';
EOF
  fi
  sql "DO \$\$ BEGIN IF to_regclass('twine.pyramids') IS NOT NULL THEN DELETE FROM twine.pyramids WHERE table_name = 'public.$COPY'; END IF; END \$\$" >/dev/null
  printf 'database_url = "%s"\n[[layers]]\nname = "%s"\ntable = "public.%s"\ngeometry = "geom"\nweight = "weight"\nseq = "seq"\n' \
    "$DATABASE_URL" "$COPY" "$COPY" >"$WORK/config.toml"
  SERVE_ARGS=(--config "$WORK/config.toml")
  LAYER="$COPY"
  PYRAMID_NOTE="none (a declared copy, public.$COPY)"
else
current="$(sql "SELECT count(*) FROM twine.pyramids p JOIN twine.versions v USING (table_name) WHERE p.table_name = '$TABLE_KEY' AND p.version = v.version AND p.max_weights IS NOT NULL" 2>/dev/null || echo 0)"
if [ "$current" = 1 ]; then
  PYRAMID_NOTE="current (built from the table's data version before this run)"
else
  say "== building the bin pyramid ($BIN pyramid --layer $LAYER) ..."
  "$BIN" pyramid --database-url "$DATABASE_URL" --layer "$LAYER" 2>"$WORK/pyramid.log" \
    || { cat "$WORK/pyramid.log" >&2; die "building the bin pyramid failed"; }
  PYRAMID_NOTE="$(tail -n 1 "$WORK/pyramid.log")"
fi
fi
say "== pyramid: $PYRAMID_NOTE"
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"
say "== starting $BIN serve on 127.0.0.1:$PORT (log: $WORK/server.log)"
# The server's own defaults (pool, statement timeout); no config file, no demo layer.
# Both tile cache tiers off: every request queries PostGIS and renders.
env -u TWINE_CONFIG -u TWINE_BIND -u TWINE_PUBLIC_URL -u TWINE_CACHE_DIR RUST_LOG="${RUST_LOG:-info}" \
  "$BIN" serve "${SERVE_ARGS[@]}" --bind "127.0.0.1:$PORT" \
  --cache-memory 0 --cache-disk 0 >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

# Wait until /layers lists the layer with its full count (its statistics scan is done).
say "== waiting for /layers to list $LAYER with $POINTS points (at most $LAYER_WAIT s) ..."
t0="$(now)"
deadline=$((SECONDS + LAYER_WAIT))
while :; do
  kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited (see its log below)"
  count="$(layer_count "$BASE" "$LAYER")"
  [ "$count" = "$POINTS" ] && break
  [ $SECONDS -lt $deadline ] || die "after $LAYER_WAIT s /layers still lists $LAYER with count '${count:-absent}', not $POINTS (statistics scan failing? see the log)"
  sleep 0.5
done
STATS_WAIT="$(elapsed "$t0")"
say "== layer ready after $STATS_WAIT s"

# ---------------------------------------------------------------------------------------------
# 4. Cold tile requests.
RESULTS="$WORK/results.tsv"
: >"$RESULTS"
# A counter from the server's /metrics (0 when absent).
metric() {
  curl -s --max-time 5 "$BASE/metrics" | awk -v name="$1" '$1 == name { v = $2 } END { print v + 0 }'
}
while read -r z x y n; do
  url="$BASE/tiles/$LAYER/$z/$x/$y.png${QUERY:+?$QUERY}"
  say "== $z/$x/$y ($n points): 1 + $REQUESTS requests  $url"
  times=()
  codes=()
  size=""
  db_before="$(metric twine_db_queries_total)"
  pyramid_before="$(metric twine_db_pyramid_queries_total)"
  spent=0
  for i in $(seq 0 "$REQUESTS"); do
    rc=0
    out="$(curl -sS --max-time "$REQUEST_TIMEOUT" -o "$WORK/body.png" -D "$WORK/headers" \
      -w '%{http_code} %{time_total} %{size_download}' "$url")" || rc=$?
    [ "$rc" -eq 28 ] && die "$z/$x/$y: request $((i + 1)) took more than $REQUEST_TIMEOUT s: aborted"
    [ "$rc" -eq 0 ] || die "$z/$x/$y: curl failed (exit $rc)"
    read -r code secs bytes <<<"$out"
    times+=("$secs")
    codes+=("$code")
    if [ "$code" = 200 ]; then
      # The server runs with both cache tiers off; a hit would mean the numbers are not cold.
      c="$(tr -d '\r' <"$WORK/headers" | grep -i '^x-cache: *hit' || true)"
      [ -z "$c" ] || say "   warning: request $((i + 1)) answered with '$c': not a cold render?"
      size="$bytes"
    fi
    spent="$(python3 -c "import sys; print(float(sys.argv[1]) + float(sys.argv[2]))" "$spent" "$secs")"
    if [ "$i" -lt "$REQUESTS" ] && python3 -c "import sys; sys.exit(float(sys.argv[1]) < float(sys.argv[2]))" "$spent" "$TILE_BUDGET"; then
      say "   tile budget of $TILE_BUDGET s spent after $((i + 1)) requests"
      break
    fi
  done
  # Where the tile's points came from: the bin pyramid, or PostGIS queries over the points
  # (pixel bins summed in SQL, or the points themselves), from the server's query counters.
  db_queries=$(( $(metric twine_db_queries_total) - db_before ))
  pyramid_queries=$(( $(metric twine_db_pyramid_queries_total) - pyramid_before ))
  if [ "$pyramid_queries" -gt 0 ] && [ "$pyramid_queries" -eq "$db_queries" ]; then from="pyramid"
  elif [ "$pyramid_queries" -eq 0 ]; then from="points"
  else from="mixed ($pyramid_queries of $db_queries from the pyramid)"; fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$z" "$x" "$y" "$n" "$from" "${size:--}" \
    "${codes[*]}" "${times[*]}" >>"$RESULTS"
  [ "${codes[0]}" = 200 ] || say "   HTTP ${codes[0]}: $(head -c 300 "$WORK/body.png" 2>/dev/null | tr -d '\n')"
done <<<"$TILES"

# ---------------------------------------------------------------------------------------------
# 5. Raw PostGIS time of the densest tiles' index lookup.
EXPLAINS="$WORK/explains.txt"
: >"$EXPLAINS"
while read -r z x y n; do
  case "$z" in 4|10|11|12|13) ;; *) continue ;; esac
  query="SELECT count(*) FROM twine.\"$TABLE\" WHERE geom && ST_TileEnvelope($z, $x, $y)"
  plan="$(sql "EXPLAIN (ANALYZE, BUFFERS) $query")" || die "EXPLAIN failed: $query"
  ms="$(printf '%s\n' "$plan" | sed -n 's/^Execution Time: \([0-9.]*\) ms$/\1/p')"
  printf '%s\t%s\t%s\t%s\n' "$z" "$x/$y" "$ms" "$query" >>"$EXPLAINS"
  {
    printf '\n-- z%s %s/%s: %s\n' "$z" "$x" "$y" "$query"
    printf '%s\n' "$plan" | sed -e "s/'0103[0-9A-F]*'::geometry/ST_TileEnvelope($z, $x, $y)/g" -e 's/^/   /'
  } >>"$WORK/plans.txt"
done <<<"$TILES"

# ---------------------------------------------------------------------------------------------
# 6. Report.
WARNINGS="$(grep -ciE 'warn|error' "$WORK/server.log" || true)"
HOST="$(nproc) CPUs; load average $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?') at the end"
CMDLINE="benches/postgis-latency.sh${ARGS[*]:+ ${ARGS[*]}}"
python3 - "$RESULTS" "$EXPLAINS" "$POINTS" "$SEED" "$LAYER" "$GEN_NOTE" "$STATS_WAIT" "$HOST" "$CMDLINE" "$PYRAMID_NOTE" <<'EOF'
import math
import sys

results, explains, points, seed, layer, gen, stats_wait, host, cmdline, pyramid = sys.argv[1:]

def rank(sorted_ms, p):
    """Nearest-rank percentile."""
    return sorted_ms[max(0, math.ceil(p / 100 * len(sorted_ms)) - 1)]

def fmt(ms):
    return "-" if ms is None else (f"{ms:.1f}" if ms < 1000 else f"{ms:,.0f}")

print()
print(f"postgis-latency: cold tiles (no tile cache), layer {layer}: {int(points):,} clustered points, seed {seed}")
print(f"generation: {gen}; server statistics ready after {stats_wait} s")
print(f"bin pyramid: {pyramid}")
print(f"host: {host}")
print("first = the tile's first request (the first row is also the server's first tile request);")
print("p50/p95/min/max over the requests that follow it (nearest rank); points = rows in the tile, without margin")
print()
head = ("tile z/x/y", "points", "read from", "PNG bytes", "HTTP", "first ms", "p50 ms", "p95 ms", "min ms", "max ms", "n")
rows = []
for line in open(results):
    z, x, y, n, source, size, codes, times = line.rstrip("\n").split("\t")
    ms = [float(t) * 1000 for t in times.split()]
    codes = codes.split()
    rest = sorted(ms[1:])
    status = ",".join(sorted(set(codes)))
    rows.append((
        f"{z}/{x}/{y}", f"{int(n):,}", source, size if size == "-" else f"{int(size):,}", status,
        fmt(ms[0]),
        fmt(rank(rest, 50) if rest else None), fmt(rank(rest, 95) if rest else None),
        fmt(rest[0] if rest else None), fmt(rest[-1] if rest else None), str(len(rest)),
    ))
widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
def show(r):
    print("  ".join(c.ljust(w) if i in (0, 2, 4) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
show(head)
show(tuple("-" * w for w in widths))
for r in rows:
    show(r)
print()
print("raw PostGIS (EXPLAIN (ANALYZE, BUFFERS), execution time):")
for line in open(explains):
    z, tile, ms, query = line.rstrip("\n").split("\t")
    print(f"  {z + '/' + tile:<12} {float(ms):8.1f} ms  {query}")
print()
print(f"command: {cmdline}")
EOF
if [ "${WARNINGS:-0}" -gt 0 ]; then
  printf '\nserver log: %s warning/error lines, the first ones:\n' "$WARNINGS"
  sed 's/\x1b\[[0-9;]*m//g' "$WORK/server.log" | grep -iE 'warn|error' | head -n 5 | cut -c1-300 | sed 's/^/   /'
else
  printf '\nserver log: no warnings or errors\n'
fi
printf '\nquery plans:' ; cat "$WORK/plans.txt"
