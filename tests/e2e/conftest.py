"""End-to-end fixtures: real server processes on real PostgreSQL and Redis.

Every test module gets its own PostgreSQL database (on the session's `pg_server`), its own
throwaway Redis (which fault tests kill and restart: a Redis shared between databases would
mix their channels), a shop made in the test process, and server processes started exactly
as in production: `python -m uvicorn --factory app:factory` on a free port. Nothing here
skips: the fixtures start every server the tests need.

Clients talk to the servers over TCP only: GraphQL over HTTP with httpx and
graphql-transport-ws over a real websocket with the `websockets` package.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from db.engine import Database
from db.migrate import upgrade
from resolvers.ids import decode_id
from tests.conftest import Shop, _admin_dsn, create_pg_database, make_shop
from tests.servers import PostgresServer, RedisServer, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET_KEY = "e2e-secret-" + "k" * 37  # 48 characters
assert len(SECRET_KEY) == 48
START_TIMEOUT = 30.0
STOP_TIMEOUT = 8.0
QUIET_SECONDS = 0.8  # how long "nothing more arrives" is watched after the last event


# --- server processes ---------------------------------------------------------------------

_LIVE: list[ServerProcess] = []


@dataclass
class ServerProcess:
    """One `uvicorn --factory app:factory` process; its output goes to `log_path`."""

    name: str
    database_url: str
    redis_url: str
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    def env(self) -> dict[str, str]:
        skip = ("TEST_", "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "SERVICE_ORDERS_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
        env.update(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            SECRET_KEY=SECRET_KEY,
            SERVICE_ORDERS_ENV="test",
            LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
        )
        return env

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self._log.write(f"--- starting {self.name} on port {self.port}\n".encode())
        self._log.flush()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "app:factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            cwd=REPO_ROOT,
            env=self.env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        _LIVE.append(self)

    async def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Until GET /healthz answers 200 (fails at once if the process exits)."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(trust_env=False, timeout=2.0) as http:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise AssertionError(
                        f"server {self.name} exited with {self.process.returncode}:\n"
                        + self.log_tail()
                    )
                with contextlib.suppress(httpx.HTTPError):
                    response = await http.get(f"{self.base_url}/healthz")
                    if response.status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"server {self.name} not ready in {timeout}s:\n" + self.log_tail()
                    )
                await asyncio.sleep(0.05)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, like a crash: no shutdown code runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(STOP_TIMEOUT)
        self._close_log()

    def stop(self) -> None:
        """SIGTERM (graceful), SIGKILL if it has not exited within STOP_TIMEOUT."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        if self in _LIVE:
            _LIVE.remove(self)

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failing e2e test shows the tail of every live server's log."""
    report = yield
    if report.failed:
        for server in _LIVE:
            report.sections.append((f"server {server.name} log (tail)", server.log_tail()))
    return report


Spawn = Callable[..., Awaitable[ServerProcess]]


@pytest.fixture(scope="module")
def e2e_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e-logs")


@pytest.fixture(scope="module")
def e2e_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis of this module's own: the fault tests kill it and start it again."""
    server = RedisServer.create(tmp_path_factory.mktemp("e2e-redis"))
    try:
        yield server
    finally:
        server.stop()


async def drop_pg_database(server: PostgresServer | str, name: str) -> None:
    admin, _ = _admin_dsn(server)
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def e2e_db_url(
    request: pytest.FixtureRequest, pg_server: PostgresServer | str
) -> AsyncIterator[str]:
    """A fresh, migrated database for this module (dropped afterwards)."""
    name = f"e2e_{request.module.__name__.rsplit('.', 1)[-1]}_{os.getpid()}"[:60]
    url = await create_pg_database(pg_server, name)
    await asyncio.to_thread(upgrade, url)
    yield url
    await drop_pg_database(pg_server, name)


@pytest.fixture(scope="module")
async def e2e_db(e2e_db_url: str) -> AsyncIterator[Database]:
    """The test process's own connection to the module's database."""
    database = Database(e2e_db_url, pool_size=5)
    yield database
    await database.dispose()


@pytest.fixture(scope="module")
async def e2e_shop(e2e_db: Database) -> Shop:
    return await make_shop(e2e_db, "E2E Shop", "e2e")


@pytest.fixture(scope="module")
async def spawn(e2e_logs: Path, e2e_redis: RedisServer) -> AsyncIterator[Spawn]:
    """`await spawn(name, database_url)` starts a server process and waits for /healthz;
    every process still running is stopped at the end of the module."""
    started: list[ServerProcess] = []

    async def start(name: str, database_url: str, *, redis_url: str | None = None) -> ServerProcess:
        server = ServerProcess(
            name=name,
            database_url=database_url,
            redis_url=redis_url or e2e_redis.url,
            log_path=e2e_logs / f"{name}.log",
        )
        server.start()
        started.append(server)
        await server.wait_ready()
        return server

    yield start
    await asyncio.gather(*(asyncio.to_thread(s.stop) for s in started))


@pytest.fixture(scope="module")
async def servers(
    e2e_db_url: str, e2e_shop: Shop, spawn: Spawn
) -> AsyncIterator[tuple[ServerProcess, ServerProcess]]:
    """Processes A and B on the module's database and Redis, started side by side (and
    stopped before the database is dropped)."""
    a, b = await asyncio.gather(spawn("A", e2e_db_url), spawn("B", e2e_db_url))
    yield a, b
    await asyncio.gather(asyncio.to_thread(a.stop), asyncio.to_thread(b.stop))


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=30.0) as client:
        yield client


# --- GraphQL over HTTP --------------------------------------------------------------------


class Api:
    """A staff member's GraphQL client for one server process."""

    def __init__(self, http: httpx.AsyncClient, server: ServerProcess, token: str) -> None:
        self.http = http
        self.server = server
        self.token = token

    async def post(self, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
        return await self.http.post(
            f"{self.server.base_url}/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"authorization": f"Bearer {self.token}"},
        )

    async def mutate(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The payload of a one-field mutation that must succeed (no errors of any kind)."""
        response = await self.post(query, variables)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body["errors"]
        (payload,) = body["data"].values()
        assert payload["userErrors"] == [], payload["userErrors"]
        return payload


ORDER_FIELDS = "id number status version"
CREATE = f"""
mutation($input: ServiceOrderCreateInput!) {{
  serviceOrderCreate(input: $input) {{
    serviceOrder {{ {ORDER_FIELDS} }}
    userErrors {{ field message code }}
  }}
}}"""
TRANSITION = f"""
mutation($input: ServiceOrderTransitionInput!) {{
  serviceOrderTransition(input: $input) {{
    serviceOrder {{ {ORDER_FIELDS} }}
    userErrors {{ field message code }}
  }}
}}"""
PART_ADD = """
mutation($input: PartLineAddInput!) {
  partLineAdd(input: $input) { partLine { id } userErrors { field message code } }
}"""
NOTE_ADD = """
mutation($input: InternalNoteAddInput!) {
  internalNoteAdd(input: $input) { internalNote { id } userErrors { field message code } }
}"""
ASSIGN = f"""
mutation($input: ServiceOrderAssignInput!) {{
  serviceOrderAssign(input: $input) {{
    serviceOrder {{ {ORDER_FIELDS} }}
    userErrors {{ field message code }}
  }}
}}"""
SET_DIAGNOSIS = f"""
mutation($input: ServiceOrderSetDiagnosisInput!) {{
  serviceOrderSetDiagnosis(input: $input) {{
    serviceOrder {{ {ORDER_FIELDS} }}
    userErrors {{ field message code }}
  }}
}}"""

EVENT_FIELDS = "id orderId sequence accountSequence type status"
ORDER_EVENTS = f"""
subscription($id: ID!, $after: Int) {{
  serviceOrderEvents(id: $id, after: $after) {{ {EVENT_FIELDS} }}
}}"""
NOTIFICATIONS = f"""
subscription($after: Int) {{
  staffNotifications(after: $after) {{ id event {{ {EVENT_FIELDS} }} }}
}}"""


async def create_order(api: Api, label: str) -> dict[str, Any]:
    payload = await api.mutate(
        CREATE,
        {
            "input": {
                "client": {"name": "E2E Client", "email": "e2e.client@example.com"},
                "device": {"model": f"Phone {label}", "problemReported": "Cracked screen"},
            }
        },
    )
    return payload["serviceOrder"]


async def transition(api: Api, order_id: str, to: str) -> dict[str, Any]:
    payload = await api.mutate(TRANSITION, {"input": {"id": order_id, "to": to}})
    assert payload["serviceOrder"]["status"] == to
    return payload["serviceOrder"]


async def add_note(api: Api, order_id: str, body: str) -> None:
    await api.mutate(NOTE_ADD, {"input": {"orderId": order_id, "body": body}})


async def add_part(api: Api, order_id: str, name: str) -> None:
    await api.mutate(PART_ADD, {"input": {"orderId": order_id, "name": name, "unitCost": "12.50"}})


def order_pk(global_id: str) -> int:
    pk = decode_id(global_id, "ServiceOrder")
    assert pk is not None
    return pk


# --- the database as the source of truth --------------------------------------------------


async def order_event_rows(db: Database, order_id: int) -> list[tuple[int, int, str]]:
    """(event id, order sequence, type) of every committed event of the order, in order."""
    async with db.read_session() as session:
        rows = await session.execute(
            text(
                "SELECT id, order_seq, type FROM order_events WHERE order_id = :o ORDER BY order_seq"
            ),
            {"o": order_id},
        )
        return [(int(i), int(s), str(t)) for i, s, t in rows]


async def notification_rows(db: Database, user_id: int, after: int) -> list[tuple[int, int]]:
    """(notification id, account sequence) of the user's notifications after `after`."""
    async with db.read_session() as session:
        rows = await session.execute(
            text(
                "SELECT id, account_seq FROM notifications"
                " WHERE user_id = :u AND account_seq > :a ORDER BY account_seq"
            ),
            {"u": user_id, "a": after},
        )
        return [(int(i), int(s)) for i, s in rows]


async def account_seq(db: Database, account_id: int) -> int:
    async with db.read_session() as session:
        value = await session.scalar(
            text("SELECT last_event_seq FROM accounts WHERE id = :a"), {"a": account_id}
        )
        return int(value or 0)


async def unpublished_count(db: Database, order_id: int, after_seq: int = 0) -> int:
    """How many of the order's events after `after_seq` have no `published_at` yet."""
    async with db.read_session() as session:
        value = await session.scalar(
            text(
                "SELECT count(*) FROM order_events"
                " WHERE published_at IS NULL AND order_id = :o AND order_seq > :s"
            ),
            {"o": order_id, "s": after_seq},
        )
        return int(value or 0)


async def wait_all_published(db: Database, order_id: int, timeout: float = 10.0) -> None:
    """Until every event of the order is marked published (by its process or a relay)."""
    deadline = time.monotonic() + timeout
    while await unpublished_count(db, order_id):
        assert time.monotonic() < deadline, "events left unpublished"
        await asyncio.sleep(0.1)


# --- graphql-transport-ws over a real socket ----------------------------------------------


class GqlSocket:
    """A graphql-transport-ws client on a real TCP websocket. A background task reads every
    message (answering pings), so nothing is lost while the test does other work."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.data: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.errors: dict[str, list[Any]] = defaultdict(list)
        self.completed: set[str] = set()
        self.acked = asyncio.Event()
        self.closed = asyncio.Event()
        self.settled = asyncio.Event()  # acknowledged or closed
        self.opened_at = time.monotonic()
        self.closed_at: float | None = None
        self._reader = asyncio.create_task(self._read(), name="e2e-ws-reader")

    @classmethod
    async def open(cls, url: str) -> GqlSocket:
        conn = await connect(
            url,
            subprotocols=[Subprotocol("graphql-transport-ws")],
            proxy=None,
            open_timeout=10,
            ping_interval=None,
            close_timeout=2,
        )
        assert conn.subprotocol == "graphql-transport-ws"
        return cls(conn)

    @classmethod
    async def staff(cls, url: str, token: str) -> GqlSocket:
        """Connected and acknowledged as the staff member holding `token`."""
        sock = await cls.open(url)
        await sock.init({"authorization": f"Bearer {token}"})
        return sock

    async def _read(self) -> None:
        try:
            async for raw in self.conn:
                message = json.loads(raw)
                kind = message.get("type")
                if kind == "ping":
                    await self.conn.send(json.dumps({"type": "pong"}))
                elif kind == "connection_ack":
                    self.acked.set()
                    self.settled.set()
                elif kind == "next":
                    payload = message["payload"]
                    if payload.get("errors"):
                        self.errors[message["id"]].append(payload["errors"])
                    else:
                        self.data[message["id"]].append(payload["data"])
                elif kind == "error":
                    self.errors[message["id"]].append(message["payload"])
                elif kind == "complete":
                    self.completed.add(message["id"])
        except ConnectionClosed:
            pass
        finally:
            self.closed_at = time.monotonic()
            self.closed.set()
            self.settled.set()

    @property
    def close_code(self) -> int | None:
        return self.conn.close_code

    async def send(self, message: dict[str, Any]) -> None:
        await self.conn.send(json.dumps(message))

    async def init(self, payload: dict[str, Any], timeout: float = 10.0) -> None:
        await self.send({"type": "connection_init", "payload": payload})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.settled.wait(), timeout)
        assert self.acked.is_set(), f"no connection_ack (close code {self.close_code})"

    async def subscribe(self, op_id: str, query: str, variables: dict[str, Any]) -> None:
        await self.send(
            {"id": op_id, "type": "subscribe", "payload": {"query": query, "variables": variables}}
        )

    def received(self, op_id: str) -> list[dict[str, Any]]:
        """The data of every `next` for `op_id` so far (unwrapped from its one root field)."""
        return [next(iter(d.values())) for d in self.data[op_id]]

    async def wait_for(self, op_id: str, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Until `count` results arrived for `op_id`; fails on an error, a complete or a close."""
        deadline = time.monotonic() + timeout
        while len(self.data[op_id]) < count:
            assert not self.errors[op_id], self.errors[op_id]
            assert op_id not in self.completed, f"{op_id} completed early"
            assert not self.closed.is_set(), f"socket closed ({self.close_code})"
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{op_id}: {len(self.data[op_id])} of {count} results after {timeout}s"
                )
            await asyncio.sleep(0.02)
        return self.received(op_id)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.conn.close()
        await self._stop_reader()

    def abort(self) -> None:
        """Drop the TCP connection without a close handshake (a lost network)."""
        self.conn.transport.abort()

    async def _stop_reader(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@pytest.fixture
async def sockets() -> AsyncIterator[list[GqlSocket]]:
    """Append every socket a test opens; they are closed at its end."""
    opened: list[GqlSocket] = []
    yield opened
    await asyncio.gather(*(s.close() for s in opened))


def sequences(results: list[dict[str, Any]]) -> list[int]:
    return [r["sequence"] for r in results]


def account_sequences(notifications: list[dict[str, Any]]) -> list[int]:
    return [n["event"]["accountSequence"] for n in notifications]


async def nothing_more(
    checks: list[tuple[GqlSocket, str, int]], seconds: float = QUIET_SECONDS
) -> None:
    """Wait `seconds`; then each (socket, op, expected count) must still have exactly that
    many results and no error: no duplicate or extra event arrived late."""
    await asyncio.sleep(seconds)
    for sock, op_id, count in checks:
        assert not sock.errors[op_id], sock.errors[op_id]
        assert len(sock.data[op_id]) == count, (
            f"{op_id}: {len(sock.data[op_id])} results, expected {count}: {sock.received(op_id)}"
        )
