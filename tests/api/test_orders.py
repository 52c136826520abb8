"""Intake, idempotency, editing, internal notes and assignment of service orders, over HTTP.

The helpers at the top (queries and small builders) are shared by the other order suites.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from db.engine import Database
from db.models import (
    Client,
    InternalNote,
    OrderCounter,
    PartLine,
    ServiceOrder,
    StaffUser,
    StatusHistory,
)
from resolvers.ids import decode_id, encode_id
from services import numbering
from tests.conftest import GraphQLClient, Shop

YEAR = numbering.current_year("Europe/Lisbon")
VALID_IMEI = "490154203237518"  # Luhn-valid
OTHER_IMEI = "356938035643809"  # Luhn-valid

ORDER_FIELDS = """
id number status version createdAt updatedAt promisedAt completedAt
device { brand model imei serialNumber problemReported accessories conditionNotes }
client { id name email phone }
diagnosis warrantyDays warrantyExpiresAt
estimatedCost { amount currency } labourCost { amount currency } finalCost { amount currency }
partsTotal { amount currency } total { amount currency }
parts { id name quantity unitCost { amount currency } lineTotal { amount currency } }
assignedTo { id name } createdBy { id }
history { fromStatus toStatus note actor { id } }
"""

CREATE = f"""
mutation($input: ServiceOrderCreateInput!) {{
  serviceOrderCreate(input: $input) {{
    created
    serviceOrder {{ {ORDER_FIELDS} }}
    userErrors {{ field message code }}
  }}
}}"""

UPDATE = f"""
mutation($input: ServiceOrderUpdateInput!) {{
  serviceOrderUpdate(input: $input) {{
    serviceOrder {{ {ORDER_FIELDS} }}
    userErrors {{ field message code }}
  }}
}}"""

TRANSITION = """
mutation($input: ServiceOrderTransitionInput!) {
  serviceOrderTransition(input: $input) {
    serviceOrder { id status version completedAt }
    userErrors { field message code }
  }
}"""

ASSIGN = """
mutation($input: ServiceOrderAssignInput!) {
  serviceOrderAssign(input: $input) {
    serviceOrder { id version assignedTo { id name } }
    userErrors { field message code }
  }
}"""

NOTE_ADD = """
mutation($input: InternalNoteAddInput!) {
  internalNoteAdd(input: $input) {
    internalNote { id body createdAt author { id name } }
    serviceOrder { id internalNotes { body author { id } } }
    userErrors { field message code }
  }
}"""

ORDER = f"query($id: ID!) {{ serviceOrder(id: $id) {{ {ORDER_FIELDS} }} }}"


def device(**overrides: Any) -> dict[str, Any]:
    return {"model": "iPhone 12", "problemReported": "Cracked screen", **overrides}


def new_client(**overrides: Any) -> dict[str, Any]:
    return {"name": "Ana Silva", "phone": "912 345 678", **overrides}


def order_input(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"device": device(), "client": new_client()}
    base.update(overrides)
    return base


def pk(global_id: str, type_name: str = "ServiceOrder") -> int:
    value = decode_id(global_id, type_name)
    assert value is not None, global_id
    return value


def errors_of(payload: dict[str, Any]) -> set[tuple[tuple[str, ...] | None, str]]:
    return {
        (tuple(e["field"]) if e["field"] is not None else None, e["code"])
        for e in payload["userErrors"]
    }


async def create_payload(api: GraphQLClient, **overrides: Any) -> dict[str, Any]:
    return await api.mutate(CREATE, {"input": order_input(**overrides)})


async def create_order(api: GraphQLClient, **overrides: Any) -> dict[str, Any]:
    """Create an order that must succeed; returns the order as the API shows it."""
    payload = await create_payload(api, **overrides)
    assert payload["userErrors"] == [], payload["userErrors"]
    assert payload["created"] is True
    order: dict[str, Any] = payload["serviceOrder"]
    return order


async def transition(api: GraphQLClient, order_id: str, to: str, **extra: Any) -> dict[str, Any]:
    payload = await api.mutate(TRANSITION, {"input": {"id": order_id, "to": to, **extra}})
    assert payload["userErrors"] == [], payload["userErrors"]
    result: dict[str, Any] = payload["serviceOrder"]
    return result


async def row_counts(db: Database) -> dict[str, int]:
    async with db.read_session() as session:
        counts = {
            model.__tablename__: int(
                await session.scalar(select(func.count()).select_from(model)) or 0
            )
            for model in (ServiceOrder, Client, StatusHistory, PartLine, InternalNote)
        }
        counts["counter"] = int(
            await session.scalar(select(func.coalesce(func.sum(OrderCounter.last_value), 0))) or 0
        )
    return counts


async def order_row(db: Database, global_id: str) -> ServiceOrder:
    async with db.read_session() as session:
        row = await session.get(ServiceOrder, pk(global_id))
    assert row is not None
    return row


async def client_row(db: Database, global_id: str) -> Client:
    async with db.read_session() as session:
        row = await session.get(Client, pk(global_id, "Client"))
    assert row is not None
    return row


EMPTY = {
    "service_orders": 0,
    "clients": 0,
    "status_history": 0,
    "part_lines": 0,
    "internal_notes": 0,
    "counter": 0,
}
ONE_ORDER = {**EMPTY, "service_orders": 1, "clients": 1, "status_history": 1, "counter": 1}


# --- create ---------------------------------------------------------------------------------


async def test_create_with_new_client_normalises_contact_and_starts_pending(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    desk = api.as_(shop.tokens["FRONT_DESK"])
    payload = await desk.mutate(
        CREATE,
        {
            "input": {
                "client": {
                    "name": "  Ana Silva ",
                    "phone": "912 345 678",
                    "email": " Ana.Silva@Example.COM ",
                },
                "device": {
                    "brand": "Apple",
                    "model": " iPhone 12 ",
                    "imei": "49-015420-323751-8",
                    "serialNumber": "F2LXK0ABCDEF",
                    "problemReported": "Cracked screen",
                    "accessories": "Case",
                    "conditionNotes": "Scratched back",
                },
                "promisedAt": "2030-01-02T10:00:00+00:00",
                "assignedToId": shop.gid("TECHNICIAN"),
            }
        },
    )
    assert payload["userErrors"] == []
    assert payload["created"] is True
    order = payload["serviceOrder"]
    assert order["number"] == f"OS-{YEAR}-0001"
    assert order["status"] == "PENDING"
    assert order["version"] == 1
    assert order["client"]["name"] == "Ana Silva"
    assert order["client"]["phone"] == "+351912345678"
    assert order["client"]["email"] == "ana.silva@example.com"
    assert order["device"] == {
        "brand": "Apple",
        "model": "iPhone 12",
        "imei": VALID_IMEI,
        "serialNumber": "F2LXK0ABCDEF",
        "problemReported": "Cracked screen",
        "accessories": "Case",
        "conditionNotes": "Scratched back",
    }
    assert order["promisedAt"] == "2030-01-02T10:00:00+00:00"
    assert order["assignedTo"]["id"] == shop.gid("TECHNICIAN")
    assert order["createdBy"] == {"id": shop.gid("FRONT_DESK")}
    assert order["labourCost"] == {"amount": "0.00", "currency": "EUR"}
    assert order["total"] == {"amount": "0.00", "currency": "EUR"}
    assert order["finalCost"] is None and order["estimatedCost"] is None
    assert order["completedAt"] is None and order["warrantyExpiresAt"] is None
    assert order["history"] == [
        {
            "fromStatus": None,
            "toStatus": "PENDING",
            "note": "Order created",
            "actor": {"id": shop.gid("FRONT_DESK")},
        }
    ]

    assert await row_counts(db) == ONE_ORDER
    row = await order_row(db, order["id"])
    assert row.account_id == shop.account_id
    assert row.status == "PENDING" and row.version == 1
    assert row.number == f"OS-{YEAR}-0001"
    assert row.device_imei == VALID_IMEI and row.device_model == "iPhone 12"
    assert row.created_by_id == shop.users["FRONT_DESK"]
    assert row.assigned_to_id == shop.users["TECHNICIAN"]
    assert row.promised_at == datetime(2030, 1, 2, 10, tzinfo=UTC)
    client = await client_row(db, order["client"]["id"])
    assert row.client_id == client.id
    assert (client.account_id, client.name, client.phone, client.email) == (
        shop.account_id,
        "Ana Silva",
        "+351912345678",
        "ana.silva@example.com",
    )
    async with db.read_session() as session:
        history = (await session.scalars(select(StatusHistory))).one()
    assert (history.order_id, history.from_status, history.to_status, history.actor_id) == (
        row.id,
        None,
        "PENDING",
        shop.users["FRONT_DESK"],
    )


async def test_create_for_an_existing_client_by_id(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    desk = api.as_(shop.tokens["FRONT_DESK"])
    first = await create_order(desk)
    second = await create_order(
        desk, client=None, clientId=first["client"]["id"], device=device(model="iPad Air")
    )
    assert second["client"] == first["client"]
    assert second["number"] == f"OS-{YEAR}-0002"
    assert (await row_counts(db))["clients"] == 1
    assert (await order_row(db, second["id"])).client_id == pk(first["client"]["id"], "Client")


async def test_returning_client_is_matched_by_phone_or_email(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    desk = api.as_(shop.tokens["MANAGER"])
    first = await create_order(desk, client={"name": "Ana Silva", "phone": "912345678"})
    # the same phone in another format, now with an email the shop did not have
    by_phone = await create_order(
        desk,
        client={"name": "Ana S.", "phone": "+351 912 345 678", "email": "ANA@example.com"},
    )
    # only the email, in other letter case
    by_email = await create_order(desk, client={"name": "A. Silva", "email": "ana@EXAMPLE.com"})
    assert by_phone["client"]["id"] == first["client"]["id"]
    assert by_email["client"]["id"] == first["client"]["id"]
    # the existing client keeps its name; the missing email was filled in
    assert by_email["client"] == {
        "id": first["client"]["id"],
        "name": "Ana Silva",
        "email": "ana@example.com",
        "phone": "+351912345678",
    }
    # someone else is a new client
    other = await create_order(desk, client={"name": "Bruno", "phone": "933 333 333"})
    assert other["client"]["id"] != first["client"]["id"]
    counts = await row_counts(db)
    assert (counts["clients"], counts["service_orders"]) == (2, 4)
    stored = await client_row(db, first["client"]["id"])
    assert (stored.name, stored.phone, stored.email) == (
        "Ana Silva",
        "+351912345678",
        "ana@example.com",
    )


async def test_required_fields_are_reported_together_with_paths(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    desk = api.as_(shop.tokens["FRONT_DESK"])
    payload = await create_payload(
        desk,
        device={"model": "   ", "problemReported": ""},
        client={"name": " ", "phone": " ", "email": ""},
    )
    assert errors_of(payload) == {
        (("device", "model"), "REQUIRED"),
        (("device", "problemReported"), "REQUIRED"),
        (("client", "name"), "REQUIRED"),
        (("client", "phone"), "REQUIRED"),
    }
    assert payload["serviceOrder"] is None and payload["created"] is False
    assert all(e["message"] for e in payload["userErrors"])

    # a name alone is not enough: the shop needs a phone or an email
    payload = await create_payload(desk, client={"name": "Ana"})
    assert errors_of(payload) == {(("client", "phone"), "REQUIRED")}
    # neither a clientId nor a client
    payload = await create_payload(desk, client=None)
    assert errors_of(payload) == {(("client",), "REQUIRED")}
    assert await row_counts(db) == EMPTY


@pytest.mark.parametrize(
    ("overrides", "field", "code"),
    [
        ({"device": device(imei="12345")}, ["device", "imei"], "INVALID_IMEI"),
        ({"device": device(imei="4901542032375189")}, ["device", "imei"], "INVALID_IMEI"),
        ({"device": device(imei="490154203237517")}, ["device", "imei"], "INVALID_IMEI"),
        ({"device": device(imei="49015420323751A")}, ["device", "imei"], "INVALID_IMEI"),
        ({"client": new_client(email="ana@example")}, ["client", "email"], "INVALID_EMAIL"),
        ({"client": new_client(email="ana example@x.pt")}, ["client", "email"], "INVALID_EMAIL"),
        ({"client": new_client(phone="12")}, ["client", "phone"], "INVALID_PHONE"),
        ({"client": new_client(phone="call me")}, ["client", "phone"], "INVALID_PHONE"),
        ({"device": device(model="x" * 201)}, ["device", "model"], "TOO_LONG"),
        ({"device": device(brand="b" * 101)}, ["device", "brand"], "TOO_LONG"),
        ({"device": device(serialNumber="s" * 101)}, ["device", "serialNumber"], "TOO_LONG"),
        (
            {"device": device(problemReported="p" * 5001)},
            ["device", "problemReported"],
            "TOO_LONG",
        ),
        ({"client": new_client(name="n" * 201)}, ["client", "name"], "TOO_LONG"),
        ({"idempotencyKey": "k" * 201}, ["idempotencyKey"], "TOO_LONG"),
    ],
)
async def test_invalid_input_is_a_user_error_and_writes_nothing(
    api: GraphQLClient,
    shop: Shop,
    db: Database,
    overrides: dict[str, Any],
    field: list[str],
    code: str,
) -> None:
    payload = await create_payload(api.as_(shop.tokens["FRONT_DESK"]), **overrides)
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [(field, code)]
    assert payload["serviceOrder"] is None and payload["created"] is False
    assert await row_counts(db) == EMPTY


async def test_several_errors_at_once_and_the_number_is_not_used_up(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    desk = api.as_(shop.tokens["FRONT_DESK"])
    payload = await create_payload(
        desk,
        device=device(imei="123", model="m" * 300),
        client={"name": "Ana", "email": "nope", "phone": "0"},
    )
    assert errors_of(payload) == {
        (("device", "imei"), "INVALID_IMEI"),
        (("device", "model"), "TOO_LONG"),
        (("client", "email"), "INVALID_EMAIL"),
        (("client", "phone"), "INVALID_PHONE"),
    }
    # an unknown assignee and a bad IMEI together
    payload = await create_payload(
        desk,
        device=device(imei="000"),
        assignedToId=encode_id("StaffUser", 999_999),
    )
    assert errors_of(payload) == {
        (("device", "imei"), "INVALID_IMEI"),
        (("assignedToId",), "NOT_FOUND"),
    }
    assert await row_counts(db) == EMPTY

    order = await create_order(desk)
    assert order["number"] == f"OS-{YEAR}-0001"
    async with db.read_session() as session:
        counter = (await session.scalars(select(OrderCounter))).one()
    assert (counter.account_id, counter.year, counter.last_value) == (shop.account_id, YEAR, 1)


async def test_technicians_do_not_take_in_orders(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    payload = await create_payload(api.as_(shop.tokens["TECHNICIAN"]))
    assert errors_of(payload) == {(None, "FORBIDDEN")}
    assert await row_counts(db) == EMPTY


# --- idempotency ------------------------------------------------------------------------------


async def test_retry_with_the_same_idempotency_key_returns_the_same_order(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    desk = api.as_(shop.tokens["FRONT_DESK"])
    first = await create_payload(desk, idempotencyKey="intake-1")
    retry = await create_payload(desk, idempotencyKey="intake-1")
    assert first["created"] is True and retry["created"] is False
    assert retry["userErrors"] == []
    assert retry["serviceOrder"]["id"] == first["serviceOrder"]["id"]
    assert retry["serviceOrder"]["number"] == f"OS-{YEAR}-0001"
    assert await row_counts(db) == ONE_ORDER
    row = await order_row(db, first["serviceOrder"]["id"])
    assert row.idempotency_key == "intake-1"
    assert row.version == 1


async def test_same_key_with_different_input_is_refused(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    desk = api.as_(shop.tokens["FRONT_DESK"])
    first = await create_order(desk, idempotencyKey="intake-2")
    payload = await create_payload(
        desk, idempotencyKey="intake-2", device=device(model="Galaxy S21")
    )
    assert errors_of(payload) == {(("idempotencyKey",), "IDEMPOTENCY_KEY_REUSED")}
    assert payload["serviceOrder"] is None and payload["created"] is False
    counts = await row_counts(db)
    assert (counts["service_orders"], counts["counter"]) == (1, 1)
    assert (await order_row(db, first["id"])).device_model == "iPhone 12"


async def test_the_same_key_in_another_shop_is_independent(
    api: GraphQLClient, shop: Shop, other_shop: Shop, db: Database
) -> None:
    mine = await create_payload(api.as_(shop.tokens["FRONT_DESK"]), idempotencyKey="k-1")
    theirs = await create_payload(api.as_(other_shop.tokens["FRONT_DESK"]), idempotencyKey="k-1")
    assert mine["created"] is True and theirs["created"] is True
    assert mine["serviceOrder"]["id"] != theirs["serviceOrder"]["id"]
    assert theirs["serviceOrder"]["number"] == f"OS-{YEAR}-0001"
    async with db.read_session() as session:
        rows = (
            await session.execute(
                select(ServiceOrder.account_id, Client.account_id).join(
                    Client, Client.id == ServiceOrder.client_id
                )
            )
        ).all()
    assert sorted(rows) == sorted(
        [(shop.account_id, shop.account_id), (other_shop.account_id, other_shop.account_id)]
    )


async def test_concurrent_retries_with_one_key_make_one_order(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    desk = api.as_(shop.tokens["FRONT_DESK"])
    payloads = await asyncio.gather(
        *(create_payload(desk, idempotencyKey="double-click") for _ in range(5))
    )
    assert all(p["userErrors"] == [] for p in payloads), payloads
    assert sorted(p["created"] for p in payloads) == [False, False, False, False, True]
    assert len({p["serviceOrder"]["id"] for p in payloads}) == 1
    assert {p["serviceOrder"]["number"] for p in payloads} == {f"OS-{YEAR}-0001"}
    assert await row_counts(db) == ONE_ORDER


# --- update -------------------------------------------------------------------------------------


async def test_update_patches_only_the_fields_given(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    desk = api.as_(shop.tokens["FRONT_DESK"])
    order = await create_order(
        desk,
        device=device(brand="Apple", imei=VALID_IMEI, accessories="Case"),
        client=new_client(email="ana@example.com"),
    )
    payload = await desk.mutate(
        UPDATE,
        {
            "input": {
                "id": order["id"],
                "device": {"brand": "Apple Inc.", "accessories": None},
                "client": {"email": "Ana.New@Example.com"},
            }
        },
    )
    assert payload["userErrors"] == []
    updated = payload["serviceOrder"]
    assert updated["version"] == 2
    assert updated["device"] == {**order["device"], "brand": "Apple Inc.", "accessories": None}
    assert updated["client"] == {**order["client"], "email": "ana.new@example.com"}
    row = await order_row(db, order["id"])
    assert (row.version, row.device_brand, row.accessories) == (2, "Apple Inc.", None)
    assert (row.device_model, row.device_imei, row.problem_reported) == (
        "iPhone 12",
        VALID_IMEI,
        "Cracked screen",
    )
    client = await client_row(db, order["client"]["id"])
    assert (client.name, client.phone, client.email) == (
        "Ana Silva",
        "+351912345678",
        "ana.new@example.com",
    )

    # promisedAt: set, then cleared; a technician may edit details too
    tech = api.as_(shop.tokens["TECHNICIAN"])
    set_ = await tech.mutate(
        UPDATE, {"input": {"id": order["id"], "promisedAt": "2031-05-01T09:30:00Z"}}
    )
    assert set_["serviceOrder"]["promisedAt"] == "2031-05-01T09:30:00+00:00"
    assert set_["serviceOrder"]["version"] == 3
    cleared = await tech.mutate(UPDATE, {"input": {"id": order["id"], "promisedAt": None}})
    assert cleared["serviceOrder"]["promisedAt"] is None
    row = await order_row(db, order["id"])
    assert (row.promised_at, row.version, row.device_brand) == (None, 4, "Apple Inc.")


async def test_update_with_a_stale_version_changes_nothing(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    desk = api.as_(shop.tokens["FRONT_DESK"])
    order = await create_order(desk)
    ok = await desk.mutate(
        UPDATE, {"input": {"id": order["id"], "device": {"brand": "A"}, "expectedVersion": 1}}
    )
    assert ok["userErrors"] == [] and ok["serviceOrder"]["version"] == 2

    stale = await desk.mutate(
        UPDATE, {"input": {"id": order["id"], "device": {"brand": "B"}, "expectedVersion": 1}}
    )
    assert errors_of(stale) == {(("expectedVersion",), "STALE_VERSION")}
    assert stale["serviceOrder"] is None
    row = await order_row(db, order["id"])
    assert (row.version, row.device_brand) == (2, "A")


async def test_invalid_update_reports_every_error_and_changes_nothing(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    desk = api.as_(shop.tokens["FRONT_DESK"])
    order = await create_order(desk, device=device(imei=VALID_IMEI))
    payload = await desk.mutate(
        UPDATE,
        {
            "input": {
                "id": order["id"],
                "device": {"imei": "111", "model": " ", "brand": "OK brand"},
                "client": {"phone": "x", "name": ""},
            }
        },
    )
    assert errors_of(payload) == {
        (("device", "imei"), "INVALID_IMEI"),
        (("device", "model"), "REQUIRED"),
        (("client", "phone"), "INVALID_PHONE"),
        (("client", "name"), "REQUIRED"),
    }
    # removing the only way to reach the client
    payload = await desk.mutate(
        UPDATE, {"input": {"id": order["id"], "client": {"phone": None, "email": None}}}
    )
    assert errors_of(payload) == {(("client", "phone"), "REQUIRED")}

    row = await order_row(db, order["id"])
    assert (row.version, row.device_imei, row.device_model, row.device_brand) == (
        1,
        VALID_IMEI,
        "iPhone 12",
        None,
    )
    client = await client_row(db, order["client"]["id"])
    assert (client.name, client.phone) == ("Ana Silva", "+351912345678")


async def test_closed_orders_cannot_be_changed(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    desk = api.as_(shop.tokens["FRONT_DESK"])
    manager = api.as_(shop.tokens["MANAGER"])
    order = await create_order(desk)
    cancelled = await transition(desk, order["id"], "CANCELLED", note="Customer changed mind")
    assert cancelled["status"] == "CANCELLED"
    version = (await order_row(db, order["id"])).version

    attempts = {
        "serviceOrderUpdate": (UPDATE, {"id": order["id"], "device": {"brand": "X"}}),
        "serviceOrderAssign": (ASSIGN, {"id": order["id"], "assigneeId": shop.gid("MANAGER")}),
        "serviceOrderSetDiagnosis": (
            "mutation($input: ServiceOrderSetDiagnosisInput!) { serviceOrderSetDiagnosis("
            "input: $input) { serviceOrder { id } userErrors { field code } } }",
            {"id": order["id"], "diagnosis": "Screen"},
        ),
        "partLineAdd": (
            "mutation($input: PartLineAddInput!) { partLineAdd(input: $input) {"
            " partLine { id } userErrors { field code } } }",
            {"orderId": order["id"], "name": "Screen", "unitCost": "10"},
        ),
    }
    for name, (mutation, input_) in attempts.items():
        payload = await manager.mutate(mutation, {"input": input_})
        assert [e["code"] for e in payload["userErrors"]] == ["ORDER_CLOSED"], name
    row = await order_row(db, order["id"])
    assert (row.status, row.version, row.device_brand, row.assigned_to_id, row.diagnosis) == (
        "CANCELLED",
        version,
        None,
        None,
        None,
    )
    assert (await row_counts(db))["part_lines"] == 0


# --- internal notes -----------------------------------------------------------------------------


async def test_internal_notes_record_their_author(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    order = await create_order(api.as_(shop.tokens["FRONT_DESK"]))
    tech = api.as_(shop.tokens["TECHNICIAN"])
    payload = await tech.mutate(
        NOTE_ADD, {"input": {"orderId": order["id"], "body": "  Water damage inside. "}}
    )
    assert payload["userErrors"] == []
    note = payload["internalNote"]
    assert note["body"] == "Water damage inside."
    assert note["author"] == {"id": shop.gid("TECHNICIAN"), "name": "Shop A Technician"}
    desk_payload = await api.as_(shop.tokens["FRONT_DESK"]).mutate(
        NOTE_ADD, {"input": {"orderId": order["id"], "body": "Customer called"}}
    )
    assert desk_payload["serviceOrder"]["internalNotes"] == [
        {"body": "Water damage inside.", "author": {"id": shop.gid("TECHNICIAN")}},
        {"body": "Customer called", "author": {"id": shop.gid("FRONT_DESK")}},
    ]
    async with db.read_session() as session:
        rows = (await session.scalars(select(InternalNote).order_by(InternalNote.id))).all()
    assert [(r.order_id, r.author_id, r.account_id, r.body) for r in rows] == [
        (pk(order["id"]), shop.users["TECHNICIAN"], shop.account_id, "Water damage inside."),
        (pk(order["id"]), shop.users["FRONT_DESK"], shop.account_id, "Customer called"),
    ]
    assert pk(note["id"], "InternalNote") == rows[0].id


async def test_internal_notes_need_a_body_and_a_signed_in_user(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    order = await create_order(api.as_(shop.tokens["FRONT_DESK"]))
    tech = api.as_(shop.tokens["TECHNICIAN"])
    blank = await tech.mutate(NOTE_ADD, {"input": {"orderId": order["id"], "body": "  \n "}})
    assert errors_of(blank) == {(("body",), "REQUIRED")}
    assert blank["internalNote"] is None and blank["serviceOrder"] is None
    too_long = await tech.mutate(NOTE_ADD, {"input": {"orderId": order["id"], "body": "x" * 5001}})
    assert errors_of(too_long) == {(("body",), "TOO_LONG")}

    anonymous = await api.query(NOTE_ADD, {"input": {"orderId": order["id"], "body": "hi"}})
    assert anonymous["data"] is None
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert (await row_counts(db))["internal_notes"] == 0


# --- assignment ---------------------------------------------------------------------------------


async def test_managers_and_front_desk_assign_anyone(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    desk = api.as_(shop.tokens["FRONT_DESK"])
    order = await create_order(desk)
    payload = await desk.mutate(
        ASSIGN, {"input": {"id": order["id"], "assigneeId": shop.gid("TECHNICIAN")}}
    )
    assert payload["userErrors"] == []
    assert payload["serviceOrder"]["assignedTo"] == {
        "id": shop.gid("TECHNICIAN"),
        "name": "Shop A Technician",
    }
    assert payload["serviceOrder"]["version"] == 2
    assert (await order_row(db, order["id"])).assigned_to_id == shop.users["TECHNICIAN"]

    manager = api.as_(shop.tokens["MANAGER"])
    payload = await manager.mutate(
        ASSIGN,
        {"input": {"id": order["id"], "assigneeId": shop.gid("OWNER"), "expectedVersion": 2}},
    )
    assert payload["serviceOrder"]["assignedTo"]["id"] == shop.gid("OWNER")
    stale = await manager.mutate(
        ASSIGN,
        {"input": {"id": order["id"], "assigneeId": shop.gid("MANAGER"), "expectedVersion": 2}},
    )
    assert errors_of(stale) == {(("expectedVersion",), "STALE_VERSION")}

    # null unassigns
    payload = await manager.mutate(ASSIGN, {"input": {"id": order["id"], "assigneeId": None}})
    assert payload["userErrors"] == []
    assert payload["serviceOrder"]["assignedTo"] is None
    row = await order_row(db, order["id"])
    assert (row.assigned_to_id, row.version) == (None, 4)


async def test_technicians_may_only_assign_themselves(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    order = await create_order(api.as_(shop.tokens["FRONT_DESK"]))
    tech = api.as_(shop.tokens["TECHNICIAN"])
    other = await tech.mutate(
        ASSIGN, {"input": {"id": order["id"], "assigneeId": shop.gid("MANAGER")}}
    )
    assert errors_of(other) == {(("assigneeId",), "FORBIDDEN")}
    assert (await order_row(db, order["id"])).assigned_to_id is None

    mine = await tech.mutate(
        ASSIGN, {"input": {"id": order["id"], "assigneeId": shop.gid("TECHNICIAN")}}
    )
    assert mine["userErrors"] == []
    assert mine["serviceOrder"]["assignedTo"]["id"] == shop.gid("TECHNICIAN")
    assert (await order_row(db, order["id"])).assigned_to_id == shop.users["TECHNICIAN"]

    # and unassign only themselves
    await api.as_(shop.tokens["MANAGER"]).mutate(
        ASSIGN, {"input": {"id": order["id"], "assigneeId": shop.gid("MANAGER")}}
    )
    refused = await tech.mutate(ASSIGN, {"input": {"id": order["id"], "assigneeId": None}})
    assert errors_of(refused) == {(("assigneeId",), "FORBIDDEN")}
    assert (await order_row(db, order["id"])).assigned_to_id == shop.users["MANAGER"]


async def test_deactivated_staff_cannot_be_assigned(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    owner = api.as_(shop.tokens["OWNER"])
    order = await create_order(api.as_(shop.tokens["FRONT_DESK"]))
    deactivated = await owner.mutate(
        "mutation($id: ID!) { staffUserDeactivate(input: {id: $id}) { userErrors { code } } }",
        {"id": shop.gid("TECHNICIAN")},
    )
    assert deactivated["userErrors"] == []
    payload = await owner.mutate(
        ASSIGN, {"input": {"id": order["id"], "assigneeId": shop.gid("TECHNICIAN")}}
    )
    assert errors_of(payload) == {(("assigneeId",), "ASSIGNEE_INACTIVE")}
    at_intake = await create_payload(
        api.as_(shop.tokens["FRONT_DESK"]), assignedToId=shop.gid("TECHNICIAN")
    )
    assert errors_of(at_intake) == {(("assignedToId",), "ASSIGNEE_INACTIVE")}
    row = await order_row(db, order["id"])
    assert (row.assigned_to_id, row.version) == (None, 1)
    async with db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(ServiceOrder)) == 1
        tech = await session.get(StaffUser, shop.users["TECHNICIAN"])
        assert tech is not None and tech.is_active is False


async def test_a_promised_time_without_time_zone_is_refused(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    desk = api.as_(shop.tokens["FRONT_DESK"])
    body = await desk.query(CREATE, {"input": order_input(promisedAt="2030-01-02T10:00:00")})
    assert body["data"] is None
    (error,) = body["errors"]
    assert "has no time zone" in error["message"]
    assert (error.get("extensions") or {}).get("code") != "INTERNAL_SERVER_ERROR"
    assert await row_counts(db) == EMPTY

    order = await create_order(desk, promisedAt="2030-01-02T10:00:00+01:00")
    promised = datetime(2030, 1, 2, 9, tzinfo=UTC)
    assert datetime.fromisoformat(order["promisedAt"]) == promised
    body = await desk.query(UPDATE, {"input": {"id": order["id"], "promisedAt": "2031-01-01"}})
    assert "has no time zone" in body["errors"][0]["message"]
    row = await order_row(db, order["id"])
    assert (row.promised_at, row.version) == (promised, 1)
