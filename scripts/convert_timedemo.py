#!/usr/bin/env python3
"""Builds the time demo layers as `lon,lat,time,<categories>` CSV.gz (Python standard library only).

Main layer, from Debian's r-cran-dplyr 1.0.10-1 (dataset `storms`, NOAA HURDAT2 subset):

    apt-get download r-cran-dplyr=1.0.10-1
    python3 convert.py storms r-cran-dplyr_1.0.10-1_amd64.deb storms-1975-2020.csv.gz

Alternative, from npm's vega-datasets 3.2.1 (file `data/earthquakes.json`, USGS feed):

    npm pack vega-datasets@3.2.1
    python3 convert.py earthquakes vega-datasets-3.2.1.tgz earthquakes-2018-week.csv.gz

Output: one header row, rows sorted by time then lon, lat; time is ISO 8601 UTC with a `Z`;
gzip written with mtime 0 so that the same input gives the same bytes.
"""
import csv
import datetime as dt
import gzip
import io
import json
import lzma
import struct
import sys
import tarfile
import zlib

# --------------------------------------------------------------------------------------------
# Reading the packages


def deb_member(deb_path, wanted_suffixes):
    """Returns {path: bytes} for files of a .deb's data.tar.* whose path ends with a suffix."""
    with open(deb_path, "rb") as f:
        blob = f.read()
    if blob[:8] != b"!<arch>\n":
        raise SystemExit(f"{deb_path}: not a Debian package (ar archive)")
    pos, data_tar = 8, None
    while pos + 60 <= len(blob):
        name = blob[pos : pos + 16].decode().strip().rstrip("/")
        size = int(blob[pos + 48 : pos + 58].decode().strip())
        body = blob[pos + 60 : pos + 60 + size]
        if name.startswith("data.tar"):
            data_tar = body
        pos += 60 + size + (size % 2)
    if data_tar is None:
        raise SystemExit(f"{deb_path}: no data.tar member")
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data_tar)) as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(tuple(wanted_suffixes)):
                out[member.name] = tar.extractfile(member).read()
    return out


# --------------------------------------------------------------------------------------------
# A minimal reader of R's serialization format (XDR, versions 2 and 3), enough for the data
# frames in an R package's lazy-load database (data/Rdata.rdx + data/Rdata.rdb).

NA_INTEGER = -(2**31)


class RObj:
    def __init__(self, kind, value, attrs=None):
        self.kind, self.value, self.attrs = kind, value, attrs or {}


class RReader:
    def __init__(self, data):
        if data[:2] != b"X\n":
            raise ValueError("not R XDR serialization")
        self.d, self.p, self.refs = data, 2, []
        version = self.int()
        self.int(), self.int()  # R version that wrote it, oldest R version that reads it
        if version == 3:
            n = self.int()  # then the native encoding's name, skipped
            self.p += n

    def int(self):
        (v,) = struct.unpack_from(">i", self.d, self.p)
        self.p += 4
        return v

    def length(self):
        n = self.int()
        return (self.int() << 32) + self.int() if n == -1 else n

    @staticmethod
    def pairs(pairlist):
        out = {}
        while isinstance(pairlist, RObj) and pairlist.kind == "pairlist":
            tag, car, cdr = pairlist.value
            out[tag] = car
            pairlist = cdr
        return out

    def item(self):
        flags = self.int()
        t, has_attr, has_tag = flags & 0xFF, flags & 512, flags & 1024
        if t == 254:  # NILVALUE
            return None
        if t in (253, 252, 251, 250, 242, 241):  # environments and markers
            return RObj("special", t)
        if t == 255:  # reference to an earlier symbol or persisted name
            idx = flags >> 8 or self.int()
            return self.refs[idx - 1]
        if t == 247:  # PERSISTSXP
            self.int()
            obj = RObj("persist", [self.item() for _ in range(self.int())])
            self.refs.append(obj)
            return obj
        if t == 1:  # SYMSXP
            sym = self.item()
            self.refs.append(sym)
            return sym
        if t in (2, 6, 239, 240):  # pairlist, language
            attr = self.item() if has_attr else None
            tag = self.item() if has_tag else None
            car, cdr = self.item(), self.item()
            return RObj("pairlist", (tag, car, cdr), self.pairs(attr))
        if t == 9:  # CHARSXP
            n = self.int()
            if n == -1:
                return None
            s = self.d[self.p : self.p + n].decode("utf-8")
            self.p += n
            return s
        if t in (10, 13):  # logical, integer
            n = self.length()
            vals = [None if v == NA_INTEGER else v for v in struct.unpack_from(f">{n}i", self.d, self.p)]
            self.p += 4 * n
            kind = "int"
        elif t == 14:  # double
            n = self.length()
            vals = list(struct.unpack_from(f">{n}d", self.d, self.p))
            self.p += 8 * n
            kind = "real"
        elif t in (16, 19, 20):  # character, list, expression
            vals = [self.item() for _ in range(self.length())]
            kind = "str" if t == 16 else "list"
        elif t == 238:  # ALTREP: only the compact and wrapped forms base R writes
            info, state, attr = self.item(), self.item(), self.item()
            cls = info.value[1]
            if cls in ("compact_intseq", "compact_realseq"):
                n, start, step = state.value
                vals = [start + i * step for i in range(int(n))]
                kind = "int" if cls == "compact_intseq" else "real"
            elif cls.startswith("wrap_"):
                vals, kind = state.value[0].value, state.value[0].kind
            elif cls == "deferred_string":
                vals, kind = [None if v is None else str(v) for v in state.value[1].value], "str"
            else:
                raise ValueError(f"ALTREP class {cls} not handled")
            return RObj(kind, vals, self.pairs(attr))
        else:
            raise ValueError(f"R type {t} not handled")
        return RObj(kind, vals, self.pairs(self.item()) if has_attr else {})


def r_lazy_load(rdx_bytes, rdb_bytes, name):
    """The object `name` of a lazy-load database (.rdx index gzip- or zlib-compressed)."""
    raw = gzip.decompress(rdx_bytes) if rdx_bytes[:2] == b"\x1f\x8b" else zlib.decompress(rdx_bytes[4:])
    index = RReader(raw).item()
    variables = index.value[index.attrs["names"].value.index("variables")]
    offset, length = variables.value[variables.attrs["names"].value.index(name)].value
    blob = rdb_bytes[int(offset) : int(offset) + int(length)]
    # Each entry: 4-byte big-endian uncompressed length, then a zlib stream.
    return RReader(zlib.decompress(blob[4:])).item()


def data_frame_columns(df):
    cols = {}
    for name, col in zip(df.attrs["names"].value, df.value):
        levels = col.attrs.get("levels")
        cols[name] = [None if v is None else levels.value[v - 1] for v in col.value] if levels else col.value
    return cols


# --------------------------------------------------------------------------------------------
# The two layers


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def storms_rows(deb_path):
    files = deb_member(deb_path, ("/dplyr/data/Rdata.rdx", "/dplyr/data/Rdata.rdb"))
    rdx = next(v for k, v in files.items() if k.endswith(".rdx"))
    rdb = next(v for k, v in files.items() if k.endswith(".rdb"))
    c = data_frame_columns(r_lazy_load(rdx, rdb, "storms"))
    saffir_simpson = {"-1": "TD", "0": "TS"}  # dplyr: -1 tropical depression, 0 tropical storm
    header = ["lon", "lat", "time", "status", "saffir_simpson", "storm"]
    rows = []
    for i in range(len(c["lat"])):
        hour = c["hour"][i]
        if hour != int(hour):
            raise ValueError(f"row {i}: hour {hour} is not whole")
        t = dt.datetime(int(c["year"][i]), int(c["month"][i]), int(c["day"][i]), int(hour))
        cat = c["category"][i]
        rows.append([
            round(c["long"][i], 4),
            round(c["lat"][i], 4),
            t,
            c["status"][i],
            saffir_simpson.get(cat, cat),
            f'{c["name"][i]} {int(c["year"][i])}',
        ])
    return header, rows


def magnitude_class(mag):
    if mag < 1:
        return "M<1"
    if mag >= 5:
        return "M5+"
    low = int(mag)
    return f"M{low}-{low + 1}"


def earthquakes_rows(tgz_path):
    with tarfile.open(tgz_path) as tar:
        doc = json.load(tar.extractfile("package/data/earthquakes.json"))
    header = ["lon", "lat", "time", "magnitude", "type", "network"]
    rows = []
    for feature in doc["features"]:
        p = feature["properties"]
        lon, lat = feature["geometry"]["coordinates"][:2]
        t = dt.datetime.fromtimestamp(p["time"] / 1000, dt.timezone.utc).replace(tzinfo=None)
        rows.append([round(lon, 5), round(lat, 5), t.replace(microsecond=0),
                     magnitude_class(p["mag"]), p["type"], p["net"]])
    return header, rows


def write(header, rows, out_path):
    rows.sort(key=lambda r: (r[2], r[0], r[1]))
    text = io.StringIO()
    w = csv.writer(text, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow([r[0], r[1], iso(r[2])] + r[3:])
    with open(out_path, "wb") as f:
        with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0, compresslevel=9) as gz:
            gz.write(text.getvalue().encode("utf-8"))
    lons, lats = [r[0] for r in rows], [r[1] for r in rows]
    print(f"{out_path}: {len(rows)} rows; time {iso(rows[0][2])} .. {iso(rows[-1][2])}; "
          f"lon {min(lons)} .. {max(lons)}, lat {min(lats)} .. {max(lats)}")
    for i, name in enumerate(header[3:], start=3):
        counts = {}
        for r in rows:
            counts[r[i]] = counts.get(r[i], 0) + 1
        top = sorted(counts.items(), key=lambda kv: -kv[1])
        shown = ", ".join(f"{k}={v}" for k, v in top[:8]) + (" ..." if len(top) > 8 else "")
        print(f"  {name}: {len(counts)} values: {shown}")


def main(argv):
    if len(argv) != 4 or argv[1] not in ("storms", "earthquakes"):
        raise SystemExit(__doc__)
    kind, src, out = argv[1:]
    header, rows = storms_rows(src) if kind == "storms" else earthquakes_rows(src)
    write(header, rows, out)


if __name__ == "__main__":
    main(sys.argv)
