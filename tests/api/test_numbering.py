"""Order numbers: OS-YYYY-NNNN per shop, the year in the shop's time zone, sequential and
gap-free even under concurrent intake, looked up by number."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from db.engine import Database
from db.models import OrderCounter, ServiceOrder, StatusHistory
from services import auth, numbering, orders
from services.clients import ClientData
from services.orders import DeviceData
from tests.conftest import PASSWORD, GraphQLClient, Shop

CREATE = """
mutation($input: ServiceOrderCreateInput!) {
  serviceOrderCreate(input: $input) {
    serviceOrder { id number status }
    userErrors { field code }
  }
}"""
BY_NUMBER = "query($n: String!) { serviceOrderByNumber(number: $n) { id number } }"


def order_input(i: int, *, imei: str | None = None) -> dict[str, Any]:
    device: dict[str, Any] = {"model": f"Phone {i}", "problemReported": "Cracked screen"}
    if imei is not None:
        device["imei"] = imei
    return {
        "input": {
            "client": {"name": f"Client {i}", "email": f"client{i}@example.com"},
            "device": device,
        }
    }


async def create(client: GraphQLClient, i: int, **kw: Any) -> dict[str, Any]:
    return await client.mutate(CREATE, order_input(i, **kw))


def this_year(time_zone: str) -> int:
    return datetime.now(ZoneInfo(time_zone)).year


async def stored_numbers(db: Database, account_id: int) -> list[str]:
    """The shop's order numbers in creation (id) order."""
    async with db.read_session() as session:
        rows = await session.scalars(
            select(ServiceOrder.number)
            .where(ServiceOrder.account_id == account_id)
            .order_by(ServiceOrder.id)
        )
        return list(rows)


async def counter(db: Database, account_id: int, year: int) -> int | None:
    async with db.read_session() as session:
        return await session.scalar(
            select(OrderCounter.last_value).where(
                OrderCounter.account_id == account_id, OrderCounter.year == year
            )
        )


# --- pure functions ---------------------------------------------------------------------------


def test_format_number_pads_to_four_digits_and_widens_past_9999() -> None:
    assert numbering.format_number(2026, 1) == "OS-2026-0001"
    assert numbering.format_number(2026, 42) == "OS-2026-0042"
    assert numbering.format_number(2026, 9999) == "OS-2026-9999"
    assert numbering.format_number(2026, 10000) == "OS-2026-10000"
    assert numbering.format_number(2027, 123456) == "OS-2027-123456"


@pytest.mark.parametrize(
    ("now", "time_zone", "year"),
    [
        # 23:30 UTC on New Year's Eve: already 2026 in Tokyo, still 2025 in Los Angeles
        (datetime(2025, 12, 31, 23, 30, tzinfo=UTC), "Asia/Tokyo", 2026),
        (datetime(2025, 12, 31, 23, 30, tzinfo=UTC), "America/Los_Angeles", 2025),
        (datetime(2025, 12, 31, 23, 30, tzinfo=UTC), "UTC", 2025),
        # 03:00 UTC on New Year's Day: 2026 in Lisbon and Tokyo, 2025 in Los Angeles
        (datetime(2026, 1, 1, 3, 0, tzinfo=UTC), "Europe/Lisbon", 2026),
        (datetime(2026, 1, 1, 3, 0, tzinfo=UTC), "America/Los_Angeles", 2025),
        (datetime(2026, 1, 1, 3, 0, tzinfo=UTC), "Asia/Tokyo", 2026),
        # the same instant given in another zone is converted, not read as local time
        (datetime(2026, 1, 1, 8, 0, tzinfo=ZoneInfo("Asia/Tokyo")), "America/New_York", 2025),
        (datetime(2025, 12, 31, 14, 0, tzinfo=ZoneInfo("Pacific/Kiritimati")), "UTC", 2025),
        (datetime(2025, 12, 31, 10, 0, tzinfo=UTC), "Pacific/Kiritimati", 2026),
    ],
)
def test_current_year_is_the_year_in_the_shops_time_zone(
    now: datetime, time_zone: str, year: int
) -> None:
    assert numbering.current_year(time_zone, now) == year


def test_current_year_defaults_to_now() -> None:
    before = datetime.now(ZoneInfo("Asia/Tokyo")).year
    got = numbering.current_year("Asia/Tokyo")
    assert got in (before, datetime.now(ZoneInfo("Asia/Tokyo")).year)


# --- through the API --------------------------------------------------------------------------


async def test_fifty_concurrent_creations_get_0001_to_0050(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    """55 intakes at once (front desk, manager and owner), five of them invalid: the 50 valid
    ones get exactly 0001..0050, in commit order, no gap and no duplicate; the invalid ones
    take no number. (PostgreSQL: the counter row's lock serialises the UPDATE ... RETURNING
    and the first creation of the year inserts the row with ON CONFLICT DO NOTHING; SQLite:
    writers queue on BEGIN IMMEDIATE.)"""
    year = this_year("Europe/Lisbon")
    roles = ["FRONT_DESK", "MANAGER", "OWNER"]
    calls = []
    for i in range(55):
        client = api.as_(shop.tokens[roles[i % 3]])
        bad_imei = "490154203237519" if i % 11 == 5 else None  # wrong check digit
        calls.append(create(client, i, imei=bad_imei))
    payloads = await asyncio.gather(*calls)

    failed = [p for p in payloads if p["userErrors"]]
    assert len(failed) == 5
    for p in failed:
        assert p["serviceOrder"] is None
        assert p["userErrors"] == [{"field": ["device", "imei"], "code": "INVALID_IMEI"}]
    numbers = [p["serviceOrder"]["number"] for p in payloads if not p["userErrors"]]
    expected = [f"OS-{year}-{n:04d}" for n in range(1, 51)]
    assert sorted(numbers) == expected
    assert all(p["serviceOrder"]["status"] == "PENDING" for p in payloads if not p["userErrors"])

    # stored: 50 orders, numbered in the order they were written, counter at 50
    assert await stored_numbers(db, shop.account_id) == expected
    assert await counter(db, shop.account_id, year) == 50
    async with db.read_session() as session:
        created = await session.scalar(
            select(func.count())
            .select_from(StatusHistory)
            .where(StatusHistory.from_status.is_(None))
        )
    assert created == 50


async def test_a_failed_creation_consumes_no_number(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    year = this_year("Europe/Lisbon")
    front = api.as_(shop.tokens["FRONT_DESK"])
    first = await create(front, 1)
    invalid = await front.mutate(
        CREATE,
        {
            "input": {
                "client": {"name": "No contact"},
                "device": {"model": " ", "problemReported": ""},
            }
        },
    )
    assert invalid["serviceOrder"] is None and invalid["userErrors"]
    second = await create(front, 2)
    assert [first["serviceOrder"]["number"], second["serviceOrder"]["number"]] == [
        f"OS-{year}-0001",
        f"OS-{year}-0002",
    ]
    assert await counter(db, shop.account_id, year) == 2


async def test_a_creation_rolled_back_after_taking_its_number_gives_the_number_back(
    shop: Shop, db: Database
) -> None:
    """The counter moves in the order's own transaction: whatever makes the transaction fail
    after the number was taken also undoes the increment, so the next order gets it."""
    year = this_year("Europe/Lisbon")

    async def intake(session: Any) -> str:
        result = await orders.create_order(
            session=session,
            actor=shop.actors["FRONT_DESK"],
            client_id=None,
            client=ClientData(name="Rita", phone="+351 912 345 678"),
            device=DeviceData(model="iPhone 12", problem_reported="No sound"),
        )
        return result.order.number

    class Boom(Exception):
        pass

    taken: list[str] = []

    async def intake_then_fail() -> None:
        async with db.write_session() as session:
            taken.append(await intake(session))
            raise Boom

    with pytest.raises(Boom):
        await intake_then_fail()
    assert taken == [f"OS-{year}-0001"]
    assert await stored_numbers(db, shop.account_id) == []
    async with db.write_session() as session:
        assert await intake(session) == f"OS-{year}-0001"
    assert await counter(db, shop.account_id, year) == 1


async def test_numbers_are_per_shop_and_lookups_stay_in_the_shop(
    api: GraphQLClient, shop: Shop, other_shop: Shop, db: Database
) -> None:
    year = this_year("Europe/Lisbon")
    a = api.as_(shop.tokens["FRONT_DESK"])
    b = api.as_(other_shop.tokens["FRONT_DESK"])
    a1, b1, a2 = await create(a, 1), await create(b, 1), await create(a, 2)
    assert a1["serviceOrder"]["number"] == f"OS-{year}-0001"
    assert b1["serviceOrder"]["number"] == f"OS-{year}-0001"
    assert a2["serviceOrder"]["number"] == f"OS-{year}-0002"
    assert await counter(db, shop.account_id, year) == 2
    assert await counter(db, other_shop.account_id, year) == 1

    number = f"OS-{year}-0001"
    for client, expected in ((a, a1), (b, b1)):
        for spelling in (number, number.lower(), f"  {number.lower()} "):
            found = (await client.ok(BY_NUMBER, {"n": spelling}))["serviceOrderByNumber"]
            assert found == {"id": expected["serviceOrder"]["id"], "number": number}
    # shop B has no 0002; an unknown or malformed number is simply not found
    for missing in (f"OS-{year}-0002", f"OS-{year}-9999", "OS-2026", "", "nonsense"):
        assert (await b.ok(BY_NUMBER, {"n": missing}))["serviceOrderByNumber"] is None
    # a lookup needs a signed-in staff member
    body = await api.query(BY_NUMBER, {"n": number})
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_numbering_widens_past_9999(api: GraphQLClient, shop: Shop, db: Database) -> None:
    year = this_year("Europe/Lisbon")
    front = api.as_(shop.tokens["FRONT_DESK"])
    assert (await create(front, 1))["serviceOrder"]["number"] == f"OS-{year}-0001"
    async with db.write_session() as session:
        await session.execute(
            update(OrderCounter)
            .where(OrderCounter.account_id == shop.account_id, OrderCounter.year == year)
            .values(last_value=9998)
        )
    n9999 = await create(front, 2)
    n10000 = await create(front, 3)
    assert n9999["serviceOrder"]["number"] == f"OS-{year}-9999"
    assert n10000["serviceOrder"]["number"] == f"OS-{year}-10000"
    found = await front.ok(BY_NUMBER, {"n": f"os-{year}-10000"})
    assert found["serviceOrderByNumber"]["id"] == n10000["serviceOrder"]["id"]


async def test_a_new_year_starts_again_at_0001(shop: Shop, db: Database) -> None:
    year = this_year("Europe/Lisbon")
    async with db.write_session() as session:
        for _ in range(3):
            await numbering.next_number(session, account_id=shop.account_id, year=year)
        assert (
            await numbering.next_number(session, account_id=shop.account_id, year=year + 1)
            == f"OS-{year + 1}-0001"
        )
        assert (
            await numbering.next_number(session, account_id=shop.account_id, year=year)
            == f"OS-{year}-0004"
        )
    assert await counter(db, shop.account_id, year) == 4
    assert await counter(db, shop.account_id, year + 1) == 1


class _FixedDatetime(datetime):
    """datetime whose now() is 12:30 UTC on New Year's Eve 2025."""

    INSTANT = datetime(2025, 12, 31, 12, 30, tzinfo=UTC)

    @classmethod
    def now(cls, tz: Any = None) -> Any:
        return cls.INSTANT.astimezone(tz) if tz is not None else cls.INSTANT.replace(tzinfo=None)


async def _shop_in(db: Database, name: str, time_zone: str, email: str) -> str:
    """A shop in `time_zone`; returns its owner's token."""
    async with db.write_session() as session:
        await auth.create_account(
            session=session,
            name=name,
            owner_email=email,
            owner_password=PASSWORD,
            time_zone=time_zone,
        )
        issued = await auth.login(
            session=session, email=email, password=PASSWORD, ip="test", ttl=timedelta(hours=1)
        )
    return issued.token


async def test_the_year_in_the_number_is_the_shops_year(
    api: GraphQLClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 12:30 UTC on 31 December 2025 it is already 2026 on Kiritimati (UTC+14) and
    still 2025 in Pago Pago (UTC-11): each shop numbers in its own year."""
    east = await _shop_in(db, "Line Islands Repairs", "Pacific/Kiritimati", "east@k.test")
    west = await _shop_in(db, "Samoa Fix", "Pacific/Pago_Pago", "west@p.test")
    monkeypatch.setattr(numbering, "datetime", _FixedDatetime)

    east_order = await create(api.as_(east), 1)
    west_order = await create(api.as_(west), 1)
    assert east_order["serviceOrder"]["number"] == "OS-2026-0001"
    assert west_order["serviceOrder"]["number"] == "OS-2025-0001"
    async with db.read_session() as session:
        years = set(await session.scalars(select(OrderCounter.year)))
    assert years == {2025, 2026}
