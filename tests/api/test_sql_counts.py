"""The order list runs a fixed number of SQL statements, however long the page (no N+1):
related objects come through batched DataLoaders."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from db.engine import Database
from services import orders as order_service
from services.clients import ClientData
from services.orders import DeviceData
from services.statuses import OrderStatus
from tests.api.test_orders import YEAR
from tests.conftest import GraphQLClient, Shop, count_statements

ORDERS = 100

LIST = """
query($first: Int) {
  serviceOrders(first: $first) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges {
      cursor
      node {
        id number status
        device { brand model imei }
        client { name phone email }
        parts { name quantity unitCost { amount } lineTotal { amount } }
        partsTotal { amount }
        total { amount currency }
        assignedTo { name role }
        createdBy { name }
        latestHistory { fromStatus toStatus at actor { name } }
      }
    }
  }
}"""

# Authentication, the page, the COUNT, then one batch each for clients, staff (assignees,
# creators and the history entries' actors, all cached after the first batch), parts and the
# latest history entries.
STATEMENTS = 7


async def seed(db: Database, shop: Shop) -> None:
    """100 orders, each with two parts; assignees and statuses vary."""
    desk = shop.actors["FRONT_DESK"]
    tech = shop.actors["TECHNICIAN"]
    assignees = [shop.users["TECHNICIAN"], shop.users["MANAGER"], None]
    async with db.write_session() as session:
        for i in range(ORDERS):
            result = await order_service.create_order(
                session=session,
                actor=desk,
                client_id=None,
                client=ClientData(name=f"Client {i}", phone=f"91{i:07d}"),
                device=DeviceData(brand="Apple", model=f"iPhone {i}", problem_reported="Dead"),
                assigned_to_id=assignees[i % 3],
            )
            order_id = result.order.id
            for name, cost in (("Screen", "49.90"), ("Screw", "0.25")):
                await order_service.add_part(
                    session=session,
                    actor=tech,
                    order_id=order_id,
                    name=name,
                    quantity=2,
                    unit_cost=Decimal(cost),
                )
            if i % 4 == 0:
                await order_service.transition_order(
                    session=session, actor=tech, order_id=order_id, to_status=OrderStatus.DIAGNOSING
                )


@pytest.fixture
async def seeded(db: Database, shop: Shop, app: Any) -> Shop:
    await seed(db, shop)
    # the app's background event relay polls the database on its own schedule; stopped here
    # so that only the request's statements are counted
    await app.state.realtime.publisher.stop()
    return shop


async def test_order_list_statement_count_does_not_grow_with_the_page(
    api: GraphQLClient, db: Database, seeded: Shop
) -> None:
    tech = api.as_(seeded.tokens["TECHNICIAN"])
    counts = {}
    for first in (1, 10, 100):
        with count_statements(db) as counter:
            data = await tech.ok(LIST, {"first": first})
        counts[first] = counter.count
        page = data["serviceOrders"]
        assert page["totalCount"] == ORDERS
        assert len(page["edges"]) == first
        assert page["pageInfo"]["hasNextPage"] is (first < ORDERS)
    assert counts == {1: STATEMENTS, 10: STATEMENTS, 100: STATEMENTS}, counter.statements

    # and the batched data is right for every order of the full page
    data = await tech.ok(LIST, {"first": 100})
    nodes = [e["node"] for e in data["serviceOrders"]["edges"]]
    assert [n["number"] for n in nodes] == [f"OS-{YEAR}-{i:04d}" for i in range(ORDERS, 0, -1)]
    names = {
        seeded.users["TECHNICIAN"]: "Shop A Technician",
        seeded.users["MANAGER"]: "Shop A Manager",
    }
    for node in nodes:
        i = int(node["number"].rsplit("-", 1)[1]) - 1
        assert node["device"] == {"brand": "Apple", "model": f"iPhone {i}", "imei": None}
        assert node["client"] == {
            "name": f"Client {i}",
            "phone": f"+35191{i:07d}",
            "email": None,
        }
        assert [(p["name"], p["quantity"], p["lineTotal"]["amount"]) for p in node["parts"]] == [
            ("Screen", 2, "99.80"),
            ("Screw", 2, "0.50"),
        ]
        assert node["partsTotal"] == {"amount": "100.30"}
        assert node["total"] == {"amount": "100.30", "currency": "EUR"}
        assignee = [seeded.users["TECHNICIAN"], seeded.users["MANAGER"], None][i % 3]
        expected = None if assignee is None else names[assignee]
        assert (node["assignedTo"] or {}).get("name") == expected
        assert node["createdBy"] == {"name": "Shop A Front_Desk"}
        if i % 4 == 0:
            assert node["status"] == "DIAGNOSING"
            assert node["latestHistory"]["fromStatus"] == "PENDING"
            assert node["latestHistory"]["toStatus"] == "DIAGNOSING"
            assert node["latestHistory"]["actor"] == {"name": "Shop A Technician"}
        else:
            assert node["status"] == "PENDING"
            assert node["latestHistory"]["fromStatus"] is None
            assert node["latestHistory"]["toStatus"] == "PENDING"
            assert node["latestHistory"]["actor"] == {"name": "Shop A Front_Desk"}
