"""The status machine through the API: serviceOrderTransition, availableTransitions,
serviceOrderStatuses, the guards, optimistic locking and concurrent moves.

Orders are put into each starting status through the service functions (the same ones the
API calls); every move under test goes through the real ASGI app over HTTP.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from config import Settings
from db.engine import Database
from db.models import ServiceOrder, StatusHistory
from resolvers import run
from resolvers.context import Context
from resolvers.ids import encode_id
from services import orders
from services.clients import ClientData
from services.errors import ErrorCode
from services.orders import DeviceData, RetryableConflict
from services.statuses import STATUS_INFO, OrderStatus
from tests.conftest import GraphQLClient, Shop
from tests.services.test_statuses import (
    ALLOWED_PAIRS,
    DISALLOWED_PAIRS,
    EXPECTED_COLORS,
    EXPECTED_ROLES_FOR_TARGET,
    EXPECTED_TRANSITIONS,
    expected_available,
)

TRANSITION = """
mutation($input: ServiceOrderTransitionInput!) {
  serviceOrderTransition(input: $input) {
    serviceOrder {
      id status version completedAt
      finalCost { amount currency }
      warrantyExpiresAt
      statusInfo { status label color isClosed }
      latestHistory { fromStatus toStatus note actor { email } }
    }
    userErrors { field message code }
  }
}"""

SET_DIAGNOSIS = """
mutation($input: ServiceOrderSetDiagnosisInput!) {
  serviceOrderSetDiagnosis(input: $input) {
    serviceOrder { version diagnosis estimatedCost { amount currency } }
    userErrors { field code }
  }
}"""

# how the fixtures put an order into each status (owner does every step)
PATH_TO: dict[str, list[str]] = {
    "PENDING": [],
    "AWAITING_DIAGNOSIS": ["AWAITING_DIAGNOSIS"],
    "DIAGNOSING": ["DIAGNOSING"],
    "AWAITING_APPROVAL": ["DIAGNOSING", "AWAITING_APPROVAL"],
    "APPROVED": ["DIAGNOSING", "AWAITING_APPROVAL", "APPROVED"],
    "REJECTED": ["DIAGNOSING", "AWAITING_APPROVAL", "REJECTED"],
    "REPAIRING": ["REPAIRING"],
    "TESTING": ["REPAIRING", "TESTING"],
    "READY": ["REPAIRING", "READY"],
    "COMPLETED": ["REPAIRING", "READY", "COMPLETED"],
    "CANCELLED": ["CANCELLED"],
}

ROLES = ("OWNER", "MANAGER", "TECHNICIAN", "FRONT_DESK")


def email_of(role: str) -> str:
    return f"{role.lower()}@a.test"


async def make_order(
    db: Database,
    shop: Shop,
    status: str = "PENDING",
    *,
    diagnosed: bool = True,
    labour: str | None = None,
    warranty_days: int | None = None,
) -> int:
    """An order of `shop` walked to `status` through the services; returns its primary key."""
    async with db.write_session() as session:
        created = await orders.create_order(
            session=session,
            actor=shop.actors["FRONT_DESK"],
            client_id=None,
            client=ClientData(name="Ana Silva", phone="+351 912 345 678"),
            device=DeviceData(model="Pixel 7", problem_reported="Does not charge"),
        )
        order_id = created.order.id
        changes: dict[str, Any] = {}
        if diagnosed:
            changes |= {"diagnosis": "Charging port corroded.", "estimated_cost": Decimal("59")}
        if labour is not None:
            changes["labour_cost"] = Decimal(labour)
        if warranty_days is not None:
            changes["warranty_days"] = warranty_days
        if changes:
            await orders.set_diagnosis(
                session=session, actor=shop.actors["OWNER"], order_id=order_id, changes=changes
            )
        for step in PATH_TO[status]:
            await orders.transition_order(
                session=session,
                actor=shop.actors["OWNER"],
                order_id=order_id,
                to_status=OrderStatus(step),
                note=f"setup: {step}",
            )
    return order_id


def gid(order_id: int) -> str:
    return encode_id("ServiceOrder", order_id)


@dataclass(frozen=True)
class State:
    status: str
    version: int
    history: int
    updated_at: datetime
    completed_at: datetime | None


async def state(db: Database, order_id: int) -> State:
    async with db.read_session() as session:
        order = await session.get(ServiceOrder, order_id)
        assert order is not None
        count = await session.scalar(
            select(func.count())
            .select_from(StatusHistory)
            .where(StatusHistory.order_id == order_id)
        )
        return State(order.status, order.version, count or 0, order.updated_at, order.completed_at)


async def history(db: Database, order_id: int) -> list[StatusHistory]:
    async with db.read_session() as session:
        rows = await session.scalars(
            select(StatusHistory)
            .where(StatusHistory.order_id == order_id)
            .order_by(StatusHistory.id)
        )
        return list(rows)


async def transition(
    api: GraphQLClient,
    shop: Shop,
    role: str,
    order_id: int,
    to: str,
    *,
    note: str | None = None,
    expected_version: int | None = None,
) -> dict[str, Any]:
    payload: dict[str, Any] = {"id": gid(order_id), "to": to}
    if note is not None:
        payload["note"] = note
    if expected_version is not None:
        payload["expectedVersion"] = expected_version
    return await api.as_(shop.tokens[role]).mutate(TRANSITION, {"input": payload})


def not_allowed_message(from_status: str, to_status: str) -> str:
    listed = ", ".join(EXPECTED_TRANSITIONS[from_status]) or "none (the order is closed)"
    return f"An order cannot go from {from_status} to {to_status}. Allowed: {listed}."


# --- the table, pair by pair -----------------------------------------------------------------


async def test_every_allowed_move_succeeds_and_writes_one_history_row(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    # the roles that do each move rotate over those allowed, so every role moves something
    for index, (from_status, to_status) in enumerate(ALLOWED_PAIRS):
        allowed_roles = sorted(EXPECTED_ROLES_FOR_TARGET[to_status])
        role = allowed_roles[index % len(allowed_roles)]
        order_id = await make_order(db, shop, from_status)
        before = await state(db, order_id)
        assert before.status == from_status
        note = f"{from_status} -> {to_status} by {role}"

        payload = await transition(api, shop, role, order_id, to_status, note=f"  {note}\n")

        assert payload["userErrors"] == [], (from_status, to_status, role)
        order = payload["serviceOrder"]
        assert order["status"] == to_status
        assert order["version"] == before.version + 1
        assert order["statusInfo"]["status"] == to_status
        assert order["statusInfo"]["color"] == EXPECTED_COLORS[to_status]
        assert order["latestHistory"] == {
            "fromStatus": from_status,
            "toStatus": to_status,
            "note": note,
            "actor": {"email": email_of(role)},
        }
        after = await state(db, order_id)
        assert (after.status, after.version, after.history) == (
            to_status,
            before.version + 1,
            before.history + 1,
        )
        assert after.updated_at > before.updated_at
        newest = (await history(db, order_id))[-1]
        assert (newest.from_status, newest.to_status, newest.note) == (from_status, to_status, note)
        assert newest.actor_id == shop.users[role]
        assert newest.account_id == shop.account_id


async def test_a_move_without_a_note_records_none(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    order_id = await make_order(db, shop, "PENDING")
    payload = await transition(api, shop, "FRONT_DESK", order_id, "AWAITING_DIAGNOSIS", note="  ")
    assert payload["userErrors"] == []
    assert payload["serviceOrder"]["latestHistory"]["note"] is None
    assert (await history(db, order_id))[-1].note is None


async def test_every_disallowed_move_is_invalid_transition_and_changes_nothing(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    """All 100 pairs outside the table (self-moves included), by the owner, who may do
    anything the table allows: the error names the statuses that are allowed."""
    order_ids = {status: await make_order(db, shop, status) for status in EXPECTED_TRANSITIONS}
    before = {status: await state(db, pk) for status, pk in order_ids.items()}

    for from_status, to_status in DISALLOWED_PAIRS:
        payload = await transition(
            api, shop, "OWNER", order_ids[from_status], to_status, note="should not stick"
        )
        assert payload["serviceOrder"] is None
        assert payload["userErrors"] == [
            {
                "field": ["to"],
                "message": not_allowed_message(from_status, to_status),
                "code": "INVALID_TRANSITION",
            }
        ], (from_status, to_status)

    for status, pk in order_ids.items():
        assert await state(db, pk) == before[status]
    async with db.read_session() as session:
        notes = await session.scalars(select(StatusHistory.note))
        assert "should not stick" not in set(notes)


def _denials() -> list[tuple[str, str, str]]:
    return [
        (from_status, to_status, role)
        for from_status, to_status in ALLOWED_PAIRS
        for role in ROLES
        if role not in EXPECTED_ROLES_FOR_TARGET[to_status]
    ]


async def test_a_role_that_may_not_enter_the_target_is_forbidden(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    denials = _denials()
    # technicians never record the customer's decision, hand over or cancel; front desk
    # never does bench work
    assert {(role, to) for _, to, role in denials} == {
        ("TECHNICIAN", "APPROVED"),
        ("TECHNICIAN", "REJECTED"),
        ("TECHNICIAN", "COMPLETED"),
        ("TECHNICIAN", "CANCELLED"),
        ("FRONT_DESK", "DIAGNOSING"),
        ("FRONT_DESK", "AWAITING_APPROVAL"),
        ("FRONT_DESK", "REPAIRING"),
        ("FRONT_DESK", "TESTING"),
        ("FRONT_DESK", "READY"),
    }
    starts = {f for f, _, _ in denials}
    order_ids = {status: await make_order(db, shop, status) for status in starts}
    before = {status: await state(db, pk) for status, pk in order_ids.items()}

    for from_status, to_status, role in denials:
        payload = await transition(api, shop, role, order_ids[from_status], to_status)
        assert payload["serviceOrder"] is None
        assert payload["userErrors"] == [
            {
                "field": ["to"],
                "message": f"Your role ({role}) may not move orders to {to_status}.",
                "code": "FORBIDDEN",
            }
        ], (from_status, to_status, role)

    for status, pk in order_ids.items():
        assert await state(db, pk) == before[status]


async def test_moves_need_a_signed_in_staff_member_and_an_order_of_the_shop(
    api: GraphQLClient, shop: Shop, other_shop: Shop, db: Database
) -> None:
    order_id = await make_order(db, shop, "PENDING")
    before = await state(db, order_id)
    body = await api.query(TRANSITION, {"input": {"id": gid(order_id), "to": "AWAITING_DIAGNOSIS"}})
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    # another shop's staff: the order does not exist for them
    foreign = await transition(api, other_shop, "OWNER", order_id, "AWAITING_DIAGNOSIS")
    assert foreign["serviceOrder"] is None
    assert [(e["code"], e["field"]) for e in foreign["userErrors"]] == [("NOT_FOUND", ["id"])]
    assert await state(db, order_id) == before


async def test_checks_run_in_order_version_table_role_guards(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    """Only the first failing check is reported: the table before the role, the role before
    the guards (the stale-version case is below)."""
    ready = await make_order(db, shop, "READY")
    undiagnosed = await make_order(db, shop, "DIAGNOSING", diagnosed=False)
    before = {pk: await state(db, pk) for pk in (ready, undiagnosed)}
    # a technician may not record approvals, but READY -> APPROVED is not in the table anyway
    table_first = await transition(api, shop, "TECHNICIAN", ready, "APPROVED")
    assert [e["code"] for e in table_first["userErrors"]] == ["INVALID_TRANSITION"]
    # front desk may not ask for approval; the missing diagnosis and estimate are not the point
    role_first = await transition(api, shop, "FRONT_DESK", undiagnosed, "AWAITING_APPROVAL")
    assert [e["code"] for e in role_first["userErrors"]] == ["FORBIDDEN"]
    for pk, was in before.items():
        assert await state(db, pk) == was


# --- guards -----------------------------------------------------------------------------------


async def test_asking_for_approval_needs_diagnosis_and_estimate(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    order_id = await make_order(db, shop, "DIAGNOSING", diagnosed=False)
    before = await state(db, order_id)

    both = await transition(api, shop, "TECHNICIAN", order_id, "AWAITING_APPROVAL")
    assert both["serviceOrder"] is None
    assert both["userErrors"] == [
        {
            "field": ["diagnosis"],
            "message": "Set a diagnosis before asking for approval.",
            "code": "MISSING_DIAGNOSIS",
        },
        {
            "field": ["estimatedCost"],
            "message": "Set an estimated cost before asking for approval.",
            "code": "MISSING_ESTIMATE",
        },
    ]
    assert await state(db, order_id) == before

    tech = api.as_(shop.tokens["TECHNICIAN"])
    diag = await tech.mutate(
        SET_DIAGNOSIS, {"input": {"id": gid(order_id), "diagnosis": "Water damage on the board."}}
    )
    assert diag["userErrors"] == []
    one = await transition(api, shop, "TECHNICIAN", order_id, "AWAITING_APPROVAL")
    assert [e["code"] for e in one["userErrors"]] == ["MISSING_ESTIMATE"]
    assert (await state(db, order_id)).status == "DIAGNOSING"

    # a free estimate is an estimate
    free = await tech.mutate(SET_DIAGNOSIS, {"input": {"id": gid(order_id), "estimatedCost": "0"}})
    assert free["serviceOrder"]["estimatedCost"] == {"amount": "0.00", "currency": "EUR"}
    ok = await transition(api, shop, "TECHNICIAN", order_id, "AWAITING_APPROVAL")
    assert ok["userErrors"] == []
    assert (await state(db, order_id)).status == "AWAITING_APPROVAL"


async def test_guard_and_note_errors_are_reported_together(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    order_id = await make_order(db, shop, "DIAGNOSING", diagnosed=False)
    before = await state(db, order_id)
    payload = await transition(api, shop, "MANAGER", order_id, "AWAITING_APPROVAL", note="x" * 5001)
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [
        ("MISSING_DIAGNOSIS", ["diagnosis"]),
        ("MISSING_ESTIMATE", ["estimatedCost"]),
        ("TOO_LONG", ["note"]),
    ]
    assert await state(db, order_id) == before
    # the longest allowed note is kept whole
    payload = await transition(api, shop, "MANAGER", order_id, "REPAIRING", note="y" * 5000)
    assert payload["userErrors"] == []
    assert (await history(db, order_id))[-1].note == "y" * 5000


async def test_the_diagnosis_guard_is_checked_against_the_stored_order(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    """Going back to DIAGNOSING and asking again works while diagnosis and estimate stay."""
    order_id = await make_order(db, shop, "AWAITING_APPROVAL")
    for step in ("DIAGNOSING", "AWAITING_APPROVAL"):
        payload = await transition(api, shop, "TECHNICIAN", order_id, step)
        assert payload["userErrors"] == []
    assert [(h.from_status, h.to_status) for h in await history(db, order_id)][-2:] == [
        ("AWAITING_APPROVAL", "DIAGNOSING"),
        ("DIAGNOSING", "AWAITING_APPROVAL"),
    ]


# --- optimistic locking -----------------------------------------------------------------------


async def test_stale_expected_version_is_refused_and_nothing_is_written(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    order_id = await make_order(db, shop, "DIAGNOSING")
    before = await state(db, order_id)
    assert before.version > 1

    stale = await transition(
        api, shop, "TECHNICIAN", order_id, "REPAIRING", expected_version=before.version - 1
    )
    assert stale["serviceOrder"] is None
    assert stale["userErrors"] == [
        {
            "field": ["expectedVersion"],
            "message": f"The order is at version {before.version}, not {before.version - 1}: "
            "someone changed it meanwhile. Reload and try again.",
            "code": "STALE_VERSION",
        }
    ]
    ahead = await transition(
        api, shop, "TECHNICIAN", order_id, "REPAIRING", expected_version=before.version + 1
    )
    assert [e["code"] for e in ahead["userErrors"]] == ["STALE_VERSION"]
    assert await state(db, order_id) == before

    current = await transition(
        api, shop, "TECHNICIAN", order_id, "REPAIRING", expected_version=before.version
    )
    assert current["userErrors"] == []
    assert current["serviceOrder"]["version"] == before.version + 1
    assert (await state(db, order_id)).history == before.history + 1


async def test_a_stale_version_wins_over_an_invalid_transition(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    """The client's picture is out of date: say so first, the rest may be due to it."""
    order_id = await make_order(db, shop, "COMPLETED")
    before = await state(db, order_id)
    payload = await transition(
        api, shop, "OWNER", order_id, "CANCELLED", expected_version=before.version - 1
    )
    assert [e["code"] for e in payload["userErrors"]] == ["STALE_VERSION"]
    assert await state(db, order_id) == before


def context(db: Database, settings: Settings) -> Context:
    """A resolver context without a request (no realtime bus: nothing is published)."""
    return Context(db=db, settings=settings, request_id="test", client_ip="127.0.0.1")


async def _bump_version_behind_the_session(session: AsyncSession, order_id: int) -> None:
    """What a concurrent writer does between our read and our write (raw SQL, so the ORM's
    copy of the order keeps the version it read)."""
    await session.execute(
        text("UPDATE service_orders SET version = version + 1 WHERE id = :id"), {"id": order_id}
    )


async def test_a_lost_optimistic_lock_is_retried_on_fresh_data(
    shop: Shop, db: Database, settings: Settings
) -> None:
    """Without an expected version the flush's version check failing is retried by
    resolvers.run.write; the retry starts from scratch and succeeds once."""
    order_id = await make_order(db, shop, "DIAGNOSING")
    before = await state(db, order_id)
    attempts = 0

    async def call(session: AsyncSession) -> ServiceOrder:
        nonlocal attempts
        attempts += 1
        order = await orders.get_order(session, shop.actors["TECHNICIAN"], order_id)
        if attempts == 1:
            await _bump_version_behind_the_session(session, order.id)
        return await orders.transition_order(
            session=session,
            actor=shop.actors["TECHNICIAN"],
            order_id=order_id,
            to_status=OrderStatus.REPAIRING,
            note="retried",
        )

    result, errors = await run.write(context(db, settings), call)
    assert errors == []
    assert result is not None and result.status == "REPAIRING"
    assert attempts == 2
    after = await state(db, order_id)
    # the first attempt (with its version bump) was rolled back entirely
    assert (after.status, after.version, after.history) == (
        "REPAIRING",
        before.version + 1,
        before.history + 1,
    )
    assert [h.note for h in await history(db, order_id)].count("retried") == 1


async def test_a_lock_lost_every_time_gives_up_with_a_typed_error(
    shop: Shop, db: Database, settings: Settings
) -> None:
    order_id = await make_order(db, shop, "DIAGNOSING")
    before = await state(db, order_id)
    attempts = 0

    async def call(session: AsyncSession) -> ServiceOrder:
        nonlocal attempts
        attempts += 1
        # keep the loaded order referenced: the session's identity map holds it weakly
        order = await orders.get_order(session, shop.actors["OWNER"], order_id)
        await _bump_version_behind_the_session(session, order.id)
        return await orders.transition_order(
            session=session,
            actor=shop.actors["OWNER"],
            order_id=order_id,
            to_status=OrderStatus.CANCELLED,
        )

    result, errors = await run.write(context(db, settings), call)
    assert result is None
    assert attempts == run.MAX_ATTEMPTS
    assert len(errors) == 1 and isinstance(errors[0], RetryableConflict)
    assert errors[0].code is ErrorCode.CONCURRENT_MODIFICATION
    assert await state(db, order_id) == before


async def test_a_lost_lock_with_an_expected_version_is_stale_and_not_retried(
    shop: Shop, db: Database, settings: Settings
) -> None:
    order_id = await make_order(db, shop, "DIAGNOSING")
    before = await state(db, order_id)
    attempts = 0

    async def call(session: AsyncSession) -> ServiceOrder:
        nonlocal attempts
        attempts += 1
        # keep the loaded order referenced: the session's identity map holds it weakly
        order = await orders.get_order(session, shop.actors["OWNER"], order_id)
        await _bump_version_behind_the_session(session, order.id)
        return await orders.transition_order(
            session=session,
            actor=shop.actors["OWNER"],
            order_id=order_id,
            to_status=OrderStatus.CANCELLED,
            expected_version=before.version,
        )

    result, errors = await run.write(context(db, settings), call)
    assert result is None
    assert attempts == 1
    # reported by the version check at flush (the order as read was at the expected version)
    assert [(e.code, e.message, e.field) for e in errors] == [
        (
            ErrorCode.STALE_VERSION,
            "Someone changed the order meanwhile. Reload and try again.",
            ["expectedVersion"],
        )
    ]
    assert await state(db, order_id) == before


# --- concurrency ------------------------------------------------------------------------------


async def _race(
    db: Database, order_id: int, moves: Sequence[Callable[[], Awaitable[dict[str, Any]]]]
) -> tuple[State, list[dict[str, Any]], list[dict[str, Any]], State]:
    before = await state(db, order_id)
    results = await asyncio.gather(*(move() for move in moves))
    winners = [r for r in results if not r["userErrors"]]
    losers = [r for r in results if r["userErrors"]]
    return before, winners, losers, await state(db, order_id)


async def test_two_different_decisions_at_once_one_wins(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    """Front desk records APPROVED while the manager records REJECTED, no expectedVersion.

    SQLite: write transactions queue on BEGIN IMMEDIATE, so the second reads the first's
    result and fails INVALID_TRANSITION at once. PostgreSQL: both read the order at the
    same version; the second UPDATE ... WHERE version = v waits on the row lock, matches no
    row after the first commits, the service reports a retryable conflict, run.write starts
    over, reads the closed order and fails INVALID_TRANSITION. Either way: one winner, one
    history row, and the loser is told what the order became."""
    order_id = await make_order(db, shop, "AWAITING_APPROVAL")
    before, winners, losers, after = await _race(
        db,
        order_id,
        [
            lambda: transition(api, shop, "FRONT_DESK", order_id, "APPROVED", note="yes"),
            lambda: transition(api, shop, "MANAGER", order_id, "REJECTED", note="no"),
        ],
    )
    assert len(winners) == 1 and len(losers) == 1
    won = winners[0]["serviceOrder"]["status"]
    lost = "REJECTED" if won == "APPROVED" else "APPROVED"
    assert losers[0]["serviceOrder"] is None
    assert losers[0]["userErrors"] == [
        {"field": ["to"], "message": not_allowed_message(won, lost), "code": "INVALID_TRANSITION"}
    ]
    assert (after.status, after.version, after.history) == (
        won,
        before.version + 1,
        before.history + 1,
    )
    newest = (await history(db, order_id))[-1]
    assert (newest.from_status, newest.to_status) == ("AWAITING_APPROVAL", won)
    assert newest.actor_id == shop.users["FRONT_DESK" if won == "APPROVED" else "MANAGER"]


async def test_two_moves_with_the_same_expected_version_one_is_stale(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    """The technician starts the repair while front desk cancels, both from the version they
    saw: one wins and the other is STALE_VERSION (on PostgreSQL from the version check at
    flush, on SQLite from the version check on read, as writers are serialised)."""
    order_id = await make_order(db, shop, "DIAGNOSING")
    version = (await state(db, order_id)).version
    before, winners, losers, after = await _race(
        db,
        order_id,
        [
            lambda: transition(
                api, shop, "TECHNICIAN", order_id, "REPAIRING", expected_version=version
            ),
            lambda: transition(
                api, shop, "FRONT_DESK", order_id, "CANCELLED", expected_version=version
            ),
        ],
    )
    assert len(winners) == 1 and len(losers) == 1
    won = winners[0]["serviceOrder"]["status"]
    assert won in ("REPAIRING", "CANCELLED")
    assert [(e["code"], e["field"]) for e in losers[0]["userErrors"]] == [
        ("STALE_VERSION", ["expectedVersion"])
    ]
    assert (after.status, after.version, after.history) == (won, version + 1, before.history + 1)


@pytest.mark.parametrize("send_version", [False, True], ids=["no-version", "same-version"])
@pytest.mark.parametrize(
    ("start", "target", "role"),
    [("DIAGNOSING", "REPAIRING", "TECHNICIAN"), ("READY", "COMPLETED", "FRONT_DESK")],
    ids=["repair", "complete"],
)
async def test_a_double_tap_moves_the_order_once(
    api: GraphQLClient,
    shop: Shop,
    db: Database,
    send_version: bool,
    start: str,
    target: str,
    role: str,
) -> None:
    """The same move sent twice at once (completion included: it also reads the parts
    total and stamps the final cost, all in the one optimistic write)."""
    order_id = await make_order(db, shop, start)
    version = (await state(db, order_id)).version
    expected = version if send_version else None
    before, winners, losers, after = await _race(
        db,
        order_id,
        [lambda: transition(api, shop, role, order_id, target, expected_version=expected)] * 2,
    )
    assert len(winners) == 1 and len(losers) == 1
    if send_version:
        assert [e["code"] for e in losers[0]["userErrors"]] == ["STALE_VERSION"]
    else:
        assert losers[0]["userErrors"] == [
            {
                "field": ["to"],
                "message": not_allowed_message(target, target),
                "code": "INVALID_TRANSITION",
            }
        ]
    assert (after.status, after.version, after.history) == (
        target,
        before.version + 1,
        before.history + 1,
    )


@pytest.mark.parametrize("send_version", [False, True], ids=["no-version", "same-version"])
async def test_ten_staff_decide_at_once_exactly_one_wins(
    api: GraphQLClient, shop: Shop, db: Database, send_version: bool
) -> None:
    """The heavier variant: ten requests (APPROVED and REJECTED alternating, by front desk,
    manager and owner) hit one AWAITING_APPROVAL order at the same moment.

    PostgreSQL: up to ten transactions read version v together; their UPDATEs queue on the
    row lock; the first commits, each of the others then matches no row. Without an
    expected version each of them is retried once by run.write, reads the closed order and
    gets INVALID_TRANSITION (the retry cannot conflict again: nothing else writes). With
    the same expected version each gets STALE_VERSION. SQLite runs the same test with the
    writers queued on the database lock: the first wins, the rest see the closed order (or
    the newer version) on read. Both: one winner, nine typed errors, one history row."""
    order_id = await make_order(db, shop, "AWAITING_APPROVAL")
    version = (await state(db, order_id)).version
    roles = itertools.cycle(["FRONT_DESK", "MANAGER", "OWNER"])
    moves = []
    for i in range(10):
        target = "APPROVED" if i % 2 == 0 else "REJECTED"
        role = next(roles)
        moves.append(
            functools.partial(
                transition,
                api,
                shop,
                role,
                order_id,
                target,
                note=f"{role} says {target}",
                expected_version=version if send_version else None,
            )
        )
    before, winners, losers, after = await _race(db, order_id, moves)
    assert len(winners) == 1 and len(losers) == 9
    won = winners[0]["serviceOrder"]["status"]
    for loser in losers:
        assert loser["serviceOrder"] is None
        (error,) = loser["userErrors"]
        if send_version:
            assert error["code"] == "STALE_VERSION"
        else:
            assert error["code"] == "INVALID_TRANSITION"
            assert error["message"].startswith(f"An order cannot go from {won} to ")
    assert (after.status, after.version, after.history) == (
        won,
        before.version + 1,
        before.history + 1,
    )
    newest = (await history(db, order_id))[-1]
    assert (
        newest.to_status == won
        and newest.note == winners[0]["serviceOrder"]["latestHistory"]["note"]
    )


# --- reading the machine ----------------------------------------------------------------------


async def test_available_transitions_per_role(api: GraphQLClient, shop: Shop, db: Database) -> None:
    order_ids = {status: await make_order(db, shop, status) for status in EXPECTED_TRANSITIONS}
    fields = "\n".join(
        f'{status.lower()}: serviceOrder(id: "{gid(pk)}") {{ status availableTransitions }}'
        for status, pk in order_ids.items()
    )
    for role in ROLES:
        data = await api.as_(shop.tokens[role]).ok(f"{{ {fields} }}")
        for status in EXPECTED_TRANSITIONS:
            node = data[status.lower()]
            assert node["status"] == status
            assert node["availableTransitions"] == expected_available(status, role), (
                status,
                role,
            )


async def test_service_order_statuses_is_public_and_complete(api: GraphQLClient) -> None:
    data = await api.ok(
        "{ serviceOrderStatuses { status label color description isClosed nextStatuses } }"
    )
    listed = data["serviceOrderStatuses"]
    assert len(listed) == 11
    assert {s["status"] for s in listed} == set(EXPECTED_TRANSITIONS)
    for entry in listed:
        status = entry["status"]
        assert entry["color"] == EXPECTED_COLORS[status]
        assert entry["nextStatuses"] == EXPECTED_TRANSITIONS[status]
        assert entry["isClosed"] is (EXPECTED_TRANSITIONS[status] == [])
        info = STATUS_INFO[OrderStatus(status)]
        assert (entry["label"], entry["description"]) == (info.label, info.description)
        assert entry["label"] and entry["description"]
    assert {s["status"] for s in listed if s["isClosed"]} == {"REJECTED", "COMPLETED", "CANCELLED"}


async def test_completion_stamps_completed_at_and_the_final_cost(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    order_id = await make_order(db, shop, "READY", labour="40.00", warranty_days=90)
    async with db.write_session() as session:
        await orders.add_part(
            session=session,
            actor=shop.actors["TECHNICIAN"],
            order_id=order_id,
            name="USB-C port",
            quantity=2,
            unit_cost=Decimal("10.50"),
        )
    cancelled_id = await make_order(db, shop, "CANCELLED")
    assert (await state(db, order_id)).completed_at is None
    assert (await state(db, cancelled_id)).completed_at is None  # only completion stamps it

    start = datetime.now(UTC)
    payload = await transition(api, shop, "FRONT_DESK", order_id, "COMPLETED", note="Paid")
    end = datetime.now(UTC)
    assert payload["userErrors"] == []
    order = payload["serviceOrder"]
    completed_at = datetime.fromisoformat(order["completedAt"])
    assert completed_at.utcoffset() is not None
    assert start - timedelta(seconds=1) <= completed_at <= end + timedelta(seconds=1)
    assert order["finalCost"] == {"amount": "61.00", "currency": "EUR"}  # 40 + 2 x 10.50
    assert datetime.fromisoformat(order["warrantyExpiresAt"]) == completed_at + timedelta(days=90)
    assert order["statusInfo"] == {
        "status": "COMPLETED",
        "label": "Completed",
        "color": "green",
        "isClosed": True,
    }
    stored = await state(db, order_id)
    assert stored.completed_at == completed_at
    async with db.read_session() as session:
        row = await session.get(ServiceOrder, order_id)
        assert row is not None and row.final_cost == 6100


async def test_completion_keeps_a_final_cost_that_was_set(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    order_id = await make_order(db, shop, "READY", labour="40.00")
    async with db.write_session() as session:
        await orders.set_diagnosis(
            session=session,
            actor=shop.actors["OWNER"],
            order_id=order_id,
            changes={"final_cost": Decimal("35.00")},  # a discount
        )
    payload = await transition(api, shop, "MANAGER", order_id, "COMPLETED")
    assert payload["userErrors"] == []
    assert payload["serviceOrder"]["finalCost"] == {"amount": "35.00", "currency": "EUR"}
    assert payload["serviceOrder"]["warrantyExpiresAt"] is None  # no warranty given
