"""Events, the audit trail, staff subscriptions and notifications, in one process (both
databases, in-memory bus): over the real ASGI app, HTTP and graphql-transport-ws."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from httpx_ws import WebSocketDisconnect
from sqlalchemy import func, select

from db.models import Notification, OrderEvent
from tests.conftest import GraphQLClient, Shop, count_statements

CREATE = """
mutation($input: ServiceOrderCreateInput!) {
  serviceOrderCreate(input: $input) { serviceOrder { id number } userErrors { code field } }
}"""
TRANSITION = """
mutation($id: ID!, $to: ServiceOrderStatus!, $note: String) {
  serviceOrderTransition(input: {id: $id, to: $to, note: $note}) {
    serviceOrder { status } userErrors { code }
  }
}"""
ASSIGN = """
mutation($id: ID!, $to: ID) {
  serviceOrderAssign(input: {id: $id, assigneeId: $to}) { serviceOrder { id } userErrors { code } }
}"""
NOTE = """
mutation($id: ID!, $body: String!) {
  internalNoteAdd(input: {orderId: $id, body: $body}) { internalNote { id } userErrors { code } }
}"""
PART = """
mutation($id: ID!) {
  partLineAdd(input: {orderId: $id, name: "Screen", unitCost: "80.00", quantity: 1}) {
    partLine { id } userErrors { code }
  }
}"""
ORDER_EVENTS = """
subscription($id: ID!, $after: Int) {
  serviceOrderEvents(id: $id, after: $after) {
    sequence accountSequence type status orderNumber staffOnly actor { kind name } data
  }
}"""
NOTIFICATIONS = """
subscription($after: Int) {
  staffNotifications(after: $after) {
    id isRead event { sequence accountSequence type orderNumber data }
  }
}"""


async def create_order(api: GraphQLClient, token: str, name: str = "Ana") -> tuple[str, str]:
    payload = await api.as_(token).mutate(
        CREATE,
        {
            "input": {
                "client": {"name": name, "phone": "912345678"},
                "device": {"brand": "Apple", "model": "iPhone 13", "problemReported": "Cracked"},
            }
        },
    )
    assert payload["userErrors"] == []
    return payload["serviceOrder"]["id"], payload["serviceOrder"]["number"]


async def move(api: GraphQLClient, token: str, order_id: str, to: str) -> None:
    payload = await api.as_(token).mutate(TRANSITION, {"id": order_id, "to": to})
    assert payload["userErrors"] == [], payload


async def event_rows(db: Any) -> list[OrderEvent]:
    async with db.read_session() as session:
        return list(await session.scalars(select(OrderEvent).order_by(OrderEvent.id)))


async def test_each_change_writes_one_event_with_gapless_sequences(
    api: GraphQLClient, shop: Shop, db
) -> None:
    desk, tech = shop.tokens["FRONT_DESK"], shop.tokens["TECHNICIAN"]
    first, first_number = await create_order(api, desk)
    second, _ = await create_order(api, desk, "Bea")
    await move(api, tech, first, "DIAGNOSING")
    await api.as_(tech).mutate(PART, {"id": first})
    await api.as_(tech).mutate(NOTE, {"id": second, "body": "Customer prefers SMS"})
    await move(api, tech, second, "AWAITING_DIAGNOSIS")

    rows = await event_rows(db)
    assert [(r.type, r.order_seq, r.account_seq) for r in rows] == [
        ("ORDER_CREATED", 1, 1),
        ("ORDER_CREATED", 1, 2),
        ("STATUS_CHANGED", 2, 3),
        ("PART_ADDED", 3, 4),
        ("NOTE_ADDED", 2, 5),
        ("STATUS_CHANGED", 3, 6),
    ]
    assert [r.staff_only for r in rows] == [False, False, False, False, True, False]
    assert rows[2].payload == {
        "number": first_number,
        "status": "DIAGNOSING",
        "from": "PENDING",
        "to": "DIAGNOSING",
        "note": None,
    }
    assert rows[2].actor_kind == "STAFF" and rows[2].actor_id == shop.users["TECHNICIAN"]


async def test_a_change_that_fails_writes_no_event(api: GraphQLClient, shop: Shop, db) -> None:
    order_id, _ = await create_order(api, shop.tokens["FRONT_DESK"])
    before = len(await event_rows(db))
    # invalid transition, missing guard, stale version, bad input: nothing committed
    bad = await api.as_(shop.tokens["OWNER"]).mutate(
        TRANSITION, {"id": order_id, "to": "COMPLETED"}
    )
    assert bad["userErrors"][0]["code"] == "INVALID_TRANSITION"
    guard = await api.as_(shop.tokens["OWNER"]).mutate(
        TRANSITION, {"id": order_id, "to": "DIAGNOSING"}
    )
    assert guard["userErrors"] == []
    missing = await api.as_(shop.tokens["OWNER"]).mutate(
        TRANSITION, {"id": order_id, "to": "AWAITING_APPROVAL"}
    )
    assert {e["code"] for e in missing["userErrors"]} == {"MISSING_DIAGNOSIS", "MISSING_ESTIMATE"}
    blank = await api.as_(shop.tokens["OWNER"]).mutate(NOTE, {"id": order_id, "body": "   "})
    assert blank["userErrors"][0]["code"] == "REQUIRED"
    rows = await event_rows(db)
    assert len(rows) == before + 1  # only the valid DIAGNOSING move
    assert rows[-1].type == "STATUS_CHANGED"


AUDIT = """
query($id: ID!, $after: Int, $first: Int) {
  serviceOrder(id: $id) {
    events(after: $after, first: $first) {
      edges { cursor node { sequence type actor { name } data } }
      pageInfo { hasNextPage endCursor }
    }
  }
}"""


async def test_audit_trail_pages_by_sequence(api: GraphQLClient, shop: Shop) -> None:
    tech = shop.tokens["TECHNICIAN"]
    order_id, _ = await create_order(api, shop.tokens["FRONT_DESK"])
    for to in ("DIAGNOSING", "REPAIRING", "TESTING", "REPAIRING", "READY"):
        await move(api, tech, order_id, to)
    client = api.as_(tech)
    page1 = (await client.ok(AUDIT, {"id": order_id, "first": 4}))["serviceOrder"]["events"]
    assert [e["node"]["sequence"] for e in page1["edges"]] == [1, 2, 3, 4]
    assert page1["pageInfo"] == {"hasNextPage": True, "endCursor": "4"}
    page2 = (await client.ok(AUDIT, {"id": order_id, "after": 4, "first": 4}))["serviceOrder"][
        "events"
    ]
    assert [e["node"]["sequence"] for e in page2["edges"]] == [5, 6]
    assert page2["pageInfo"]["hasNextPage"] is False
    assert page2["edges"][-1]["node"]["data"] == {"from": "REPAIRING", "to": "READY", "note": None}

    account = await client.ok("{ events(first: 100) { nodes { accountSequence type } } }")
    assert [n["accountSequence"] for n in account["events"]["nodes"]] == list(range(1, 7))
    body = await client.query("{ events(first: 101) { nodes { type } } }")
    assert body["errors"][0]["extensions"]["code"] == "INVALID_INPUT"


async def test_other_shops_do_not_see_events(
    api: GraphQLClient, shop: Shop, other_shop: Shop, connect_ws
) -> None:
    order_id, _ = await create_order(api, shop.tokens["FRONT_DESK"])
    foreign = api.as_(other_shop.tokens["OWNER"])
    assert (await foreign.ok(AUDIT, {"id": order_id}))["serviceOrder"] is None
    assert (await foreign.ok("{ events { nodes { type } } }"))["events"]["nodes"] == []
    async with connect_ws() as ws:
        await ws.init(other_shop.tokens["OWNER"])
        await ws.subscribe("1", ORDER_EVENTS, {"id": order_id, "after": 0})
        message = await ws.receive()
        assert message["type"] == "next"
        assert message["payload"]["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        assert (await ws.receive())["type"] == "complete"


async def test_subscription_replays_then_streams_live(
    api: GraphQLClient, shop: Shop, connect_ws
) -> None:
    """The exact frames: ack; the replay of what happened after `after`; live events."""
    tech = shop.tokens["TECHNICIAN"]
    order_id, number = await create_order(api, shop.tokens["FRONT_DESK"])
    await move(api, tech, order_id, "DIAGNOSING")
    async with connect_ws() as ws:
        ack = await ws.init(tech)
        assert ack == {"type": "connection_ack", "payload": {"viewer": "Shop A Technician"}}
        await ws.subscribe("s1", ORDER_EVENTS, {"id": order_id, "after": 1})
        replayed = (await ws.next_data("s1"))["serviceOrderEvents"]
        assert replayed == {
            "sequence": 2,
            "accountSequence": 2,
            "type": "STATUS_CHANGED",
            "status": "DIAGNOSING",
            "orderNumber": number,
            "staffOnly": False,
            "actor": {"kind": "STAFF", "name": "Shop A Technician"},
            "data": {"from": "PENDING", "to": "DIAGNOSING", "note": None},
        }
        assert await ws.nothing_within(0.2)
        await api.as_(tech).mutate(NOTE, {"id": order_id, "body": "Ordered a screen"})
        await move(api, tech, order_id, "REPAIRING")
        live = [(await ws.next_data("s1"))["serviceOrderEvents"] for _ in range(2)]
        assert [(e["sequence"], e["type"], e["staffOnly"]) for e in live] == [
            (3, "NOTE_ADDED", True),
            (4, "STATUS_CHANGED", False),
        ]
        await ws.send({"id": "s1", "type": "complete"})
        assert await ws.nothing_within(0.3)


async def test_without_after_only_new_events_arrive(
    api: GraphQLClient, shop: Shop, connect_ws
) -> None:
    tech = shop.tokens["TECHNICIAN"]
    order_id, _ = await create_order(api, shop.tokens["FRONT_DESK"])
    async with connect_ws() as ws:
        await ws.init(tech)
        await ws.subscribe("s", ORDER_EVENTS, {"id": order_id})
        assert await ws.nothing_within(0.3)
        await move(api, tech, order_id, "DIAGNOSING")
        assert (await ws.next_data("s"))["serviceOrderEvents"]["sequence"] == 2


async def test_reconnect_with_after_gets_exactly_what_was_missed(
    api: GraphQLClient, shop: Shop, connect_ws
) -> None:
    tech = shop.tokens["TECHNICIAN"]
    order_id, _ = await create_order(api, shop.tokens["FRONT_DESK"])
    async with connect_ws() as ws:
        await ws.init(tech)
        await ws.subscribe("s", ORDER_EVENTS, {"id": order_id, "after": 0})
        seen = [(await ws.next_data("s"))["serviceOrderEvents"]["sequence"]]
        await move(api, tech, order_id, "DIAGNOSING")
        seen.append((await ws.next_data("s"))["serviceOrderEvents"]["sequence"])
    # the phone loses its connection; meanwhile the order moves on
    for to in ("REPAIRING", "TESTING", "READY"):
        await move(api, tech, order_id, to)
    async with connect_ws() as ws:
        await ws.init(tech)
        await ws.subscribe("s", ORDER_EVENTS, {"id": order_id, "after": seen[-1]})
        for _ in range(3):
            seen.append((await ws.next_data("s"))["serviceOrderEvents"]["sequence"])
        assert await ws.nothing_within(0.2)
        await move(api, shop.tokens["FRONT_DESK"], order_id, "COMPLETED")
        seen.append((await ws.next_data("s"))["serviceOrderEvents"]["sequence"])
    assert seen == [1, 2, 3, 4, 5, 6]


async def test_concurrent_changes_reach_every_subscriber_in_order(
    api: GraphQLClient, shop: Shop, connect_ws
) -> None:
    """Eight subscribers on one order; 20 notes added concurrently by two staff members.
    Each subscriber receives sequences 2..21 exactly once, in order."""
    order_id, _ = await create_order(api, shop.tokens["FRONT_DESK"])
    async with connect_ws() as ws:
        await ws.init(shop.tokens["OWNER"])
        for i in range(8):
            await ws.subscribe(f"s{i}", ORDER_EVENTS, {"id": order_id, "after": 1})
        await asyncio.sleep(0.1)
        tokens = [shop.tokens["TECHNICIAN"], shop.tokens["MANAGER"]]
        results = await asyncio.gather(
            *(
                api.as_(tokens[i % 2]).mutate(NOTE, {"id": order_id, "body": f"note {i}"})
                for i in range(20)
            )
        )
        assert all(r["userErrors"] == [] for r in results)
        received: dict[str, list[int]] = {f"s{i}": [] for i in range(8)}
        while sum(len(v) for v in received.values()) < 160:
            message = await ws.receive()
            if message["type"] == "next":
                received[message["id"]].append(
                    message["payload"]["data"]["serviceOrderEvents"]["sequence"]
                )
        assert all(seqs == list(range(2, 22)) for seqs in received.values())
        assert await ws.nothing_within(0.2)


async def test_fan_out_runs_no_query_per_subscriber(
    api: GraphQLClient, shop: Shop, connect_ws, db
) -> None:
    """A live event reaches 6 subscribers without any SQL statement on the delivery path:
    the payload is built once per event from the bus message."""
    tech = shop.tokens["TECHNICIAN"]
    order_id, _ = await create_order(api, shop.tokens["FRONT_DESK"])
    async with connect_ws() as ws:
        await ws.init(tech)
        for i in range(6):
            await ws.subscribe(f"s{i}", ORDER_EVENTS, {"id": order_id})
        await asyncio.sleep(0.2)  # subscriptions set up (they read the current sequence)
        with count_statements(db) as counter:
            await move(api, tech, order_id, "DIAGNOSING")
            mutation_statements = counter.count
            got = 0
            while got < 6:
                message = await ws.receive()
                if message["type"] == "next":
                    got += 1
            await asyncio.sleep(0.3)  # let the published-marker flush run
        # only the background publish-marker and relay (both on published_at) may run
        delivery = [s for s in counter.statements[mutation_statements:] if "published_at" not in s]
        assert delivery == [], delivery


async def test_staff_notifications_live_and_stored(
    api: GraphQLClient, shop: Shop, connect_ws, db
) -> None:
    desk, tech = shop.tokens["FRONT_DESK"], shop.tokens["TECHNICIAN"]
    async with connect_ws() as ws:
        await ws.init(tech)
        await ws.subscribe("n", NOTIFICATIONS, {})
        await asyncio.sleep(0.1)
        order_id, number = await create_order(api, desk)  # new order: everyone but the creator
        created = (await ws.next_data("n"))["staffNotifications"]
        assert created["event"]["type"] == "ORDER_CREATED"
        assert created["event"]["orderNumber"] == number
        assert created["isRead"] is False
        await api.as_(desk).mutate(ASSIGN, {"id": order_id, "to": shop.gid("TECHNICIAN")})
        assigned = (await ws.next_data("n"))["staffNotifications"]
        assert assigned["event"]["type"] == "ASSIGNED"
        # the technician's own change does not notify the technician
        await move(api, tech, order_id, "DIAGNOSING")
        assert await ws.nothing_within(0.3)
        # a status change by someone else notifies the assignee
        await move(api, shop.tokens["MANAGER"], order_id, "CANCELLED")
        changed = (await ws.next_data("n"))["staffNotifications"]
        assert changed["event"]["data"]["to"] == "CANCELLED"

    query = "{ unreadNotificationCount notifications(first: 10) { nodes { id isRead event { type } } } }"
    data = await api.as_(tech).ok(query)
    assert data["unreadNotificationCount"] == 3
    nodes = data["notifications"]["nodes"]
    assert [n["event"]["type"] for n in nodes] == ["STATUS_CHANGED", "ASSIGNED", "ORDER_CREATED"]
    assert created["id"] == nodes[2]["id"]  # the live notification carries its stored id
    mark = """mutation($ids: [ID!]) { notificationsMarkRead(input: {ids: $ids}) { unreadCount userErrors { code } } }"""
    assert (await api.as_(tech).mutate(mark, {"ids": [nodes[0]["id"]]})) == {
        "unreadCount": 2,
        "userErrors": [],
    }
    # someone else's notification id changes nothing for them
    other = await api.as_(shop.tokens["OWNER"]).mutate(mark, {"ids": [nodes[1]["id"]]})
    assert other["userErrors"] == []
    assert (await api.as_(tech).ok("{ unreadNotificationCount }"))["unreadNotificationCount"] == 2
    all_read = (
        "mutation { notificationsMarkRead(input: {all: true}) { unreadCount userErrors { code } } }"
    )
    assert (await api.as_(tech).mutate(all_read)) == {"unreadCount": 0, "userErrors": []}
    async with db.read_session() as session:
        by_user = dict(
            (
                await session.execute(
                    select(Notification.user_id, func.count()).group_by(Notification.user_id)
                )
            ).all()
        )
    # created (by desk) -> owner, manager, technician; assigned -> technician;
    # DIAGNOSING (by tech) -> owner, manager, desk (creator); CANCELLED (by manager) ->
    # owner, technician (assignee), desk (creator). Never the actor.
    assert by_user == {
        shop.users["OWNER"]: 3,
        shop.users["MANAGER"]: 2,
        shop.users["TECHNICIAN"]: 3,
        shop.users["FRONT_DESK"]: 2,
    }


async def test_notifications_resume_after(api: GraphQLClient, shop: Shop, connect_ws) -> None:
    desk, owner = shop.tokens["FRONT_DESK"], shop.tokens["OWNER"]
    await create_order(api, desk, "One")
    async with connect_ws() as ws:
        await ws.init(owner)
        await ws.subscribe("n", NOTIFICATIONS, {"after": 0})
        first = (await ws.next_data("n"))["staffNotifications"]["event"]["accountSequence"]
    await create_order(api, desk, "Two")
    await create_order(api, desk, "Three")
    async with connect_ws() as ws:
        await ws.init(owner)
        await ws.subscribe("n", NOTIFICATIONS, {"after": first})
        seqs = [
            (await ws.next_data("n"))["staffNotifications"]["event"]["accountSequence"]
            for _ in range(2)
        ]
        assert await ws.nothing_within(0.2)
    assert [first, *seqs] == [1, 2, 3]


async def test_sockets_without_a_valid_token_are_closed(
    api: GraphQLClient, shop: Shop, connect_ws
) -> None:
    for payload in ({}, {"authorization": "Bearer so_nope"}, {"token": "garbage"}):
        async with connect_ws() as ws:
            await ws.send({"type": "connection_init", "payload": payload})
            with pytest.raises(WebSocketDisconnect) as closed:
                await ws.receive()
            assert closed.value.code == 4403


async def test_subscribing_before_init_is_refused(
    api: GraphQLClient, shop: Shop, connect_ws
) -> None:
    async with connect_ws() as ws:
        await ws.subscribe("s", "subscription { staffNotifications { id } }")
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive()
        assert closed.value.code == 4401


async def test_deactivation_ends_the_users_streams(
    api: GraphQLClient, shop: Shop, connect_ws
) -> None:
    order_id, _ = await create_order(api, shop.tokens["FRONT_DESK"])
    async with connect_ws() as ws:
        await ws.init(shop.tokens["TECHNICIAN"])
        await ws.subscribe("o", ORDER_EVENTS, {"id": order_id})
        await ws.subscribe("n", NOTIFICATIONS, {})
        await asyncio.sleep(0.1)
        deactivate = (
            "mutation($id: ID!) { staffUserDeactivate(input: {id: $id}) { userErrors { code } } }"
        )
        assert (
            await api.as_(shop.tokens["OWNER"]).mutate(deactivate, {"id": shop.gid("TECHNICIAN")})
        )["userErrors"] == []
        ended: dict[str, str] = {}
        while len(ended) < 2:
            message = await ws.receive()
            if message["type"] == "next":
                ended[message["id"]] = message["payload"]["errors"][0]["extensions"]["code"]
        assert ended == {"o": "ACCESS_REVOKED", "n": "ACCESS_REVOKED"}


async def test_logout_ends_streams_of_that_token_only(
    api: GraphQLClient, shop: Shop, connect_ws
) -> None:
    order_id, _ = await create_order(api, shop.tokens["FRONT_DESK"])
    async with connect_ws() as kept, connect_ws() as ended:
        await kept.init(shop.tokens["OWNER"])
        await ended.init(shop.tokens["TECHNICIAN"])
        await kept.subscribe("o", ORDER_EVENTS, {"id": order_id})
        await ended.subscribe("o", ORDER_EVENTS, {"id": order_id})
        await asyncio.sleep(0.1)
        await api.as_(shop.tokens["TECHNICIAN"]).mutate("mutation { logout { revoked } }")
        message = await ended.receive()
        assert message["payload"]["errors"][0]["extensions"]["code"] == "ACCESS_REVOKED"
        await move(api, shop.tokens["MANAGER"], order_id, "DIAGNOSING")
        assert (await kept.next_data("o"))["serviceOrderEvents"]["type"] == "STATUS_CHANGED"


async def test_subscriptions_per_socket_are_capped(
    api: GraphQLClient, shop: Shop, connect_ws
) -> None:
    from app import MAX_SUBSCRIPTIONS_PER_SOCKET

    async with connect_ws() as ws:
        await ws.init(shop.tokens["OWNER"])
        for i in range(MAX_SUBSCRIPTIONS_PER_SOCKET):
            await ws.subscribe(f"s{i}", NOTIFICATIONS, {})
        await ws.subscribe("one-too-many", NOTIFICATIONS, {})
        message = await ws.receive()
        assert message == {
            "id": "one-too-many",
            "type": "error",
            "payload": [{"message": "Subscription limit reached"}],
        }


async def test_cross_origin_sockets_need_an_allowed_origin(db, settings, shop: Shop) -> None:
    """Same-origin pages (the tracking page) connect; another origin only when it is listed
    in ALLOWED_ORIGINS; the handshake of any other origin is refused (403)."""
    import dataclasses
    from contextlib import asynccontextmanager

    import httpx
    from httpx_ws import AsyncWebSocketSession, aconnect_ws
    from httpx_ws.transport import ASGIWebSocketTransport

    from app import create_app

    configured = dataclasses.replace(settings, allowed_origins=("https://dashboard.example",))
    application = create_app(configured, database=db)

    @asynccontextmanager
    async def socket(origin: str) -> Any:
        session: AsyncWebSocketSession
        async with (
            httpx.AsyncClient(
                transport=ASGIWebSocketTransport(application), base_url="http://testserver"
            ) as http,
            aconnect_ws(
                "http://testserver/graphql",
                http,
                subprotocols=["graphql-transport-ws"],
                headers={"origin": origin},
            ) as session,
        ):
            yield session

    async with application.router.lifespan_context(application):
        for allowed in ("https://dashboard.example", "http://testserver"):
            async with socket(allowed) as session:
                await session.send_json(
                    {
                        "type": "connection_init",
                        "payload": {"authorization": f"Bearer {shop.tokens['OWNER']}"},
                    }
                )
                assert (await session.receive_json(timeout=5))["type"] == "connection_ack"
        # refused before the handshake completes: behind uvicorn the browser sees HTTP 403,
        # the in-process transport reports the close (policy violation, 1008)
        codes: list[int] = []
        try:
            async with socket("https://evil.example"):
                pass
        except* WebSocketDisconnect as group:
            codes = [e.code for e in group.exceptions if isinstance(e, WebSocketDisconnect)]
        assert codes == [1008]
