"""Medians of repeated server loads, for benches/time-filters.sh (Python 3 stdlib only).

Each argument is a file NAME.loads with one line per load: `load_s rss_mib hwm_mib` and the
"bin pyramid built" fields as `key=value` (points, levels, bins, bytes, ms; none when no
pyramid was built), then the "time cube built" fields prefixed `cube_`. Prints one markdown list item per file, then, for two files, the first's
medians minus the second's: what the first configuration costs over the second.
"""

import statistics
import sys


def read(path):
    rows = []
    for line in open(path):
        load, rss, hwm, *fields = line.split()
        row = {"load": float(load), "rss": int(rss), "hwm": int(hwm)}
        row.update((k, int(v)) for k, v in (f.split("=", 1) for f in fields))
        rows.append(row)
    return rows


def median(rows, key):
    values = [r[key] for r in rows if key in r]
    return statistics.median(values) if values else None


def main():
    runs = [(path.rsplit("/", 1)[-1].rsplit(".", 1)[0], read(path)) for path in sys.argv[1:]]
    for name, rows in runs:
        loads = ", ".join(f"{r['load']:.2f}" for r in rows)
        if median(rows, "bins") is None:
            pyramid = "no bin pyramid built"
        else:
            each = ", ".join(str(r.get("ms", "-")) for r in rows)
            pyramid = (f"bin pyramid {median(rows, 'levels'):.0f} levels, {median(rows, 'bins'):,.0f} bins, "
                       f"{median(rows, 'bytes') / 1048576:.1f} MiB, built in {median(rows, 'ms'):.0f} ms ({each})")
        if median(rows, "cube_entries") is not None:
            pyramid += (f"; time cube {median(rows, 'cube_levels'):.0f} levels, "
                        f"{median(rows, 'cube_entries'):,.0f} entries, "
                        f"{median(rows, 'cube_bytes') / 1048576:.1f} MiB, built in {median(rows, 'cube_ms'):.0f} ms")
        print(f"- {name}: load {median(rows, 'load'):.2f} s (median of {len(rows)}: {loads}); RSS after load "
              f"{median(rows, 'rss'):.0f} MiB, VmHWM {median(rows, 'hwm'):.0f} MiB; {pyramid}")
    if len(runs) == 2:
        (a, x), (b, y) = runs

        def diff(key, unit, scale=1.0, digits=0):
            if median(x, key) is None or median(y, key) is None:
                return "-"
            return f"{(median(x, key) - median(y, key)) / scale:+.{digits}f} {unit}"

        print(f"- {a} minus {b} (medians): load {diff('load', 's', digits=2)}, RSS {diff('rss', 'MiB')}, "
              f"VmHWM {diff('hwm', 'MiB')}, bin pyramid {diff('bytes', 'MiB', 1048576, 1)} "
              f"and {diff('ms', 'ms')} to build")


if __name__ == "__main__":
    main()
