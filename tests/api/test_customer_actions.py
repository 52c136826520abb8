"""What a share-link holder can do: approve or reject the estimate (also racing and double
taps), comment, rate; ratings for staff; and the limit on bad tokens per address."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from config import Settings
from db.engine import Database
from db.models import (
    Notification,
    OrderComment,
    OrderEvent,
    Rating,
    ServiceOrder,
    StatusHistory,
)
from resolvers import sharing as share_resolvers
from tests.api.test_sharing import (
    Order,
    add_staff,
    count,
    fresh_bad_token_limiter,
    make_order,
    token_of,
    tracking_error,
)
from tests.conftest import GraphQLClient, Shop


@pytest.fixture(autouse=True)
def fresh_limiter(monkeypatch: pytest.MonkeyPatch) -> None:
    """resolvers.sharing.bad_tokens is process-wide: each test starts with an empty one."""
    monkeypatch.setattr(share_resolvers, "bad_tokens", fresh_bad_token_limiter())


VIEW = "status approvedAmount { amount currency } link { canApprove canComment canRate }"
APPROVE = f"""
mutation($t: String!) {{
  trackingApprove(input: {{token: $t}}) {{ tracking {{ {VIEW} }} userErrors {{ field message code }} }}
}}"""
REJECT = f"""
mutation($t: String!, $reason: String) {{
  trackingReject(input: {{token: $t, reason: $reason}}) {{
    tracking {{ {VIEW} timeline {{ status note }} }} userErrors {{ field message code }}
  }}
}}"""
COMMENT = """
mutation($t: String!, $body: String!) {
  trackingCommentAdd(input: {token: $t, body: $body}) {
    tracking { comments { fromCustomer authorName body } } userErrors { field message code }
  }
}"""
RATE = """
mutation($t: String!, $stars: Int!, $comment: String) {
  trackingRate(input: {token: $t, stars: $stars, comment: $comment}) {
    tracking { rating { stars comment } link { canRate } } userErrors { field message code }
  }
}"""
STAFF_COMMENT = """
mutation($id: ID!, $body: String!) {
  serviceOrderComment(input: {orderId: $id, body: $body}) {
    comment { fromCustomer authorName body } userErrors { field code }
  }
}"""
NOTE = """
mutation($id: ID!, $body: String!) {
  internalNoteAdd(input: {orderId: $id, body: $body}) { userErrors { code } }
}"""
SHARE = """
mutation($id: ID!, $perms: [SharePermission!]) {
  shareLinkCreate(input: {orderId: $id, permissions: $perms}) {
    shareLink { url } reused userErrors { code }
  }
}"""
STAFF_ORDER = """
query($id: ID!) {
  serviceOrder(id: $id) {
    status estimatedCost { amount }
    history { fromStatus toStatus note actor { id } }
    internalNotes { body }
    events { nodes { sequence type staffOnly actor { kind name staffUserId } data } }
  }
}"""
TRACKING_COMMENTS = "query($t: String!) { tracking(token: $t) { comments { fromCustomer body } } }"
RECIPIENTS = ("OWNER", "MANAGER", "TECHNICIAN", "FRONT_DESK")  # leads, assignee, creator


def codes(payload: dict[str, Any]) -> list[str]:
    return [e["code"] for e in payload["userErrors"]]


@dataclass
class Decisions:
    status: str
    approved_amount: int | None
    decided_at: datetime | None
    history: list[StatusHistory]  # rows written by a customer's decision
    events: list[OrderEvent]  # ESTIMATE_APPROVED / ESTIMATE_REJECTED
    notified: list[int]  # user ids, one per notification of those events


async def decisions(db: Database, order: Order) -> Decisions:
    async with db.read_session() as session:
        row = await session.get(ServiceOrder, order.pk)
        assert row is not None
        history = list(
            await session.scalars(
                select(StatusHistory)
                .where(
                    StatusHistory.order_id == order.pk,
                    StatusHistory.to_status.in_(["APPROVED", "REJECTED"]),
                )
                .order_by(StatusHistory.id)
            )
        )
        events = list(
            await session.scalars(
                select(OrderEvent)
                .where(
                    OrderEvent.order_id == order.pk,
                    OrderEvent.type.in_(["ESTIMATE_APPROVED", "ESTIMATE_REJECTED"]),
                )
                .order_by(OrderEvent.id)
            )
        )
        notified = list(
            await session.scalars(
                select(Notification.user_id)
                .where(Notification.event_id.in_([e.id for e in events]))
                .order_by(Notification.user_id)
            )
        )
    return Decisions(row.status, row.approved_amount, row.decided_at, history, events, notified)


async def notified_for(db: Database, order: Order, type_: str) -> list[int]:
    async with db.read_session() as session:
        return list(
            await session.scalars(
                select(Notification.user_id)
                .join(OrderEvent, OrderEvent.id == Notification.event_id)
                .where(OrderEvent.order_id == order.pk, OrderEvent.type == type_)
                .order_by(Notification.user_id)
            )
        )


def expected_recipients(shop: Shop) -> list[int]:
    return sorted(shop.users[r] for r in RECIPIENTS)


# --- approve and reject -------------------------------------------------------------------


async def test_approve_moves_the_order_and_tells_the_staff(
    api: GraphQLClient, shop: Shop, db: Database, settings: Settings
) -> None:
    await add_staff(db, shop, "TECHNICIAN", "TECH2")  # neither assignee nor creator
    order = await make_order(db, shop, settings, "AWAITING_APPROVAL")
    payload = await api.mutate(APPROVE, {"t": order.token})
    assert payload == {
        "tracking": {
            "status": "APPROVED",
            "approvedAmount": {"amount": "59.90", "currency": "EUR"},
            "link": {"canApprove": False, "canComment": True, "canRate": False},
        },
        "userErrors": [],
    }
    state = await decisions(db, order)
    assert (state.status, state.approved_amount) == ("APPROVED", 5990)
    assert state.decided_at is not None
    (history,) = state.history
    assert (history.from_status, history.to_status, history.actor_id) == (
        "AWAITING_APPROVAL",
        "APPROVED",
        None,
    )
    assert history.note == "Estimate of 59.90 EUR approved via share link."
    assert history.note_public is True and history.share_link_id == order.link_id
    (event,) = state.events
    assert (event.type, event.actor_kind, event.actor_id, event.staff_only) == (
        "ESTIMATE_APPROVED",
        "SHARE_LINK",
        None,
        False,
    )
    assert state.notified == expected_recipients(shop)
    assert shop.users["TECH2"] not in state.notified

    # what staff see
    staff = (await api.as_(shop.tokens["MANAGER"]).ok(STAFF_ORDER, {"id": order.gid}))[
        "serviceOrder"
    ]
    assert staff["status"] == "APPROVED"
    assert staff["history"][-1] == {
        "fromStatus": "AWAITING_APPROVAL",
        "toStatus": "APPROVED",
        "note": "Estimate of 59.90 EUR approved via share link.",
        "actor": None,
    }
    last = staff["events"]["nodes"][-1]
    assert last["type"] == "ESTIMATE_APPROVED" and last["staffOnly"] is False
    assert last["actor"] == {"kind": "SHARE_LINK", "name": "Customer", "staffUserId": None}
    assert last["data"] == {
        "from": "AWAITING_APPROVAL",
        "to": "APPROVED",
        "amount": 5990,
        "currency": "EUR",
        "reason": None,
        "link_id": order.link_id,
    }
    inbox = await api.as_(shop.tokens["TECHNICIAN"]).ok(
        "{ notifications(first: 1) { nodes { event { type orderNumber } } } }"
    )
    assert inbox["notifications"]["nodes"] == [
        {"event": {"type": "ESTIMATE_APPROVED", "orderNumber": order.number}}
    ]

    # the same decision again is idempotent; the other one is refused
    again = await api.mutate(APPROVE, {"t": order.token})
    assert again["userErrors"] == [] and again["tracking"]["status"] == "APPROVED"
    rejected = await api.mutate(REJECT, {"t": order.token, "reason": "Changed my mind"})
    assert rejected["tracking"] is None
    assert [(e["code"], e["field"]) for e in rejected["userErrors"]] == [
        ("ALREADY_DECIDED", ["token"])
    ]
    after = await decisions(db, order)
    assert (len(after.history), len(after.events), after.notified) == (1, 1, state.notified)


async def test_reject_with_a_reason(
    api: GraphQLClient, shop: Shop, db: Database, settings: Settings
) -> None:
    order = await make_order(db, shop, settings, "AWAITING_APPROVAL")
    too_long = await api.mutate(REJECT, {"t": order.token, "reason": "x" * 2001})
    assert [(e["code"], e["field"]) for e in too_long["userErrors"]] == [("TOO_LONG", ["reason"])]
    assert (await decisions(db, order)).status == "AWAITING_APPROVAL"

    payload = await api.mutate(REJECT, {"t": order.token, "reason": "  Too expensive for me.  "})
    assert payload["userErrors"] == []
    note = "Estimate of 59.90 EUR rejected via share link. Reason: Too expensive for me."
    view = payload["tracking"]
    assert view["status"] == "REJECTED" and view["approvedAmount"] is None
    assert view["timeline"][-1] == {"status": "REJECTED", "note": note}
    state = await decisions(db, order)
    assert (state.status, state.approved_amount) == ("REJECTED", None)
    (history,) = state.history
    assert (history.from_status, history.to_status, history.actor_id, history.note) == (
        "AWAITING_APPROVAL",
        "REJECTED",
        None,
        note,
    )
    (event,) = state.events
    assert (event.type, event.actor_kind) == ("ESTIMATE_REJECTED", "SHARE_LINK")
    assert event.payload["reason"] == "Too expensive for me."
    assert state.notified == expected_recipients(shop)
    approve = await api.mutate(APPROVE, {"t": order.token})
    assert codes(approve) == ["ALREADY_DECIDED"]
    assert "rejected" in approve["userErrors"][0]["message"]
    assert len((await decisions(db, order)).events) == 1


async def test_decisions_need_an_estimate_waiting_and_the_permission(
    api: GraphQLClient, shop: Shop, db: Database, settings: Settings
) -> None:
    diagnosing = await make_order(db, shop, settings, "DIAGNOSING")
    for query, variables in ((APPROVE, {}), (REJECT, {"reason": "no"})):
        payload = await api.mutate(query, {"t": diagnosing.token, **variables})
        assert payload["tracking"] is None
        assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [
            ("NOT_AWAITING_APPROVAL", ["token"])
        ]
    state = await decisions(db, diagnosing)
    assert (state.status, state.history, state.events) == ("DIAGNOSING", [], [])

    waiting = await make_order(db, shop, settings, "AWAITING_APPROVAL")
    shared = await api.as_(shop.tokens["FRONT_DESK"]).mutate(
        SHARE, {"id": waiting.gid, "perms": ["VIEW", "COMMENT"]}
    )
    view_only = token_of(shared["shareLink"]["url"])
    seen = await api.ok(
        "query($t: String!) { tracking(token: $t) { estimate { amount } link { canApprove } } }",
        {"t": view_only},
    )
    assert seen["tracking"] == {"estimate": {"amount": "59.90"}, "link": {"canApprove": False}}
    for query in (APPROVE, REJECT):
        payload = await api.mutate(query, {"t": view_only})
        assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [
            ("FORBIDDEN", ["token"])
        ]
    state = await decisions(db, waiting)
    assert (state.status, state.history, state.events) == ("AWAITING_APPROVAL", [], [])
    # the order's other link still may
    assert (await api.mutate(APPROVE, {"t": waiting.token}))["userErrors"] == []


async def test_approval_is_tied_to_the_estimate_the_customer_saw(
    api: GraphQLClient, shop: Shop, db: Database, settings: Settings
) -> None:
    """The page sends the estimate it showed; staff changed it meanwhile: refused, nothing
    written; with the current amount the approval goes through."""
    order = await make_order(db, shop, settings, "AWAITING_APPROVAL")
    approve_seen = f"""
    mutation($t: String!, $seen: Decimal) {{
      trackingApprove(input: {{token: $t, expectedEstimate: $seen}}) {{
        tracking {{ {VIEW} }} userErrors {{ field message code }}
      }}
    }}"""
    set_estimate = """
    mutation($id: ID!) {
      serviceOrderSetDiagnosis(input: {id: $id, estimatedCost: "79.90"}) { userErrors { code } }
    }"""
    changed = await api.as_(shop.tokens["TECHNICIAN"]).mutate(set_estimate, {"id": order.gid})
    assert changed["userErrors"] == []
    stale = await api.mutate(approve_seen, {"t": order.token, "seen": "59.90"})
    assert stale["tracking"] is None
    assert stale["userErrors"] == [
        {
            "field": ["expectedEstimate"],
            "message": "The estimate changed to 79.90 EUR since you opened the page. "
            "Please review it again.",
            "code": "ESTIMATE_CHANGED",
        }
    ]
    state = await decisions(db, order)
    assert (state.status, state.approved_amount, state.history, state.events) == (
        "AWAITING_APPROVAL",
        None,
        [],
        [],
    )
    fresh = await api.mutate(approve_seen, {"t": order.token, "seen": "79.90"})
    assert fresh["userErrors"] == []
    assert fresh["tracking"]["approvedAmount"] == {"amount": "79.90", "currency": "EUR"}
    assert (await decisions(db, order)).approved_amount == 7990


async def test_double_tap_approves_once(
    api: GraphQLClient, shop: Shop, db: Database, settings: Settings
) -> None:
    order = await make_order(db, shop, settings, "AWAITING_APPROVAL")
    results = await asyncio.gather(*(api.mutate(APPROVE, {"t": order.token}) for _ in range(3)))
    assert [r["userErrors"] for r in results] == [[], [], []]
    assert {r["tracking"]["status"] for r in results} == {"APPROVED"}
    state = await decisions(db, order)
    assert (state.status, state.approved_amount) == ("APPROVED", 5990)
    assert len(state.history) == 1 and len(state.events) == 1
    assert state.notified == expected_recipients(shop)  # one notification per recipient


async def test_approve_racing_reject_has_one_winner(
    api: GraphQLClient,
    shop: Shop,
    db: Database,
    settings: Settings,
    backend: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Both requests read AWAITING_APPROVAL; one commits, the other loses the optimistic
    lock (PostgreSQL) or waits for the write lock (SQLite), then sees the decision."""
    caplog.set_level(logging.INFO, logger="service_orders.resolvers")
    rounds = 5 if backend == "postgresql" else 2
    winners = []
    for i in range(rounds):
        order = await make_order(db, shop, settings, "AWAITING_APPROVAL")
        calls = [
            api.mutate(APPROVE, {"t": order.token}),
            api.mutate(REJECT, {"t": order.token, "reason": "Too slow"}),
        ]
        if i % 2:
            calls.reverse()
        results = await asyncio.gather(*calls)
        if i % 2:
            results.reverse()
        approved, rejected = results
        outcomes = sorted((codes(approved), codes(rejected)))
        assert outcomes == [[], ["ALREADY_DECIDED"]], results
        winner = "APPROVED" if approved["userErrors"] == [] else "REJECTED"
        winners.append(winner)
        state = await decisions(db, order)
        assert state.status == winner
        (history,) = state.history
        assert history.to_status == winner
        (event,) = state.events
        assert event.type == ("ESTIMATE_APPROVED" if winner == "APPROVED" else "ESTIMATE_REJECTED")
        assert state.notified == expected_recipients(shop)
        assert state.approved_amount == (5990 if winner == "APPROVED" else None)
    assert len(winners) == rounds
    if backend == "postgresql":  # the race really happened: a loser retried on fresh data
        assert any("optimistic lock lost" in r.getMessage() for r in caplog.records)


# --- comments -----------------------------------------------------------------------------


async def test_customer_comments(
    api: GraphQLClient, shop: Shop, db: Database, settings: Settings
) -> None:
    await add_staff(db, shop, "TECHNICIAN", "TECH2")
    order = await make_order(db, shop, settings, "DIAGNOSING")
    before = await count(db, OrderEvent, OrderEvent.order_id == order.pk)
    for body, code in (("", "REQUIRED"), ("   \n ", "REQUIRED"), ("x" * 2001, "TOO_LONG")):
        payload = await api.mutate(COMMENT, {"t": order.token, "body": body})
        assert payload["tracking"] is None
        assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [(code, ["body"])]
    assert await count(db, OrderComment) == 0
    assert await count(db, OrderEvent, OrderEvent.order_id == order.pk) == before

    longest = await api.mutate(COMMENT, {"t": order.token, "body": "y" * 2000})
    assert longest["userErrors"] == []
    payload = await api.mutate(
        COMMENT, {"t": order.token, "body": "  Is it still under warranty? "}
    )
    assert payload["userErrors"] == []
    assert payload["tracking"]["comments"] == [
        {"fromCustomer": True, "authorName": "You", "body": "y" * 2000},
        {"fromCustomer": True, "authorName": "You", "body": "Is it still under warranty?"},
    ]
    async with db.read_session() as session:
        rows = list(await session.scalars(select(OrderComment).order_by(OrderComment.id)))
    assert [(r.author_kind, r.staff_user_id, r.share_link_id) for r in rows] == [
        ("CUSTOMER", None, order.link_id)
    ] * 2
    assert rows[1].body == "Is it still under warranty?"
    # staff are told: leads, the assignee and the creator (twice: two comments)
    assert await notified_for(db, order, "COMMENT_ADDED") == sorted(expected_recipients(shop) * 2)
    staff = (await api.as_(shop.tokens["OWNER"]).ok(STAFF_ORDER, {"id": order.gid}))["serviceOrder"]
    last = staff["events"]["nodes"][-1]
    assert (last["type"], last["staffOnly"], last["actor"]["kind"]) == (
        "COMMENT_ADDED",
        False,
        "SHARE_LINK",
    )
    assert last["data"]["author"] == "CUSTOMER"
    assert last["data"]["body"] == "Is it still under warranty?"

    # without the COMMENT permission
    shared = await api.as_(shop.tokens["OWNER"]).mutate(SHARE, {"id": order.gid, "perms": ["VIEW"]})
    view_only = token_of(shared["shareLink"]["url"])
    refused = await api.mutate(COMMENT, {"t": view_only, "body": "Hello?"})
    assert [(e["code"], e["field"]) for e in refused["userErrors"]] == [("FORBIDDEN", ["token"])]
    assert await count(db, OrderComment) == 2


async def test_staff_comments_are_shown_to_the_customer_and_notes_are_not(
    api: GraphQLClient, shop: Shop, other_shop: Shop, db: Database, settings: Settings
) -> None:
    order = await make_order(db, shop, settings, "DIAGNOSING")
    tech = api.as_(shop.tokens["TECHNICIAN"])
    blank = await tech.mutate(STAFF_COMMENT, {"id": order.gid, "body": "  "})
    assert [(e["code"], e["field"]) for e in blank["userErrors"]] == [("REQUIRED", ["body"])]
    foreign = await api.as_(other_shop.tokens["OWNER"]).mutate(
        STAFF_COMMENT, {"id": order.gid, "body": "Hi"}
    )
    assert codes(foreign) == ["NOT_FOUND"]
    said = await tech.mutate(STAFF_COMMENT, {"id": order.gid, "body": "Your part arrives Monday."})
    assert said == {
        "comment": {
            "fromCustomer": False,
            "authorName": "Shop",
            "body": "Your part arrives Monday.",
        },
        "userErrors": [],
    }
    assert (await tech.mutate(NOTE, {"id": order.gid, "body": "Supplier invoice #991"}))[
        "userErrors"
    ] == []
    seen = await api.ok(TRACKING_COMMENTS, {"t": order.token})
    assert seen["tracking"]["comments"] == [
        {"fromCustomer": False, "body": "Your part arrives Monday."}
    ]
    staff = (await tech.ok(STAFF_ORDER, {"id": order.gid}))["serviceOrder"]
    assert staff["internalNotes"] == [{"body": "Supplier invoice #991"}]
    events = staff["events"]["nodes"]
    comment = next(e for e in events if e["type"] == "COMMENT_ADDED")
    assert comment["staffOnly"] is False
    assert comment["actor"]["kind"] == "STAFF"
    assert comment["actor"]["staffUserId"] == shop.gid("TECHNICIAN")
    assert [e["staffOnly"] for e in events if e["type"] == "NOTE_ADDED"] == [True]
    async with db.read_session() as session:
        (row,) = await session.scalars(select(OrderComment))
    assert (row.author_kind, row.staff_user_id, row.share_link_id) == (
        "STAFF",
        shop.users["TECHNICIAN"],
        None,
    )


# --- ratings ------------------------------------------------------------------------------


async def test_rating_rules(
    api: GraphQLClient, shop: Shop, db: Database, settings: Settings
) -> None:
    waiting = await make_order(db, shop, settings, "AWAITING_APPROVAL")
    early = await api.mutate(RATE, {"t": waiting.token, "stars": 5})
    assert codes(early) == ["NOT_COMPLETED"] and early["tracking"] is None

    order = await make_order(db, shop, settings, "COMPLETED")
    for variables, expected in (
        ({"stars": 0}, [("INVALID_RATING", ["stars"])]),
        ({"stars": 6}, [("INVALID_RATING", ["stars"])]),
        ({"stars": 5, "comment": "z" * 501}, [("TOO_LONG", ["comment"])]),
        (
            {"stars": -1, "comment": "z" * 501},
            [("INVALID_RATING", ["stars"]), ("TOO_LONG", ["comment"])],
        ),
    ):
        payload = await api.mutate(RATE, {"t": order.token, **variables})
        assert [(e["code"], e["field"]) for e in payload["userErrors"]] == expected, variables
    assert await count(db, Rating) == 0
    assert await count(db, OrderEvent, OrderEvent.type == "RATED") == 0

    rated = await api.mutate(RATE, {"t": order.token, "stars": 4, "comment": " Quick " + "!" * 494})
    assert rated["userErrors"] == []
    assert rated["tracking"] == {
        "rating": {"stars": 4, "comment": "Quick " + "!" * 494},
        "link": {"canRate": False},
    }
    again = await api.mutate(RATE, {"t": order.token, "stars": 1})
    assert codes(again) == ["ALREADY_RATED"]
    async with db.read_session() as session:
        (row,) = await session.scalars(select(Rating))
    assert (row.order_id, row.stars, row.share_link_id, row.account_id) == (
        order.pk,
        4,
        order.link_id,
        shop.account_id,
    )
    assert await count(db, OrderEvent, OrderEvent.type == "RATED") == 1
    assert await notified_for(db, order, "RATED") == expected_recipients(shop)


async def test_concurrent_double_rating_writes_one_row(
    api: GraphQLClient, shop: Shop, db: Database, settings: Settings, backend: str
) -> None:
    for _ in range(3 if backend == "postgresql" else 1):
        order = await make_order(db, shop, settings, "COMPLETED")
        results = await asyncio.gather(
            api.mutate(RATE, {"t": order.token, "stars": 5}),
            api.mutate(RATE, {"t": order.token, "stars": 3, "comment": "ok"}),
        )
        assert sorted(codes(r) for r in results) == [[], ["ALREADY_RATED"]], results
        assert await count(db, Rating, Rating.order_id == order.pk) == 1
        rated = await count(
            db, OrderEvent, OrderEvent.order_id == order.pk, OrderEvent.type == "RATED"
        )
        assert rated == 1


async def test_ratings_summary_and_list(
    api: GraphQLClient, shop: Shop, other_shop: Shop, db: Database, settings: Settings
) -> None:
    owner = api.as_(shop.tokens["OWNER"])
    summary_query = """
    query($first: Int, $after: String, $only: Boolean!) {
      ratingsSummary {
        average total perStar { stars count }
        ratings(first: $first, after: $after, withCommentOnly: $only) {
          totalCount nodes { stars comment serviceOrderId } pageInfo { hasNextPage endCursor }
        }
      }
    }"""
    empty = (await owner.ok(summary_query, {"first": 10, "only": False}))["ratingsSummary"]
    assert empty["average"] is None and empty["total"] == 0
    assert empty["perStar"] == [{"stars": s, "count": 0} for s in range(1, 6)]
    assert empty["ratings"]["nodes"] == []

    given = [(5, "Great"), (5, None), (4, "Good"), (2, None)]
    rated: list[Order] = []
    for stars, comment in given:
        order = await make_order(db, shop, settings, "COMPLETED")
        payload = await api.mutate(RATE, {"t": order.token, "stars": stars, "comment": comment})
        assert payload["userErrors"] == []
        rated.append(order)
    foreign = await make_order(db, other_shop, settings, "COMPLETED", warranty_days=0)
    assert (await api.mutate(RATE, {"t": foreign.token, "stars": 1}))["userErrors"] == []

    summary = (await owner.ok(summary_query, {"first": 2, "only": False}))["ratingsSummary"]
    assert (summary["average"], summary["total"]) == (4.0, 4)
    assert summary["perStar"] == [
        {"stars": 1, "count": 0},
        {"stars": 2, "count": 1},
        {"stars": 3, "count": 0},
        {"stars": 4, "count": 1},
        {"stars": 5, "count": 2},
    ]
    first_page = summary["ratings"]
    assert first_page["totalCount"] == 4
    assert [(n["stars"], n["comment"]) for n in first_page["nodes"]] == [(2, None), (4, "Good")]
    assert [n["serviceOrderId"] for n in first_page["nodes"]] == [rated[3].gid, rated[2].gid]
    assert first_page["pageInfo"]["hasNextPage"] is True
    second = (
        await owner.ok(
            summary_query,
            {"first": 2, "after": first_page["pageInfo"]["endCursor"], "only": False},
        )
    )["ratingsSummary"]["ratings"]
    assert [(n["stars"], n["comment"]) for n in second["nodes"]] == [(5, None), (5, "Great")]
    assert second["pageInfo"]["hasNextPage"] is False
    commented = (await owner.ok(summary_query, {"first": 10, "only": True}))["ratingsSummary"][
        "ratings"
    ]
    assert commented["totalCount"] == 2
    assert [n["comment"] for n in commented["nodes"]] == ["Good", "Great"]

    theirs = (await api.as_(other_shop.tokens["MANAGER"]).ok(summary_query, {"only": False}))[
        "ratingsSummary"
    ]
    assert (theirs["average"], theirs["total"]) == (1.0, 1)
    anonymous = await api.query("{ ratingsSummary { total } }")
    assert anonymous["data"] is None and anonymous["errors"]


# --- abuse --------------------------------------------------------------------------------


async def test_a_flood_of_bad_tokens_blocks_that_address_only(
    api: GraphQLClient, app: Any, shop: Shop, db: Database, settings: Settings
) -> None:
    order = await make_order(db, shop, settings, "AWAITING_APPROVAL")
    forged = order.token[:-2] + ("AA" if not order.token.endswith("AA") else "BB")
    seen: list[str] = []
    for i in range(25):
        if i % 2:
            error = await tracking_error(api, f"bad-{i}")
            seen.append(error["extensions"]["code"])
        else:
            payload = await api.mutate(APPROVE, {"t": forged})
            seen.append(codes(payload)[0])
    assert seen == ["NOT_FOUND"] * 20 + ["RATE_LIMITED"] * 5

    # this address is refused even with a valid token, and nothing is written
    limited = await tracking_error(api, order.token)
    assert limited["extensions"]["code"] == "RATE_LIMITED"
    assert "Too many invalid links" in limited["message"]
    approve = await api.mutate(APPROVE, {"t": order.token})
    assert [(e["code"], e["field"]) for e in approve["userErrors"]] == [("RATE_LIMITED", ["token"])]
    assert (await decisions(db, order)).status == "AWAITING_APPROVAL"

    # another address is not affected
    transport = httpx.ASGITransport(app=app, client=("198.51.100.9", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        other = GraphQLClient(http)
        assert (await tracking_error(other, "bad-again"))["extensions"]["code"] == "NOT_FOUND"
        ok = await other.ok(
            "query($t: String!) { tracking(token: $t) { number } }", {"t": order.token}
        )
        assert ok["tracking"]["number"] == order.number
        assert (await other.mutate(APPROVE, {"t": order.token}))["userErrors"] == []
    assert (await decisions(db, order)).status == "APPROVED"
    # staff on the limited address are not affected either
    staff = await api.as_(shop.tokens["OWNER"]).ok(STAFF_ORDER, {"id": order.gid})
    assert staff["serviceOrder"]["status"] == "APPROVED"
