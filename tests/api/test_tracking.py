"""The public tracking view: exactly what a share-link holder sees of one order (and what
never reaches them: internal notes, staff notes, other orders and clients, staff-only
events, full IMEI and serial numbers), view counting, and the /t/<token> page."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

import app as app_module
from config import Settings
from db.engine import Database
from db.models import InternalNote, OrderComment, ShareLink
from resolvers import sharing as share_resolvers
from tests.api.test_sharing import (
    CLIENT_EMAIL,
    CLIENT_PHONE,
    IMEI,
    SERIAL,
    STAFF_NOTE,
    TRACKING_EVENTS,
    create_order_api,
    fresh_bad_token_limiter,
    link_row,
    make_order,
    set_shop_contact,
)
from tests.conftest import GraphQLClient, Shop


@pytest.fixture(autouse=True)
def fresh_limiter(monkeypatch: pytest.MonkeyPatch) -> None:
    """resolvers.sharing.bad_tokens is process-wide: each test starts with an empty one."""
    monkeypatch.setattr(share_resolvers, "bad_tokens", fresh_bad_token_limiter())


TRACKING = """
query($t: String!) {
  tracking(token: $t) {
    number status statusInfo { status label color }
    device { brand model imei serialNumber }
    problemReported diagnosis
    estimate { amount currency } approvedAmount { amount currency }
    parts { name quantity unitCost { amount currency } lineTotal { amount } }
    labourCost { amount } partsTotal { amount } total { amount } finalCost { amount }
    warrantyExpiresAt
    timeline { status label color note }
    comments { fromCustomer authorName body }
    rating { stars comment }
    shop { name phone email address website }
    link { permissions canApprove canComment canRate }
    lastSequence
  }
}"""
NOTE = """
mutation($id: ID!, $body: String!) {
  internalNoteAdd(input: {orderId: $id, body: $body}) { internalNote { id } userErrors { code } }
}"""
STAFF_COMMENT = """
mutation($id: ID!, $body: String!) {
  serviceOrderComment(input: {orderId: $id, body: $body}) {
    comment { fromCustomer authorName body } userErrors { code }
  }
}"""
CUSTOMER_COMMENT = """
mutation($t: String!, $body: String!) {
  trackingCommentAdd(input: {token: $t, body: $body}) { userErrors { code } }
}"""
APPROVE = """
mutation($t: String!) { trackingApprove(input: {token: $t}) { userErrors { code } } }"""
TRANSITION = """
mutation($id: ID!, $to: ServiceOrderStatus!, $note: String) {
  serviceOrderTransition(input: {id: $id, to: $to, note: $note}) { userErrors { code } }
}"""
ASSIGN = """
mutation($id: ID!, $to: ID) {
  serviceOrderAssign(input: {id: $id, assigneeId: $to}) { userErrors { code } }
}"""
VIEW_RECORD = """
mutation($t: String!) {
  trackingViewRecord(input: {token: $t}) { recorded userErrors { code message } }
}"""
LINK_STATS = """
query($id: ID!) { serviceOrder(id: $id) { shareLinks { viewCount lastViewedAt lastAccessAt } } }"""
INTERNAL_NOTE = "Internal: customer was rude, charge the rush fee"
MASKED_IMEI = "•" * 11 + IMEI[-4:]
MASKED_SERIAL = "•" * (len(SERIAL) - 4) + SERIAL[-4:]


def eur(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "EUR"}


async def tracking(api: GraphQLClient, token: str) -> tuple[dict[str, Any], str]:
    """(the tracking view, the raw response text)."""
    response = await api.post(TRACKING, {"t": token})
    assert response.status_code == 200
    body = response.json()
    assert "errors" not in body, body
    view: dict[str, Any] = body["data"]["tracking"]
    return view, response.text


async def move(api: GraphQLClient, token: str, order_gid: str, to: str, note: str | None) -> None:
    payload = await api.as_(token).mutate(TRANSITION, {"id": order_gid, "to": to, "note": note})
    assert payload["userErrors"] == [], payload


async def test_view_awaiting_approval_shows_only_what_the_customer_may_see(
    api: GraphQLClient, shop: Shop, db: Database, settings: Settings
) -> None:
    contact = await set_shop_contact(db, shop)
    order = await make_order(db, shop, settings, "AWAITING_APPROVAL")
    other = await make_order(db, shop, settings, "PENDING")  # the same client, another order
    stranger, _ = await create_order_api(
        api, shop, client={"name": "Bruno Stranger", "email": "bruno@example.com"}
    )
    tech = api.as_(shop.tokens["TECHNICIAN"])
    note = await tech.mutate(NOTE, {"id": order.gid, "body": INTERNAL_NOTE})
    assert note["userErrors"] == []
    staff = await tech.mutate(STAFF_COMMENT, {"id": order.gid, "body": "We found the part."})
    assert staff == {
        "comment": {"fromCustomer": False, "authorName": "Shop", "body": "We found the part."},
        "userErrors": [],
    }
    asked = await api.mutate(CUSTOMER_COMMENT, {"t": order.token, "body": "How long will it take?"})
    assert asked["userErrors"] == []

    view, raw = await tracking(api, order.token)
    assert view == {
        "number": order.number,
        "status": "AWAITING_APPROVAL",
        "statusInfo": {
            "status": "AWAITING_APPROVAL",
            "label": "Awaiting approval",
            "color": "orange",
        },
        "device": {
            "brand": "Apple",
            "model": "iPhone 13",
            "imei": MASKED_IMEI,
            "serialNumber": MASKED_SERIAL,
        },
        "problemReported": "Cracked screen",
        "diagnosis": "Display assembly broken.",
        "estimate": eur("59.90"),
        "approvedAmount": None,
        "parts": None,
        "labourCost": None,
        "partsTotal": None,
        "total": None,
        "finalCost": None,
        "warrantyExpiresAt": None,
        "timeline": [
            {"status": "PENDING", "label": "Pending", "color": "gray", "note": None},
            {"status": "DIAGNOSING", "label": "Diagnosing", "color": "blue", "note": None},
            {
                "status": "AWAITING_APPROVAL",
                "label": "Awaiting approval",
                "color": "orange",
                "note": None,
            },
        ],
        "comments": [
            {"fromCustomer": False, "authorName": "Shop", "body": "We found the part."},
            {"fromCustomer": True, "authorName": "You", "body": "How long will it take?"},
        ],
        "rating": None,
        "shop": contact,
        "link": {
            "permissions": ["VIEW", "APPROVE", "COMMENT"],
            "canApprove": True,
            "canComment": True,
            "canRate": False,
        },
        "lastSequence": view["lastSequence"],
    }
    assert view["lastSequence"] >= 9  # created, 2 moves, diagnosis, 2 parts, note, 2 comments
    # never in full, never staff-only, never another order or client
    never = [
        IMEI,
        IMEI[:11],
        SERIAL,
        INTERNAL_NOTE,
        STAFF_NOTE,
        "Order created",
        CLIENT_PHONE,
        CLIENT_PHONE[-9:],
        CLIENT_EMAIL,
        "Ana Silva",
        other.number,
        stranger.number,
        "Bruno",
        "bruno@example.com",
        "Technician",
        "@a.test",
    ]
    leaked = [text for text in never if text in raw]
    assert leaked == [], leaked
    # the data is there for staff: the test would be vacuous otherwise
    async with db.read_session() as session:
        assert await session.scalar(select(InternalNote.body)) == INTERNAL_NOTE
        assert len(list(await session.scalars(select(OrderComment)))) == 2


async def test_view_after_approval_and_on_completion(
    api: GraphQLClient, shop: Shop, db: Database, settings: Settings
) -> None:
    order = await make_order(db, shop, settings, "AWAITING_APPROVAL")
    assert (await api.mutate(APPROVE, {"t": order.token}))["userErrors"] == []
    view, raw = await tracking(api, order.token)
    assert view["status"] == "APPROVED"
    assert view["statusInfo"] == {"status": "APPROVED", "label": "Approved", "color": "green"}
    assert view["estimate"] is None
    assert view["approvedAmount"] == eur("59.90")
    assert view["parts"] == [
        {
            "name": "Screen",
            "quantity": 1,
            "unitCost": eur("35.00"),
            "lineTotal": {"amount": "35.00"},
        },
        {
            "name": "Adhesive",
            "quantity": 2,
            "unitCost": eur("2.50"),
            "lineTotal": {"amount": "5.00"},
        },
    ]
    assert (view["labourCost"], view["partsTotal"], view["total"]) == (
        {"amount": "20.00"},
        {"amount": "40.00"},
        {"amount": "60.00"},
    )
    assert view["finalCost"] is None and view["warrantyExpiresAt"] is None
    assert view["timeline"][-1] == {
        "status": "APPROVED",
        "label": "Approved",
        "color": "green",
        "note": "Estimate of 59.90 EUR approved via share link.",
    }
    assert view["link"] == {
        "permissions": ["VIEW", "APPROVE", "COMMENT"],
        "canApprove": False,
        "canComment": True,
        "canRate": False,
    }
    assert STAFF_NOTE not in raw

    tech = shop.tokens["TECHNICIAN"]
    await move(api, tech, order.gid, "REPAIRING", "Staff: ordered from supplier X")
    await move(api, tech, order.gid, "READY", None)
    view, raw = await tracking(api, order.token)
    assert [t["status"] for t in view["timeline"]][-2:] == ["REPAIRING", "READY"]
    assert [t["note"] for t in view["timeline"]][-2:] == [None, None]
    assert "supplier X" not in raw
    assert view["warrantyExpiresAt"] is None and view["finalCost"] is None

    await move(api, shop.tokens["FRONT_DESK"], order.gid, "COMPLETED", None)
    view, _ = await tracking(api, order.token)
    staff_view = await api.as_(tech).ok(
        "query($id: ID!) { serviceOrder(id: $id) { completedAt warrantyExpiresAt } }",
        {"id": order.gid},
    )
    completed_at = datetime.fromisoformat(staff_view["serviceOrder"]["completedAt"])
    assert view["status"] == "COMPLETED"
    assert view["finalCost"] == {"amount": "60.00"}
    assert view["approvedAmount"] == eur("59.90")
    assert datetime.fromisoformat(view["warrantyExpiresAt"]) == completed_at + timedelta(days=90)
    assert view["warrantyExpiresAt"] == staff_view["serviceOrder"]["warrantyExpiresAt"]
    assert view["link"]["canRate"] is True and view["link"]["canApprove"] is False
    assert view["estimate"] is None and view["parts"] is not None


async def test_tracking_events_carry_no_staff_only_events(
    api: GraphQLClient, shop: Shop, db: Database, settings: Settings, connect_ws: Any
) -> None:
    order = await make_order(db, shop, settings, "PENDING", assignee=None)
    tech, owner = api.as_(shop.tokens["TECHNICIAN"]), api.as_(shop.tokens["OWNER"])
    async with connect_ws() as ws:
        await ws.send({"type": "connection_init", "payload": {"shareToken": order.token}})
        assert (await ws.receive())["type"] == "connection_ack"
        await ws.subscribe("t", TRACKING_EVENTS, {"t": order.token, "after": 0})
        created = (await ws.next_data("t"))["trackingEvents"]
        assert created == {"sequence": 1, "type": "ORDER_CREATED", "status": "PENDING"}
        await asyncio.sleep(0.1)
        assert (await tech.mutate(NOTE, {"id": order.gid, "body": INTERNAL_NOTE}))[
            "userErrors"
        ] == []
        assign = await owner.mutate(ASSIGN, {"id": order.gid, "to": shop.gid("TECHNICIAN")})
        assert assign["userErrors"] == []
        share = await owner.mutate(
            "mutation($id: ID!) { shareLinkCreate(input: {orderId: $id, permissions: [VIEW]}) "
            "{ reused userErrors { code } } }",
            {"id": order.gid},
        )
        assert share == {"reused": False, "userErrors": []}
        assert await ws.nothing_within(0.3)
        await move(api, shop.tokens["TECHNICIAN"], order.gid, "DIAGNOSING", STAFF_NOTE)
        changed = (await ws.next_data("t"))["trackingEvents"]
        assert changed == {"sequence": 5, "type": "STATUS_CHANGED", "status": "DIAGNOSING"}
        assert await ws.nothing_within(0.2)
    # a page coming back later replays only what the customer may see
    async with connect_ws() as ws:
        await ws.send({"type": "connection_init", "payload": {"shareToken": order.token}})
        assert (await ws.receive())["type"] == "connection_ack"
        await ws.subscribe(
            "t",
            "subscription($t: String!) { trackingEvents(token: $t, after: 0) "
            "{ sequence type status statusInfo { label color } } }",
            {"t": order.token},
        )
        replayed = [(await ws.next_data("t"))["trackingEvents"] for _ in range(2)]
        assert [(e["sequence"], e["type"]) for e in replayed] == [
            (1, "ORDER_CREATED"),
            (5, "STATUS_CHANGED"),
        ]
        assert replayed[1]["statusInfo"] == {"label": "Diagnosing", "color": "blue"}
        assert await ws.nothing_within(0.2)


async def test_tracking_types_expose_no_private_fields(api: GraphQLClient) -> None:
    """Walk every type reachable from Tracking and TrackingEvent: no internal notes, no
    client, no staff user, no contact details except the shop's own."""
    query = """
    query($name: String!) {
      __type(name: $name) {
        name kind
        fields { name type { name kind ofType { name kind ofType { name kind ofType { name } } } } }
      }
    }"""

    def named(type_ref: dict[str, Any] | None) -> str | None:
        while type_ref is not None and type_ref.get("name") is None:
            type_ref = type_ref.get("ofType")
        return type_ref["name"] if type_ref else None

    seen: dict[str, list[str]] = {}
    todo = ["Tracking", "TrackingEvent"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        found = (await api.ok(query, {"name": name}))["__type"]
        fields = found["fields"] or []
        seen[name] = [f["name"] for f in fields]
        todo.extend(n for f in fields if (n := named(f["type"])) is not None)

    assert {"Client", "StaffUser", "InternalNote", "ServiceOrder", "Account", "Me"}.isdisjoint(
        seen
    ), sorted(seen)
    assert "Device" not in seen and "TrackedDevice" in seen
    private = {
        "internalNotes",
        "internalNote",
        "client",
        "clientName",
        "assignedTo",
        "createdBy",
        "author",
        "actor",
        "staffUser",
        "history",
        "events",
        "accessories",
        "conditionNotes",
    }
    for type_name, field_names in seen.items():
        assert private.isdisjoint(field_names), (type_name, field_names)
        if type_name != "ShopContact":
            assert {"email", "phone"}.isdisjoint(field_names), (type_name, field_names)
    assert {"number", "device", "timeline", "comments", "shop", "link"} <= set(seen["Tracking"])


async def test_view_count_and_last_access(
    api: GraphQLClient, shop: Shop, db: Database, settings: Settings
) -> None:
    order = await make_order(db, shop, settings, "PENDING")
    staff = api.as_(shop.tokens["FRONT_DESK"])

    async def stats() -> dict[str, Any]:
        (link,) = (await staff.ok(LINK_STATS, {"id": order.gid}))["serviceOrder"]["shareLinks"]
        return link

    assert await stats() == {"viewCount": 0, "lastViewedAt": None, "lastAccessAt": None}
    for _ in range(3):
        await tracking(api, order.token)
    after_queries = await stats()
    assert after_queries["viewCount"] == 0 and after_queries["lastViewedAt"] is None
    assert after_queries["lastAccessAt"] is not None

    for expected in (1, 2):
        recorded = await api.mutate(VIEW_RECORD, {"t": order.token})
        assert recorded == {"recorded": True, "userErrors": []}
        assert (await stats())["viewCount"] == expected
    await tracking(api, order.token)
    final = await stats()
    assert final["viewCount"] == 2 and final["lastViewedAt"] is not None
    row = await link_row(db, order.link_id)
    assert row.view_count == 2 and row.last_viewed_at is not None
    assert row.last_access_at is not None and row.last_access_at >= row.last_viewed_at

    unknown = await api.mutate(VIEW_RECORD, {"t": "nope"})
    assert unknown["recorded"] is False
    assert [e["code"] for e in unknown["userErrors"]] == ["NOT_FOUND"]
    async with db.read_session() as session:
        assert list(await session.scalars(select(ShareLink.view_count))) == [2]


async def test_tracking_page_is_served_for_any_token(
    api: GraphQLClient, shop: Shop, db: Database, settings: Settings
) -> None:
    order = await make_order(db, shop, settings, "PENDING")
    pages = []
    for token in (order.token, "not-a-real-token"):
        response = await api.http.get(f"/t/{token}")
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "default-src 'none'" in response.headers["content-security-policy"]
        for name, value in app_module.PAGE_HEADERS.items():
            assert response.headers[name] == value
        assert token not in response.text
        pages.append(response.text)
    assert pages[0] == pages[1] and "<html" in pages[0].lower()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    names = ("service_orders", "uvicorn.access", "uvicorn.error")
    saved = {
        n: (
            list(logging.getLogger(n).handlers),
            list(logging.getLogger(n).filters),
            logging.getLogger(n).level,
            logging.getLogger(n).propagate,
        )
        for n in names
    }
    yield
    for n, (handlers, filters, level, propagate) in saved.items():
        logger = logging.getLogger(n)
        logger.handlers[:] = handlers
        logger.filters[:] = filters
        logger.setLevel(level)
        logger.propagate = propagate


def test_access_log_never_contains_the_token(restore_logging: None) -> None:
    token = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
    access_format = '%s - "%s %s HTTP/%s" %d'

    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        access_format,
        ("203.0.113.7:40000", "GET", f"/t/{token}", "1.1", 200),
        None,
    )
    assert app_module.RedactTokens().filter(record) is True
    message = record.getMessage()
    assert token not in message
    assert message == '203.0.113.7:40000 - "GET /t/<redacted> HTTP/1.1" 200'
    # in the message itself too, with a query string
    inline = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, f"GET /t/{token}?x=1 done", None, None
    )
    app_module.RedactTokens().filter(inline)
    assert inline.getMessage() == "GET /t/<redacted>?x=1 done"

    # the app's logging setup puts the filter on uvicorn's access logger
    app_module.configure_logging("INFO")
    access = logging.getLogger("uvicorn.access")
    assert sum(isinstance(f, app_module.RedactTokens) for f in access.filters) == 1
    app_module.configure_logging("INFO")  # idempotent
    assert sum(isinstance(f, app_module.RedactTokens) for f in access.filters) == 1
    captured: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            captured.append(self.format(record))

    access.addHandler(Capture())
    access.setLevel(logging.INFO)
    access.info(access_format, "198.51.100.9:1234", "GET", f"/t/{token}", "1.1", 200)
    assert captured == ['198.51.100.9:1234 - "GET /t/<redacted> HTTP/1.1" 200']
