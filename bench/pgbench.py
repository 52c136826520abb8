"""pgbench's builtin simple-update script (`pgbench -N`) on the benchmark's PostgreSQL server.

Each transaction: BEGIN; UPDATE pgbench_accounts; SELECT abalance; INSERT INTO
pgbench_history; END. It is the ceiling for "one small write transaction per request" on
this server, against which the serviceOrderTransition mutation is compared.
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.load import percentile


@dataclass(frozen=True)
class PgTarget:
    """libpq connection parameters of one database."""

    host: str
    port: int
    user: str
    password: str | None
    database: str

    def args(self) -> list[str]:
        return ["-h", self.host, "-p", str(self.port), "-U", self.user]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.password:
            env["PGPASSWORD"] = self.password
        return env


@dataclass
class PgbenchResult:
    clients: int
    threads: int
    seconds: float
    transactions: int
    failed: int
    tps: float
    latency_avg_ms: float
    p50_ms: float
    p99_ms: float
    max_ms: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def pgbench_binary(bindir: Path | None) -> str:
    if bindir is not None and (bindir / "pgbench").exists():
        return str(bindir / "pgbench")
    out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
    return str(Path(out.stdout.strip()) / "pgbench")


def initialise(binary: str, target: PgTarget, scale: int = 1) -> None:
    subprocess.run(
        [binary, "-i", "-s", str(scale), "-q", *target.args(), target.database],
        check=True,
        capture_output=True,
        env=target.env(),
    )


def run(
    binary: str, target: PgTarget, *, clients: int, threads: int, seconds: int
) -> PgbenchResult:
    """`pgbench -N -c clients -j threads -T seconds`, with per-transaction latency logs."""
    with tempfile.TemporaryDirectory(prefix="pgbench-") as logs:
        prefix = str(Path(logs) / "tx")
        proc = subprocess.run(
            [
                binary,
                "-N",
                "-n",  # no vacuum before the run: the tables are fresh
                "-c",
                str(clients),
                "-j",
                str(threads),
                "-T",
                str(seconds),
                "-l",
                f"--log-prefix={prefix}",
                *target.args(),
                target.database,
            ],
            check=True,
            capture_output=True,
            text=True,
            env=target.env(),
        )
        latencies: list[float] = []
        for path in glob.glob(prefix + ".*"):
            with open(path) as f:
                for line in f:
                    fields = line.split()
                    if len(fields) >= 3 and fields[2].isdigit():
                        latencies.append(int(fields[2]) / 1000)
    return parse(proc.stdout, latencies, clients=clients, threads=threads)


def parse(output: str, latencies: list[float], *, clients: int, threads: int) -> PgbenchResult:
    def number(pattern: str, default: float | None = None) -> float:
        found = re.search(pattern, output)
        if found is None:
            if default is not None:
                return default
            raise RuntimeError(f"pgbench output has no {pattern!r}:\n{output}")
        return float(found.group(1))

    latencies.sort()
    return PgbenchResult(
        clients=clients,
        threads=threads,
        seconds=number(r"duration: (\d+) s"),
        transactions=int(number(r"number of transactions actually processed: (\d+)")),
        failed=int(number(r"number of failed transactions: (\d+)", 0.0)),
        tps=number(r"tps = ([\d.]+) \(without initial connection time\)"),
        latency_avg_ms=number(r"latency average = ([\d.]+) ms"),
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        max_ms=latencies[-1] if latencies else float("nan"),
    )
