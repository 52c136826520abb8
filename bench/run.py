"""The benchmarks' single entry point: `python -m bench.run [--quick]` (or `make bench`).

1. PostgreSQL: a throwaway server (tests/servers.py), or the server of BENCH_DATABASE_URL,
   on which it creates (and afterwards drops) its own databases.
2. Migrates, then loads the data through the services (bench/seed.py).
3. Records the SQL the app runs per request (in process, once) for the report.
4. Starts the real app (bench/serve_app.py) and the bare Starlette + asyncpg baseline
   (bench/baseline.py) under uvicorn, one worker each, in subprocesses on 127.0.0.1, and
   checks that both return equal JSON for the same requests.
5. Drives both with the same load generator (bench/load.py) and concurrency, alternating
   baseline and app round by round so that both share the machine's noise: the 50-order
   list query and the single-order detail query.
6. Runs `pgbench -N` (builtin simple-update) and the serviceOrderTransition mutation with
   32 clients each, alternating, for the same time.
7. Prints a table, writes JSON to bench/results/ and exits 0 (with --strict: 1 when a
   target is missed). A wrong answer or a failed request exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvloop
from sqlalchemy import event
from sqlalchemy.engine import make_url

from bench import pgbench
from bench.baseline import STATEMENTS as BASELINE_STATEMENTS
from bench.load import (
    CpuProbe,
    PhaseResult,
    Plan,
    RoundRobin,
    Summary,
    build_request,
    children_cpu,
    graphql_body,
    process_cpu,
    run_phase,
    self_cpu,
    summarize,
)
from bench.queries import DETAIL_QUERY, LIST_PAGE_SIZE, LIST_QUERY, TRANSITION_MUTATION
from bench.seed import BenchData, seed

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
HOST = "127.0.0.1"

TARGETS = {
    "detail": 0.60,  # app req/s / baseline req/s
    "list": 0.35,
    "transition": 0.20,  # app transitions/s / pgbench -N tps
}
TRANSITION_P99_MS = 50.0


@dataclass
class Options:
    quick: bool
    seconds: float
    rounds: int
    warmup: float
    concurrency: int
    transition_clients: int
    transition_seconds: int
    transition_rounds: int
    read_orders: int
    orders_per_client: int
    strict: bool
    out: Path


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: under a minute in all")
    parser.add_argument("--seconds", type=float, help="length of one read round (default 6)")
    parser.add_argument("--rounds", type=int, help="read rounds per target (default 4)")
    parser.add_argument("--concurrency", type=int, default=16, help="read clients (16)")
    parser.add_argument(
        "--transition-clients", type=int, default=32, help="clients for the write phase (32)"
    )
    parser.add_argument(
        "--transition-seconds", type=int, help="length of one write round (default 10)"
    )
    parser.add_argument("--transition-rounds", type=int, help="write rounds (default 2)")
    parser.add_argument("--read-orders", type=int, help="orders for the reads (default 300)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    a = parser.parse_args(argv)
    quick = bool(a.quick)
    return Options(
        quick=quick,
        seconds=a.seconds or (2.0 if quick else 6.0),
        rounds=a.rounds or (1 if quick else 4),
        warmup=0.5 if quick else 2.0,
        concurrency=a.concurrency,
        transition_clients=a.transition_clients,
        transition_seconds=a.transition_seconds or (2 if quick else 10),
        transition_rounds=a.transition_rounds or (1 if quick else 2),
        read_orders=a.read_orders or (60 if quick else 300),
        orders_per_client=2 if quick else 4,
        strict=a.strict,
        out=a.out,
    )


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- PostgreSQL -----------------------------------------------------------------------------


@dataclass
class Postgres:
    """Where the benchmark's databases live, and how to reach them."""

    host: str
    port: int
    user: str
    password: str | None
    admin_database: str
    bindir: Path | None = None
    postmaster_pid: int | None = None
    created: list[str] = field(default_factory=list)

    def sqlalchemy_url(self, database: str) -> str:
        auth = self.user + (f":{self.password}" if self.password else "")
        return f"postgresql+asyncpg://{auth}@{self.host}:{self.port}/{database}"

    def dsn(self, database: str) -> str:
        return self.sqlalchemy_url(database).replace("postgresql+asyncpg://", "postgresql://")

    def target(self, database: str) -> pgbench.PgTarget:
        return pgbench.PgTarget(self.host, self.port, self.user, self.password, database)

    async def create_database(self, name: str) -> None:
        conn = await asyncpg.connect(self.dsn(self.admin_database))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self.created.append(name)

    async def drop_databases(self) -> None:
        conn = await asyncpg.connect(self.dsn(self.admin_database))
        try:
            for name in self.created:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    async def version(self) -> str:
        conn = await asyncpg.connect(self.dsn(self.admin_database))
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()


class ConnectionCounter:
    """Connections PostgreSQL accepted for one database (pg_stat_database.sessions, which
    backends report within about a second, at the latest when they end): shows a pool
    that opens and closes connections under load. Approximate at phase boundaries."""

    def __init__(self, pg: Postgres, database: str) -> None:
        self.pg = pg
        self.database = database
        self.conn: asyncpg.Connection | None = None
        self.last = 0

    async def _count(self) -> int:
        if self.conn is None:
            self.conn = await asyncpg.connect(self.pg.dsn(self.pg.admin_database))
        await asyncio.sleep(0.3)  # let the backends flush their statistics
        value = await self.conn.fetchval(
            "SELECT sessions FROM pg_stat_database WHERE datname = $1", self.database
        )
        return int(value or 0)

    async def reset(self) -> None:
        self.last = await self._count()

    async def delta(self) -> int:
        """Connections accepted since the last reset() or delta()."""
        now = await self._count()
        value, self.last = now - self.last, now
        return value

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()


async def measured(counter: ConnectionCounter, phase: Awaitable[PhaseResult]) -> PhaseResult:
    result = await phase
    result.new_pg_connections = await counter.delta()
    return result


@contextlib.contextmanager
def postgres() -> Iterator[Postgres]:
    given = os.environ.get("BENCH_DATABASE_URL")
    if given:
        url = make_url(given)
        log(f"using the PostgreSQL server of BENCH_DATABASE_URL ({url.host}:{url.port or 5432})")
        yield Postgres(
            host=url.host or "127.0.0.1",
            port=url.port or 5432,
            user=url.username or "postgres",
            password=url.password,
            admin_database=url.database or "postgres",
        )
        return
    from tests.servers import PostgresServer

    directory = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    try:
        server = PostgresServer.start(directory)
        try:
            pid_file = directory / "data" / "postmaster.pid"
            log(f"started a throwaway PostgreSQL on port {server.port} ({directory})")
            yield Postgres(
                host="127.0.0.1",
                port=server.port,
                user="postgres",
                password=None,
                admin_database="postgres",
                bindir=server.bindir,
                postmaster_pid=int(pid_file.read_text().split()[0]),
            )
        finally:
            server.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# --- servers under test -----------------------------------------------------------------------


@dataclass
class Server:
    name: str
    port: int
    path: str  # where the read queries are posted
    process: subprocess.Popen[bytes]
    log_file: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self) -> str:
        try:
            return self.log_file.read_text()[-3000:]
        except OSError:
            return ""


def start_server(name: str, module: str, args: list[str], path: str, logs: Path) -> Server:
    from tests.servers import free_port

    port = free_port()
    log_file = logs / f"{name}.log"
    with open(log_file, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", module, *args, "--port", str(port)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(name, port, path, process, log_file)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited at start:\n{server.log_tail()}")
        try:
            if httpx.get(f"http://{HOST}:{port}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"{name} did not answer /healthz in 60 s:\n{server.log_tail()}")
        time.sleep(0.1)


# --- what the app runs per request (recorded once, in process) --------------------------------


async def capture_app_sql(url: str, data: BenchData) -> dict[str, dict[str, Any]]:
    from app import create_app
    from config import Settings
    from db.engine import Database

    db = Database(url)
    statements: list[str] = []
    checkouts = [0]

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(" ".join(statement.split()))

    def on_checkout(*args: Any) -> None:
        checkouts[0] += 1

    engine = db.write_engine.sync_engine
    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(engine.pool, "checkout", on_checkout)
    settings = Settings(environment="test", database_url=url, secret_key="x" * 48)
    app = create_app(settings, database=db)
    order = data.transition_order_ids[0]
    requests: dict[str, list[tuple[str, dict[str, Any], str]]] = {
        "detail": [(DETAIL_QUERY, {"id": data.sample_order_id}, data.read_token)],
        "list": [(LIST_QUERY, {"first": LIST_PAGE_SIZE}, data.read_token)],
        # there and back again, so the order ends where it started
        "transition": [
            (TRANSITION_MUTATION, {"input": {"id": order, "to": to}}, data.transition_tokens[0])
            for to in ("TESTING", "REPAIRING")
        ],
    }
    out: dict[str, dict[str, Any]] = {}
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for name, calls in requests.items():
                for i, (query, variables, token) in enumerate(calls):
                    statements.clear()
                    checkouts[0] = 0
                    response = await client.post(
                        "/graphql",
                        json={"query": query, "variables": variables},
                        headers={"authorization": f"Bearer {token}"},
                    )
                    body = response.json()
                    if response.status_code != 200 or "errors" in body:
                        raise RuntimeError(f"{name}: {response.status_code} {response.text}")
                    if i == 0:
                        out[name] = {
                            "statements": list(statements),
                            "pool_checkouts": checkouts[0],
                        }
    finally:
        await db.dispose()
    return out


# --- the same answers from both ---------------------------------------------------------------


def first_difference(a: Any, b: Any, path: str = "data") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(a.keys() | b.keys()):
            if key not in a or key not in b:
                return f"{path}.{key}: only in {'app' if key in a else 'baseline'}"
            found = first_difference(a[key], b[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} items (app) vs {len(b)} (baseline)"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if a == b else f"{path}: {a!r} (app) != {b!r} (baseline)"


async def check_same_answers(app: Server, base: Server, data: BenchData, count: int) -> int:
    """Post the same requests to both; every `data` must be equal. Returns requests checked."""
    headers = {"authorization": f"Bearer {data.read_token}"}
    cases: list[tuple[str, str, dict[str, Any]]] = [("list", LIST_QUERY, {"first": LIST_PAGE_SIZE})]
    cases += [("detail", DETAIL_QUERY, {"id": gid}) for gid in data.read_order_ids[:count]]
    async with httpx.AsyncClient(headers=headers, timeout=30) as client:
        for kind, query, variables in cases:
            body = {"query": query, "variables": variables}
            got_app = await client.post(f"http://{HOST}:{app.port}{app.path}", json=body)
            got_base = await client.post(f"http://{HOST}:{base.port}/{kind}", json=body)
            a, b = got_app.json(), got_base.json()
            if got_app.status_code != 200 or "errors" in a or a.get("data") is None:
                raise RuntimeError(f"app answered {kind} {variables}: {got_app.text[:500]}")
            problem = first_difference(a["data"], b.get("data"))
            if problem:
                raise RuntimeError(f"app and baseline differ for {kind} {variables}: {problem}")
    return len(cases)


# --- load phases ------------------------------------------------------------------------------


class TransitionPlan(Plan):
    """One client's orders, each cycling REPAIRING -> TESTING -> REPAIRING."""

    NEXT = {"REPAIRING": "TESTING", "TESTING": "REPAIRING"}

    def __init__(self, host: str, port: int, token: str, orders: list[str]) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        self.requests = {
            (gid, to): build_request(
                host,
                port,
                "/graphql",
                graphql_body(TRANSITION_MUTATION, {"input": {"id": gid, "to": to}}),
                headers,
            )
            for gid in orders
            for to in self.NEXT
        }
        self.state = dict.fromkeys(orders, "REPAIRING")
        self.orders = orders
        self.i = 0
        self.current = ("", "")

    def next_request(self) -> bytes:
        gid = self.orders[self.i % len(self.orders)]
        self.i += 1
        self.current = (gid, self.NEXT[self.state[gid]])
        return self.requests[self.current]

    def done(self, status: int, body: bytes) -> bool:
        gid, to = self.current
        # whatever happened, assume the order is now where we sent it: a failed move
        # (INVALID_TRANSITION) means it already was there
        self.state[gid] = to
        if status != 200:
            return False
        payload = json.loads(body)
        if "errors" in payload:
            return False
        result = payload["data"]["serviceOrderTransition"]
        return not result["userErrors"] and result["serviceOrder"]["status"] == to


@dataclass
class Report:
    options: Options
    summaries: dict[str, dict[str, Summary]] = field(default_factory=dict)
    pgbench_runs: list[pgbench.PgbenchResult] = field(default_factory=list)
    sql: dict[str, dict[str, Any]] = field(default_factory=dict)
    data_counts: dict[str, int] = field(default_factory=dict)
    checked: int = 0
    environment: dict[str, Any] = field(default_factory=dict)


def read_plans(server: Server, data: BenchData, kind: str, concurrency: int) -> list[Plan]:
    headers = {"Authorization": f"Bearer {data.read_token}"}
    path = server.path if server.name == "app" else f"/{kind}"
    if kind == "list":
        bodies = [graphql_body(LIST_QUERY, {"first": LIST_PAGE_SIZE})]
    else:
        bodies = [graphql_body(DETAIL_QUERY, {"id": gid}) for gid in data.read_order_ids]
    requests = [build_request(HOST, server.port, path, b, headers) for b in bodies]
    step = max(1, len(requests) // concurrency)
    return [RoundRobin(requests, start=i * step) for i in range(concurrency)]


def probes(server: Server, pg: Postgres) -> CpuProbe:
    out: CpuProbe = {"server": lambda: process_cpu(server.process.pid), "client": self_cpu}
    if pg.postmaster_pid is not None:
        pid = pg.postmaster_pid
        out["postgres"] = lambda: children_cpu(pid)
    return out


def check_phase(result: PhaseResult) -> None:
    if result.errors:
        raise RuntimeError(
            f"{result.name}/{result.target}: {result.errors} failed requests, first: "
            f"{result.first_error}"
        )


async def read_benchmarks(
    opts: Options,
    app: Server,
    base: Server,
    data: BenchData,
    pg: Postgres,
    counter: ConnectionCounter,
) -> dict[str, dict[str, Summary]]:
    out: dict[str, dict[str, Summary]] = {}
    for kind in ("detail", "list"):
        plans = {s.name: read_plans(s, data, kind, opts.concurrency) for s in (base, app)}
        servers = {"baseline": base, "app": app}
        for name, server in servers.items():
            await run_phase(
                name=kind,
                target=name,
                host=HOST,
                port=server.port,
                plans=plans[server.name],
                seconds=opts.warmup,
                record=False,
            )
        rounds: dict[str, list[PhaseResult]] = {"baseline": [], "app": []}
        await counter.reset()
        for r in range(opts.rounds):
            order = ["baseline", "app"] if r % 2 == 0 else ["app", "baseline"]
            for name in order:
                server = servers[name]
                result = await measured(
                    counter,
                    run_phase(
                        name=kind,
                        target=name,
                        host=HOST,
                        port=server.port,
                        plans=plans[server.name],
                        seconds=opts.seconds,
                        probes=probes(server, pg),
                    ),
                )
                check_phase(result)
                rounds[name].append(result)
                log(f"{kind:<7} {name:<8} round {r + 1}: {result.rps:8.1f} req/s")
        out[kind] = {name: summarize(results) for name, results in rounds.items()}
    return out


def transition_plans(app: Server, data: BenchData, clients: int) -> list[Plan]:
    orders = data.transition_order_ids
    return [
        TransitionPlan(
            HOST,
            app.port,
            data.transition_tokens[i % len(data.transition_tokens)],
            orders[i::clients],
        )
        for i in range(clients)
    ]


def write_benchmarks(
    opts: Options,
    runner: asyncio.Runner,
    app: Server,
    data: BenchData,
    pg: Postgres,
    pgbench_db: str,
    counter: ConnectionCounter,
) -> tuple[Summary, list[pgbench.PgbenchResult]]:
    binary = pgbench.pgbench_binary(pg.bindir)
    target = pg.target(pgbench_db)
    log("pgbench -i -s 1")
    pgbench.initialise(binary, target)
    plans = transition_plans(app, data, opts.transition_clients)
    runner.run(
        run_phase(
            name="transition",
            target="app",
            host=HOST,
            port=app.port,
            plans=plans,
            seconds=opts.warmup,
            record=False,
        )
    )
    runner.run(counter.reset())
    app_rounds: list[PhaseResult] = []
    pgbench_runs: list[pgbench.PgbenchResult] = []
    clients = opts.transition_clients

    def run_pgbench(r: int) -> None:
        result = pgbench.run(
            binary, target, clients=clients, threads=2, seconds=opts.transition_seconds
        )
        pgbench_runs.append(result)
        log(f"pgbench -N round {r + 1}: {result.tps:8.1f} tps  p99 {result.p99_ms:.1f} ms")

    def run_app(r: int) -> None:
        result = runner.run(
            measured(
                counter,
                run_phase(
                    name="transition",
                    target="app",
                    host=HOST,
                    port=app.port,
                    plans=plans,
                    seconds=opts.transition_seconds,
                    probes=probes(app, pg),
                ),
            )
        )
        check_phase(result)
        app_rounds.append(result)
        log(f"transition app round {r + 1}: {result.rps:8.1f} req/s")

    steps: list[Callable[[int], None]] = [run_pgbench, run_app]
    for r in range(opts.transition_rounds):
        for step in steps if r % 2 == 0 else reversed(steps):
            step(r)
    return summarize(app_rounds), pgbench_runs


# --- report -----------------------------------------------------------------------------------


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def render(report: Report) -> tuple[str, dict[str, Any]]:
    lines: list[str] = []
    results: dict[str, Any] = {}
    header = (
        f"{'benchmark':<11}{'target':<10}{'clients':>8}{'req/s':>10}{'p50 ms':>9}"
        f"{'p99 ms':>9}{'requests':>10}{'new conns':>10}  cpu ms/request (server / pg / client)"
    )
    lines += [header, "-" * len(header)]

    def row(s: Summary) -> str:
        cpu = s.cpu_ms_per_request
        cpu_text = " / ".join(
            f"{cpu[k]:.2f}" if k in cpu else "-" for k in ("server", "postgres", "client")
        )
        conns = "-" if s.new_pg_connections is None else str(s.new_pg_connections)
        return (
            f"{s.name:<11}{s.target:<10}{s.concurrency:>8}{s.rps:>10.1f}{s.p50_ms:>9.2f}"
            f"{s.p99_ms:>9.2f}{s.requests:>10}{conns:>10}  {cpu_text}"
        )

    for kind in ("detail", "list"):
        pair = report.summaries.get(kind)
        if not pair:
            continue
        base, app = pair["baseline"], pair["app"]
        value = ratio(app.rps, base.rps)
        ok = value >= TARGETS[kind]
        lines += [row(base), row(app)]
        lines.append(
            f"{'':<11}ratio app/baseline = {value:.3f}   target >= {TARGETS[kind]:.2f}: "
            f"{verdict(ok)}"
        )
        results[kind] = {
            "ratio": round(value, 4),
            "target": TARGETS[kind],
            "met": ok,
            "baseline": base.as_dict(),
            "app": app.as_dict(),
        }
    transition = report.summaries.get("transition", {}).get("app")
    if transition is not None and report.pgbench_runs:
        runs = report.pgbench_runs
        tps = sum(r.tps * r.seconds for r in runs) / sum(r.seconds for r in runs)
        p99 = max(r.p99_ms for r in runs)
        p50 = sorted(r.p50_ms for r in runs)[len(runs) // 2]
        transactions = sum(r.transactions for r in runs)
        lines.append(
            f"{'transition':<11}{'pgbench':<10}{runs[0].clients:>8}{tps:>10.1f}{p50:>9.2f}"
            f"{p99:>9.2f}{transactions:>10}{'-':>10}  (pgbench -N, builtin simple-update)"
        )
        lines.append(row(transition))
        value = ratio(transition.rps, tps)
        ok_ratio = value >= TARGETS["transition"]
        ok_p99 = transition.p99_ms <= TRANSITION_P99_MS
        lines.append(
            f"{'':<11}ratio app/pgbench = {value:.3f}   target >= {TARGETS['transition']:.2f}: "
            f"{verdict(ok_ratio)};  p99 {transition.p99_ms:.1f} ms  target <= "
            f"{TRANSITION_P99_MS:.0f} ms: {verdict(ok_p99)}"
        )
        results["transition"] = {
            "ratio": round(value, 4),
            "target": TARGETS["transition"],
            "met": ok_ratio,
            "p99_ms": transition.p99_ms,
            "p99_target_ms": TRANSITION_P99_MS,
            "p99_met": ok_p99,
            "pgbench_tps": round(tps, 1),
            "pgbench": [r.as_dict() for r in runs],
            "app": transition.as_dict(),
        }
    if report.sql:
        lines.append("")
        lines.append("SQL per request (recorded in process; pool checkouts = pooled sessions):")
        for kind, info in report.sql.items():
            base_count = len(BASELINE_STATEMENTS.get(kind, []))
            base_text = f"; baseline {base_count} on 1 connection" if base_count else ""
            lines.append(
                f"  {kind:<11}app {len(info['statements'])} statements in "
                f"{info['pool_checkouts']} pool checkouts{base_text}"
            )
    return "\n".join(lines), results


def environment(pg_version: str) -> dict[str, Any]:
    packages = {}
    for name in ("strawberry-graphql", "starlette", "uvicorn", "sqlalchemy", "asyncpg", "uvloop"):
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
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "postgresql": pg_version,
        "packages": packages,
    }


def write_results(report: Report, results: dict[str, Any], command: list[str]) -> Path:
    report.options.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    payload = {
        "when": stamp,
        "command": " ".join(command),
        "options": {k: str(v) for k, v in report.options.__dict__.items()},
        "environment": {
            **report.environment,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "data": report.data_counts,
        "answers_checked": report.checked,
        "results": results,
        "app_sql": report.sql,
        "baseline_sql": BASELINE_STATEMENTS,
    }
    kind = "quick" if report.options.quick else "full"
    path = report.options.out / f"bench-{kind}-{stamp}.json"
    text = json.dumps(payload, indent=2, default=str)
    path.write_text(text)
    (report.options.out / f"latest-{kind}.json").write_text(text)
    return path


# --- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    started = time.monotonic()
    report = Report(options=opts)
    logs = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    servers: list[Server] = []
    with postgres() as pg, asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        try:
            suffix = f"{os.getpid()}"
            orders_db, pgbench_db = f"bench_orders_{suffix}", f"bench_pgbench_{suffix}"
            runner.run(pg.create_database(orders_db))
            runner.run(pg.create_database(pgbench_db))
            report.environment = environment(runner.run(pg.version()))
            url = pg.sqlalchemy_url(orders_db)
            from db.migrate import upgrade

            upgrade(url)  # outside the event loop: alembic runs its own
            transition_orders = opts.transition_clients * opts.orders_per_client
            log(f"loading {opts.read_orders} + {transition_orders} orders through the services")
            data = runner.run(_seed(url, opts.read_orders, transition_orders))
            report.data_counts = data.counts
            report.sql = runner.run(capture_app_sql(url, data))

            log("starting the app and the baseline (uvicorn, one worker each)")
            app = start_server("app", "bench.serve_app", ["--database-url", url], "/graphql", logs)
            servers.append(app)
            base = start_server(
                "baseline", "bench.baseline", ["--dsn", pg.dsn(orders_db)], "", logs
            )
            servers.append(base)
            count = 10 if opts.quick else 60
            report.checked = runner.run(check_same_answers(app, base, data, count))
            log(f"app and baseline gave equal JSON for {report.checked} requests")

            counter = ConnectionCounter(pg, orders_db)
            report.summaries = runner.run(read_benchmarks(opts, app, base, data, pg, counter))
            transition, report.pgbench_runs = write_benchmarks(
                opts, runner, app, data, pg, pgbench_db, counter
            )
            runner.run(counter.close())
            report.summaries["transition"] = {"app": transition}
        except Exception as exc:
            log(f"FAILED: {exc}")
            for server in servers:
                print(f"--- {server.name} log (tail) ---\n{server.log_tail()}", file=sys.stderr)
            raise
        finally:
            for server in servers:
                server.stop()
            with contextlib.suppress(Exception):
                runner.run(pg.drop_databases())
            shutil.rmtree(logs, ignore_errors=True)

    table, results = render(report)
    print()
    print(table)
    path = write_results(report, results, ["python", "-m", "bench.run", *(argv or sys.argv[1:])])
    print(f"\nresults: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    log(f"done in {time.monotonic() - started:.0f} s")
    missed = [k for k, v in results.items() if not v["met"] or not v.get("p99_met", True)]
    return 1 if opts.strict and missed else 0


async def _seed(url: str, read_orders: int, transition_orders: int) -> BenchData:
    from db.engine import Database

    db = Database(url)
    try:
        return await seed(db, read_orders=read_orders, transition_orders=transition_orders)
    finally:
        await db.dispose()


if __name__ == "__main__":
    sys.exit(main())
