"""Shop scoping: an ID of another shop is NOT_FOUND (mutations) or null (queries), exactly like
an ID that never existed, a garbage ID or an ID of the wrong type; never FORBIDDEN, never data,
and the other shop's rows are left as they were."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from db.engine import Database
from db.models import Client, InternalNote, PartLine, ServiceOrder, StaffUser, StatusHistory
from resolvers.ids import encode_id
from tests.api.test_orders import (
    ASSIGN,
    CREATE,
    NOTE_ADD,
    TRANSITION,
    UPDATE,
    VALID_IMEI,
    YEAR,
    create_order,
    device,
    order_input,
    row_counts,
)
from tests.api.test_parts_and_money import DIAGNOSE, PART_ADD, PART_REMOVE, PART_UPDATE
from tests.conftest import GraphQLClient, Shop

MISSING = 987_654_321
GARBAGE = "definitely-not-an-id"


@dataclass
class Ids:
    order: str
    number: str
    client: str
    part: str
    note: str
    staff: str
    account: str


async def _setup(api: GraphQLClient, shop: Shop, client_name: str, orders: int) -> Ids:
    desk = api.as_(shop.tokens["FRONT_DESK"])
    order: dict[str, Any] = {}
    for _ in range(orders):
        order = await create_order(
            desk,
            client={"name": client_name, "email": f"{client_name.lower()}@example.com"},
            device=device(imei=VALID_IMEI),
            assignedToId=shop.gid("TECHNICIAN"),
        )
    tech = api.as_(shop.tokens["TECHNICIAN"])
    part = await tech.mutate(
        PART_ADD, {"input": {"orderId": order["id"], "name": "Screen", "unitCost": "10"}}
    )
    note = await tech.mutate(NOTE_ADD, {"input": {"orderId": order["id"], "body": "Secret"}})
    me = await desk.ok("{ me { account { id } } }")
    return Ids(
        order=order["id"],
        number=order["number"],
        client=order["client"]["id"],
        part=part["partLine"]["id"],
        note=note["internalNote"]["id"],
        staff=shop.gid("TECHNICIAN"),
        account=me["me"]["account"]["id"],
    )


@pytest.fixture
async def mine(api: GraphQLClient, shop: Shop) -> Ids:
    return await _setup(api, shop, "Alice", orders=1)


@pytest.fixture
async def theirs(api: GraphQLClient, other_shop: Shop) -> Ids:
    # two orders, so that OS-<year>-0002 exists only in the other shop
    return await _setup(api, other_shop, "Bianca", orders=2)


async def snapshot(db: Database, account_id: int) -> list[dict[str, Any]]:
    """Every column of every row the shop owns."""
    rows: list[dict[str, Any]] = []
    async with db.read_session() as session:
        for model in (ServiceOrder, Client, PartLine, InternalNote, StaffUser, StatusHistory):
            found = await session.scalars(
                select(model).where(model.account_id == account_id).order_by(model.id)
            )
            for row in found:
                rows.append(
                    {
                        "table": model.__tablename__,
                        **{c.key: getattr(row, c.key) for c in model.__table__.columns},
                    }
                )
    return rows


def mutations(mine: Ids, theirs: Ids) -> list[tuple[str, str, dict[str, Any], str, str]]:
    """(name, mutation, input, the input field holding the foreign ID, its type)."""
    return [
        (
            "create for their client",
            CREATE,
            {**order_input(client=None), "clientId": theirs.client},
            "clientId",
            "Client",
        ),
        (
            "create assigned to their staff",
            CREATE,
            {**order_input(), "assignedToId": theirs.staff},
            "assignedToId",
            "StaffUser",
        ),
        ("update", UPDATE, {"id": theirs.order, "device": {"brand": "X"}}, "id", "ServiceOrder"),
        ("diagnose", DIAGNOSE, {"id": theirs.order, "diagnosis": "X"}, "id", "ServiceOrder"),
        ("transition", TRANSITION, {"id": theirs.order, "to": "CANCELLED"}, "id", "ServiceOrder"),
        (
            "assign their order",
            ASSIGN,
            {"id": theirs.order, "assigneeId": mine.staff},
            "id",
            "ServiceOrder",
        ),
        (
            "assign to their staff",
            ASSIGN,
            {"id": mine.order, "assigneeId": theirs.staff},
            "assigneeId",
            "StaffUser",
        ),
        (
            "add a part",
            PART_ADD,
            {"orderId": theirs.order, "name": "X", "unitCost": "1"},
            "orderId",
            "ServiceOrder",
        ),
        ("update a part", PART_UPDATE, {"id": theirs.part, "quantity": 5}, "id", "PartLine"),
        ("remove a part", PART_REMOVE, {"id": theirs.part}, "id", "PartLine"),
        ("add a note", NOTE_ADD, {"orderId": theirs.order, "body": "X"}, "orderId", "ServiceOrder"),
        (
            "deactivate their staff",
            "mutation($input: StaffUserDeactivateInput!) { staffUserDeactivate(input: $input)"
            " { staffUser { id } userErrors { field message code } } }",
            {"id": theirs.staff},
            "id",
            "StaffUser",
        ),
    ]


def wrong_type_id(type_name: str, mine: Ids) -> str:
    """An ID of this shop, but of another type than the input expects."""
    return mine.client if type_name != "Client" else mine.order


async def test_every_mutation_answers_not_found_for_another_shops_ids(
    api: GraphQLClient, shop: Shop, other_shop: Shop, db: Database, mine: Ids, theirs: Ids
) -> None:
    before_theirs = await snapshot(db, other_shop.account_id)
    before_mine = await snapshot(db, shop.account_id)
    owner = api.as_(shop.tokens["OWNER"])  # may do everything in their own shop
    for name, mutation, input_, field, type_name in mutations(mine, theirs):
        variants = {
            "another shop's": input_[field],
            "missing": encode_id(type_name, MISSING),
            "garbage": GARBAGE,
            "wrong type": wrong_type_id(type_name, mine),
        }
        answers = {}
        for label, value in variants.items():
            body = await owner.query(mutation, {"input": {**input_, field: value}})
            assert "errors" not in body, (name, label, body)
            (payload,) = body["data"].values()
            assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [
                ([field], "NOT_FOUND")
            ], (name, label)
            # nothing of the other shop (or of this one) comes back
            assert all(v in (None, False) for k, v in payload.items() if k != "userErrors"), (
                name,
                label,
                payload,
            )
            answers[label] = payload["userErrors"]
        # the answer says nothing about whether the ID exists elsewhere
        assert answers["another shop's"] == answers["missing"], name
        assert len({json.dumps(a) for a in answers.values()}) == 1, (name, answers)

    assert await snapshot(db, other_shop.account_id) == before_theirs
    assert await snapshot(db, shop.account_id) == before_mine


async def test_role_limited_staff_get_not_found_too(
    api: GraphQLClient, shop: Shop, other_shop: Shop, db: Database, mine: Ids, theirs: Ids
) -> None:
    before = await snapshot(db, other_shop.account_id)
    tech = api.as_(shop.tokens["TECHNICIAN"])
    # a technician may not complete orders nor assign others; on another shop's IDs the
    # answer is still NOT_FOUND, never FORBIDDEN
    completed = await tech.mutate(TRANSITION, {"input": {"id": theirs.order, "to": "COMPLETED"}})
    assert [(e["field"], e["code"]) for e in completed["userErrors"]] == [(["id"], "NOT_FOUND")]
    assigned = await tech.mutate(ASSIGN, {"input": {"id": mine.order, "assigneeId": theirs.staff}})
    assert [(e["field"], e["code"]) for e in assigned["userErrors"]] == [
        (["assigneeId"], "NOT_FOUND")
    ]
    self_assign = await tech.mutate(ASSIGN, {"input": {"id": theirs.order, "assigneeId": None}})
    assert [e["code"] for e in self_assign["userErrors"]] == ["NOT_FOUND"]

    # where the role itself is refused, a foreign ID answers exactly like a missing one
    desk = api.as_(shop.tokens["FRONT_DESK"])
    foreign = await desk.mutate(DIAGNOSE, {"input": {"id": theirs.order, "diagnosis": "X"}})
    missing = await desk.mutate(
        DIAGNOSE, {"input": {"id": encode_id("ServiceOrder", MISSING), "diagnosis": "X"}}
    )
    assert foreign == missing
    assert await snapshot(db, other_shop.account_id) == before


async def test_queries_return_null_for_another_shops_ids(
    api: GraphQLClient, shop: Shop, mine: Ids, theirs: Ids
) -> None:
    tech = api.as_(shop.tokens["TECHNICIAN"])
    node = "query($id: ID!) { node(id: $id) { __typename id } }"
    # positive control: this shop's objects resolve
    for type_name, own in (
        ("ServiceOrder", mine.order),
        ("Client", mine.client),
        ("PartLine", mine.part),
        ("InternalNote", mine.note),
        ("StaffUser", mine.staff),
        ("Account", mine.account),
    ):
        assert (await tech.ok(node, {"id": own}))["node"] == {"__typename": type_name, "id": own}
    for foreign in (
        theirs.order,
        theirs.client,
        theirs.part,
        theirs.note,
        theirs.staff,
        theirs.account,
        GARBAGE,
        encode_id("ServiceOrder", MISSING),
        encode_id("NoSuchType", 1),
        "",
    ):
        assert (await tech.ok(node, {"id": foreign}))["node"] is None, foreign

    order = "query($id: ID!) { serviceOrder(id: $id) { id } }"
    assert (await tech.ok(order, {"id": mine.order}))["serviceOrder"] == {"id": mine.order}
    for foreign in (theirs.order, mine.client, mine.part, GARBAGE, encode_id("ServiceOrder", 0)):
        assert (await tech.ok(order, {"id": foreign}))["serviceOrder"] is None, foreign

    by_number = "query($n: String!) { serviceOrderByNumber(number: $n) { id } }"
    assert theirs.number == f"OS-{YEAR}-0002"
    assert (await tech.ok(by_number, {"n": theirs.number}))["serviceOrderByNumber"] is None


async def test_lists_never_show_another_shops_rows(
    api: GraphQLClient, shop: Shop, mine: Ids, theirs: Ids
) -> None:
    tech = api.as_(shop.tokens["TECHNICIAN"])
    orders = """query($filter: ServiceOrderFilter) {
      serviceOrders(filter: $filter, first: 100) { totalCount nodes { id } } }"""
    everything = await tech.ok(orders)
    assert everything["serviceOrders"] == {"totalCount": 1, "nodes": [{"id": mine.order}]}
    for flt in (
        {"clientId": theirs.client},
        {"assignedTo": theirs.staff},
        {"search": "Bianca"},
        {"search": "bianca@example.com"},
        {"search": f"OS-{YEAR}-0002"},
    ):
        data = await tech.ok(orders, {"filter": flt})
        assert data["serviceOrders"] == {"totalCount": 0, "nodes": []}, flt

    clients = await tech.ok("{ clients(first: 100) { totalCount nodes { name } } }")
    assert clients["clients"] == {"totalCount": 1, "nodes": [{"name": "Alice"}]}
    staff = await tech.ok("{ staffUsers(includeInactive: true) { email } }")
    assert all(u["email"].endswith("@a.test") for u in staff["staffUsers"])
    # both shops have an order for the same IMEI; neither sees the other's
    history = await tech.ok(
        "query($id: ID!) { serviceOrder(id: $id) { deviceHistory { id } } }", {"id": mine.order}
    )
    assert history["serviceOrder"]["deviceHistory"] == []


async def test_nothing_is_written_by_foreign_ids(
    api: GraphQLClient, shop: Shop, db: Database, mine: Ids, theirs: Ids
) -> None:
    counts = await row_counts(db)
    owner = api.as_(shop.tokens["OWNER"])
    payload = await owner.mutate(
        CREATE, {"input": {**order_input(client=None), "clientId": theirs.client}}
    )
    assert payload["serviceOrder"] is None and payload["created"] is False
    assert await row_counts(db) == counts
