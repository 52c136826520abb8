"""Diagnosis and money (Decimal at the API, integer minor units in the database), completion
defaults (final cost, warranty) and part lines."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from db.engine import Database
from db.models import PartLine
from tests.api.test_orders import (
    ORDER_FIELDS,
    create_order,
    errors_of,
    order_row,
    pk,
    row_counts,
    transition,
)
from tests.conftest import GraphQLClient, Shop

DIAGNOSE = f"""
mutation($input: ServiceOrderSetDiagnosisInput!) {{
  serviceOrderSetDiagnosis(input: $input) {{
    serviceOrder {{ {ORDER_FIELDS} }}
    userErrors {{ field message code }}
  }}
}}"""

PART_FIELDS = "id name quantity unitCost { amount currency } lineTotal { amount currency }"
TOTALS = "id version partsTotal { amount } total { amount } parts { id name quantity }"

PART_ADD = f"""
mutation($input: PartLineAddInput!) {{
  partLineAdd(input: $input) {{
    partLine {{ {PART_FIELDS} }}
    serviceOrder {{ {TOTALS} }}
    userErrors {{ field message code }}
  }}
}}"""

PART_UPDATE = f"""
mutation($input: PartLineUpdateInput!) {{
  partLineUpdate(input: $input) {{
    partLine {{ {PART_FIELDS} }}
    serviceOrder {{ {TOTALS} }}
    userErrors {{ field message code }}
  }}
}}"""

PART_REMOVE = f"""
mutation($input: PartLineRemoveInput!) {{
  partLineRemove(input: $input) {{
    deletedPartLineId
    serviceOrder {{ {TOTALS} }}
    userErrors {{ field message code }}
  }}
}}"""


def money(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "EUR"}


async def diagnose(api: GraphQLClient, order_id: str, **fields: Any) -> dict[str, Any]:
    payload: dict[str, Any] = await api.mutate(DIAGNOSE, {"input": {"id": order_id, **fields}})
    return payload


async def add_part(api: GraphQLClient, order_id: str, **fields: Any) -> dict[str, Any]:
    payload: dict[str, Any] = await api.mutate(PART_ADD, {"input": {"orderId": order_id, **fields}})
    return payload


async def parts_in_db(db: Database) -> list[tuple[str, int, int]]:
    async with db.read_session() as session:
        rows = (await session.scalars(select(PartLine).order_by(PartLine.id))).all()
    return [(r.name, r.quantity, r.unit_cost) for r in rows]


# --- diagnosis and money ------------------------------------------------------------------------


async def test_diagnosis_amounts_are_decimals_stored_as_minor_units(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    order = await create_order(api.as_(shop.tokens["FRONT_DESK"]))
    tech = api.as_(shop.tokens["TECHNICIAN"])
    payload = await diagnose(
        tech,
        order["id"],
        diagnosis=" Broken LCD ",
        estimatedCost="129.90",
        labourCost="45.5",
        finalCost="1E+2",
        warrantyDays=90,
        expectedVersion=1,
    )
    assert payload["userErrors"] == []
    updated = payload["serviceOrder"]
    assert updated["diagnosis"] == "Broken LCD"
    assert updated["estimatedCost"] == money("129.90")
    assert updated["labourCost"] == money("45.50")
    assert updated["finalCost"] == money("100.00")
    assert updated["total"] == money("45.50")
    assert (updated["warrantyDays"], updated["version"]) == (90, 2)
    row = await order_row(db, order["id"])
    assert (row.estimated_cost, row.labour_cost, row.final_cost, row.warranty_days) == (
        12990,
        4550,
        10000,
        90,
    )
    assert all(type(v) is int for v in (row.estimated_cost, row.labour_cost, row.final_cost))

    # patch semantics: only what is given changes; null clears an optional amount
    payload = await diagnose(tech, order["id"], finalCost=None, labourCost="0.1")
    assert payload["userErrors"] == []
    assert payload["serviceOrder"]["finalCost"] is None
    assert payload["serviceOrder"]["labourCost"] == money("0.10")
    assert payload["serviceOrder"]["estimatedCost"] == money("129.90")
    assert payload["serviceOrder"]["diagnosis"] == "Broken LCD"
    row = await order_row(db, order["id"])
    assert (row.estimated_cost, row.labour_cost, row.final_cost, row.version) == (
        12990,
        10,
        None,
        3,
    )


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("estimatedCost", "-1", "INVALID_AMOUNT"),
        ("labourCost", "-0.01", "INVALID_AMOUNT"),
        ("finalCost", "10.001", "INVALID_AMOUNT"),
        ("estimatedCost", "0.125", "INVALID_AMOUNT"),
        ("estimatedCost", "NaN", "INVALID_AMOUNT"),
        ("estimatedCost", "Infinity", "INVALID_AMOUNT"),
        ("labourCost", "10000000000000", "INVALID_AMOUNT"),
        ("labourCost", "1e999999", "INVALID_AMOUNT"),
        ("estimatedCost", "1.0000000000000000000000000001", "INVALID_AMOUNT"),
        ("estimatedCost", "1e-999999999", "INVALID_AMOUNT"),
        ("warrantyDays", 3651, "INVALID_INPUT"),
        ("warrantyDays", -1, "INVALID_INPUT"),
        ("diagnosis", "d" * 5001, "TOO_LONG"),
    ],
)
async def test_bad_diagnosis_values_change_nothing(
    api: GraphQLClient, shop: Shop, db: Database, field: str, value: Any, code: str
) -> None:
    order = await create_order(api.as_(shop.tokens["FRONT_DESK"]))
    payload = await diagnose(
        api.as_(shop.tokens["TECHNICIAN"]), order["id"], **{"diagnosis": "Fine", field: value}
    )
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [([field], code)]
    assert payload["serviceOrder"] is None
    row = await order_row(db, order["id"])
    assert (row.diagnosis, row.estimated_cost, row.labour_cost, row.final_cost) == (
        None,
        None,
        0,
        None,
    )
    assert (row.warranty_days, row.version) == (0, 1)


async def test_diagnosis_errors_come_together_and_warranty_bounds_are_inclusive(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    order = await create_order(api.as_(shop.tokens["FRONT_DESK"]))
    tech = api.as_(shop.tokens["TECHNICIAN"])
    payload = await diagnose(
        tech, order["id"], estimatedCost="-5", finalCost="1.999", warrantyDays=4000
    )
    assert errors_of(payload) == {
        (("estimatedCost",), "INVALID_AMOUNT"),
        (("finalCost",), "INVALID_AMOUNT"),
        (("warrantyDays",), "INVALID_INPUT"),
    }
    assert (await order_row(db, order["id"])).version == 1
    for days in (0, 3650):
        ok = await diagnose(tech, order["id"], warrantyDays=days)
        assert ok["userErrors"] == [] and ok["serviceOrder"]["warrantyDays"] == days
    assert (await order_row(db, order["id"])).warranty_days == 3650


async def test_front_desk_may_not_set_the_diagnosis(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    desk = api.as_(shop.tokens["FRONT_DESK"])
    order = await create_order(desk)
    payload = await diagnose(desk, order["id"], diagnosis="Looks fine", labourCost="10")
    assert errors_of(payload) == {(None, "FORBIDDEN")}
    row = await order_row(db, order["id"])
    assert (row.diagnosis, row.labour_cost, row.version) == (None, 0, 1)


async def test_stale_version_on_diagnosis(api: GraphQLClient, shop: Shop, db: Database) -> None:
    order = await create_order(api.as_(shop.tokens["FRONT_DESK"]))
    manager = api.as_(shop.tokens["MANAGER"])
    assert (await diagnose(manager, order["id"], diagnosis="A"))["userErrors"] == []
    stale = await diagnose(manager, order["id"], diagnosis="B", expectedVersion=1)
    assert errors_of(stale) == {(("expectedVersion",), "STALE_VERSION")}
    row = await order_row(db, order["id"])
    assert (row.diagnosis, row.version) == ("A", 2)


async def _complete(api: GraphQLClient, shop: Shop, order_id: str) -> dict[str, Any]:
    tech = api.as_(shop.tokens["TECHNICIAN"])
    for status in ("DIAGNOSING", "REPAIRING", "READY"):
        await transition(tech, order_id, status)
    return await transition(api.as_(shop.tokens["FRONT_DESK"]), order_id, "COMPLETED")


async def test_completion_defaults_the_final_cost_to_the_total_and_starts_the_warranty(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    order = await create_order(api.as_(shop.tokens["FRONT_DESK"]))
    tech = api.as_(shop.tokens["TECHNICIAN"])
    await diagnose(tech, order["id"], labourCost="40.00", warrantyDays=30)
    await add_part(tech, order["id"], name="Screen", unitCost="59.95")
    await add_part(tech, order["id"], name="Screw", unitCost="0.10", quantity=4)

    completed = await _complete(api, shop, order["id"])
    assert completed["status"] == "COMPLETED"
    data = await tech.ok(
        "query($id: ID!) { serviceOrder(id: $id) { finalCost { amount currency } total { amount }"
        " completedAt warrantyExpiresAt warrantyDays } }",
        {"id": order["id"]},
    )
    shown = data["serviceOrder"]
    assert shown["total"] == {"amount": "100.35"}
    assert shown["finalCost"] == money("100.35")
    completed_at = datetime.fromisoformat(shown["completedAt"])
    assert datetime.fromisoformat(shown["warrantyExpiresAt"]) == completed_at + timedelta(days=30)
    row = await order_row(db, order["id"])
    assert (row.status, row.final_cost) == ("COMPLETED", 10035)
    assert row.completed_at == completed_at


async def test_completion_keeps_a_final_cost_that_was_set(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    order = await create_order(api.as_(shop.tokens["FRONT_DESK"]))
    tech = api.as_(shop.tokens["TECHNICIAN"])
    await diagnose(tech, order["id"], labourCost="40", finalCost="35")  # a discount
    await add_part(tech, order["id"], name="Battery", unitCost="20")
    await _complete(api, shop, order["id"])
    data = await tech.ok(
        "query($id: ID!) { serviceOrder(id: $id) { finalCost { amount } total { amount }"
        " warrantyExpiresAt } }",
        {"id": order["id"]},
    )
    assert data["serviceOrder"] == {
        "finalCost": {"amount": "35.00"},
        "total": {"amount": "60.00"},
        "warrantyExpiresAt": None,  # no warranty days
    }
    assert (await order_row(db, order["id"])).final_cost == 3500


# --- parts ----------------------------------------------------------------------------------------


async def test_part_lines_add_update_remove_with_totals(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    order = await create_order(api.as_(shop.tokens["FRONT_DESK"]))
    tech = api.as_(shop.tokens["TECHNICIAN"])
    await diagnose(tech, order["id"], labourCost="25")  # version 2

    screen = await add_part(tech, order["id"], name=" Screen ", unitCost="89.99", quantity=1)
    assert screen["userErrors"] == []
    assert screen["partLine"]["name"] == "Screen"
    assert screen["partLine"]["unitCost"] == money("89.99")
    assert screen["partLine"]["lineTotal"] == money("89.99")
    assert screen["serviceOrder"]["version"] == 3

    screws = await add_part(
        tech, order["id"], name="Screw", unitCost="0.15", quantity=6, expectedVersion=3
    )
    assert screws["partLine"]["lineTotal"] == money("0.90")
    assert screws["serviceOrder"]["partsTotal"] == {"amount": "90.89"}
    assert screws["serviceOrder"]["total"] == {"amount": "115.89"}
    assert screws["serviceOrder"]["version"] == 4
    assert [p["name"] for p in screws["serviceOrder"]["parts"]] == ["Screen", "Screw"]
    assert await parts_in_db(db) == [("Screen", 1, 8999), ("Screw", 6, 15)]

    # update: only the fields given
    updated = await tech.mutate(
        PART_UPDATE, {"input": {"id": screws["partLine"]["id"], "quantity": 10}}
    )
    assert updated["userErrors"] == []
    assert updated["partLine"]["name"] == "Screw"
    assert updated["partLine"]["unitCost"] == money("0.15")
    assert updated["partLine"]["lineTotal"] == money("1.50")
    assert updated["serviceOrder"]["partsTotal"] == {"amount": "91.49"}
    assert updated["serviceOrder"]["total"] == {"amount": "116.49"}
    assert updated["serviceOrder"]["version"] == 5
    updated = await tech.mutate(
        PART_UPDATE,
        {"input": {"id": screen["partLine"]["id"], "unitCost": "80", "name": "OLED screen"}},
    )
    assert updated["partLine"]["lineTotal"] == money("80.00")
    assert await parts_in_db(db) == [("OLED screen", 1, 8000), ("Screw", 10, 15)]

    removed = await tech.mutate(
        PART_REMOVE, {"input": {"id": screen["partLine"]["id"], "expectedVersion": 6}}
    )
    assert removed["userErrors"] == []
    assert removed["deletedPartLineId"] == screen["partLine"]["id"]
    assert removed["serviceOrder"]["partsTotal"] == {"amount": "1.50"}
    assert removed["serviceOrder"]["total"] == {"amount": "26.50"}
    assert removed["serviceOrder"]["version"] == 7
    assert await parts_in_db(db) == [("Screw", 10, 15)]
    assert (await order_row(db, order["id"])).version == 7


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"quantity": 0}, {(("quantity",), "INVALID_QUANTITY")}),
        ({"quantity": -3}, {(("quantity",), "INVALID_QUANTITY")}),
        ({"quantity": 10_001}, {(("quantity",), "INVALID_QUANTITY")}),
        ({"unitCost": "-1"}, {(("unitCost",), "INVALID_AMOUNT")}),
        ({"unitCost": "1.005"}, {(("unitCost",), "INVALID_AMOUNT")}),
        ({"name": "  "}, {(("name",), "REQUIRED")}),
        ({"name": "n" * 201}, {(("name",), "TOO_LONG")}),
        (
            {"name": "", "quantity": 0, "unitCost": "-2"},
            {
                (("name",), "REQUIRED"),
                (("quantity",), "INVALID_QUANTITY"),
                (("unitCost",), "INVALID_AMOUNT"),
            },
        ),
    ],
)
async def test_bad_part_lines_are_refused(
    api: GraphQLClient,
    shop: Shop,
    db: Database,
    fields: dict[str, Any],
    expected: set[tuple[tuple[str, ...], str]],
) -> None:
    order = await create_order(api.as_(shop.tokens["FRONT_DESK"]))
    tech = api.as_(shop.tokens["TECHNICIAN"])
    payload = await add_part(tech, order["id"], **{"name": "Screen", "unitCost": "10", **fields})
    assert errors_of(payload) == expected
    assert payload["partLine"] is None
    assert await parts_in_db(db) == []
    assert (await order_row(db, order["id"])).version == 1


async def test_bad_part_updates_change_nothing(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    order = await create_order(api.as_(shop.tokens["FRONT_DESK"]))
    tech = api.as_(shop.tokens["TECHNICIAN"])
    part = (await add_part(tech, order["id"], name="Screen", unitCost="10", quantity=2))["partLine"]
    cases: list[tuple[dict[str, Any], set[tuple[tuple[str, ...], str]]]] = [
        ({"quantity": 0}, {(("quantity",), "INVALID_QUANTITY")}),
        ({"quantity": None}, {(("quantity",), "INVALID_QUANTITY")}),
        ({"unitCost": None}, {(("unitCost",), "REQUIRED")}),
        ({"unitCost": "-0.5"}, {(("unitCost",), "INVALID_AMOUNT")}),
        ({"name": None}, {(("name",), "REQUIRED")}),
        ({"quantity": 3, "expectedVersion": 1}, {(("expectedVersion",), "STALE_VERSION")}),
    ]
    for fields, expected in cases:
        payload = await tech.mutate(PART_UPDATE, {"input": {"id": part["id"], **fields}})
        assert errors_of(payload) == expected, fields
        assert payload["partLine"] is None
    stale = await tech.mutate(PART_REMOVE, {"input": {"id": part["id"], "expectedVersion": 1}})
    assert errors_of(stale) == {(("expectedVersion",), "STALE_VERSION")}
    assert stale["deletedPartLineId"] is None
    assert await parts_in_db(db) == [("Screen", 2, 1000)]
    assert (await order_row(db, order["id"])).version == 2


async def test_part_changes_need_the_current_version(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    order = await create_order(api.as_(shop.tokens["FRONT_DESK"]))
    tech = api.as_(shop.tokens["TECHNICIAN"])
    stale = await add_part(tech, order["id"], name="Screen", unitCost="10", expectedVersion=0)
    assert errors_of(stale) == {(("expectedVersion",), "STALE_VERSION")}
    assert await parts_in_db(db) == []
    ok = await add_part(tech, order["id"], name="Screen", unitCost="10", expectedVersion=1)
    assert ok["serviceOrder"]["version"] == 2


async def test_front_desk_does_not_edit_parts(api: GraphQLClient, shop: Shop, db: Database) -> None:
    desk = api.as_(shop.tokens["FRONT_DESK"])
    order = await create_order(desk)
    payload = await add_part(desk, order["id"], name="Screen", unitCost="10")
    assert errors_of(payload) == {(None, "FORBIDDEN")}
    part = (
        await add_part(api.as_(shop.tokens["MANAGER"]), order["id"], name="Screen", unitCost="10")
    )["partLine"]
    refused = await desk.mutate(PART_REMOVE, {"input": {"id": part["id"]}})
    assert errors_of(refused) == {(None, "FORBIDDEN")}
    assert await parts_in_db(db) == [("Screen", 1, 1000)]


async def test_a_part_of_another_shop_is_not_found(
    api: GraphQLClient, shop: Shop, other_shop: Shop, db: Database
) -> None:
    theirs = await create_order(api.as_(other_shop.tokens["FRONT_DESK"]))
    their_part = (
        await add_part(
            api.as_(other_shop.tokens["TECHNICIAN"]), theirs["id"], name="Fan", unitCost="5"
        )
    )["partLine"]
    tech = api.as_(shop.tokens["TECHNICIAN"])
    update = await tech.mutate(PART_UPDATE, {"input": {"id": their_part["id"], "quantity": 9}})
    remove = await tech.mutate(PART_REMOVE, {"input": {"id": their_part["id"]}})
    add = await add_part(tech, theirs["id"], name="Fan", unitCost="5")
    assert errors_of(update) == {(("id",), "NOT_FOUND")}
    assert errors_of(remove) == {(("id",), "NOT_FOUND")}
    assert errors_of(add) == {(("orderId",), "NOT_FOUND")}
    assert remove["deletedPartLineId"] is None
    assert await parts_in_db(db) == [("Fan", 1, 500)]
    assert (await order_row(db, theirs["id"])).version == 2
    assert (await row_counts(db))["part_lines"] == 1


async def test_money_amounts_are_exact_decimals_not_floats(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    order = await create_order(api.as_(shop.tokens["FRONT_DESK"]))
    tech = api.as_(shop.tokens["TECHNICIAN"])
    # 0.1 + 0.2 in binary floating point is not 0.3; here it must be
    await add_part(tech, order["id"], name="A", unitCost="0.10")
    payload = await add_part(tech, order["id"], name="B", unitCost="0.20")
    assert payload["serviceOrder"]["partsTotal"] == {"amount": "0.30"}
    big = await add_part(tech, order["id"], name="C", unitCost="9999999999.99", quantity=3)
    assert big["partLine"]["lineTotal"] == money("29999999999.97")
    assert Decimal(big["serviceOrder"]["total"]["amount"]) == Decimal("30000000000.27")
    assert pk(big["partLine"]["id"], "PartLine") > 0
    assert await parts_in_db(db) == [("A", 1, 10), ("B", 1, 20), ("C", 3, 999999999999)]
