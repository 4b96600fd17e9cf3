#!/usr/bin/env python3
"""How much of a core's time this process loses to others (the host included): spins for
--seconds reading the clock and counts the gaps between reads longer than --min-gap-us.

Run it pinned (taskset -c N) on a core nothing else uses: every gap is then time the core
ran something else or, on a VM, time the hypervisor did not run this vCPU at all. Such a
gap stalls whatever a load test runs on that core, so load.sh prints this before measuring.
Prints one line: lost_ms=... gaps_over_1ms=... longest_ms=... seconds=...
"""

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--min-gap-us", type=float, default=200.0)
    args = parser.parse_args()
    if not 0 < args.seconds <= 60:
        parser.error("--seconds must be in (0, 60]")
    min_gap = int(args.min_gap_us * 1000)
    clock = time.perf_counter_ns
    start = last = clock()
    end = start + int(args.seconds * 1e9)
    gaps = []
    while last < end:
        now = clock()
        if now - last > min_gap:
            gaps.append(now - last)
        last = now
    print(
        "lost_ms=%.1f gaps_over_1ms=%d longest_ms=%.2f seconds=%.1f"
        % (
            sum(gaps) / 1e6,
            sum(1 for g in gaps if g > 1_000_000),
            max(gaps, default=0) / 1e6,
            (last - start) / 1e9,
        )
    )


if __name__ == "__main__":
    main()
