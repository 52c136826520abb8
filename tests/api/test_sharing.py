"""Share links through the API: the link every order gets, shareLinkCreate (reuse, new
permissions or validity), the shop's defaults, tokens (what the database holds, forgeries),
the ready-to-send message, revocation (also of an open stream) and expiry.

The helpers at the top are shared with test_tracking.py and test_customer_actions.py.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pytest
from httpx_ws import WebSocketDisconnect
from sqlalchemy import func, select, text, update

from config import Settings
from db.base import Base, utcnow
from db.engine import Database
from db.models import Account, OrderEvent, ShareLink
from resolvers import sharing as share_resolvers
from resolvers.ids import decode_id, encode_id
from services import auth, orders, sharing
from services.clients import ClientData
from services.orders import DeviceData
from services.ratelimit import SlidingWindow
from services.roles import Role
from services.statuses import OrderStatus
from tests.conftest import PASSWORD, GraphQLClient, Shop

# --- shared helpers -----------------------------------------------------------------------

BASE = "http://testserver/t/"
IMEI = "490154203237518"  # Luhn-valid
SERIAL = "SN-ABCDEF123456"
CLIENT_PHONE = "+351912345678"
CLIENT_EMAIL = "ana.silva@example.com"
STAFF_NOTE = "Bench note: liquid damage under the shield"
DEFAULT_PERMISSIONS = ["VIEW", "APPROVE", "COMMENT"]


def fresh_bad_token_limiter() -> SlidingWindow:
    return SlidingWindow(
        limit=share_resolvers.BAD_TOKENS_PER_WINDOW, window=share_resolvers.BAD_TOKEN_WINDOW_SECONDS
    )


@pytest.fixture(autouse=True)
def fresh_limiter(monkeypatch: pytest.MonkeyPatch) -> None:
    """resolvers.sharing.bad_tokens is process-wide: each test starts with an empty one
    (test_tracking.py and test_customer_actions.py have the same fixture)."""
    monkeypatch.setattr(share_resolvers, "bad_tokens", fresh_bad_token_limiter())


def token_of(url: str) -> str:
    assert url.startswith(BASE), url
    return url[len(BASE) :]


@dataclass
class Order:
    pk: int
    number: str
    token: str
    link_id: int

    @property
    def gid(self) -> str:
        return encode_id("ServiceOrder", self.pk)

    @property
    def link_gid(self) -> str:
        return encode_id("ShareLink", self.link_id)


CREATE = """
mutation($input: ServiceOrderCreateInput!) {
  serviceOrderCreate(input: $input) {
    serviceOrder {
      id number
      shareLinks { id url permissions createdAt expiresAt revokedAt isActive viewCount }
    }
    userErrors { code field message }
  }
}"""


async def create_order_api(
    api: GraphQLClient,
    shop: Shop,
    *,
    client: dict[str, Any] | None = None,
    role: str = "FRONT_DESK",
) -> tuple[Order, dict[str, Any]]:
    """An order made through serviceOrderCreate: (order, the payload's serviceOrder)."""
    payload = await api.as_(shop.tokens[role]).mutate(
        CREATE,
        {
            "input": {
                "client": client or {"name": "Ana Silva", "phone": "912 345 678"},
                "device": {
                    "brand": "Apple",
                    "model": "iPhone 13",
                    "imei": IMEI,
                    "serialNumber": SERIAL,
                    "problemReported": "Cracked screen",
                },
            }
        },
    )
    assert payload["userErrors"] == [], payload
    node = payload["serviceOrder"]
    (link,) = node["shareLinks"]
    pk = decode_id(node["id"], "ServiceOrder")
    link_pk = decode_id(link["id"], "ShareLink")
    assert pk is not None and link_pk is not None
    return Order(pk, node["number"], token_of(link["url"]), link_pk), node


async def make_order(
    db: Database,
    shop: Shop,
    settings: Settings,
    status: str = "AWAITING_APPROVAL",
    *,
    assignee: str | None = "TECHNICIAN",
    estimate: str = "59.90",
    labour: str = "20.00",
    warranty_days: int = 90,
    parts: tuple[tuple[str, int, str], ...] = (("Screen", 1, "35.00"), ("Adhesive", 2, "2.50")),
) -> Order:
    """An order made by the front desk through the services and walked to `status` by the
    owner (with staff-only transition notes), in one transaction."""
    owner = shop.actors["OWNER"]
    async with db.write_session() as session:
        created = await orders.create_order(
            session=session,
            actor=shop.actors["FRONT_DESK"],
            client_id=None,
            client=ClientData(name="Ana Silva", phone=CLIENT_PHONE, email=CLIENT_EMAIL),
            device=DeviceData(
                brand="Apple",
                model="iPhone 13",
                imei=IMEI,
                serial_number=SERIAL,
                problem_reported="Cracked screen",
            ),
            assigned_to_id=shop.users[assignee] if assignee else None,
        )
        order = created.order

        async def move(to: OrderStatus, note: str | None = STAFF_NOTE) -> None:
            await orders.transition_order(
                session=session, actor=owner, order_id=order.id, to_status=to, note=note
            )

        if status != "PENDING":
            await move(OrderStatus.DIAGNOSING)
            await orders.set_diagnosis(
                session=session,
                actor=owner,
                order_id=order.id,
                changes={
                    "diagnosis": "Display assembly broken.",
                    "estimated_cost": Decimal(estimate),
                    "labour_cost": Decimal(labour),
                    "warranty_days": warranty_days,
                },
            )
            for name, quantity, cost in parts:
                await orders.add_part(
                    session=session,
                    actor=owner,
                    order_id=order.id,
                    name=name,
                    quantity=quantity,
                    unit_cost=Decimal(cost),
                )
        steps = {
            "PENDING": [],
            "DIAGNOSING": [],
            "AWAITING_APPROVAL": [OrderStatus.AWAITING_APPROVAL],
            "REPAIRING": [OrderStatus.REPAIRING],
            "COMPLETED": [OrderStatus.REPAIRING, OrderStatus.READY, OrderStatus.COMPLETED],
        }[status]
        for step in steps:
            await move(step)
        link = await session.scalar(select(ShareLink).where(ShareLink.order_id == order.id))
        assert link is not None
        return Order(order.id, order.number, sharing.token_for(link, settings.secret_key), link.id)


async def add_staff(db: Database, shop: Shop, role: str, key: str) -> None:
    """Another staff member of `shop` (e.g. a second technician), signed in as `key`."""
    async with db.write_session() as session:
        user = await auth.create_staff_user(
            session=session,
            actor=shop.actors["OWNER"],
            email=f"{key.lower()}@a.test",
            name=f"Other {key.title()}",
            role=Role(role),
            password=PASSWORD,
        )
        issued = await auth.login(
            session=session, email=user.email, password=PASSWORD, ip="t", ttl=timedelta(hours=1)
        )
    shop.users[key] = user.id
    shop.tokens[key] = issued.token


async def set_shop_contact(db: Database, shop: Shop) -> dict[str, str]:
    contact = {
        "name": "Shop A",
        "phone": "+351210000000",
        "email": "hello@shop-a.test",
        "address": "Rua Augusta 1, Lisboa",
        "website": "https://shop-a.test",
    }
    async with db.write_session() as session:
        await session.execute(
            update(Account)
            .where(Account.id == shop.account_id)
            .values(**{k: v for k, v in contact.items() if k != "name"})
        )
    return contact


async def link_row(db: Database, link_id: int) -> ShareLink:
    async with db.read_session() as session:
        link = await session.get(ShareLink, link_id)
    assert link is not None
    return link


async def count(db: Database, model: Any, *where: Any) -> int:
    async with db.read_session() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


TRACKING_BRIEF = "query($t: String!) { tracking(token: $t) { number status } }"


async def tracking_error(api: GraphQLClient, token: str) -> dict[str, Any]:
    """The single top-level error of a tracking query that must fail."""
    body = await api.query(TRACKING_BRIEF, {"t": token})
    assert body["data"] is None, body
    (error,) = body["errors"]
    return error


# --- queries of this file -----------------------------------------------------------------

LINKS = """
query($id: ID!) {
  serviceOrder(id: $id) {
    shareLinks {
      id url permissions createdAt expiresAt revokedAt isActive viewCount
      shareMessage { text whatsappUrl }
    }
  }
}"""
SHARE = """
mutation($input: ShareLinkCreateInput!) {
  shareLinkCreate(input: $input) {
    shareLink { id url permissions createdAt expiresAt isActive }
    reused
    userErrors { field message code }
  }
}"""
REVOKE = """
mutation($id: ID!) {
  shareLinkRevoke(input: {id: $id}) {
    shareLink { id revokedAt isActive }
    userErrors { field message code }
  }
}"""
DEFAULTS = """
mutation($input: AccountShareDefaultsUpdateInput!) {
  accountShareDefaultsUpdate(input: $input) {
    account { shareDefaultPermissions shareDefaultValidityDays }
    userErrors { field message code }
  }
}"""
APPROVE = """
mutation($t: String!) {
  trackingApprove(input: {token: $t}) { tracking { status } userErrors { field message code } }
}"""
TRACKING_EVENTS = """
subscription($t: String!, $after: Int) {
  trackingEvents(token: $t, after: $after) { sequence type status }
}"""


def days_between(link: dict[str, Any]) -> float:
    start = datetime.fromisoformat(link["createdAt"])
    end = datetime.fromisoformat(link["expiresAt"])
    return (end - start) / timedelta(days=1)


async def links_of(api: GraphQLClient, token: str, order: Order) -> list[dict[str, Any]]:
    data = await api.as_(token).ok(LINKS, {"id": order.gid})
    links: list[dict[str, Any]] = data["serviceOrder"]["shareLinks"]
    return links


# --- links --------------------------------------------------------------------------------


async def test_every_new_order_gets_a_default_link(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    order, node = await create_order_api(api, shop)
    (link,) = node["shareLinks"]
    assert link["permissions"] == DEFAULT_PERMISSIONS
    assert days_between(link) == 7
    assert link["isActive"] is True and link["revokedAt"] is None and link["viewCount"] == 0
    assert (await links_of(api, shop.tokens["TECHNICIAN"], order))[0]["url"] == link["url"]
    row = await link_row(db, order.link_id)
    assert (row.order_id, row.account_id, row.permissions) == (
        order.pk,
        shop.account_id,
        "VIEW,APPROVE,COMMENT",
    )
    assert row.created_by_id == shop.users["FRONT_DESK"]
    assert await count(db, ShareLink) == 1
    # the link works at once
    ok = await api.ok(TRACKING_BRIEF, {"t": order.token})
    assert ok["tracking"] == {"number": order.number, "status": "PENDING"}


async def test_create_reuses_a_valid_link_with_the_same_permissions_and_validity(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    order, node = await create_order_api(api, shop)
    first_url = node["shareLinks"][0]["url"]
    desk = api.as_(shop.tokens["FRONT_DESK"])

    async def share(**given: Any) -> dict[str, Any]:
        payload = await desk.mutate(SHARE, {"input": {"orderId": order.gid, **given}})
        assert payload["userErrors"] == [], payload
        return payload

    for given in ({}, {"permissions": ["COMMENT", "VIEW", "APPROVE"]}, {"validityDays": 7}):
        again = await share(**given)
        assert again["reused"] is True
        assert again["shareLink"]["url"] == first_url
        assert again["shareLink"]["id"] == encode_id("ShareLink", order.link_id)
    assert await count(db, ShareLink) == 1
    assert await count(db, OrderEvent, OrderEvent.type == "SHARE_LINK_CREATED") == 0

    view_only = await share(permissions=["VIEW"])
    assert view_only["reused"] is False
    assert view_only["shareLink"]["permissions"] == ["VIEW"]
    assert days_between(view_only["shareLink"]) == 7
    assert view_only["shareLink"]["url"] != first_url
    assert (await share(permissions=["VIEW"]))["shareLink"]["url"] == view_only["shareLink"]["url"]

    made: dict[int, str] = {}
    for days in (14, 30):
        longer = await share(validityDays=days)
        assert longer["reused"] is False, days
        assert longer["shareLink"]["permissions"] == DEFAULT_PERMISSIONS
        assert days_between(longer["shareLink"]) == days
        made[days] = longer["shareLink"]["url"]
    assert len({first_url, view_only["shareLink"]["url"], *made.values()}) == 4
    # each of them is reused when asked for again
    assert (await share(validityDays=14))["shareLink"]["url"] == made[14]
    assert (await share(validityDays=30))["shareLink"]["url"] == made[30]
    assert (await share())["shareLink"]["url"] == first_url
    assert await count(db, ShareLink) == 4
    assert await count(db, OrderEvent, OrderEvent.type == "SHARE_LINK_CREATED") == 3
    listed = await links_of(api, shop.tokens["OWNER"], order)
    assert len(listed) == 4 and all(link["isActive"] for link in listed)
    for url in (first_url, view_only["shareLink"]["url"], *made.values()):
        assert (await api.ok(TRACKING_BRIEF, {"t": token_of(url)}))["tracking"]["number"] == (
            order.number
        )

    bad = await desk.mutate(SHARE, {"input": {"orderId": order.gid, "validityDays": 10}})
    assert bad["shareLink"] is None and bad["reused"] is False
    assert [(e["code"], e["field"]) for e in bad["userErrors"]] == [
        ("INVALID_VALIDITY", ["validityDays"])
    ]
    assert "7, 14, 30" in bad["userErrors"][0]["message"]
    assert await count(db, ShareLink) == 4


async def test_share_defaults_apply_to_new_orders(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    tech = await api.as_(shop.tokens["TECHNICIAN"]).mutate(
        DEFAULTS, {"input": {"sharePermissions": ["VIEW"], "shareValidityDays": 30}}
    )
    assert tech["account"] is None
    assert [e["code"] for e in tech["userErrors"]] == ["FORBIDDEN"]
    bad = await api.as_(shop.tokens["OWNER"]).mutate(DEFAULTS, {"input": {"shareValidityDays": 10}})
    assert [(e["code"], e["field"]) for e in bad["userErrors"]] == [
        ("INVALID_VALIDITY", ["shareValidityDays"])
    ]
    async with db.read_session() as session:
        account = await session.get(Account, shop.account_id)
        assert account is not None
        assert (account.share_default_permissions, account.share_default_validity_days) == (
            "VIEW,APPROVE,COMMENT",
            7,
        )

    owner = await api.as_(shop.tokens["OWNER"]).mutate(
        DEFAULTS, {"input": {"sharePermissions": ["COMMENT", "VIEW"], "shareValidityDays": 30}}
    )
    assert owner == {
        "account": {"shareDefaultPermissions": ["VIEW", "COMMENT"], "shareDefaultValidityDays": 30},
        "userErrors": [],
    }
    _, node = await create_order_api(api, shop)
    (link,) = node["shareLinks"]
    assert link["permissions"] == ["VIEW", "COMMENT"]
    assert days_between(link) == 30

    manager = await api.as_(shop.tokens["MANAGER"]).mutate(
        DEFAULTS, {"input": {"shareValidityDays": 14}}
    )
    assert manager["userErrors"] == []
    assert manager["account"]["shareDefaultPermissions"] == ["VIEW", "COMMENT"]
    order, node = await create_order_api(api, shop)
    (link,) = node["shareLinks"]
    assert (link["permissions"], days_between(link)) == (["VIEW", "COMMENT"], 14)
    # the defaults are also what shareLinkCreate reuses
    again = await api.as_(shop.tokens["FRONT_DESK"]).mutate(
        SHARE, {"input": {"orderId": order.gid}}
    )
    assert again["reused"] is True and again["shareLink"]["url"] == link["url"]
    async with db.read_session() as session:
        account = await session.get(Account, shop.account_id)
        assert account is not None
        assert (account.share_default_permissions, account.share_default_validity_days) == (
            "VIEW,COMMENT",
            14,
        )


async def test_another_shops_order_and_links_are_not_found(
    api: GraphQLClient, shop: Shop, other_shop: Shop, db: Database
) -> None:
    order, _ = await create_order_api(api, shop)
    foreign = api.as_(other_shop.tokens["OWNER"])
    created = await foreign.mutate(SHARE, {"input": {"orderId": order.gid}})
    assert created["shareLink"] is None
    assert [e["code"] for e in created["userErrors"]] == ["NOT_FOUND"]
    revoked = await foreign.mutate(REVOKE, {"id": order.link_gid})
    assert revoked["shareLink"] is None
    assert [e["code"] for e in revoked["userErrors"]] == ["NOT_FOUND"]
    assert (await foreign.ok(LINKS, {"id": order.gid}))["serviceOrder"] is None
    nonsense = await foreign.mutate(REVOKE, {"id": "not-an-id"})
    assert [e["code"] for e in nonsense["userErrors"]] == ["NOT_FOUND"]
    row = await link_row(db, order.link_id)
    assert row.revoked_at is None
    assert await count(db, ShareLink) == 1


# --- tokens -------------------------------------------------------------------------------


async def test_token_is_random_unstored_and_stable(
    api: GraphQLClient, shop: Shop, db: Database, settings: Settings
) -> None:
    order, node = await create_order_api(api, shop)
    other, _ = await create_order_api(api, shop)
    token = order.token
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert len(raw) == sharing.NONCE_BYTES + sharing.MAC_BYTES == 32
    nonce, mac = raw[:16], raw[16:]
    row = await link_row(db, order.link_id)
    assert row.nonce == nonce.hex()  # 16 random bytes (128 bits) behind every token
    assert order.token != other.token and nonce != base64.urlsafe_b64decode(other.token + "==")[:16]
    assert sharing.token_for(row, settings.secret_key) == token

    # no column of any table holds the token, the MAC or the whole decoded token
    needles = [token, raw.hex(), mac.hex(), base64.b64encode(raw).decode()]
    async with db.read_session() as session:
        for table in Base.metadata.sorted_tables:
            rows = (await session.execute(select(table))).all()
            for values in rows:
                for value in values:
                    if isinstance(value, bytes | bytearray | memoryview):
                        assert raw not in bytes(value) and mac not in bytes(value)
                    shown = str(value)
                    assert not any(n in shown or n.lower() in shown.lower() for n in needles), (
                        table.name,
                        shown,
                    )
        share_rows = (await session.execute(text("SELECT * FROM share_links"))).all()
        assert len(share_rows) == 2 and all(token not in str(r) for r in share_rows)

    # the same link shows the same URL every time
    listed = [(await links_of(api, shop.tokens[r], order))[0]["url"] for r in ("OWNER", "MANAGER")]
    assert listed == [node["shareLinks"][0]["url"]] * 2

    # a flipped MAC byte, a flipped nonce byte, a token made with another key: not found
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    forged_mac = b64(nonce + bytes([mac[0] ^ 0x01]) + mac[1:])
    forged_nonce = b64(bytes([nonce[0] ^ 0x80]) + nonce[1:] + mac)
    other_key = sharing.token_for(row, "another-secret-key-" + "x" * 32)
    for forged in (forged_mac, forged_nonce, other_key, token[:-1], token + "A"):
        error = await tracking_error(api, forged)
        assert error["extensions"]["code"] == "NOT_FOUND", forged
        assert "does not exist" in error["message"]
    assert (await api.ok(TRACKING_BRIEF, {"t": token}))["tracking"]["number"] == order.number


async def test_share_message_and_whatsapp_link(api: GraphQLClient, shop: Shop) -> None:
    order, _ = await create_order_api(api, shop)
    (link,) = await links_of(api, shop.tokens["FRONT_DESK"], order)
    message = link["shareMessage"]
    assert link["url"] in message["text"] and order.number in message["text"]
    assert message["text"].startswith("Hi Ana, this is Shop A.")
    assert message["whatsappUrl"] == (
        "https://wa.me/351912345678?text=" + quote(message["text"], safe="")
    )

    no_phone, _ = await create_order_api(
        api, shop, client={"name": "Bea Costa", "email": "bea@example.com"}
    )
    (link,) = await links_of(api, shop.tokens["FRONT_DESK"], no_phone)
    assert link["shareMessage"]["whatsappUrl"] is None
    assert link["url"] in link["shareMessage"]["text"]
    assert no_phone.number in link["shareMessage"]["text"]


# --- revocation and expiry ----------------------------------------------------------------


async def test_revoke_ends_access_and_open_streams(
    api: GraphQLClient, shop: Shop, db: Database, connect_ws: Any
) -> None:
    order, _ = await create_order_api(api, shop)
    desk = api.as_(shop.tokens["FRONT_DESK"])
    async with connect_ws() as ws:
        await ws.send({"type": "connection_init", "payload": {"shareToken": order.token}})
        assert await ws.receive() == {"type": "connection_ack", "payload": {"viewer": "share-link"}}
        await ws.subscribe("t", TRACKING_EVENTS, {"t": order.token})
        await asyncio.sleep(0.1)
        revoked = await desk.mutate(REVOKE, {"id": order.link_gid})
        assert revoked["userErrors"] == []
        assert revoked["shareLink"]["isActive"] is False
        assert revoked["shareLink"]["revokedAt"] is not None
        message = await ws.receive()
        assert message["id"] == "t" and message["type"] == "next", message
        (error,) = message["payload"]["errors"]
        assert error["extensions"]["code"] == "LINK_REVOKED"
        assert "withdrawn" in error["message"]
        assert await ws.receive() == {"id": "t", "type": "complete"}

    error = await tracking_error(api, order.token)
    assert error["extensions"]["code"] == "LINK_REVOKED"
    assert "withdrawn" in error["message"]
    approve = await api.mutate(APPROVE, {"t": order.token})
    assert [e["code"] for e in approve["userErrors"]] == ["LINK_REVOKED"]
    # a revoked token no longer opens a socket
    async with connect_ws() as ws:
        await ws.send({"type": "connection_init", "payload": {"shareToken": order.token}})
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive()
        assert closed.value.code == 4403
    # revoking again changes nothing
    again = await desk.mutate(REVOKE, {"id": order.link_gid})
    assert again["shareLink"]["revokedAt"] == revoked["shareLink"]["revokedAt"]
    assert await count(db, OrderEvent, OrderEvent.type == "SHARE_LINK_REVOKED") == 1

    fresh = await desk.mutate(SHARE, {"input": {"orderId": order.gid}})
    assert fresh["userErrors"] == [] and fresh["reused"] is False
    new_token = token_of(fresh["shareLink"]["url"])
    assert new_token != order.token
    assert (await api.ok(TRACKING_BRIEF, {"t": new_token}))["tracking"]["number"] == order.number

    listed = await links_of(api, shop.tokens["OWNER"], order)
    assert [(link["url"], link["isActive"]) for link in listed] == [
        (fresh["shareLink"]["url"], True),
        (BASE + order.token, False),
    ]
    assert listed[1]["revokedAt"] == revoked["shareLink"]["revokedAt"]
    row = await link_row(db, order.link_id)
    assert row.revoked_at is not None


async def test_expired_and_unknown_links(
    api: GraphQLClient, shop: Shop, db: Database, settings: Settings
) -> None:
    order, _ = await create_order_api(api, shop)
    async with db.write_session() as session:
        await session.execute(
            update(ShareLink)
            .where(ShareLink.id == order.link_id)
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
    error = await tracking_error(api, order.token)
    assert error["extensions"]["code"] == "LINK_EXPIRED"
    assert "no longer available" in error["message"]
    approve = await api.mutate(APPROVE, {"t": order.token})
    assert [(e["code"], e["field"]) for e in approve["userErrors"]] == [("LINK_EXPIRED", ["token"])]
    (listed,) = await links_of(api, shop.tokens["OWNER"], order)
    assert listed["isActive"] is False and listed["revokedAt"] is None
    # an expired link is not reused: sharing again makes a new one
    again = await api.as_(shop.tokens["OWNER"]).mutate(SHARE, {"input": {"orderId": order.gid}})
    assert again["reused"] is False and token_of(again["shareLink"]["url"]) != order.token

    unknown = sharing.token_for(ShareLink(nonce="00" * 16), settings.secret_key)
    for token in (unknown, "garbage", "x" * 65):
        error = await tracking_error(api, token)
        assert error["extensions"]["code"] == "NOT_FOUND"
        assert error["message"] == "This tracking link does not exist."


async def test_a_link_needs_at_least_one_permission(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    _, created = await create_order_api(api, shop)
    before = await count(db, ShareLink)
    payload = await api.as_(shop.tokens["FRONT_DESK"]).mutate(
        """mutation($id: ID!) {
          shareLinkCreate(input: {orderId: $id, permissions: []}) {
            shareLink { id } userErrors { field code }
          }
        }""",
        {"id": created["id"]},
    )
    assert payload == {
        "shareLink": None,
        "userErrors": [{"field": ["permissions"], "code": "INVALID_INPUT"}],
    }
    assert await count(db, ShareLink) == before
