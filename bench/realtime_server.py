"""The app for the realtime benchmarks: `uvicorn --factory app:factory` with more open files.

    DATABASE_URL=... [REDIS_URL=...] python -m bench.realtime_server --port 8000

Thousands of websockets need thousands of file descriptors: the soft RLIMIT_NOFILE is
raised to the hard limit, then uvicorn runs in this process (one worker, uvicorn's
defaults otherwise: uvloop, httptools, websockets-sansio with per-message deflate, pings
every 20 s), so this process's RSS is the server's.

With BENCH_GC_STATS=<path>, the pauses of Python's cyclic garbage collector are timed
(`gc.callbacks`) and written to <path> as JSON when the server stops: a collection of the
oldest generation walks every tracked object, thousands of sockets' worth of them.
BENCH_GC_THRESHOLD=a,b,c calls gc.set_threshold(a, b, c) first (an experiment).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import signal
import time
from pathlib import Path
from typing import Any

import uvicorn


def raise_open_files_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class GcTimer:
    """Durations of the garbage collector's runs, per generation."""

    def __init__(self) -> None:
        self.started = 0.0
        self.runs: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self.long: list[tuple[float, int, float, int]] = []  # (wall time, gen, ms, collected)

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        ms = (time.perf_counter() - self.started) * 1000
        generation = int(info["generation"])
        self.runs[generation].append(ms)
        if ms >= 20:
            self.long.append((time.time(), generation, round(ms, 1), int(info["collected"])))

    def report(self) -> dict[str, Any]:
        return {
            "thresholds": gc.get_threshold(),
            "generations": {
                str(g): {
                    "runs": len(v),
                    "total_ms": round(sum(v), 1),
                    "max_ms": round(max(v), 1) if v else 0.0,
                }
                for g, v in self.runs.items()
            },
            "pauses_over_20ms": self.long,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backlog", type=int, default=4096)
    args = parser.parse_args()
    raise_open_files_limit()
    stats_path = os.environ.get("BENCH_GC_STATS")
    timer = GcTimer()
    threshold = os.environ.get("BENCH_GC_THRESHOLD")
    if threshold:  # an experiment of the benchmark (--server-gc-threshold), not the app's
        gc.set_threshold(*(int(x) for x in threshold.split(",")))
    if stats_path:
        gc.callbacks.append(timer)
        # uvicorn re-raises the signal that stopped it once it has shut down; with this
        # handler in place (uvicorn restores it first) the process lives on to write the file
        signal.signal(signal.SIGTERM, lambda *_: None)
    uvicorn.run(
        "app:factory",
        factory=True,
        host=args.host,
        port=args.port,
        workers=1,
        log_level="warning",
        access_log=False,
        backlog=args.backlog,
        lifespan="on",
    )
    if stats_path:
        Path(stats_path).write_text(json.dumps(timer.report()))


if __name__ == "__main__":
    main()
