"""Single-client latency of filtered tiles, for benches/time-filters.sh (Python 3 stdlib only).

One keep-alive HTTP connection, one request at a time; a request's time runs from sending it
to having read the whole body. Rounds go over every (case, zoom) cell in turn, so the
machine's speed drift hits all cells alike, until each cell has --requests answers or the
--budget of seconds is spent (then the last round stops where it is: cells differ by one). Every answer must be a 200 PNG that is not an `X-Cache: hit-*`,
else the run stops with the answer's body.

Each request gets a tile that holds data (the tile, at its zoom, of a point drawn from the
points file: dense places are asked for more, as users do) and its own random filter:

- none       no filter (the unfiltered reference);
- day        from=YYYY-MM-DD&to=YYYY-MM-DD: a whole number of days, 1..730, at a random day,
             inside the data's two years;
- unaligned  from/to at random seconds (length 1 s .. 730 days), written with a random UTC
             offset (e.g. 2023-05-04T13:22:11+02:00);
- cat1       category=V, one of the layer's values (from its TileJSON), uniformly;
- cat2       category=V,W, two distinct values;
- day+cat1   a day window and one value.

Percentiles are nearest-rank. Prints a markdown table and appends rows to --csv.
"""

import argparse
import csv
import datetime as dt
import http.client
import json
import math
import os
import random
import sys
import time
import urllib.parse

CASES = ("none", "day", "unaligned", "cat1", "cat2", "day+cat1")
DAY = 86400


def fail(message):
    print(f"time-filters client: {message}", file=sys.stderr)
    sys.exit(1)


def sample_positions(path, count, rng):
    """`count` (lon, lat) pairs from random places in the CSV file (the line after a random
    byte offset), so a 700 MB file is never read whole."""
    size = os.path.getsize(path)
    out = []
    with open(path, "rb") as f:
        f.readline()
        body = f.tell()
        if size <= body:
            fail(f"{path} has no points")
        while len(out) < count:
            f.seek(rng.randrange(body, size))
            f.readline()
            line = f.readline()
            if not line:
                continue
            fields = line.split(b",")
            try:
                out.append((float(fields[0]), float(fields[1])))
            except (ValueError, IndexError):
                fail(f"{path}: cannot read lon,lat from {line[:80]!r}")
    return out


def tile_of(lon, lat, z):
    n = 1 << z
    lat = max(min(lat, 85.05112877980659), -85.05112877980659)
    x = (lon + 180.0) / 360.0 * n
    rad = math.radians(lat)
    y = (1.0 - math.log(math.tan(rad) + 1.0 / math.cos(rad)) / math.pi) / 2.0 * n
    return min(max(int(x), 0), n - 1), min(max(int(y), 0), n - 1)


class Filters:
    """Random filters over the time extent [t0, t1) (Unix seconds, t0 at midnight UTC) and
    the category values."""

    def __init__(self, rng, t0, t1, values):
        self.rng = rng
        self.t0 = t0
        self.days = max(1, (t1 - t0) // DAY)
        self.values = values

    def day(self):
        length = self.rng.randint(1, min(730, self.days))
        start = self.t0 + self.rng.randint(0, self.days - length) * DAY
        iso = lambda t: dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d")
        return [("from", iso(start)), ("to", iso(start + length * DAY))]

    def unaligned(self):
        span = self.days * DAY
        length = self.rng.randint(1, min(730 * DAY, span))
        start = self.t0 + self.rng.randint(0, span - length)

        def iso(t):
            offset = dt.timezone(dt.timedelta(hours=self.rng.randint(-11, 12)))
            return dt.datetime.fromtimestamp(t, offset).isoformat()

        return [("from", iso(start)), ("to", iso(start + length))]

    def cat(self, k):
        return [("category", ",".join(self.rng.sample(self.values, k)))]

    def of(self, case):
        if case == "none":
            return []
        if case == "day":
            return self.day()
        if case == "unaligned":
            return self.unaligned()
        if case == "cat1":
            return self.cat(1)
        if case == "cat2":
            return self.cat(2)
        if case == "day+cat1":
            return self.day() + self.cat(1)
        raise ValueError(case)


def rank(sorted_ms, p):
    return sorted_ms[max(0, math.ceil(p / 100 * len(sorted_ms)) - 1)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True, help="http://127.0.0.1:PORT")
    ap.add_argument("--layer", required=True)
    ap.add_argument("--points-file", required=True)
    ap.add_argument("--source", required=True, help="label of the run: file, postgis, ...")
    ap.add_argument("--points", type=int, required=True)
    ap.add_argument("--zooms", default="0-8")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--requests", type=int, default=30)
    ap.add_argument("--budget", type=float, default=360.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--target-ms", type=float, required=True)
    ap.add_argument("--csv", required=True, help="summary rows are appended here")
    ap.add_argument("--raw", required=True, help="one row per request is appended here")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--time-extent", help="FROM,TO (ISO 8601) when TileJSON has no heatmap.time")
    ap.add_argument("--values", help="V,W,... category values when TileJSON has none")
    a = ap.parse_args()

    lo, _, hi = a.zooms.partition("-")
    zooms = list(range(int(lo), int(hi or lo) + 1))
    cases = a.cases.split(",")
    for c in cases:
        if c not in CASES:
            fail(f"unknown case {c!r} (known: {', '.join(CASES)})")
    rng = random.Random(a.seed)

    url = urllib.parse.urlsplit(a.base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=a.timeout)

    def get(path):
        start = time.perf_counter()
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
        except (OSError, http.client.HTTPException) as e:
            fail(f"GET {path}: {e!r} (no answer within {a.timeout:g} s, or the server went away)")
        return time.perf_counter() - start, resp, body

    _, resp, body = get(f"/tiles/{a.layer}.json")
    if resp.status != 200:
        fail(f"TileJSON of {a.layer}: HTTP {resp.status}: {body[:300]!r}")
    heatmap = json.loads(body).get("heatmap", {})
    time_info = heatmap.get("time") or {}
    categories = heatmap.get("categories") or []
    # A layer whose filters are declared `[[layers.filters]]` (main's PostGIS filters) has
    # no time or categories in its TileJSON: the script says what the data holds.
    if not time_info and a.time_extent:
        lo_t, _, hi_t = a.time_extent.partition(",")
        time_info = {"min": lo_t, "max": hi_t}
    if not categories and a.values:
        categories = [{"values": [{"value": v} for v in a.values.split(",")]}]
    wanted_time = {"day", "unaligned", "day+cat1"} & set(cases)
    wanted_cat = {"cat1", "cat2", "day+cat1"} & set(cases)
    if wanted_time and not time_info.get("min"):
        fail(f"the layer's TileJSON has no heatmap.time extent (cases {sorted(wanted_time)} need one): {json.dumps(heatmap)[:300]}")
    if wanted_cat and len(categories) != 1:
        fail(f"cases {sorted(wanted_cat)} need exactly one category column in TileJSON, found {len(categories)}")
    values = [v["value"] for v in categories[0]["values"]] if categories else []
    if "cat2" in cases and len(values) < 2:
        fail(f"case cat2 needs two category values, the layer has {values}")

    def unix(iso):
        return int(dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())

    # The window's range: whole UTC days covering [min, max].
    t0 = unix(time_info["min"]) // DAY * DAY if time_info.get("min") else 0
    t1 = (unix(time_info["max"]) // DAY + 1) * DAY if time_info.get("max") else DAY
    filters = Filters(rng, t0, t1, values)
    positions = sample_positions(a.points_file, 4096, rng)

    cells = [(c, z) for c in cases for z in zooms]
    times = {cell: [] for cell in cells}
    raw = open(a.raw, "a", newline="")
    raw_out = csv.writer(raw)
    spent = 0.0
    started = time.monotonic()
    stopped_by_budget = False
    for _ in range(a.requests):
        if stopped_by_budget:
            break
        for case, z in cells:
            if time.monotonic() - started > a.budget:
                stopped_by_budget = True
                break
            lon, lat = rng.choice(positions)
            x, y = tile_of(lon, lat, z)
            query = urllib.parse.urlencode(filters.of(case))
            path = f"/tiles/{a.layer}/{z}/{x}/{y}.png" + (f"?{query}" if query else "")
            secs, resp, body = get(path)
            if resp.status != 200 or not body.startswith(b"\x89PNG"):
                fail(f"GET {path}: HTTP {resp.status}: {body[:400]!r}")
            cache = resp.getheader("X-Cache", "")
            if cache.startswith("hit"):
                fail(f"GET {path}: X-Cache {cache}: the tile cache is on, the figures would not be cold")
            times[(case, z)].append(secs * 1000)
            raw_out.writerow([a.source, a.points, case, z, x, y, query, f"{secs * 1000:.3f}", len(body)])
            spent += secs
    raw.close()

    def stats(ms):
        s = sorted(ms)
        return len(s), rank(s, 50), rank(s, 95), s[-1]

    target_cases = {"day"}
    rows = []
    for case in cases:
        for z in zooms + ["all"]:
            ms = [m for (c, zz), v in times.items() if c == case and (z == "all" or zz == z) for m in v]
            if not ms:
                continue
            n, p50, p95, mx = stats(ms)
            verdict = ("PASS" if p95 <= a.target_ms else "FAIL") if case in target_cases else "-"
            rows.append((case, z, n, p50, p95, mx, verdict))

    new = not os.path.exists(a.csv) or os.path.getsize(a.csv) == 0
    with open(a.csv, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["source", "points", "case", "zoom", "n", "p50_ms", "p95_ms", "max_ms", "target_p95_ms", "verdict"])
        for case, z, n, p50, p95, mx, verdict in rows:
            w.writerow([a.source, a.points, case, z, n, f"{p50:.2f}", f"{p95:.2f}", f"{mx:.2f}", a.target_ms, verdict])

    print(f"\n### {a.source}: {a.points:,} points, cold tiles, ms (target: day-aligned p95 <= {a.target_ms:g} ms)\n")
    print("Each cell: p50 / p95 / max over n requests (n in the last column).\n")
    head = "| case | " + " | ".join(f"z{z}" for z in zooms) + " | all zooms | n per zoom | target |"
    print(head)
    print("|" + "---|" * (len(zooms) + 4))
    for case in cases:
        cells_txt = []
        n_z = []
        verdicts = {}
        for z in zooms + ["all"]:
            row = next((r for r in rows if r[0] == case and r[1] == z), None)
            if row is None:
                cells_txt.append("-")
                continue
            _, _, n, p50, p95, mx, verdict = row
            cells_txt.append(f"{p50:.1f} / {p95:.1f} / {mx:.0f}" if mx >= 10 else f"{p50:.1f} / {p95:.1f} / {mx:.1f}")
            if z != "all":
                n_z.append(n)
                verdicts[z] = verdict
        if not n_z:
            print(f"| {case} | " + " | ".join(cells_txt) + " | 0 | not reached within the budget |")
            continue
        if case in target_cases:
            overall = next(r for r in rows if r[0] == case and r[1] == "all")[6]
            failed = [f"z{z}" for z, v in verdicts.items() if v == "FAIL"]
            target = f"overall {overall}" + (f"; fails at {', '.join(failed)}" if failed else "; every zoom passes")
        else:
            target = "for information"
        n_txt = str(min(n_z)) if n_z and min(n_z) == max(n_z) else f"{min(n_z)}-{max(n_z)}"
        print(f"| {case} | " + " | ".join(cells_txt) + f" | {n_txt} | {target} |")
    total = sum(len(v) for v in times.values())
    print(f"\n{total} requests in {time.monotonic() - started:.0f} s ({spent:.0f} s waiting for answers)"
          + ("; stopped by the time budget before --requests rounds" if stopped_by_budget else ""))


if __name__ == "__main__":
    main()
