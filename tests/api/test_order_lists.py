"""Lists and lookups: serviceOrders (filters, search, cursor pagination), clients,
serviceOrderByNumber, deviceHistory and a client's orders."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import update

from db.engine import Database
from db.models import ServiceOrder
from resolvers.ids import encode_id
from services import orders as order_service
from services.clients import ClientData
from services.orders import DeviceData
from tests.api.test_orders import (
    ASSIGN,
    OTHER_IMEI,
    VALID_IMEI,
    YEAR,
    create_order,
    device,
    pk,
    transition,
)
from tests.conftest import GraphQLClient, Shop

LIST = """
query($filter: ServiceOrderFilter, $first: Int, $after: String) {
  serviceOrders(filter: $filter, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id number } }
    nodes { number }
  }
}"""

CLIENTS = """
query($search: String, $first: Int, $after: String) {
  clients(search: $search, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id name email phone } }
  }
}"""


def number(seq: int) -> str:
    return f"OS-{YEAR}-{seq:04d}"


async def numbers(api: GraphQLClient, **variables: Any) -> list[str]:
    data = await api.ok(LIST, variables)
    return [n["number"] for n in data["serviceOrders"]["nodes"]]


async def seed_orders(db: Database, shop: Shop, count: int) -> None:
    """`count` orders created through the service (fast set-up), one client each."""
    actor = shop.actors["FRONT_DESK"]
    async with db.write_session() as session:
        for i in range(count):
            await order_service.create_order(
                session=session,
                actor=actor,
                client_id=None,
                client=ClientData(name=f"Client {i:03d}", email=f"client{i:03d}@example.com"),
                device=DeviceData(model=f"Model {i:03d}", problem_reported="Broken"),
            )


async def set_created_at(db: Database, order_id: str, when: datetime) -> None:
    async with db.write_session() as session:
        await session.execute(
            update(ServiceOrder).where(ServiceOrder.id == pk(order_id)).values(created_at=when)
        )


# --- filters and search ---------------------------------------------------------------------------


@pytest.fixture
async def catalogue(api: GraphQLClient, shop: Shop) -> list[dict[str, Any]]:
    """Five orders with distinct clients and devices (numbers 0001 to 0005)."""
    desk = api.as_(shop.tokens["FRONT_DESK"])
    specs = [
        (
            {"name": "Ana Silva", "phone": "912 345 678", "email": "ana@example.com"},
            device(brand="Apple", imei=VALID_IMEI, serialNumber="F2LXK0ABCDEF"),
        ),
        (
            {"name": "Bruno Costa", "phone": "933 111 222", "email": "bruno@mail.pt"},
            device(brand="Samsung", model="Galaxy S21", imei=OTHER_IMEI, serialNumber="R58N7"),
        ),
        (
            {"name": "Carla Reis", "phone": "966 777 888"},
            device(brand="Acme", model="100% Phone", serialNumber="AB_12"),
        ),
        (
            {"name": "Duarte Lima", "email": "duarte@example.org"},
            device(brand="Acme", model="1000 Phone", serialNumber="ABX12"),
        ),
        (
            {"name": "Eva Gomes", "phone": "+44 20 7946 0958"},
            device(brand="Nokia", model="3310"),
        ),
    ]
    return [await create_order(desk, client=c, device=d) for c, d in specs]


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("os-{year}-0002", [2]),  # number, any case
        ("  ANA SILVA ", [1]),  # client name
        ("bruno@MAIL", [2]),  # client email
        ("933 111", [2]),  # phone digits, as typed
        ("+351 912 345 678", [1]),  # phone with country code
        ("apple", [1]),  # brand
        ("GALAXY s2", [2]),  # model
        ("4901542", [1]),  # part of an IMEI
        (OTHER_IMEI, [2]),
        ("f2lxk0", [1]),  # serial, any case
        ("acme", [4, 3]),  # newest first
        ("100%", [3]),  # % is literal: "1000 Phone" does not match
        ("b_1", [3]),  # _ is literal: "ABX12" does not match
        ("%", [3]),
        ("_", [3]),
        ("\\", []),
        ("nobody", []),
    ],
)
async def test_search(
    api: GraphQLClient,
    shop: Shop,
    catalogue: list[dict[str, Any]],
    term: str,
    expected: list[int],
) -> None:
    tech = api.as_(shop.tokens["TECHNICIAN"])
    data = await tech.ok(
        LIST, {"filter": {"search": term.replace("{year}", str(YEAR))}, "first": 50}
    )
    found = data["serviceOrders"]
    assert [n["number"] for n in found["nodes"]] == [number(i) for i in expected]
    assert found["totalCount"] == len(expected)


async def test_filter_by_status_assignee_and_client(
    api: GraphQLClient, shop: Shop, other_shop: Shop, catalogue: list[dict[str, Any]]
) -> None:
    desk = api.as_(shop.tokens["FRONT_DESK"])
    tech = api.as_(shop.tokens["TECHNICIAN"])
    await transition(tech, catalogue[1]["id"], "DIAGNOSING")
    await transition(desk, catalogue[2]["id"], "CANCELLED")
    await desk.mutate(
        ASSIGN, {"input": {"id": catalogue[0]["id"], "assigneeId": shop.gid("TECHNICIAN")}}
    )
    await desk.mutate(
        ASSIGN, {"input": {"id": catalogue[3]["id"], "assigneeId": shop.gid("TECHNICIAN")}}
    )

    assert await numbers(tech, filter={"statuses": ["PENDING"]}) == [
        number(5),
        number(4),
        number(1),
    ]
    assert await numbers(tech, filter={"statuses": ["DIAGNOSING", "CANCELLED"]}) == [
        number(3),
        number(2),
    ]
    assert await numbers(tech, filter={"statuses": ["COMPLETED"]}) == []
    assert await numbers(tech, filter={"assignedTo": shop.gid("TECHNICIAN")}) == [
        number(4),
        number(1),
    ]
    assert await numbers(tech, filter={"assignedTo": shop.gid("MANAGER")}) == []
    # another shop's staff member or a garbage id matches nothing (no error, no leak)
    assert await numbers(tech, filter={"assignedTo": other_shop.gid("TECHNICIAN")}) == []
    assert await numbers(tech, filter={"assignedTo": "garbage"}) == []
    assert await numbers(tech, filter={"clientId": catalogue[1]["client"]["id"]}) == [number(2)]
    # filters combine
    combined = await tech.ok(
        LIST,
        {
            "filter": {
                "statuses": ["PENDING"],
                "assignedTo": shop.gid("TECHNICIAN"),
                "search": "acme",
            }
        },
    )
    assert [n["number"] for n in combined["serviceOrders"]["nodes"]] == [number(4)]
    assert combined["serviceOrders"]["totalCount"] == 1


async def test_filter_by_creation_time(
    api: GraphQLClient, shop: Shop, db: Database, catalogue: list[dict[str, Any]]
) -> None:
    stamps = [
        datetime(2025, 1, 10, tzinfo=UTC),
        datetime(2025, 2, 1, tzinfo=UTC),
        datetime(2025, 2, 15, 8, 30, tzinfo=UTC),
        datetime(2025, 3, 1, 12, tzinfo=UTC),
        datetime(2025, 3, 2, tzinfo=UTC),
    ]
    for order, when in zip(catalogue, stamps, strict=True):
        await set_created_at(db, order["id"], when)
    tech = api.as_(shop.tokens["TECHNICIAN"])

    # from is inclusive, to is exclusive
    window = {"createdFrom": "2025-02-01T00:00:00Z", "createdTo": "2025-03-01T12:00:00Z"}
    assert await numbers(tech, filter=window) == [number(3), number(2)]
    assert await numbers(tech, filter={"createdFrom": "2025-03-01T12:00:00Z"}) == [
        number(5),
        number(4),
    ]
    assert await numbers(tech, filter={"createdTo": "2025-02-01T00:00:00Z"}) == [number(1)]
    # offsets are honoured: 01:00+01:00 is midnight UTC
    assert await numbers(
        tech,
        filter={
            "createdFrom": "2025-02-01T01:00:00+01:00",
            "createdTo": "2025-02-15T08:30:00+00:00",
        },
    ) == [number(2)]
    data = await tech.ok(LIST, {"filter": window})
    assert data["serviceOrders"]["totalCount"] == 2


async def test_naive_timestamps_in_the_filter_are_refused_not_crashed(
    api: GraphQLClient, shop: Shop, catalogue: list[dict[str, Any]]
) -> None:
    body = await api.as_(shop.tokens["TECHNICIAN"]).query(
        LIST, {"filter": {"createdFrom": "2025-02-01T00:00:00"}}
    )
    assert body["data"] is None
    (error,) = body["errors"]
    assert "has no time zone" in error["message"]
    assert (error.get("extensions") or {}).get("code") != "INTERNAL_SERVER_ERROR"


# --- pagination ---------------------------------------------------------------------------------


async def test_cursor_pagination_is_newest_first_without_gaps_or_duplicates(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    await seed_orders(db, shop, 25)
    tech = api.as_(shop.tokens["TECHNICIAN"])
    seen: list[str] = []
    pages = []
    after = None
    while True:
        data = await tech.ok(LIST, {"first": 10, "after": after})
        page = data["serviceOrders"]
        pages.append(page)
        assert page["totalCount"] == 25
        assert [e["node"]["number"] for e in page["edges"]] == [n["number"] for n in page["nodes"]]
        assert page["pageInfo"]["startCursor"] == page["edges"][0]["cursor"]
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        seen += [n["number"] for n in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert [len(p["nodes"]) for p in pages] == [10, 10, 5]
    assert seen == [number(i) for i in range(25, 0, -1)]

    # a cursor from the middle of a page continues right after that item
    middle = pages[0]["edges"][3]["cursor"]
    assert await numbers(tech, first=2, after=middle) == [number(21), number(20)]
    # the default page is 20, the maximum 100
    assert len(await numbers(tech)) == 20
    assert len(await numbers(tech, first=100)) == 25
    # past the end
    last = await tech.ok(LIST, {"first": 5, "after": pages[-1]["pageInfo"]["endCursor"]})
    assert last["serviceOrders"]["nodes"] == []
    assert last["serviceOrders"]["pageInfo"] == {
        "hasNextPage": False,
        "hasPreviousPage": True,
        "startCursor": None,
        "endCursor": None,
    }


async def test_pagination_with_a_filter_counts_only_matches(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    await seed_orders(db, shop, 12)
    tech = api.as_(shop.tokens["TECHNICIAN"])
    # "Model 00x" matches orders 1-10 (i = 0..9)
    data = await tech.ok(LIST, {"filter": {"search": "model 00"}, "first": 4})
    page = data["serviceOrders"]
    assert page["totalCount"] == 10
    assert [n["number"] for n in page["nodes"]] == [number(i) for i in (10, 9, 8, 7)]
    assert page["pageInfo"]["hasNextPage"] is True
    data = await tech.ok(
        LIST,
        {"filter": {"search": "model 00"}, "first": 10, "after": page["pageInfo"]["endCursor"]},
    )
    assert [n["number"] for n in data["serviceOrders"]["nodes"]] == [
        number(i) for i in range(6, 0, -1)
    ]
    assert data["serviceOrders"]["pageInfo"]["hasNextPage"] is False


@pytest.mark.parametrize("first", [0, -1, 101, 1000])
async def test_page_size_out_of_range_is_an_error(
    api: GraphQLClient, shop: Shop, first: int
) -> None:
    tech = api.as_(shop.tokens["TECHNICIAN"])
    for query in (LIST, CLIENTS):
        body = await tech.query(query, {"first": first})
        assert body["data"] is None
        (error,) = body["errors"]
        assert error["message"] == "`first` must be between 1 and 100."
        assert error["extensions"] == {"code": "INVALID_INPUT"}


@pytest.mark.parametrize(
    "after", ["garbage", "", encode_id("ServiceOrder", 5), encode_id("cursor", 1) + "!"]
)
async def test_bad_cursor_is_an_error(api: GraphQLClient, shop: Shop, after: str) -> None:
    body = await api.as_(shop.tokens["TECHNICIAN"]).query(LIST, {"after": after})
    assert body["data"] is None
    assert body["errors"][0]["message"] == "`after` is not a valid cursor."
    assert body["errors"][0]["extensions"] == {"code": "INVALID_INPUT"}


# --- clients --------------------------------------------------------------------------------------


async def test_clients_search_and_pagination(
    api: GraphQLClient, shop: Shop, other_shop: Shop, catalogue: list[dict[str, Any]]
) -> None:
    await create_order(
        api.as_(other_shop.tokens["FRONT_DESK"]),
        client={"name": "Ana Elsewhere", "email": "ana@example.com"},
    )
    tech = api.as_(shop.tokens["TECHNICIAN"])

    async def names(search: str | None, **more: Any) -> list[str]:
        data = await tech.ok(CLIENTS, {"search": search, **more})
        return [e["node"]["name"] for e in data["clients"]["edges"]]

    assert await names(None) == [
        "Eva Gomes",
        "Duarte Lima",
        "Carla Reis",
        "Bruno Costa",
        "Ana Silva",
    ]
    assert await names("ANA") == ["Ana Silva"]  # not the other shop's Ana
    assert await names("example") == ["Duarte Lima", "Ana Silva"]
    assert await names("966-777") == ["Carla Reis"]
    assert await names("7946 0958") == ["Eva Gomes"]
    assert await names("%") == []
    assert await names("_") == []

    first = await tech.ok(CLIENTS, {"first": 2})
    page = first["clients"]
    assert page["totalCount"] == 5
    assert [e["node"]["name"] for e in page["edges"]] == ["Eva Gomes", "Duarte Lima"]
    assert page["pageInfo"]["hasNextPage"] is True
    rest = await names(None, first=10, after=page["pageInfo"]["endCursor"])
    assert rest == ["Carla Reis", "Bruno Costa", "Ana Silva"]
    shown = {e["node"]["name"]: e["node"] for e in (await tech.ok(CLIENTS))["clients"]["edges"]}
    assert shown["Eva Gomes"]["phone"] == "+442079460958"


async def test_a_clients_orders_newest_first(api: GraphQLClient, shop: Shop) -> None:
    desk = api.as_(shop.tokens["FRONT_DESK"])
    first = await create_order(desk)
    await create_order(desk, client={"name": "Other", "email": "o@example.com"})
    for _ in range(2):
        await create_order(desk, client=None, clientId=first["client"]["id"])
    data = await desk.ok(
        "query($id: ID!) { node(id: $id) { ... on Client { name serviceOrders(first: 2) {"
        " totalCount nodes { number } pageInfo { hasNextPage } } } } }",
        {"id": first["client"]["id"]},
    )
    orders = data["node"]["serviceOrders"]
    assert orders["totalCount"] == 3
    assert [n["number"] for n in orders["nodes"]] == [number(4), number(3)]
    assert orders["pageInfo"]["hasNextPage"] is True


# --- lookups --------------------------------------------------------------------------------------


async def test_service_order_by_number(
    api: GraphQLClient, shop: Shop, other_shop: Shop, catalogue: list[dict[str, Any]]
) -> None:
    theirs = await create_order(api.as_(other_shop.tokens["FRONT_DESK"]))
    assert theirs["number"] == number(1)  # the same number exists in both shops
    query = "query($n: String!) { serviceOrderByNumber(number: $n) { id number } }"
    tech = api.as_(shop.tokens["TECHNICIAN"])
    for typed in (number(1), f"  os-{YEAR}-0001 "):
        found = (await tech.ok(query, {"n": typed}))["serviceOrderByNumber"]
        assert found == {"id": catalogue[0]["id"], "number": number(1)}
    assert (await tech.ok(query, {"n": number(99)}))["serviceOrderByNumber"] is None
    assert (await tech.ok(query, {"n": "nonsense"}))["serviceOrderByNumber"] is None
    other = await api.as_(other_shop.tokens["TECHNICIAN"]).ok(query, {"n": number(1)})
    assert other["serviceOrderByNumber"]["id"] == theirs["id"]


async def test_device_history_matches_imei_or_serial_within_the_shop(
    api: GraphQLClient, shop: Shop, other_shop: Shop
) -> None:
    desk = api.as_(shop.tokens["FRONT_DESK"])
    first = await create_order(desk, device=device(imei=VALID_IMEI))
    again = await create_order(desk, device=device(imei="4901 5420 3237 518", serialNumber="S1"))
    by_serial = await create_order(desk, device=device(serialNumber="S1"))
    await create_order(desk, device=device(imei=OTHER_IMEI, serialNumber="S2"))
    no_ids = await create_order(desk, device=device())
    # the same IMEI in another shop is none of this shop's business
    await create_order(api.as_(other_shop.tokens["FRONT_DESK"]), device=device(imei=VALID_IMEI))

    query = "query($id: ID!) { serviceOrder(id: $id) { deviceHistory { number } } }"

    async def history(order: dict[str, Any]) -> list[str]:
        data = await desk.ok(query, {"id": order["id"]})
        return [o["number"] for o in data["serviceOrder"]["deviceHistory"]]

    assert await history(first) == [again["number"]]
    assert await history(again) == [by_serial["number"], first["number"]]
    assert await history(by_serial) == [again["number"]]
    assert await history(no_ids) == []
