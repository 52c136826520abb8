"""The realtime benchmarks: `python -m bench.realtime [--quick]`.

Four questions about subscriptions (graphql-transport-ws at ws://host/graphql), each with
a target:

1. fan-out: 5,000 sockets each subscribed to its own order (`serviceOrderEvents`) and 200
   staff on their account stream (`staffNotifications`) on ONE server process, while
   `serviceOrderTransition` commits 50 times a second: p99 from commit to client receipt
   <= 100 ms, and every client receives every event of its stream exactly once, in order.
2. burst: one event to 2,000 subscribers of one order: p99 <= 500 ms.
3. two processes through Redis: subscribers on process A, mutations on process B: p99 at
   most 20 ms above the one-process figure.
4. memory: 10,000 idle subscribed websockets in one process: <= 1.5 GiB RSS.

How (details in bench/README.md, section "Realtime"):
- PostgreSQL: a throwaway server (tests/servers.py), or BENCH_DATABASE_URL's server, on
  which a database is created and dropped; Redis: a throwaway redis-server.
- Data: bench/realtime_seed.py (one template order made by the services, cloned in SQL).
- Servers: bench/realtime_server.py (`uvicorn --factory app:factory`, one worker, the
  environment as in production: DATABASE_URL, REDIS_URL or none, SECRET_KEY,
  SERVICE_ORDERS_ENV=test, LOG_LEVEL=WARNING), in subprocesses.
- Clients: bench/realtime_client.py processes (websockets on uvloop), driven over pipes.
- Mutations: this process posts `serviceOrderTransition` at a fixed rate (httpx), each
  with the note "r=<run>;t=<send time ns>".
- Phase 1, one process with the in-memory bus: connect 10,000 sockets (the fan-out set,
  the burst set and idle ones), read the server's RSS, then the fan-out run and the bursts.
- Phase 2, two processes A and B sharing Redis: the fan-out set connects to A; runs
  alternate between mutations on A (one process, through Redis) and on B (two processes).
- Every received stream is compared with the database: the order's events after the
  subscription's `after`, the staff member's notifications after theirs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import itertools
import json
import math
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvloop
from sqlalchemy.engine import make_url

from bench.realtime_seed import RealtimeData, gid

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
HOST = "127.0.0.1"
SECRET_KEY = "r" * 48
_TICKS = os.sysconf("SC_CLK_TCK")

TARGETS = {
    "fanout_p99_ms": 100.0,
    "burst_p99_ms": 500.0,
    "redis_extra_p99_ms": 20.0,
    "memory_rss_gib": 1.5,
}

ORDER_SUBSCRIPTION = (
    "subscription Events($id: ID!, $after: Int) { serviceOrderEvents(id: $id, after: $after) "
    "{ id sequence accountSequence type status at data actor { kind name } } }"
)
STAFF_SUBSCRIPTION = (
    "subscription Notes($after: Int) { staffNotifications(after: $after) { id isRead "
    "event { id orderId orderNumber sequence accountSequence type status at data } } }"
)
TRANSITION = (
    "mutation Move($input: ServiceOrderTransitionInput!) { serviceOrderTransition(input: $input)"
    " { serviceOrder { id status } userErrors { code message } } }"
)
NEXT_STATUS = {"PENDING": "REPAIRING", "REPAIRING": "TESTING", "TESTING": "REPAIRING"}


def log(message: str) -> None:
    print(f"[realtime {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- options ----------------------------------------------------------------------------------


@dataclass
class Options:
    quick: bool
    fanout: int  # order subscribers, one order each
    staff: int  # staffNotifications subscribers, one staff member each
    leads: int  # of which managers (notified of every status change)
    rate: float  # transitions per second
    seconds: float  # fan-out run length (one process, in-memory bus)
    burst_subscribers: int
    bursts: int
    memory_sockets: int  # sockets open on the phase-1 server (>= the three sets above)
    redis_rounds: int
    redis_seconds: float
    redis_rates: list[float]
    redis_burst: bool
    clients: int  # client processes
    connect_concurrency: int  # handshakes in flight per client process
    strict: bool
    out: Path
    label: str
    server_gc_threshold: str | None

    @property
    def idle(self) -> int:
        return max(0, self.memory_sockets - self.fanout - self.staff - self.burst_subscribers)


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.realtime", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small numbers, a few seconds each")
    parser.add_argument("--fanout", type=int, help="order subscribers (5000)")
    parser.add_argument("--staff", type=int, help="staff notification subscribers (200)")
    parser.add_argument("--leads", type=int, help="managers among the staff (10)")
    parser.add_argument("--rate", type=float, help="transitions per second (50)")
    parser.add_argument("--seconds", type=float, help="fan-out run, one process (30)")
    parser.add_argument("--burst-subscribers", type=int, help="subscribers of one order (2000)")
    parser.add_argument("--bursts", type=int, help="events sent to them, one at a time (10)")
    parser.add_argument("--memory-sockets", type=int, help="sockets for the RSS (10000)")
    parser.add_argument("--redis-rounds", type=int, help="rounds of (A, B) runs (2)")
    parser.add_argument("--redis-seconds", type=float, help="length of each such run (12)")
    parser.add_argument(
        "--redis-rates",
        help="comma-separated transition rates for phase 2 (default: --rate, then 20)",
    )
    parser.add_argument(
        "--no-redis-burst", action="store_true", help="skip the burst through Redis"
    )
    parser.add_argument("--clients", type=int, default=2, help="client processes (2)")
    parser.add_argument("--connect-concurrency", type=int, default=32)
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--label", default="", help="added to the result file names")
    parser.add_argument(
        "--server-gc-threshold",
        help="an experiment, not the app as configured: the servers call "
        "gc.set_threshold(<a,b,c>) before starting, e.g. 100000,50,100",
    )
    a = parser.parse_args(argv)
    q = bool(a.quick)

    def pick(value: Any, quick: Any, full: Any) -> Any:
        return value if value is not None else (quick if q else full)

    rate = float(pick(a.rate, 20.0, 50.0))
    return Options(
        quick=q,
        fanout=pick(a.fanout, 200, 5000),
        staff=pick(a.staff, 20, 200),
        leads=pick(a.leads, 3, 10),
        rate=rate,
        seconds=pick(a.seconds, 3.0, 30.0),
        burst_subscribers=pick(a.burst_subscribers, 100, 2000),
        bursts=pick(a.bursts, 3, 10),
        memory_sockets=pick(a.memory_sockets, 400, 10000),
        redis_rounds=pick(a.redis_rounds, 1, 2),
        redis_seconds=pick(a.redis_seconds, 2.0, 12.0),
        redis_rates=[float(x) for x in a.redis_rates.split(",")]
        if a.redis_rates
        else [rate, 20.0]
        if rate > 20
        else [rate],
        redis_burst=not a.no_redis_burst,
        clients=max(1, a.clients),
        connect_concurrency=a.connect_concurrency,
        strict=a.strict,
        out=a.out,
        label=a.label,
        server_gc_threshold=a.server_gc_threshold,
    )


# --- /proc ------------------------------------------------------------------------------------


def process_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def tree_cpu(parent: int) -> float:
    """A process, its reaped children and its live children (PostgreSQL's backends)."""
    try:
        fields = Path(f"/proc/{parent}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    total = sum(int(f) for f in fields[11:15]) / _TICKS
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            child = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(child[1]) == parent:
            total += (int(child[11]) + int(child[12])) / _TICKS
    return total


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class CpuMeter:
    """CPU seconds of named processes between start() and stop(), as % of one core."""

    def __init__(self, probes: dict[str, Callable[[], float]]) -> None:
        self.probes = probes
        self.before: dict[str, float] = {}
        self.started = 0.0

    def start(self) -> None:
        self.started = time.monotonic()
        self.before = {k: p() for k, p in self.probes.items()}

    def stop(self) -> dict[str, float]:
        elapsed = max(1e-6, time.monotonic() - self.started)
        return {k: round(100 * (p() - self.before[k]) / elapsed, 1) for k, p in self.probes.items()}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --- infrastructure ---------------------------------------------------------------------------


@dataclass
class Infra:
    database_url: str  # SQLAlchemy URL of the benchmark's database
    dsn: str  # asyncpg DSN of the same
    redis_url: str
    postmaster_pid: int | None
    redis_pid: int | None


@contextlib.contextmanager
def infrastructure() -> Iterator[Infra]:
    from tests.servers import PostgresServer, RedisServer

    directory = Path(tempfile.mkdtemp(prefix="bench-rt-"))
    name = f"bench_realtime_{os.getpid()}"
    pg_server: PostgresServer | None = None
    redis: RedisServer | None = None
    given = os.environ.get("BENCH_DATABASE_URL")
    try:
        if given:
            url = make_url(given).set(drivername="postgresql")
            admin = url.render_as_string(hide_password=False)
            log(f"using the PostgreSQL server of BENCH_DATABASE_URL ({url.host}:{url.port})")
            postmaster = None
        else:
            pg_server = PostgresServer.start(directory / "pg")
            admin = f"postgresql://postgres@127.0.0.1:{pg_server.port}/postgres"
            pid_file = directory / "pg" / "data" / "postmaster.pid"
            postmaster = int(pid_file.read_text().split()[0])
            log(f"started a throwaway PostgreSQL on port {pg_server.port}")
        dsn = make_url(admin).set(database=name).render_as_string(hide_password=False)
        asyncio.run(_recreate_database(admin, name, create=True))
        redis_dir = directory / "redis"
        redis_dir.mkdir()
        redis = RedisServer.create(redis_dir)
        log(f"started a throwaway Redis on port {redis.port}")
        yield Infra(
            database_url=dsn.replace("postgresql://", "postgresql+asyncpg://", 1),
            dsn=dsn,
            redis_url=redis.url,
            postmaster_pid=postmaster,
            redis_pid=redis.process.pid if redis.process else None,
        )
    finally:
        if redis is not None:
            redis.stop()
        if given:
            with contextlib.suppress(Exception):
                asyncio.run(_recreate_database(admin, name, create=False))
        if pg_server is not None:
            with contextlib.suppress(Exception):
                pg_server.stop()
        shutil.rmtree(directory, ignore_errors=True)


async def _recreate_database(admin_dsn: str, name: str, *, create: bool) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def seed_data(opts: Options, infra: Infra) -> RealtimeData:
    from bench.realtime_seed import seed
    from db.engine import Database

    db = Database(infra.database_url)
    try:
        return await seed(
            db,
            orders_count=1 + opts.fanout + opts.idle,
            staff_count=opts.staff,
            leads=min(opts.leads, opts.staff),
        )
    finally:
        await db.dispose()


# --- servers ----------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_file: Path
    gc_file: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def http(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://{HOST}:{self.port}/graphql"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self) -> str:
        try:
            return self.log_file.read_text()[-3000:]
        except OSError:
            return ""

    def gc_report(self, windows: dict[str, tuple[float, float]]) -> dict[str, Any] | None:
        """After stop(): the server's garbage-collector pauses (bench/realtime_server.py),
        with the long ones (>= 20 ms) counted per measurement window."""
        try:
            report: dict[str, Any] = json.loads(self.gc_file.read_text())
        except (OSError, ValueError):
            return None
        pauses = report.pop("pauses_over_20ms", [])
        report["longest_pauses_ms"] = sorted((p[2] for p in pauses), reverse=True)[:10]
        # [start, end] wall clock of each full (oldest-generation) collection
        report["full_pauses"] = [[p[0] - p[2] / 1000, p[0]] for p in pauses if p[1] == 2]
        report["pauses_over_20ms_in_runs"] = {
            name: [
                {"gen": p[1], "ms": p[2], "at_s": round(p[0] - start, 2)}
                for p in pauses
                if start - 1 <= p[0] <= end
            ]
            for name, (start, end) in windows.items()
        }
        return report


GC_THRESHOLD: str | None = None  # set from --server-gc-threshold


def start_server(name: str, infra: Infra, redis: bool, logs: Path) -> Server:
    """Starts the server and waits for /healthz (blocking: nothing else runs meanwhile)."""
    from tests.servers import free_port

    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": infra.database_url,
        "SECRET_KEY": SECRET_KEY,
        "SERVICE_ORDERS_ENV": "test",
        "LOG_LEVEL": "WARNING",
        "BENCH_GC_STATS": str(logs / f"{name}-gc.json"),
    }
    env.pop("REDIS_URL", None)
    env.pop("BENCH_GC_THRESHOLD", None)
    if GC_THRESHOLD:
        env["BENCH_GC_THRESHOLD"] = GC_THRESHOLD
    if redis:
        env["REDIS_URL"] = infra.redis_url
    log_file = logs / f"{name}.log"
    with open(log_file, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.realtime_server", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(name, port, process, log_file, logs / f"{name}-gc.json")
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server {name} exited at start:\n{server.log_tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.http}/healthz", timeout=2).status_code == 200:
                return server
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"server {name} did not start:\n{server.log_tail()}")
        time.sleep(0.1)


async def settle(pids: list[int], *, idle_percent: float = 8.0, limit: float = 60.0) -> float:
    """Waits until the processes use less than `idle_percent` of a core (two 0.5 s samples
    in a row) or `limit` seconds passed; returns the seconds waited."""
    started = time.monotonic()
    quiet = 0
    while time.monotonic() - started < limit:
        before = sum(process_cpu(p) for p in pids)
        await asyncio.sleep(0.5)
        used = 100 * (sum(process_cpu(p) for p in pids) - before) / 0.5
        quiet = quiet + 1 if used < idle_percent else 0
        if quiet >= 2:
            break
    return time.monotonic() - started


# --- client processes -------------------------------------------------------------------------


@dataclass
class SubSpec:
    key: str
    kind: str  # "order" or "staff"
    group: str  # "fanout", "staff", "burst", "idle"
    token: str
    order_id: int | None
    user_id: int | None
    after: int

    def wire(self) -> dict[str, Any]:
        variables: dict[str, Any]
        if self.kind == "staff":
            query, variables = STAFF_SUBSCRIPTION, {"after": self.after}
        else:
            assert self.order_id is not None
            query, variables = ORDER_SUBSCRIPTION, {"id": gid(self.order_id), "after": self.after}
        return {
            "key": self.key,
            "kind": self.kind,
            "token": self.token,
            "query": query,
            "variables": variables,
        }


class ClientProcess:
    def __init__(self, index: int, process: asyncio.subprocess.Process) -> None:
        self.index = index
        self.process = process
        self.lock = asyncio.Lock()

    @classmethod
    async def start(cls, index: int) -> ClientProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.realtime_client",
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 28,
        )
        return cls(index, process)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def call(self, command: dict[str, Any]) -> dict[str, Any]:
        async with self.lock:
            assert self.process.stdin is not None and self.process.stdout is not None
            self.process.stdin.write(json.dumps(command).encode() + b"\n")
            await self.process.stdin.drain()
            line = await self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"client process {self.index} exited")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"client process {self.index}: {answer['error']}")
        return answer

    async def stop(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.call({"cmd": "close"}), 60)
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            await self.process.wait()


class Clients:
    def __init__(self, processes: list[ClientProcess]) -> None:
        self.processes = processes
        self.specs: dict[str, SubSpec] = {}

    @classmethod
    async def start(cls, count: int) -> Clients:
        return cls([await ClientProcess.start(i) for i in range(count)])

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    async def connect(self, url: str, specs: list[SubSpec], concurrency: int) -> dict[str, Any]:
        """Connects `specs`, spread over the processes; returns counts and the rate."""
        for spec in specs:
            self.specs[spec.key] = spec
        shares: list[list[dict[str, Any]]] = [[] for _ in self.processes]
        for i, spec in enumerate(specs):
            shares[i % len(shares)].append(spec.wire())
        started = time.monotonic()
        answers = await asyncio.gather(
            *(
                p.call({"cmd": "connect", "url": url, "subs": share, "concurrency": concurrency})
                for p, share in zip(self.processes, shares, strict=True)
            )
        )
        seconds = time.monotonic() - started
        failed = sum(a["failed_count"] for a in answers)
        if failed:
            examples = [f for a in answers for f in a["failed"]]
            raise RuntimeError(f"{failed} of {len(specs)} sockets failed to connect: {examples}")
        return {
            "sockets": len(specs),
            "seconds": round(seconds, 2),
            "per_second": round(len(specs) / seconds, 1) if seconds else None,
        }

    async def collect(self) -> dict[str, Any]:
        answers = await asyncio.gather(*(p.call({"cmd": "collect"}) for p in self.processes))
        merged: dict[str, Any] = {"seqs": {}, "samples": [], "errors": {}, "closed": {}}
        for a in answers:
            merged["seqs"].update(a["seqs"])
            merged["samples"].extend(a["samples"])
            merged["errors"].update(a["errors"])
            merged["closed"].update(a["closed"])
        return merged

    async def stats(self) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(p.call({"cmd": "stats"}) for p in self.processes)))

    async def stop(self) -> None:
        await asyncio.gather(*(p.stop() for p in self.processes))


# --- the mutation driver ----------------------------------------------------------------------


@dataclass
class DriverRun:
    tag: str
    sent: int = 0
    ok: int = 0
    failed: int = 0
    first_error: str | None = None
    seconds: float = 0.0
    mutation_ms: list[float] = field(default_factory=list)
    late_ticks: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "ok": self.ok,
            "failed": self.failed,
            "first_error": self.first_error,
            "seconds": round(self.seconds, 2),
            "rate": round(self.sent / self.seconds, 1) if self.seconds else None,
            "late_ticks": self.late_ticks,
            "mutation_ms": percentiles(self.mutation_ms),
        }


class Driver:
    """Posts serviceOrderTransition as the owner; each order cycles PENDING -> REPAIRING ->
    TESTING -> REPAIRING ... (the state is tracked here; one move per order at a time)."""

    MAX_IN_FLIGHT = 64

    def __init__(self, token: str) -> None:
        self.headers = {"authorization": f"Bearer {token}"}
        self.state: dict[int, str] = {}
        self.busy: set[int] = set()

    async def move(self, http: httpx.AsyncClient, base: str, order_id: int, run: DriverRun) -> None:
        to = NEXT_STATUS[self.state.get(order_id, "PENDING")]
        note = f"r={run.tag};t={time.time_ns()}"
        move = {"id": gid(order_id), "to": to, "note": note}
        body = {"query": TRANSITION, "variables": {"input": move}}
        started = time.monotonic()
        self.busy.add(order_id)
        run.sent += 1
        try:
            response = await http.post(f"{base}/graphql", json=body, headers=self.headers)
            payload = response.json()
            result = (payload.get("data") or {}).get("serviceOrderTransition") or {}
            order = result.get("serviceOrder") or {}
            if response.status_code != 200 or payload.get("errors") or result.get("userErrors"):
                raise RuntimeError(f"{response.status_code} {json.dumps(payload)[:300]}")
            if order.get("status") != to:
                raise RuntimeError(f"order {order_id} is {order.get('status')}, not {to}")
            self.state[order_id] = to
            run.ok += 1
            run.mutation_ms.append((time.monotonic() - started) * 1000)
        except Exception as exc:
            run.failed += 1
            run.first_error = run.first_error or repr(exc)
            self.state.pop(order_id, None)
            self.busy.add(order_id)  # unknown state: never moved again
            return
        self.busy.discard(order_id)

    async def steady(
        self, base: str, tag: str, orders: list[int], rate: float, seconds: float
    ) -> DriverRun:
        """`rate` moves a second for `seconds`, on a fixed schedule (open loop)."""
        run = DriverRun(tag)
        total = max(1, int(rate * seconds))
        queue = list(orders)
        random.Random(len(tag)).shuffle(queue)
        cursor = 0
        gate = asyncio.Semaphore(self.MAX_IN_FLIGHT)
        tasks: list[asyncio.Task[None]] = []
        loop = asyncio.get_running_loop()
        limits = httpx.Limits(max_connections=self.MAX_IN_FLIGHT)
        async with httpx.AsyncClient(timeout=60, limits=limits) as http:

            async def one(order_id: int) -> None:
                try:
                    await self.move(http, base, order_id, run)
                finally:
                    gate.release()

            start = loop.time()
            for i in range(total):
                delay = start + i / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -0.05:
                    run.late_ticks += 1
                await gate.acquire()
                for _ in range(len(queue)):
                    candidate = queue[cursor % len(queue)]
                    cursor += 1
                    if candidate not in self.busy:
                        break
                else:
                    gate.release()
                    continue
                tasks.append(asyncio.create_task(one(candidate)))
            run.seconds = loop.time() - start
            await asyncio.gather(*tasks)
        return run

    async def bursts(
        self, base: str, tag: str, order_id: int, count: int, spacing: float
    ) -> DriverRun:
        """`count` single moves of one order, `spacing` seconds apart."""
        run = DriverRun(tag)
        async with httpx.AsyncClient(timeout=60) as http:
            started = time.monotonic()
            for i in range(count):
                due = started + i * spacing
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                await self.move(http, base, order_id, run)
            run.seconds = time.monotonic() - started
        return run


async def warm_up(server: Server, driver: Driver, token: str, order_id: int) -> None:
    """One subscription receives one event: imports, caches and pools are ready before the
    RSS baseline and the measurements."""
    from websockets.asyncio.client import connect
    from websockets.typing import Subprotocol

    async with connect(server.ws, subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        )
        await asyncio.wait_for(ws.recv(), 30)
        subscribe = {
            "id": "w",
            "type": "subscribe",
            "payload": {"query": ORDER_SUBSCRIPTION, "variables": {"id": gid(order_id)}},
        }
        await ws.send(json.dumps(subscribe))
        await asyncio.sleep(0.5)
        run = DriverRun("warmup")
        async with httpx.AsyncClient(timeout=60) as http:
            await driver.move(http, server.http, order_id, run)
        if run.failed:
            raise RuntimeError(f"warm-up mutation failed: {run.first_error}")
        message = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if message.get("type") != "next":
            raise RuntimeError(f"warm-up subscription got {message}")


# --- checking and summarising -----------------------------------------------------------------


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "p999": None, "max": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)], 2)

    return {
        "n": len(ordered),
        "p50": at(0.50),
        "p90": at(0.90),
        "p99": at(0.99),
        "p999": at(0.999),
        "max": round(ordered[-1], 2),
    }


async def snapshot(infra: Infra, account_id: int) -> tuple[dict[int, int], int]:
    """Each order's last event sequence, and the account's."""
    conn = await asyncpg.connect(infra.dsn)
    try:
        rows = await conn.fetch(
            "SELECT id, last_event_seq FROM service_orders WHERE account_id = $1", account_id
        )
        account = await conn.fetchval(
            "SELECT last_event_seq FROM accounts WHERE id = $1", account_id
        )
    finally:
        await conn.close()
    return {r["id"]: r["last_event_seq"] for r in rows}, int(account)


async def expected_streams(infra: Infra, specs: list[SubSpec]) -> dict[str, list[int]]:
    """What each subscription must have received: the order's sequences after `after`, or
    the staff member's notification account sequences after `after`."""
    conn = await asyncpg.connect(infra.dsn)
    try:
        orders = {
            r["id"]: r["last_event_seq"]
            for r in await conn.fetch(
                "SELECT id, last_event_seq FROM service_orders WHERE id = ANY($1::bigint[])",
                sorted({s.order_id for s in specs if s.order_id is not None}),
            )
        }
        notes: dict[int, list[int]] = defaultdict(list)
        staff = [s for s in specs if s.kind == "staff"]
        if staff:
            low = min(s.after for s in staff)
            for r in await conn.fetch(
                "SELECT user_id, account_seq FROM notifications "
                "WHERE user_id = ANY($1::bigint[]) AND account_seq > $2 "
                "ORDER BY user_id, account_seq",
                sorted({s.user_id for s in staff if s.user_id is not None}),
                low,
            ):
                notes[r["user_id"]].append(int(r["account_seq"]))
    finally:
        await conn.close()
    out: dict[str, list[int]] = {}
    for s in specs:
        if s.kind == "staff":
            assert s.user_id is not None
            out[s.key] = [q for q in notes[s.user_id] if q > s.after]
        else:
            assert s.order_id is not None
            out[s.key] = list(range(s.after + 1, orders[s.order_id] + 1))
    return out


def compare_streams(
    specs: list[SubSpec], got: dict[str, list[int]], expected: dict[str, list[int]]
) -> dict[str, Any]:
    """Exactly once and in order, for every subscription."""
    missing = duplicates = out_of_order = unexpected = 0
    bad: list[str] = []
    delivered = 0
    for s in specs:
        received = got.get(s.key, [])
        wanted = expected[s.key]
        delivered += len(received)
        if received == wanted:
            continue
        seen = set(received)
        missing += len(set(wanted) - seen)
        duplicates += len(received) - len(seen)
        unexpected += len(seen - set(wanted))
        if any(b <= a for a, b in itertools.pairwise(received)):
            out_of_order += 1
        if len(bad) < 5:
            bad.append(f"{s.key}: got {received[:12]}..., expected {wanted[:12]}...")
    return {
        "subscriptions": len(specs),
        "delivered": delivered,
        "expected": sum(len(expected[s.key]) for s in specs),
        "missing": missing,
        "duplicates": duplicates,
        "unexpected": unexpected,
        "out_of_order_streams": out_of_order,
        "examples": bad,
        "ok": missing == duplicates == unexpected == out_of_order == 0,
    }


async def collect_and_check(
    clients: Clients, infra: Infra, specs: list[SubSpec], expected_count: int
) -> tuple[dict[str, Any], list[list[Any]]]:
    """Collects (waiting up to 15 s for stragglers) and compares with the database."""
    expected = await expected_streams(infra, specs)
    samples: list[list[Any]] = []
    deadline = time.monotonic() + 15
    while True:
        got = await clients.collect()
        samples += got["samples"]
        check = compare_streams(specs, got["seqs"], expected)
        if check["ok"] or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    check["stream_errors"] = dict(list(got["errors"].items())[:5])
    check["stream_errors_count"] = len(got["errors"])
    check["closed_sockets"] = len(got["closed"])
    check["closed_examples"] = dict(list(got["closed"].items())[:5])
    check["ok"] = check["ok"] and not got["errors"] and not got["closed"]
    check["expected_events_from_driver"] = expected_count
    return check, samples


def overlaps(pauses: list[list[float]], start: float, end: float) -> bool:
    return any(p_start < end and p_end > start for p_start, p_end in pauses)


def latency_summary(
    samples: list[list[Any]], tag_prefix: str, pauses: list[list[float]] | None = None
) -> dict[str, Any]:
    """Percentiles since commit and since send; with the server's full-collection pauses,
    also those of the deliveries whose commit-to-arrival interval missed every pause."""
    rows = [s for s in samples if str(s[0]).startswith(tag_prefix)]
    out: dict[str, Any] = {
        "since_commit_ms": percentiles([r[2] for r in rows]),
        "since_send_ms": percentiles([r[3] for r in rows if r[3] >= 0]),
    }
    for kind in ("order", "staff"):
        part = [r[2] for r in rows if r[1] == kind]
        if part:
            out[f"{kind}_since_commit_ms"] = percentiles(part)
    if pauses is not None and rows:
        clear = [r[2] for r in rows if not overlaps(pauses, r[4] - r[2] / 1000, r[4])]
        out["since_commit_ms_outside_full_gc"] = percentiles(clear)
        out["share_overlapping_full_gc"] = round(1 - len(clear) / len(rows), 4)
    return out


def burst_summary(
    samples: list[list[Any]], tag_prefix: str, pauses: list[list[float]] | None = None
) -> dict[str, Any]:
    """Per burst: p99 and the last arrival of the order's subscribers."""
    by_burst: dict[str, list[list[Any]]] = defaultdict(list)
    for s in samples:
        if str(s[0]).startswith(tag_prefix) and s[1] == "order":
            by_burst[str(s[0])].append(s)
    per = [percentiles([r[2] for r in v]) for _, v in sorted(by_burst.items())]
    pooled = [r[2] for v in by_burst.values() for r in v]
    out = {
        "bursts": len(per),
        "pooled_since_commit_ms": percentiles(pooled),
        "worst_burst_p99_ms": max((p["p99"] or 0.0) for p in per) if per else None,
        "per_burst_p99_ms": [p["p99"] for p in per],
        "per_burst_last_ms": [p["max"] for p in per],
        "per_burst_receivers": [p["n"] for p in per],
    }
    if pauses is not None:
        hit = [
            any(overlaps(pauses, r[4] - r[2] / 1000, r[4]) for r in v)
            for _, v in sorted(by_burst.items())
        ]
        clear = [
            r[2]
            for (_, v), h in zip(sorted(by_burst.items()), hit, strict=True)
            if not h
            for r in v
        ]
        out["bursts_overlapping_full_gc"] = sum(hit)
        out["pooled_since_commit_ms_outside_full_gc"] = percentiles(clear)
    return out


# --- the phases -------------------------------------------------------------------------------


@dataclass
class Plan:
    """Which orders and staff each set of subscriptions uses."""

    burst_order: int
    fanout_orders: list[int]
    idle_orders: list[int]


def make_plan(opts: Options, data: RealtimeData) -> Plan:
    ids = data.order_ids
    return Plan(
        burst_order=ids[0],
        fanout_orders=ids[1 : 1 + opts.fanout],
        idle_orders=ids[1 + opts.fanout : 1 + opts.fanout + opts.idle],
    )


def order_specs(
    group: str, orders: list[int], data: RealtimeData, seqs: dict[int, int], prefix: str
) -> list[SubSpec]:
    tokens = [s.token for s in data.staff]
    return [
        SubSpec(
            key=f"{prefix}{group}:{i}",
            kind="order",
            group=group,
            token=tokens[i % len(tokens)],
            order_id=order_id,
            user_id=None,
            after=seqs[order_id],
        )
        for i, order_id in enumerate(orders)
    ]


def staff_specs(data: RealtimeData, account_seq: int, prefix: str) -> list[SubSpec]:
    return [
        SubSpec(
            key=f"{prefix}staff:{s.user_id}",
            kind="staff",
            group="staff",
            token=s.token,
            order_id=None,
            user_id=s.user_id,
            after=account_seq,
        )
        for s in data.staff
    ]


def cpu_probes(infra: Infra, servers: list[Server], clients: Clients) -> CpuMeter:
    probes: dict[str, Callable[[], float]] = {}
    for server in servers:
        probes[f"server_{server.name}"] = functools.partial(process_cpu, server.pid)
    if infra.postmaster_pid is not None:
        probes["postgres"] = functools.partial(tree_cpu, infra.postmaster_pid)
    if infra.redis_pid is not None:
        probes["redis"] = functools.partial(process_cpu, infra.redis_pid)
    for i, pid in enumerate(clients.pids):
        probes[f"client_{i}"] = functools.partial(process_cpu, pid)
    probes["driver"] = functools.partial(process_cpu, os.getpid())
    return CpuMeter(probes)


async def connect_set(
    clients: Clients,
    server: Server,
    specs: list[SubSpec],
    opts: Options,
    meter: CpuMeter,
    what: str,
) -> dict[str, Any]:
    log(f"  connecting {len(specs)} sockets ({what}) to {server.name}")
    meter.start()
    info = await clients.connect(server.ws, specs, opts.connect_concurrency)
    info["cpu_percent"] = meter.stop()
    log(f"    {info['sockets']} sockets in {info['seconds']} s ({info['per_second']}/s)")
    return info


async def phase_one(
    opts: Options, infra: Infra, data: RealtimeData, plan: Plan, driver: Driver, logs: Path
) -> dict[str, Any]:
    """One process, in-memory bus: the fan-out set and its run, then the burst set and the
    bursts, then idle sockets up to `memory_sockets` for the RSS."""
    out: dict[str, Any] = {"bus": "in-memory (no REDIS_URL)", "load_average_start": load_average()}
    windows: dict[str, tuple[float, float]] = {}
    server = start_server("one", infra, redis=False, logs=logs)
    clients = await Clients.start(opts.clients)
    try:
        log("phase 1: one process, in-memory bus")
        await warm_up(server, driver, data.staff[0].token, plan.burst_order)
        await settle([server.pid], limit=10)
        rss_start = rss_kib(server.pid)
        seqs, account_seq = await snapshot(infra, data.account_id)
        fan_specs = order_specs("fanout", plan.fanout_orders, data, seqs, "m") + staff_specs(
            data, account_seq, "m"
        )
        burst_specs = order_specs(
            "burst", [plan.burst_order] * opts.burst_subscribers, data, seqs, "m"
        )
        idle_specs = order_specs("idle", plan.idle_orders, data, seqs, "m")
        meter = cpu_probes(infra, [server], clients)
        wall = time.time()
        out["connect"] = await connect_set(clients, server, fan_specs, opts, meter, "fan-out set")
        await settle([server.pid, *clients.pids], limit=60)
        windows["connect"] = (wall, time.time())
        rss_fan = rss_kib(server.pid)

        log(f"  fan-out: {opts.rate:g} transitions/s for {opts.seconds:g} s")
        meter.start()
        wall = time.time()
        fan = await driver.steady(server.http, "m-fan", plan.fanout_orders, opts.rate, opts.seconds)
        await asyncio.sleep(1.0)
        windows["fanout"] = (wall, time.time())
        out["fanout_driver"] = fan.as_dict()
        out["fanout_cpu_percent"] = meter.stop()
        log(f"    {fan.ok} transitions ({fan.failed} failed), {out['fanout_driver']['rate']}/s")

        out["connect_burst"] = await connect_set(
            clients, server, burst_specs, opts, meter, "burst set"
        )
        await settle([server.pid, *clients.pids], limit=30)
        log(f"  burst: {opts.bursts} events to {opts.burst_subscribers} subscribers of one order")
        meter.start()
        wall = time.time()
        bursts = []
        for i in range(opts.bursts):
            bursts.append(
                await driver.bursts(server.http, f"m-burst-{i:02d}", plan.burst_order, 1, 0)
            )
            await asyncio.sleep(0.5 if opts.quick else 1.5)
        windows["burst"] = (wall, time.time())
        out["burst_cpu_percent"] = meter.stop()
        out["burst_driver"] = {
            "sent": sum(b.sent for b in bursts),
            "failed": sum(b.failed for b in bursts),
            "first_error": next((b.first_error for b in bursts if b.first_error), None),
            "mutation_ms": [round(b.mutation_ms[0], 1) for b in bursts if b.mutation_ms],
        }

        if idle_specs:
            out["connect_idle"] = await connect_set(
                clients, server, idle_specs, opts, meter, "idle set"
            )
        waited = await settle([server.pid, *clients.pids], limit=60)
        rss_end = rss_kib(server.pid)
        sockets = len(fan_specs) + len(burst_specs) + len(idle_specs)
        out["memory"] = {
            "rss_start_kib": rss_start,
            "fanout_set_sockets": len(fan_specs),
            "rss_with_fanout_set_kib": rss_fan,
            "per_socket_kib_before_traffic": round((rss_fan - rss_start) / len(fan_specs), 1),
            "sockets": sockets,
            "rss_end_kib": rss_end,
            "rss_end_gib": round(rss_end / 2**20, 3),
            "per_socket_kib": round((rss_end - rss_start) / sockets, 1),
            "settled_after_s": round(waited, 1),
            "client_rss_kib": [c["rss_kib"] for c in await clients.stats()],
        }
        log(
            f"  server RSS {rss_start / 1024:.0f} MiB at start, {rss_fan / 1024:.0f} MiB with "
            f"{len(fan_specs)} sockets, {rss_end / 1024:.0f} MiB with {sockets} "
            f"({out['memory']['per_socket_kib']} KiB per socket)"
        )
        specs = fan_specs + burst_specs + idle_specs
        check, samples = await collect_and_check(clients, infra, specs, 0)
        out["delivery"] = check
        out["_samples"] = samples  # summarised once the server's GC report exists
        out["load_average_end"] = load_average()
        failures = fan.failed + out["burst_driver"]["failed"]
        if failures:
            out["driver_failures"] = failures
        return out
    except Exception:
        print(f"--- server log (tail) ---\n{server.log_tail()}", file=sys.stderr)
        raise
    finally:
        await clients.stop()
        server.stop()
        out["server_gc"] = server.gc_report(windows)


async def phase_two(
    opts: Options, infra: Infra, data: RealtimeData, plan: Plan, driver: Driver, logs: Path
) -> dict[str, Any]:
    """Two processes sharing Redis; subscribers on A; mutations on A (one process, through
    Redis) and on B (two processes), alternating, at each rate; then bursts sent to B."""
    out: dict[str, Any] = {"bus": "Redis (REDIS_URL)", "load_average_start": load_average()}
    windows: dict[str, tuple[float, float]] = {}
    a = start_server("A", infra, redis=True, logs=logs)
    b = start_server("B", infra, redis=True, logs=logs)
    clients = await Clients.start(opts.clients)
    try:
        log("phase 2: processes A and B sharing Redis; subscribers on A")
        await warm_up(a, driver, data.staff[0].token, plan.burst_order)
        await warm_up(b, driver, data.staff[0].token, plan.burst_order)
        seqs, account_seq = await snapshot(infra, data.account_id)
        specs = order_specs("fanout", plan.fanout_orders, data, seqs, "r") + staff_specs(
            data, account_seq, "r"
        )
        meter = cpu_probes(infra, [a, b], clients)
        out["connect"] = await connect_set(clients, a, specs, opts, meter, "fan-out set")
        await settle([a.pid, b.pid, *clients.pids], limit=60)
        runs: list[DriverRun] = []
        out["rates"] = {}
        for rate in opts.redis_rates:
            per: dict[str, Any] = {}
            for r in range(opts.redis_rounds):
                order = ["1p", "2p"] if r % 2 == 0 else ["2p", "1p"]
                for name in order:
                    server = a if name == "1p" else b
                    tag = f"r-{name}@{rate:g}-{r}"
                    log(
                        f"  round {r + 1}: mutations on {server.name}, {rate:g}/s for "
                        f"{opts.redis_seconds:g} s"
                    )
                    await settle([a.pid, b.pid], limit=10)
                    meter.start()
                    wall = time.time()
                    run = await driver.steady(
                        server.http, tag, plan.fanout_orders, rate, opts.redis_seconds
                    )
                    await asyncio.sleep(1.0)
                    windows[tag] = (wall, time.time())
                    runs.append(run)
                    slot = per.setdefault(name, {"driver": [], "cpu_percent": []})
                    slot["driver"].append(run.as_dict())
                    slot["cpu_percent"].append(meter.stop())
            out["rates"][f"{rate:g}"] = per
        if opts.redis_burst:
            burst_specs = order_specs(
                "burst", [plan.burst_order] * opts.burst_subscribers, data, seqs, "r"
            )
            out["connect_burst"] = await connect_set(
                clients, a, burst_specs, opts, meter, "burst set"
            )
            specs += burst_specs
            await settle([a.pid, *clients.pids], limit=30)
            log(f"  burst through Redis (mutations on B): {opts.bursts} events")
            wall = time.time()
            for i in range(opts.bursts):
                runs.append(await driver.bursts(b.http, f"r-burst-{i:02d}", plan.burst_order, 1, 0))
                await asyncio.sleep(0.5 if opts.quick else 1.5)
            windows["burst"] = (wall, time.time())
        check, samples = await collect_and_check(clients, infra, specs, 0)
        out["delivery"] = check
        out["_samples"] = samples
        failures = sum(run.failed for run in runs)
        if failures:
            out["driver_failures"] = failures
        out["load_average_end"] = load_average()
        return out
    except Exception:
        for server in (a, b):
            print(f"--- server {server.name} log (tail) ---\n{server.log_tail()}", file=sys.stderr)
        raise
    finally:
        await clients.stop()
        a.stop()
        b.stop()
        out["server_gc"] = {"A": a.gc_report(windows), "B": b.gc_report(windows)}


# --- report -----------------------------------------------------------------------------------


def verdicts(opts: Options, p1: dict[str, Any], p2: dict[str, Any]) -> dict[str, Any]:
    def met(value: float | None, limit: float) -> bool:
        return value is not None and value <= limit

    fan = p1["fanout"]["since_commit_ms"]["p99"]
    burst = p1["burst"]["pooled_since_commit_ms"]["p99"]
    rss = p1["memory"]["rss_end_gib"]
    redis: dict[str, Any] = {}
    for rate_key, per in p2["rates"].items():
        one = per["1p"]["since_commit_ms"]
        two = per["2p"]["since_commit_ms"]
        extra = (
            None if one["p99"] is None or two["p99"] is None else round(two["p99"] - one["p99"], 2)
        )
        # a comparison only means something at a rate both set-ups kept up with
        sustained = all(
            (d["rate"] or 0) >= 0.95 * float(rate_key)
            for n in ("1p", "2p")
            for d in per[n]["driver"]
        )
        redis[rate_key] = {
            "two_processes_p99_ms": two["p99"],
            "one_process_redis_p99_ms": one["p99"],
            "extra_p99_ms": extra,
            "extra_p50_ms": None
            if one["p50"] is None or two["p50"] is None
            else round(two["p50"] - one["p50"], 2),
            "both_sustained_the_rate": sustained,
            "met": sustained and met(extra, TARGETS["redis_extra_p99_ms"]),
        }
    main_rate = f"{opts.rate:g}"
    primary = redis.get(main_rate) or next(iter(redis.values()))
    two = primary["two_processes_p99_ms"]
    return {
        "fanout": {
            "p99_ms": fan,
            "target_ms": TARGETS["fanout_p99_ms"],
            "achieved_rate": p1["fanout_driver"]["rate"],
            "lossless": p1["delivery"]["ok"],
            "met": met(fan, TARGETS["fanout_p99_ms"]) and p1["delivery"]["ok"],
        },
        "burst": {
            "p99_ms": burst,
            "worst_burst_p99_ms": p1["burst"]["worst_burst_p99_ms"],
            "target_ms": TARGETS["burst_p99_ms"],
            "met": met(burst, TARGETS["burst_p99_ms"]),
        },
        "two_processes": {
            "rate": main_rate,
            "p99_ms": two,
            "one_process_redis_p99_ms": primary["one_process_redis_p99_ms"],
            "extra_p99_ms": primary["extra_p99_ms"],
            "extra_vs_one_process_memory_bus_ms": None
            if two is None or fan is None
            else round(two - fan, 2),
            "by_rate": redis,
            "target_extra_ms": TARGETS["redis_extra_p99_ms"],
            "lossless": p2["delivery"]["ok"],
            "met": bool(primary["met"]) and p2["delivery"]["ok"],
        },
        "memory": {
            "sockets": p1["memory"]["sockets"],
            "rss_gib": rss,
            "per_socket_kib": p1["memory"]["per_socket_kib"],
            "target_gib": TARGETS["memory_rss_gib"],
            "met": met(rss, TARGETS["memory_rss_gib"]),
        },
    }


def render(opts: Options, p1: dict[str, Any], p2: dict[str, Any], v: dict[str, Any]) -> str:
    def ok(flag: bool) -> str:
        return "met" if flag else "MISSED"

    def lat(summary: dict[str, Any]) -> str:
        c, s = summary["since_commit_ms"], summary["since_send_ms"]
        text = (
            f"since commit p50 {c['p50']} / p99 {c['p99']} / max {c['max']} ms (n={c['n']}); "
            f"since send p99 {s['p99']} ms"
        )
        clear = summary.get("since_commit_ms_outside_full_gc")
        if clear:
            share = 100 * summary["share_overlapping_full_gc"]
            text += f"; {share:.1f}% overlapped a full GC, p99 of the others {clear['p99']} ms"
        return text

    d1, d2 = p1["delivery"], p2["delivery"]
    lines = [
        f"1. fan-out, one process, in-memory bus: {opts.fanout} order + {opts.staff} staff "
        f"subscribers, {p1['fanout_driver']['rate']} transitions/s achieved "
        f"(asked {opts.rate:g}/s)",
        f"   {lat(p1['fanout'])}",
        f"   target p99 <= {TARGETS['fanout_p99_ms']:.0f} ms: {ok(v['fanout']['met'])}; "
        f"delivery (all of phase 1): {d1['delivered']} messages, missing {d1['missing']}, "
        f"duplicates {d1['duplicates']}, out of order {d1['out_of_order_streams']}, "
        f"errors {d1['stream_errors_count']}, closed {d1['closed_sockets']}",
        f"2. burst, one event to {opts.burst_subscribers} subscribers of one order "
        f"({p1['burst']['bursts']} bursts; the fan-out set stays connected): pooled p99 "
        f"{v['burst']['p99_ms']} ms, worst burst p99 {v['burst']['worst_burst_p99_ms']} ms; "
        f"last arrival per burst {p1['burst']['per_burst_last_ms']} ms",
        f"   target p99 <= {TARGETS['burst_p99_ms']:.0f} ms: {ok(v['burst']['met'])}; "
        f"{p1['burst'].get('bursts_overlapping_full_gc')} bursts overlapped a full GC, p99 of "
        f"the others {(p1['burst'].get('pooled_since_commit_ms_outside_full_gc') or {}).get('p99')}"
        " ms",
        f"3. Redis, {opts.fanout + opts.staff} subscribers on process A:",
    ]
    for rate_key, per in p2["rates"].items():
        lines.append(f"   {rate_key}/s, mutations on A (one process): {lat(per['1p'])}")
        lines.append(f"   {rate_key}/s, mutations on B (two):         {lat(per['2p'])}")
        r = v["two_processes"]["by_rate"][rate_key]
        note = (
            "" if r["both_sustained_the_rate"] else " (not comparable: a run fell behind the rate)"
        )
        lines.append(
            f"   {rate_key}/s: extra p99 {r['extra_p99_ms']} ms, "
            f"extra p50 {r['extra_p50_ms']} ms{note}"
        )
    lines.append(
        f"   target extra p99 <= {TARGETS['redis_extra_p99_ms']:.0f} ms at "
        f"{v['two_processes']['rate']}/s: {ok(v['two_processes']['met'])} (vs one process on the "
        f"in-memory bus: {v['two_processes']['extra_vs_one_process_memory_bus_ms']} ms); "
        f"delivery: {d2['delivered']} messages, missing {d2['missing']}, duplicates "
        f"{d2['duplicates']}, out of order {d2['out_of_order_streams']}"
    )
    if "burst" in p2:
        lines.append(
            f"   burst through Redis (mutation on B): pooled p99 "
            f"{p2['burst']['pooled_since_commit_ms']['p99']} ms"
        )
    m = p1["memory"]
    gc1 = p1.get("server_gc") or {}
    lines += [
        f"4. memory, one process: RSS {m['rss_start_kib'] / 1024:.0f} MiB at start, "
        f"{m['rss_with_fanout_set_kib'] / 1024:.0f} MiB with {m['fanout_set_sockets']} sockets "
        f"({m['per_socket_kib_before_traffic']} KiB each), {m['rss_end_kib'] / 1024:.0f} MiB "
        f"with {m['sockets']} ({m['per_socket_kib']} KiB each)",
        f"   target <= {TARGETS['memory_rss_gib']} GiB: {ok(v['memory']['met'])}",
        f"connect rate: {p1['connect']['per_second']} sockets/s; server garbage collector, "
        f"longest pauses {gc1.get('longest_pauses_ms', [])[:5]} ms",
        f"CPU % of one core during the fan-out run: {p1['fanout_cpu_percent']}",
        f"load average: {p1['load_average_start']} at start, {p2['load_average_end']} at end",
    ]
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    packages = {}
    for name in ("strawberry-graphql", "starlette", "uvicorn", "websockets", "redis", "uvloop"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            packages[name] = metadata.version(name)
    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "commit": commit,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_at_start": load_average(),
        "packages": packages,
    }


def write_results(opts: Options, payload: dict[str, Any]) -> Path:
    opts.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    kind = ("quick" if opts.quick else "full") + (f"-{opts.label}" if opts.label else "")
    text = json.dumps({"when": stamp, **payload}, indent=2, default=str)
    path = opts.out / f"realtime-{kind}-{stamp}.json"
    path.write_text(text)
    (opts.out / f"latest-realtime-{kind}.json").write_text(text)
    return path


async def run(opts: Options, infra: Infra, logs: Path) -> dict[str, Any]:
    log(f"seeding {1 + opts.fanout + opts.idle} orders and {opts.staff} staff")
    data = await seed_data(opts, infra)
    log(f"  seeded in {data.seconds:.1f} s")
    plan = make_plan(opts, data)
    driver = Driver(data.driver_token)
    p1 = await phase_one(opts, infra, data, plan, driver, logs)
    samples = p1.pop("_samples")
    pauses = (p1.get("server_gc") or {}).get("full_pauses")
    p1["fanout"] = latency_summary(samples, "m-fan", pauses)
    p1["burst"] = burst_summary(samples, "m-burst", pauses)
    p2 = await phase_two(opts, infra, data, plan, driver, logs)
    samples = p2.pop("_samples")
    pauses = ((p2.get("server_gc") or {}).get("A") or {}).get("full_pauses")
    for rate_key, per in p2["rates"].items():
        for name in ("1p", "2p"):
            per[name].update(latency_summary(samples, f"r-{name}@{rate_key}-", pauses))
    if opts.redis_burst:
        p2["burst"] = burst_summary(samples, "r-burst", pauses)
    return {"seed": data.counts, "one_process": p1, "redis": p2}


def main(argv: list[str] | None = None) -> int:
    global GC_THRESHOLD
    opts = parse_args(argv)
    GC_THRESHOLD = opts.server_gc_threshold
    from bench.realtime_server import raise_open_files_limit

    raise_open_files_limit()
    started = time.monotonic()
    env = environment()
    logs = Path(tempfile.mkdtemp(prefix="bench-rt-logs-"))
    try:
        with infrastructure() as infra:
            from db.migrate import upgrade

            upgrade(infra.database_url)
            results = uvloop.run(run(opts, infra, logs))
    finally:
        shutil.rmtree(logs, ignore_errors=True)
    p1, p2 = results["one_process"], results["redis"]
    v = verdicts(opts, p1, p2)
    env["load_average_at_end"] = load_average()
    env["seconds"] = round(time.monotonic() - started, 1)
    print()
    print(render(opts, p1, p2, v))
    path = write_results(
        opts,
        {
            "command": " ".join(["python", "-m", "bench.realtime", *(argv or sys.argv[1:])]),
            "options": {k: str(val) for k, val in opts.__dict__.items()},
            "environment": env,
            "targets": TARGETS,
            "verdicts": v,
            **results,
        },
    )
    print(f"\nresults: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    log(f"done in {env['seconds']:.0f} s")
    failures = [
        f"{name}: {p['delivery']['examples'] or p['delivery']}"
        for name, p in (("one process", p1), ("redis", p2))
        if not p["delivery"]["ok"]
    ]
    failures += [
        f"{name}: {p['driver_failures']} mutations failed"
        for name, p in (("one process", p1), ("redis", p2))
        if p.get("driver_failures")
    ]
    if failures:
        log("FAILED: " + "; ".join(failures))
        return 1
    missed = [k for k, val in v.items() if isinstance(val, dict) and not val["met"]]
    if missed:
        log(f"targets missed: {', '.join(missed)}")
    return 1 if opts.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
