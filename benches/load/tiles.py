#!/usr/bin/env python3
"""Build the tile URL lists for benches/load.sh (Python standard library only).

Places: cities from data/cities1000.csv.gz (lon,lat,population,...), drawn with probability
proportional to population, each position jittered around the city (Gaussian, sigma grows with
the square root of the population, so big cities spread over more high-zoom tiles).
Zooms 0..12 with a Zipf-like weight 1/(z+1)^zoom_s (low zooms are the popular ones).
Draws go on until N distinct tiles are seen; the tiles are then ranked by how often they were
drawn (low zooms and dense places first), and the request sequence is M independent draws
with Zipf popularity over that rank, P(rank r) ~ 1/r^s.

Writes, in OUT:
  tiles.txt     the N distinct paths, most popular first (/tiles/demo/z/x/y.png, no query)
  requests.txt  the M request paths, in request order (what wrk cycles through)
and prints a short summary of the mix.
"""
import argparse
import bisect
import collections
import csv
import gzip
import itertools
import math
import os
import random
import sys

MAX_LAT = 85.05112878


def tile_of(lon, lat, z):
    n = 1 << z
    lat = max(-MAX_LAT, min(MAX_LAT, lat))
    lon = ((lon + 180.0) % 360.0) - 180.0
    x = int((lon + 180.0) / 360.0 * n)
    r = math.radians(lat)
    y = int((1.0 - math.asinh(math.tan(r)) / math.pi) / 2.0 * n)
    return z, min(max(x, 0), n - 1), min(max(y, 0), n - 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cities", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--layer", default="demo")
    ap.add_argument("--tiles", type=int, default=2000, help="distinct tiles N")
    ap.add_argument("--requests", type=int, default=0, help="request sequence length M (default max(100000, 50*N))")
    ap.add_argument("--s", type=float, default=1.0, help="Zipf exponent of tile popularity")
    ap.add_argument("--zoom-s", type=float, default=1.0, help="Zipf-like exponent over zooms")
    ap.add_argument("--max-zoom", type=int, default=12)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.tiles < 1:
        sys.exit("tiles.py: --tiles must be >= 1")
    m = a.requests or max(100_000, 50 * a.tiles)
    rng = random.Random(a.seed)

    lons, lats, pops = [], [], []
    with gzip.open(a.cities, "rt", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            try:
                lon, lat, pop = float(row["lon"]), float(row["lat"]), float(row["population"] or 0)
            except (KeyError, ValueError):
                continue
            if pop > 0:
                lons.append(lon); lats.append(lat); pops.append(pop)
    if not pops:
        sys.exit("tiles.py: no cities read from " + a.cities)
    city_cum = list(itertools.accumulate(pops))
    zooms = list(range(a.max_zoom + 1))
    zoom_cum = list(itertools.accumulate(1.0 / (z + 1) ** a.zoom_s for z in zooms))

    counts = collections.Counter()
    draws, max_draws = 0, 500 * a.tiles + 100_000
    batch = 4096
    while len(counts) < a.tiles:
        if draws >= max_draws:
            sys.exit(f"tiles.py: only {len(counts)} distinct tiles after {draws} draws; ask for fewer")
        cities = rng.choices(range(len(pops)), cum_weights=city_cum, k=batch)
        zs = rng.choices(zooms, cum_weights=zoom_cum, k=batch)
        for c, z in zip(cities, zs):
            draws += 1
            sigma = 0.03 * (1.0 + math.sqrt(pops[c] / 1e6))  # degrees
            lat = lats[c] + rng.gauss(0.0, sigma)
            lon = lons[c] + rng.gauss(0.0, sigma / max(0.2, math.cos(math.radians(lats[c]))))
            t = tile_of(lon, lat, z)
            if t in counts or len(counts) < a.tiles:
                counts[t] += 1
            if len(counts) >= a.tiles:
                break

    ranked = sorted(counts, key=lambda t: (-counts[t], t))
    paths = [f"/tiles/{a.layer}/{z}/{x}/{y}.png" for z, x, y in ranked]
    rank_cum = list(itertools.accumulate(1.0 / (r + 1) ** a.s for r in range(len(ranked))))
    picks = rng.choices(range(len(ranked)), cum_weights=rank_cum, k=m)

    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "tiles.txt"), "w") as f:
        f.write("\n".join(paths) + "\n")
    with open(os.path.join(a.out, "requests.txt"), "w") as f:
        f.write("\n".join(paths[i] for i in picks) + "\n")

    tiles_z = collections.Counter(t[0] for t in ranked)
    req_z = collections.Counter(ranked[i][0] for i in picks)
    seen = len(set(picks))
    top10 = sum(1 for i in picks if i < 10) / m
    print(f"tile mix: {len(ranked)} distinct tiles (from {draws} population-weighted draws, seed {a.seed}), "
          f"{m} requests with Zipf s={a.s} over popularity rank; {seen} tiles requested at least once; "
          f"top 10 tiles = {top10:.0%} of requests")
    print("  zoom:        " + " ".join(f"{z:>5}" for z in zooms))
    print("  tiles:       " + " ".join(f"{tiles_z.get(z, 0):>5}" for z in zooms))
    print("  requests %:  " + " ".join(f"{100.0 * req_z.get(z, 0) / m:>5.1f}" for z in zooms))


if __name__ == "__main__":
    main()
