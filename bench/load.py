"""The load generator: a fixed number of concurrent clients, each on one keep-alive HTTP/1.1
connection, sending requests back to back for a fixed time.

It speaks just enough HTTP/1.1 over asyncio streams (Content-Length and chunked bodies)
to cost a few tens of microseconds per request: on a 2-core machine the client shares the
CPU with the server under test and PostgreSQL, and a heavier client (httpx costs several
hundred microseconds per request) would take CPU from the server and pull every ratio
towards 1. Both sides of every comparison are driven by this same client, with the same
concurrency and the same request bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class HttpError(Exception):
    pass


def build_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        "Accept: application/json",
        f"Content-Length: {len(body)}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def graphql_body(query: str, variables: dict[str, Any]) -> bytes:
    return json.dumps({"query": query, "variables": variables}).encode()


class Connection:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 22)
        return cls(reader, writer)

    async def send(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, _, header_block = head.partition(b"\r\n")
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise HttpError(f"bad status line {status_line!r}")
        status = int(parts[1])
        length = -1
        chunked = False
        for line in header_block.split(b"\r\n"):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip())
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            body = await self._read_chunked()
        elif length >= 0:
            body = await self.reader.readexactly(length)
        else:
            raise HttpError("response without Content-Length or chunked encoding")
        return status, body

    async def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size_line = await self.reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(chunks)
            chunks.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


class Plan:
    """What one worker sends: `next_request()` -> bytes; `done(status, body)` -> ok?"""

    def next_request(self) -> bytes:  # pragma: no cover - interface
        raise NotImplementedError

    def done(self, status: int, body: bytes) -> bool:  # pragma: no cover - interface
        raise NotImplementedError


class RoundRobin(Plan):
    """Cycles over prepared requests; ok = HTTP 200 without a GraphQL "errors" key."""

    def __init__(self, requests: Sequence[bytes], start: int) -> None:
        self.requests = requests
        self.i = start

    def next_request(self) -> bytes:
        request = self.requests[self.i % len(self.requests)]
        self.i += 1
        return request

    def done(self, status: int, body: bytes) -> bool:
        return status == 200 and b'"errors"' not in body


@dataclass
class PhaseResult:
    name: str
    target: str
    concurrency: int
    seconds: float
    ok: int
    errors: int
    latencies_ms: list[float] = field(repr=False)
    cpu_s: dict[str, float] = field(default_factory=dict)
    first_error: str | None = None
    new_pg_connections: int | None = None  # connections PostgreSQL accepted meanwhile

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Summary:
    name: str
    target: str
    concurrency: int
    seconds: float
    requests: int
    errors: int
    rps: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    cpu_ms_per_request: dict[str, float]
    new_pg_connections: int | None
    rounds_rps: list[float]
    first_error: str | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (q in 0..100)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarize(rounds: Sequence[PhaseResult]) -> Summary:
    first = rounds[0]
    latencies = sorted(x for r in rounds for x in r.latencies_ms)
    seconds = sum(r.seconds for r in rounds)
    ok = sum(r.ok for r in rounds)
    cpu: dict[str, float] = {}
    for r in rounds:
        for k, v in r.cpu_s.items():
            cpu[k] = cpu.get(k, 0.0) + v
    return Summary(
        name=first.name,
        target=first.target,
        concurrency=first.concurrency,
        seconds=round(seconds, 3),
        requests=ok,
        errors=sum(r.errors for r in rounds),
        rps=ok / seconds if seconds else 0.0,
        mean_ms=sum(latencies) / len(latencies) if latencies else math.nan,
        p50_ms=percentile(latencies, 50),
        p90_ms=percentile(latencies, 90),
        p99_ms=percentile(latencies, 99),
        max_ms=latencies[-1] if latencies else math.nan,
        cpu_ms_per_request={k: round(v * 1000 / ok, 4) if ok else math.nan for k, v in cpu.items()},
        new_pg_connections=None
        if any(r.new_pg_connections is None for r in rounds)
        else sum(r.new_pg_connections or 0 for r in rounds),
        rounds_rps=[round(r.rps, 1) for r in rounds],
        first_error=next((r.first_error for r in rounds if r.first_error), None),
    )


# --- CPU accounting -----------------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu(pid: int) -> float:
    """user + system CPU seconds of a process (Linux /proc), 0.0 if unknown."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = raw.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def children_cpu(parent: int) -> float:
    """CPU seconds of `parent`, of its exited children (reaped: cutime + cstime) and of its
    live children: PostgreSQL's postmaster and all its backends, including those that
    ended during the measurement (connections a pool closed)."""
    try:
        fields = Path(f"/proc/{parent}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    total = sum(int(f) for f in fields[11:15]) / _TICKS
    try:
        entries = os.listdir("/proc")
    except OSError:
        return total
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        child = raw.rsplit(")", 1)[1].split()
        if int(child[1]) == parent:
            total += (int(child[11]) + int(child[12])) / _TICKS
    return total


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


CpuProbe = dict[str, Callable[[], float]]


def cpu_snapshot(probes: CpuProbe) -> dict[str, float]:
    return {name: probe() for name, probe in probes.items()}


# --- running a phase ----------------------------------------------------------------------


async def run_phase(
    *,
    name: str,
    target: str,
    host: str,
    port: int,
    plans: Sequence[Plan],
    seconds: float,
    probes: CpuProbe | None = None,
    record: bool = True,
) -> PhaseResult:
    """Run len(plans) concurrent workers for `seconds`; one connection each."""
    connections = [await Connection.open(host, port) for _ in plans]
    latencies: list[float] = []
    counts = {"ok": 0, "errors": 0}
    first_error: list[str] = []
    before = cpu_snapshot(probes or {})
    started = time.perf_counter()
    deadline = started + seconds
    clock = time.perf_counter

    async def worker(index: int, plan: Plan) -> None:
        conn = connections[index]
        while clock() < deadline:
            request = plan.next_request()
            t0 = clock()
            try:
                status, body = await conn.send(request)
            except (
                OSError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                HttpError,
            ) as exc:
                # the server dropped the connection: count it, reconnect, go on
                status, body = 0, repr(exc).encode()
                await conn.close()
                conn = connections[index] = await Connection.open(host, port)
            elapsed = clock() - t0
            if plan.done(status, body):
                counts["ok"] += 1
                if record:
                    latencies.append(elapsed * 1000)
            else:
                counts["errors"] += 1
                if not first_error:
                    first_error.append(f"HTTP {status}: {body[:300]!r}")

    try:
        await asyncio.gather(*(worker(i, plan) for i, plan in enumerate(plans)))
    finally:
        elapsed_total = time.perf_counter() - started
        after = cpu_snapshot(probes or {})
        for conn in connections:
            await conn.close()
    return PhaseResult(
        name=name,
        target=target,
        concurrency=len(plans),
        seconds=elapsed_total,
        ok=counts["ok"],
        errors=counts["errors"],
        latencies_ms=latencies,
        cpu_s={k: after[k] - before[k] for k in before},
        first_error=first_error[0] if first_error else None,
    )
