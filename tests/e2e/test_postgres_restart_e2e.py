"""A PostgreSQL restart under a running server process (on a PostgreSQL of this test's
own, so the session's shared server is not disturbed).

The process is not restarted: once PostgreSQL is back, health checks, queries and
mutations succeed again within seconds, and a subscription opened before the outage
still delivers every event exactly once, in order.
"""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import pytest

from db.engine import Database
from db.migrate import upgrade
from tests.conftest import create_pg_database, make_shop
from tests.e2e.conftest import (
    ORDER_EVENTS,
    TRANSITION,
    Api,
    GqlSocket,
    ServerProcess,
    Spawn,
    add_note,
    create_order,
    nothing_more,
    order_event_rows,
    order_pk,
    transition,
)
from tests.e2e.test_realtime_e2e import assert_order_stream
from tests.servers import PostgresServer

log = logging.getLogger("tests.e2e")
RECOVERY_TIMEOUT = 15.0


def start_again(pg: PostgresServer) -> None:
    """`pg_ctl start` with the options tests/servers.py started it with (same port)."""
    options = " ".join(
        [
            f"-p {pg.port}",
            f"-k {pg.directory}",
            "-c listen_addresses=127.0.0.1",
            "-c fsync=off",
            "-c synchronous_commit=off",
            "-c full_page_writes=off",
            "-c max_connections=300",
        ]
    )
    pg.pg_ctl("-l", str(pg.directory / "log"), "-o", options, "-w", "-t", "60", "start")


async def until_ok(
    http: httpx.AsyncClient, server: ServerProcess, owner: Api, order_id: str
) -> int:
    """Retry (bounded) until /healthz, a query and a mutation all succeed; returns tries."""
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    tries = 0
    while True:
        tries += 1
        assert server.alive, "the server process died"
        try:
            health = await http.get(f"{server.base_url}/healthz")
            query = await owner.post("query($id: ID!) { node(id: $id) { id } }", {"id": order_id})
            if (
                health.status_code == 200
                and query.status_code == 200
                and "errors" not in query.json()
                and query.json()["data"]["node"] == {"id": order_id}
            ):
                await add_note(owner, order_id, "after the restart")
                return tries
        except (httpx.HTTPError, AssertionError):
            pass
        assert time.monotonic() < deadline, f"not recovered within {RECOVERY_TIMEOUT}s"
        await asyncio.sleep(0.2)


async def test_the_server_recovers_from_a_postgres_restart_without_restarting(
    spawn: Spawn,
    tmp_path_factory: pytest.TempPathFactory,
    http: httpx.AsyncClient,
) -> None:
    pg = await asyncio.to_thread(PostgresServer.start, tmp_path_factory.mktemp("pgr"))
    db: Database | None = None
    server: ServerProcess | None = None
    sock: GqlSocket | None = None
    pg_running = True
    try:
        url = await create_pg_database(pg, "e2e_restart")
        await asyncio.to_thread(upgrade, url)
        db = Database(url, pool_size=2)
        shop = await make_shop(db, "Restart Shop", "restart")
        server = await spawn("R", url)
        owner = Api(http, server, shop.tokens["OWNER"])
        order = await create_order(owner, "R")
        pk = order_pk(order["id"])
        sock = await GqlSocket.staff(server.ws_url, shop.tokens["TECHNICIAN"])
        await sock.subscribe("r", ORDER_EVENTS, {"id": order["id"], "after": 0})
        await transition(owner, order["id"], "REPAIRING")
        await sock.wait_for("r", 2)
        await db.dispose()

        await asyncio.to_thread(pg.pg_ctl, "-m", "fast", "-w", "stop")
        pg_running = False
        # while it is down: requests fail (the process stays up, /healthz says 503)
        async with httpx.AsyncClient(trust_env=False, timeout=10) as fresh:
            down = Api(fresh, server, shop.tokens["OWNER"])
            response = await down.post(TRANSITION, {"input": {"id": order["id"], "to": "TESTING"}})
            # authenticating the token needs the database: a clear 503, not a bare 500
            assert response.status_code == 503, response.text
            assert "temporarily unavailable" in response.text
        async with httpx.AsyncClient(trust_env=False, timeout=10) as fresh:
            assert (await fresh.get(f"{server.base_url}/healthz")).status_code == 503
        assert server.alive

        await asyncio.to_thread(start_again, pg)
        pg_running = True
        back = time.monotonic()
        tries = await until_ok(http, server, owner, order["id"])
        recovered = time.monotonic() - back
        await transition(owner, order["id"], "TESTING")

        rows = await order_event_rows(db, pk)
        # created, REPAIRING, the note, TESTING: the failed attempt left nothing
        assert [t for _, _, t in rows] == [
            "ORDER_CREATED",
            "STATUS_CHANGED",
            "NOTE_ADDED",
            "STATUS_CHANGED",
        ]
        assert_order_stream(await sock.wait_for("r", len(rows), timeout=10), rows)
        await nothing_more([(sock, "r", len(rows))])
        assert server.alive
        log.info("recovered %.2fs after PostgreSQL was back (%d tries)", recovered, tries)
    finally:
        if sock is not None:
            await sock.close()
        if server is not None:
            await asyncio.to_thread(server.stop)
        if db is not None:
            await db.dispose()
        if pg_running:
            await asyncio.to_thread(pg.stop)
