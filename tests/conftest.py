"""Fixtures: throwaway PostgreSQL, both database backends, the real ASGI app, a GraphQL client.

Every test that uses `db`, `app` or `api` runs twice: on PostgreSQL and on the embedded
SQLite default (set TEST_BACKENDS=sqlite or =postgresql to run one).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

from app import create_app
from config import Settings
from db.base import Base
from db.engine import Database
from db.migrate import upgrade
from db.models import StaffUser
from services import auth
from services.policy import Actor
from services.roles import Role
from tests.servers import PostgresServer

BACKENDS = [b for b in os.environ.get("TEST_BACKENDS", "sqlite,postgresql").split(",") if b]
PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="session", autouse=True)
def fast_password_hashing() -> Iterator[None]:
    """argon2 at its cheapest: the tests check behaviour, not hashing cost."""
    original = auth._hasher, auth._DUMMY_HASH
    auth._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    auth._DUMMY_HASH = auth._hasher.hash("dummy")
    yield
    auth._hasher, auth._DUMMY_HASH = original


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer | str]:
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        yield given
        return
    server = PostgresServer.start(tmp_path_factory.mktemp("pg"))
    try:
        yield server
    finally:
        server.stop()


def _admin_dsn(server: PostgresServer | str) -> tuple[str, str]:
    """(asyncpg admin dsn, SQLAlchemy URL template with {db})."""
    if isinstance(server, str):
        url = make_url(server).set(drivername="postgresql+asyncpg")
        admin = url.set(drivername="postgresql", database="postgres")
        return admin.render_as_string(hide_password=False), url.set(
            database="{db}"
        ).render_as_string(hide_password=False)
    return (
        f"postgresql://postgres@127.0.0.1:{server.port}/postgres",
        server.url("{db}"),
    )


async def create_pg_database(server: PostgresServer | str, name: str) -> str:
    admin, template = _admin_dsn(server)
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return template.replace("{db}", name).replace("%7Bdb%7D", name)


@pytest.fixture(scope="session", params=BACKENDS)
async def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('sqlite') / 'test.db'}"
    else:
        url = await create_pg_database(
            request.getfixturevalue("pg_server"), f"so_test_{os.getpid()}"
        )
    await asyncio.to_thread(upgrade, url)
    yield url


@pytest.fixture(scope="session")
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url, pool_size=20)
    yield db
    await db.dispose()


async def truncate_all(db: Database) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    async with db.write_session() as session:
        if db.is_sqlite:
            for name in tables:
                await session.execute(text(f"DELETE FROM {name}"))
        else:
            await session.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def db(database: Database) -> AsyncIterator[Database]:
    """The test's database, emptied after the test."""
    yield database
    await truncate_all(database)


@pytest.fixture
def backend(database: Database) -> str:
    return "sqlite" if database.is_sqlite else "postgresql"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        secret_key="t" * 48,
        public_base_url="http://testserver",
    )


@pytest.fixture
async def app(db: Database, settings: Settings) -> AsyncIterator[Any]:
    application = create_app(settings, database=db)
    async with application.router.lifespan_context(application):
        yield application


class GraphQLClient:
    """Posts GraphQL over HTTP to the in-process ASGI app, like a dashboard would."""

    def __init__(self, http: httpx.AsyncClient, token: str | None = None) -> None:
        self.http = http
        self.token = token

    def as_(self, token: str | None) -> GraphQLClient:
        return GraphQLClient(self.http, token)

    async def post(
        self, query: str, variables: dict[str, Any] | None = None, **kw: Any
    ) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        headers.update(kw.pop("headers", {}))
        return await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers, **kw
        )

    async def query(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.post(query, variables)
        assert response.status_code == 200, response.text
        return response.json()

    async def ok(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The data of a query that must succeed without any top-level error."""
        body = await self.query(query, variables)
        assert "errors" not in body, body["errors"]
        return body["data"]

    async def mutate(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The payload of a one-field mutation (no top-level errors allowed)."""
        data = await self.ok(query, variables)
        (payload,) = data.values()
        return payload


@pytest.fixture
async def api(app: Any) -> AsyncIterator[GraphQLClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield GraphQLClient(http)


@dataclass
class Shop:
    account_id: int
    users: dict[str, int] = field(default_factory=dict)  # role name -> user id
    tokens: dict[str, str] = field(default_factory=dict)  # role name -> bearer token
    actors: dict[str, Actor] = field(default_factory=dict)

    def gid(self, role: str) -> str:
        from resolvers.ids import encode_id

        return encode_id("StaffUser", self.users[role])


async def make_shop(db: Database, name: str = "Shop A", prefix: str = "a") -> Shop:
    """A shop with one user of each role, each signed in."""
    async with db.write_session() as session:
        account, owner = await auth.create_account(
            session=session,
            name=name,
            owner_email=f"owner@{prefix}.test",
            owner_password=PASSWORD,
            owner_name=f"{name} Owner",
            time_zone="Europe/Lisbon",
            currency="EUR",
            country="PT",
        )
        shop = Shop(account_id=account.id)
        owner_actor = auth.actor_for(owner, account)
        users: dict[str, StaffUser] = {"OWNER": owner}
        for role in (Role.MANAGER, Role.TECHNICIAN, Role.FRONT_DESK):
            users[role.value] = await auth.create_staff_user(
                session=session,
                actor=owner_actor,
                email=f"{role.value.lower()}@{prefix}.test",
                name=f"{name} {role.value.title()}",
                role=role,
                password=PASSWORD,
            )
        for role_name, user in users.items():
            issued = await auth.login(
                session=session,
                email=user.email,
                password=PASSWORD,
                ip="fixture",
                ttl=timedelta(hours=1),
            )
            shop.users[role_name] = user.id
            shop.tokens[role_name] = issued.token
            shop.actors[role_name] = auth.actor_for(user, account)
    return shop


@pytest.fixture
async def shop(db: Database) -> Shop:
    return await make_shop(db)


@pytest.fixture
async def other_shop(db: Database) -> Shop:
    return await make_shop(db, "Shop B", "b")


class StatementCounter:
    def __init__(self) -> None:
        self.statements: list[str] = []

    @property
    def count(self) -> int:
        return len(self.statements)


@contextmanager
def count_statements(db: Database) -> Iterator[StatementCounter]:
    counter = StatementCounter()

    def listener(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "PRAGMA", "SAVEPOINT", "RELEASE")):
            counter.statements.append(statement)

    engines = [e.sync_engine for e in db.engines]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", listener)
    try:
        yield counter
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", listener)


class WS:
    """A graphql-transport-ws client on the in-process app (what a dashboard's socket does)."""

    def __init__(self, session: Any) -> None:
        self.session = session

    async def send(self, message: dict[str, Any]) -> None:
        await self.session.send_json(message)

    async def receive(self, timeout: float = 5.0) -> dict[str, Any]:
        return await self.session.receive_json(timeout=timeout)

    async def init(self, token: str | None) -> dict[str, Any]:
        await self.send(
            {
                "type": "connection_init",
                "payload": {"authorization": f"Bearer {token}"} if token else {},
            }
        )
        return await self.receive()

    async def subscribe(
        self, op_id: str, query: str, variables: dict[str, Any] | None = None
    ) -> None:
        await self.send(
            {
                "id": op_id,
                "type": "subscribe",
                "payload": {"query": query, "variables": variables or {}},
            }
        )

    async def next_data(self, op_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The data of the next `next` message for `op_id` (pings are answered/skipped)."""
        while True:
            message = await self.receive(timeout)
            if message["type"] == "ping":
                await self.send({"type": "pong"})
                continue
            assert message.get("id") == op_id, message
            assert message["type"] == "next", message
            assert "errors" not in message["payload"], message["payload"]
            return message["payload"]["data"]

    async def nothing_within(self, seconds: float) -> bool:
        """True if no message (other than keep-alive pings) arrives within `seconds`."""
        try:
            while True:
                message = await self.receive(seconds)
                if message["type"] != "ping":
                    raise AssertionError(f"unexpected message {message}")
        except TimeoutError:
            return True


@pytest.fixture
def connect_ws(app: Any) -> Any:
    """`async with connect_ws() as ws:` opens a socket to the app. The transport is opened
    inside the test's own task (httpx-ws's task group cannot cross pytest-asyncio's
    setup/teardown tasks)."""
    from contextlib import asynccontextmanager

    from httpx_ws import AsyncWebSocketSession, aconnect_ws
    from httpx_ws.transport import ASGIWebSocketTransport

    @asynccontextmanager
    async def connect(headers: dict[str, str] | None = None) -> AsyncIterator[WS]:
        transport = ASGIWebSocketTransport(app)
        session: AsyncWebSocketSession
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://testserver") as http,
            aconnect_ws(
                "http://testserver/graphql",
                http,
                subprotocols=["graphql-transport-ws"],
                headers=headers or {},
            ) as session,
        ):
            yield WS(session)

    return connect


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A throwaway Redis for the session (or TEST_REDIS_URL, which fault tests cannot kill)."""
    from tests.servers import RedisServer

    given = os.environ.get("TEST_REDIS_URL")
    if given:
        yield given
        return
    server = RedisServer.create(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()
