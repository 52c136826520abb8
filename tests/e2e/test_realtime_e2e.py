"""Realtime end to end: two server processes (A and B) sharing PostgreSQL and Redis.

Mutations go to one process over HTTP, subscribers listen on the other over real
websockets; the `order_events` and `notifications` tables are the truth every stream is
compared with: each subscriber must get every committed event exactly once, in sequence
order, whatever happens to Redis, to a server process or to the client's connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from db.engine import Database
from resolvers.ids import decode_id
from services import orders as order_service
from services.statuses import OrderStatus
from tests.conftest import Shop
from tests.e2e.conftest import (
    ASSIGN,
    NOTIFICATIONS,
    ORDER_EVENTS,
    SET_DIAGNOSIS,
    Api,
    GqlSocket,
    ServerProcess,
    Spawn,
    account_seq,
    account_sequences,
    add_note,
    add_part,
    create_order,
    nothing_more,
    notification_rows,
    order_event_rows,
    order_pk,
    sequences,
    transition,
    unpublished_count,
    wait_all_published,
)
from tests.servers import RedisServer

Servers = tuple[ServerProcess, ServerProcess]
log = logging.getLogger("tests.e2e")


def assert_order_stream(received: list[dict[str, Any]], rows: list[tuple[int, int, str]]) -> None:
    """The stream is exactly the order's committed events: same ids, sequences and types,
    in order, sequences 1..N without gaps or repeats."""
    assert [seq for _, seq, _ in rows] == list(range(1, len(rows) + 1))
    assert sequences(received) == [seq for _, seq, _ in rows]
    assert [decode_id(r["id"], "OrderEvent") for r in received] == [i for i, _, _ in rows]
    assert [r["type"] for r in received] == [t for _, _, t in rows]


def assert_notification_stream(received: list[dict[str, Any]], rows: list[tuple[int, int]]) -> None:
    """Exactly the user's notification rows, in account-sequence order, each once."""
    seqs = account_sequences(received)
    assert seqs == sorted(set(seqs)), f"out of order or repeated: {seqs}"
    assert seqs == [seq for _, seq in rows]
    assert [decode_id(n["id"], "Notification") for n in received] == [i for i, _ in rows]


# --- 1. two processes ---------------------------------------------------------------------


async def test_subscribers_on_a_receive_every_event_of_mutations_sent_to_b(
    servers: Servers,
    e2e_shop: Shop,
    e2e_db: Database,
    http: httpx.AsyncClient,
    sockets: list[GqlSocket],
) -> None:
    a, b = servers
    owner = Api(http, b, e2e_shop.tokens["OWNER"])
    manager_id = e2e_shop.users["MANAGER"]
    start = await account_seq(e2e_db, e2e_shop.account_id)

    notes_sock = await GqlSocket.staff(a.ws_url, e2e_shop.tokens["MANAGER"])
    sockets.append(notes_sock)
    await notes_sock.subscribe("n", NOTIFICATIONS, {"after": start})

    x = await create_order(owner, "X")
    y = await create_order(owner, "Y")
    orders_sock = await GqlSocket.staff(a.ws_url, e2e_shop.tokens["TECHNICIAN"])
    sockets.append(orders_sock)
    await orders_sock.subscribe("x", ORDER_EVENTS, {"id": x["id"], "after": 0})
    await orders_sock.subscribe("y", ORDER_EVENTS, {"id": y["id"], "after": 0})

    mutations = 2
    await asyncio.gather(
        transition(owner, x["id"], "REPAIRING"), transition(owner, y["id"], "REPAIRING")
    )
    await owner.mutate(ASSIGN, {"input": {"id": x["id"], "assigneeId": e2e_shop.gid("MANAGER")}})
    await owner.mutate(
        SET_DIAGNOSIS, {"input": {"id": x["id"], "diagnosis": "Screen", "estimatedCost": "80"}}
    )
    mutations += 4
    status = {"x": "REPAIRING", "y": "REPAIRING"}
    for round_ in range(6):
        status = {k: "TESTING" if v == "REPAIRING" else "REPAIRING" for k, v in status.items()}
        # seven mutations at once, two orders, version-checked and not
        await asyncio.gather(
            transition(owner, x["id"], status["x"]),
            add_note(owner, x["id"], f"x note {round_}a"),
            add_note(owner, x["id"], f"x note {round_}b"),
            add_part(owner, x["id"], f"x part {round_}"),
            transition(owner, y["id"], status["y"]),
            add_note(owner, y["id"], f"y note {round_}"),
            add_part(owner, y["id"], f"y part {round_}"),
        )
        mutations += 7
    await transition(owner, x["id"], "READY")
    await transition(owner, x["id"], "COMPLETED")
    mutations += 2
    assert mutations == 50

    x_rows = await order_event_rows(e2e_db, order_pk(x["id"]))
    y_rows = await order_event_rows(e2e_db, order_pk(y["id"]))
    n_rows = await notification_rows(e2e_db, manager_id, start)
    # one event per mutation, numbered without gaps per order and per shop
    assert len(x_rows) + len(y_rows) == 50
    assert await account_seq(e2e_db, e2e_shop.account_id) == start + 50
    # the manager: 2 creations, 16 status changes, 1 assignment
    assert len(n_rows) == 19

    assert_order_stream(await orders_sock.wait_for("x", len(x_rows)), x_rows)
    assert_order_stream(await orders_sock.wait_for("y", len(y_rows)), y_rows)
    assert_notification_stream(await notes_sock.wait_for("n", len(n_rows)), n_rows)
    await nothing_more(
        [(orders_sock, "x", len(x_rows)), (orders_sock, "y", len(y_rows)), (notes_sock, "n", 19)]
    )


# --- 2. Redis dies under live subscribers -------------------------------------------------


async def test_a_redis_outage_loses_nothing_and_duplicates_nothing(
    servers: Servers,
    e2e_shop: Shop,
    e2e_db: Database,
    e2e_redis: RedisServer,
    http: httpx.AsyncClient,
    sockets: list[GqlSocket],
) -> None:
    a, b = servers
    via_a = Api(http, a, e2e_shop.tokens["OWNER"])
    via_b = Api(http, b, e2e_shop.tokens["OWNER"])
    manager_id = e2e_shop.users["MANAGER"]
    start = await account_seq(e2e_db, e2e_shop.account_id)
    z = await create_order(via_b, "Z")
    z_pk = order_pk(z["id"])

    subscribers: list[tuple[GqlSocket, str]] = []
    for server, role in ((a, "TECHNICIAN"), (b, "FRONT_DESK")):
        sock = await GqlSocket.staff(server.ws_url, e2e_shop.tokens[role])
        sockets.append(sock)
        await sock.subscribe("z", ORDER_EVENTS, {"id": z["id"], "after": 0})
        subscribers.append((sock, "z"))
    for server in (a, b):
        sock = await GqlSocket.staff(server.ws_url, e2e_shop.tokens["MANAGER"])
        sockets.append(sock)
        await sock.subscribe("n", NOTIFICATIONS, {"after": start})
        subscribers.append((sock, "n"))

    await transition(via_a, z["id"], "REPAIRING")
    for sock, op in subscribers:  # live before the outage
        await sock.wait_for(op, 2)
    before_outage = len(await order_event_rows(e2e_db, z_pk))

    await asyncio.to_thread(e2e_redis.stop)
    try:
        began = time.monotonic()
        await transition(via_b, z["id"], "TESTING")
        await add_note(via_a, z["id"], "during the outage 1")
        await transition(via_a, z["id"], "REPAIRING")
        await asyncio.gather(
            add_note(via_a, z["id"], "during the outage 2"),
            add_note(via_b, z["id"], "during the outage 3"),
            add_part(via_b, z["id"], "during the outage"),
        )
        await transition(via_b, z["id"], "TESTING")
        await add_note(via_b, z["id"], "during the outage 4")
        outage_mutations = time.monotonic() - began
        # every mutation committed; nothing could be published, not even by the relay
        rows = await order_event_rows(e2e_db, z_pk)
        assert len(rows) == before_outage + 8
        assert await unpublished_count(e2e_db, z_pk, after_seq=before_outage) == 8
        for server in (a, b):
            assert (await http.get(f"{server.base_url}/healthz")).status_code == 200
        # a subscriber that arrives during the outage gets the past from the database, on
        # a channel its process already listens to (z) and on a new one (q)
        q = await create_order(via_a, "Q")
        late = await GqlSocket.staff(b.ws_url, e2e_shop.tokens["MANAGER"])
        sockets.append(late)
        await late.subscribe("z", ORDER_EVENTS, {"id": z["id"], "after": 0})
        await late.subscribe("q", ORDER_EVENTS, {"id": q["id"], "after": 0})
        assert_order_stream(await late.wait_for("z", len(rows)), rows)
        assert sequences(await late.wait_for("q", 1)) == [1]
        subscribers.append((late, "z"))
    finally:
        await asyncio.to_thread(e2e_redis.start)

    await transition(via_a, z["id"], "REPAIRING")
    await add_note(via_b, z["id"], "after the outage")
    await add_note(via_a, q["id"], "after the outage")

    z_rows = await order_event_rows(e2e_db, z_pk)
    n_rows = await notification_rows(e2e_db, manager_id, start)
    assert len(z_rows) == before_outage + 10
    for sock, op in subscribers:
        if op == "z":
            assert_order_stream(await sock.wait_for(op, len(z_rows), timeout=15), z_rows)
        else:
            assert_notification_stream(await sock.wait_for(op, len(n_rows), timeout=15), n_rows)
    q_rows = await order_event_rows(e2e_db, order_pk(q["id"]))
    assert_order_stream(await late.wait_for("q", 2, timeout=15), q_rows)
    await nothing_more(
        [(s, op, len(z_rows) if op == "z" else len(n_rows)) for s, op in subscribers]
        + [(late, "q", 2)]
    )
    # and the relay published (and marked) what the outage left unpublished
    await wait_all_published(e2e_db, z_pk)
    log.info("8 mutations during the Redis outage took %.2fs", outage_mutations)


# --- 3. a process dies between commit and publish -----------------------------------------


async def test_events_committed_but_never_published_are_relayed(
    servers: Servers,
    e2e_shop: Shop,
    e2e_db: Database,
    http: httpx.AsyncClient,
    sockets: list[GqlSocket],
) -> None:
    """The exact state a process killed between commit and publish leaves behind: events
    committed by the same service calls the API makes, in a write transaction of this test
    process, which publishes nothing. The relay of a live process must publish them."""
    a, b = servers
    owner = Api(http, b, e2e_shop.tokens["OWNER"])
    actor = e2e_shop.actors["OWNER"]
    manager_id = e2e_shop.users["MANAGER"]
    w = await create_order(owner, "W")
    w_pk = order_pk(w["id"])
    start = await account_seq(e2e_db, e2e_shop.account_id)

    orders_sock = await GqlSocket.staff(a.ws_url, e2e_shop.tokens["TECHNICIAN"])
    notes_sock = await GqlSocket.staff(a.ws_url, e2e_shop.tokens["MANAGER"])
    sockets.extend([orders_sock, notes_sock])
    await orders_sock.subscribe("w", ORDER_EVENTS, {"id": w["id"], "after": 0})
    await notes_sock.subscribe("n", NOTIFICATIONS, {"after": start})
    await orders_sock.wait_for("w", 1)

    async with e2e_db.write_session() as session:
        await order_service.transition_order(
            session=session, actor=actor, order_id=w_pk, to_status=OrderStatus.REPAIRING
        )
    async with e2e_db.write_session() as session:
        await order_service.add_internal_note(
            session=session, actor=actor, order_id=w_pk, body="committed, never published"
        )
    async with e2e_db.write_session() as session:
        await order_service.transition_order(
            session=session, actor=actor, order_id=w_pk, to_status=OrderStatus.TESTING
        )
    committed = time.monotonic()
    assert await unpublished_count(e2e_db, w_pk, after_seq=1) == 3

    w_rows = await order_event_rows(e2e_db, w_pk)
    n_rows = await notification_rows(e2e_db, manager_id, start)
    assert (len(w_rows), len(n_rows)) == (4, 2)
    assert_order_stream(await orders_sock.wait_for("w", 4, timeout=5), w_rows)
    delay = time.monotonic() - committed
    assert_notification_stream(await notes_sock.wait_for("n", 2, timeout=5), n_rows)
    # grace 1 s + relay interval 0.5 s, with room for a loaded machine
    assert delay < 3.0, delay
    await nothing_more([(orders_sock, "w", 4), (notes_sock, "n", 2)])
    await wait_all_published(e2e_db, w_pk)
    log.info("relayed to the subscriber %.2fs after commit", delay)


async def test_a_process_killed_mid_burst_loses_no_committed_event(
    servers: Servers,
    spawn: Spawn,
    e2e_db_url: str,
    e2e_shop: Shop,
    e2e_db: Database,
    http: httpx.AsyncClient,
    sockets: list[GqlSocket],
) -> None:
    """SIGKILL a third process C while it serves a burst of concurrent mutations: whatever
    it committed (published, half published, or not at all) reaches subscribers on A and B
    exactly once; what it did not commit never appears."""
    a, b = servers
    c = await spawn("C", e2e_db_url)
    via_c = Api(http, c, e2e_shop.tokens["OWNER"])
    v = await create_order(Api(http, b, e2e_shop.tokens["OWNER"]), "V")
    v_pk = order_pk(v["id"])

    subscribers: list[GqlSocket] = []
    for server in (a, b):
        sock = await GqlSocket.staff(server.ws_url, e2e_shop.tokens["TECHNICIAN"])
        sockets.append(sock)
        await sock.subscribe("v", ORDER_EVENTS, {"id": v["id"], "after": 0})
        await sock.wait_for("v", 1)
        subscribers.append(sock)

    answered = 0
    gate = asyncio.Semaphore(8)

    async def one(i: int) -> None:
        nonlocal answered
        async with gate:
            if i % 6 == 0:
                await add_part(via_c, v["id"], f"burst part {i}")
            else:
                await add_note(via_c, v["id"], f"burst note {i}")
            answered += 1

    tasks = [asyncio.create_task(one(i)) for i in range(60)]
    deadline = time.monotonic() + 20
    while answered < 15:
        assert time.monotonic() < deadline, f"only {answered} answers"
        await asyncio.sleep(0.002)
    c.kill()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    # the requests C did not answer failed on the transport, nothing else
    assert all(isinstance(f, httpx.TransportError) for f in failures), failures
    unpublished_at_kill = await unpublished_count(e2e_db, v_pk)

    v_rows = await order_event_rows(e2e_db, v_pk)
    # everything answered is committed; some unanswered requests may have committed too
    assert len(v_rows) >= 1 + answered
    assert len(v_rows) <= 1 + len(tasks)
    for sock in subscribers:
        assert_order_stream(await sock.wait_for("v", len(v_rows), timeout=10), v_rows)
    await nothing_more([(s, "v", len(v_rows)) for s in subscribers])
    await wait_all_published(e2e_db, v_pk)
    log.info(
        "C answered %d/%d; %d events committed; %d unpublished (or unmarked) when it died",
        answered,
        len(tasks),
        len(v_rows) - 1,
        unpublished_at_kill,
    )


# --- 4. a client loses its connection and resumes -----------------------------------------


async def test_a_dropped_client_resumes_with_after_and_gets_exactly_what_it_missed(
    servers: Servers,
    e2e_shop: Shop,
    e2e_db: Database,
    http: httpx.AsyncClient,
    sockets: list[GqlSocket],
) -> None:
    a, b = servers
    owner = Api(http, b, e2e_shop.tokens["OWNER"])
    manager_id = e2e_shop.users["MANAGER"]
    u = await create_order(owner, "U")
    u_pk = order_pk(u["id"])
    start = await account_seq(e2e_db, e2e_shop.account_id)

    first = await GqlSocket.staff(a.ws_url, e2e_shop.tokens["MANAGER"])
    sockets.append(first)
    await first.subscribe("u", ORDER_EVENTS, {"id": u["id"], "after": 0})
    await first.subscribe("n", NOTIFICATIONS, {"after": start})
    await transition(owner, u["id"], "REPAIRING")
    await add_note(owner, u["id"], "seen live")
    await transition(owner, u["id"], "TESTING")
    seen = await first.wait_for("u", 4)
    seen_notes = await first.wait_for("n", 2)
    last_seq = sequences(seen)[-1]
    last_account_seq = account_sequences(seen_notes)[-1]

    first.abort()  # the network goes away: no close frame
    await asyncio.wait_for(first.closed.wait(), 5)
    await transition(owner, u["id"], "REPAIRING")
    await add_part(owner, u["id"], "missed part")
    await add_note(owner, u["id"], "missed note")
    await transition(owner, u["id"], "READY")
    missed = await order_event_rows(e2e_db, u_pk)
    missed = [row for row in missed if row[1] > last_seq]
    missed_notes = await notification_rows(e2e_db, manager_id, last_account_seq)
    assert (len(missed), len(missed_notes)) == (4, 2)

    again = await GqlSocket.staff(a.ws_url, e2e_shop.tokens["MANAGER"])
    sockets.append(again)
    await again.subscribe("u", ORDER_EVENTS, {"id": u["id"], "after": last_seq})
    await again.subscribe("n", NOTIFICATIONS, {"after": last_account_seq})
    assert_order_stream_tail(await again.wait_for("u", 4), missed)
    assert_notification_stream(await again.wait_for("n", 2), missed_notes)

    await transition(owner, u["id"], "COMPLETED")
    await add_note(owner, u["id"], "live again")
    rows = [row for row in await order_event_rows(e2e_db, u_pk) if row[1] > last_seq]
    note_rows = await notification_rows(e2e_db, manager_id, last_account_seq)
    assert (len(rows), len(note_rows)) == (6, 3)
    assert_order_stream_tail(await again.wait_for("u", 6), rows)
    assert_notification_stream(await again.wait_for("n", 3), note_rows)
    await nothing_more([(again, "u", 6), (again, "n", 3)])


def assert_order_stream_tail(
    received: list[dict[str, Any]], rows: list[tuple[int, int, str]]
) -> None:
    assert sequences(received) == [seq for _, seq, _ in rows]
    assert [decode_id(r["id"], "OrderEvent") for r in received] == [i for i, _, _ in rows]


# --- sockets that may not subscribe -------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [{}, {"authorization": "Bearer not-a-token"}, {"authorization": ""}],
    ids=["no-token", "bad-token", "empty"],
)
async def test_a_socket_without_a_valid_token_is_closed_with_4403(
    servers: Servers, payload: dict[str, Any]
) -> None:
    a, _ = servers
    sock = await GqlSocket.open(a.ws_url)
    try:
        await sock.send({"type": "connection_init", "payload": payload})
        await asyncio.wait_for(sock.closed.wait(), 5)
        assert not sock.acked.is_set()
        assert sock.close_code == 4403
    finally:
        await sock.close()


@pytest.fixture(scope="module", autouse=True)
async def silent_socket(servers: Servers) -> AsyncIterator[GqlSocket]:
    """A socket that never sends connection_init, opened as soon as the servers are up; the
    test that checks it runs last in this module, so its 10 seconds pass meanwhile."""
    sock = await GqlSocket.open(servers[1].ws_url)
    yield sock
    await sock.close()


async def test_a_socket_that_never_sends_connection_init_is_closed_after_10s(
    silent_socket: GqlSocket,
) -> None:
    await asyncio.wait_for(silent_socket.closed.wait(), 12)
    assert silent_socket.closed_at is not None
    waited = silent_socket.closed_at - silent_socket.opened_at
    assert silent_socket.close_code == 4408
    assert not silent_socket.acked.is_set()
    assert 9.5 <= waited <= 11.0, waited
