"""The telemetry pipeline's benchmarks in one command: training overhead, then ingest.

    python -m portal.devservers run -- python bench/telemetry.py

Runs `reporter_overhead.py` (steps/s with every step reported, on / off, on a 0.5 ms and a
5 ms CPU step) and `ingest_throughput.py` (points/s with 1 and 2 ingest processes beside a raw
COPY of the same rows; the channel layers' cost per event). Results: bench/RESULTS.md.
"""

from __future__ import annotations

import sys
import time

import ingest_throughput
import reporter_overhead

if __name__ == "__main__":
    # `--quick`: fewer rounds and points, for a loaded machine.
    quick = "--quick" in sys.argv[1:]
    started = time.perf_counter()
    reporter_overhead.main(["--rounds", "5"] if quick else [])
    print()
    ingest_throughput.main(["--points", "30000", "--events", "500"] if quick else [])
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
