"""Domain events: one row per committed change to an order, in the change's transaction.

`record()` takes the next per-order and per-account sequence numbers with UPDATE ...
RETURNING on the order's and the account's counter columns. The row locks those updates
take are held to commit, so sequence order is commit order and there are no gaps (a
rolled-back change rolls its numbers back). Call it last in a use case, so the account
lock is held for as short a time as possible.

Recorded events are also kept in `session.info["events"]` for the caller to publish on the
bus after commit; staff who should be notified get a `notifications` row in the same
transaction.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.base import utcnow
from db.models import Account, Notification, OrderEvent, ServiceOrder, StaffUser
from db.queries import DEFAULT_PAGE
from services.errors import not_found
from services.policy import Actor
from services.roles import Role


class EventType(enum.Enum):
    ORDER_CREATED = "ORDER_CREATED"
    ORDER_UPDATED = "ORDER_UPDATED"
    STATUS_CHANGED = "STATUS_CHANGED"
    DIAGNOSIS_UPDATED = "DIAGNOSIS_UPDATED"
    PART_ADDED = "PART_ADDED"
    PART_UPDATED = "PART_UPDATED"
    PART_REMOVED = "PART_REMOVED"
    ASSIGNED = "ASSIGNED"
    NOTE_ADDED = "NOTE_ADDED"
    ESTIMATE_APPROVED = "ESTIMATE_APPROVED"
    ESTIMATE_REJECTED = "ESTIMATE_REJECTED"
    COMMENT_ADDED = "COMMENT_ADDED"
    RATED = "RATED"
    SHARE_LINK_CREATED = "SHARE_LINK_CREATED"
    SHARE_LINK_REVOKED = "SHARE_LINK_REVOKED"


STAFF_ONLY = frozenset(
    {
        EventType.ORDER_UPDATED,
        EventType.ASSIGNED,
        EventType.NOTE_ADDED,
        EventType.SHARE_LINK_CREATED,
        EventType.SHARE_LINK_REVOKED,
    }
)
# customer actions that need staff attention (with new orders, status changes, assignments)
CUSTOMER_ACTIONS = frozenset(
    {EventType.ESTIMATE_APPROVED, EventType.ESTIMATE_REJECTED, EventType.RATED}
)


class ActorKind(enum.Enum):
    STAFF = "STAFF"
    SHARE_LINK = "SHARE_LINK"
    SYSTEM = "SYSTEM"


@dataclass(frozen=True)
class EventRecord:
    """An event as published on the bus and streamed to subscribers (no DB access needed)."""

    id: int
    account_id: int
    order_id: int
    order_seq: int
    account_seq: int
    type: str
    staff_only: bool
    actor_kind: str
    actor_id: int | None
    actor_name: str | None
    payload: dict[str, Any]
    created_at: datetime
    # staff user id -> notification id, for the staff this event notifies
    recipients: dict[int, int] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: OrderEvent, recipients: Mapping[int, int] | None = None) -> EventRecord:
        return cls(
            id=row.id,
            account_id=row.account_id,
            order_id=row.order_id,
            order_seq=row.order_seq,
            account_seq=row.account_seq,
            type=row.type,
            staff_only=row.staff_only,
            actor_kind=row.actor_kind,
            actor_id=row.actor_id,
            actor_name=row.actor_name,
            payload=dict(row.payload),
            created_at=row.created_at,
            recipients=dict(recipients or {}),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account_id": self.account_id,
            "order_id": self.order_id,
            "order_seq": self.order_seq,
            "account_seq": self.account_seq,
            "type": self.type,
            "staff_only": self.staff_only,
            "actor_kind": self.actor_kind,
            "actor_id": self.actor_id,
            "actor_name": self.actor_name,
            "payload": self.payload,
            "created_at": self.created_at.isoformat(),
            "recipients": {str(k): v for k, v in self.recipients.items()},
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> EventRecord:
        return cls(
            id=int(data["id"]),
            account_id=int(data["account_id"]),
            order_id=int(data["order_id"]),
            order_seq=int(data["order_seq"]),
            account_seq=int(data["account_seq"]),
            type=str(data["type"]),
            staff_only=bool(data["staff_only"]),
            actor_kind=str(data["actor_kind"]),
            actor_id=data.get("actor_id"),
            actor_name=data.get("actor_name"),
            payload=dict(data.get("payload") or {}),
            created_at=datetime.fromisoformat(data["created_at"]),
            recipients={int(k): int(v) for k, v in (data.get("recipients") or {}).items()},
        )


def pending(session: AsyncSession) -> list[EventRecord]:
    """Events recorded in this session's transaction, to publish after commit."""
    return session.info.setdefault("events", [])


async def _recipients(
    session: AsyncSession,
    actor: Actor | None,
    order: ServiceOrder,
    type_: EventType,
    payload: dict[str, Any],
) -> list[int]:
    """Who is notified: new orders -> all active staff; status changes, customer approvals,
    rejections, comments and ratings -> the assignee, the order's creator and
    owners/managers; assignment -> the new assignee. Never the staff member who acted."""
    actor_id = actor.user_id if actor is not None else None
    if type_ is EventType.ASSIGNED:
        target = payload.get("assignee_id")
        return [target] if target and target != actor_id else []
    customer_comment = type_ is EventType.COMMENT_ADDED and actor is None
    if not (
        type_ in (EventType.ORDER_CREATED, EventType.STATUS_CHANGED)
        or type_ in CUSTOMER_ACTIONS
        or customer_comment
    ):
        return []
    rows = (
        await session.execute(
            select(StaffUser.id, StaffUser.role).where(
                StaffUser.account_id == order.account_id, StaffUser.is_active.is_(True)
            )
        )
    ).all()
    if type_ is EventType.ORDER_CREATED:
        ids = [uid for uid, _ in rows]
    else:
        leads = {Role.OWNER.value, Role.MANAGER.value}
        interested = {order.assigned_to_id, order.created_by_id}
        ids = [uid for uid, role in rows if role in leads or uid in interested]
    return sorted(uid for uid in ids if uid != actor_id)


async def record(
    session: AsyncSession,
    *,
    actor: Actor | None,
    order: ServiceOrder,
    type: EventType,
    payload: dict[str, Any],
) -> EventRecord:
    """`actor` None means the customer, acting through a share link."""
    recipients = await _recipients(session, actor, order, type, payload)
    fields: dict[str, Any] = {
        "account_id": order.account_id,
        "order_id": order.id,
        "type": type.value,
        "staff_only": type in STAFF_ONLY,
        "actor_kind": (ActorKind.STAFF if actor is not None else ActorKind.SHARE_LINK).value,
        "actor_id": actor.user_id if actor is not None else None,
        "actor_name": (actor.name or None) if actor is not None else "Customer",
        "payload": {"number": order.number, "status": order.status, **payload},
        "created_at": utcnow(),
    }
    if session.get_bind().dialect.name == "postgresql":
        event = await _insert_in_one_statement(session, fields, recipients)
    else:
        event = await _insert_step_by_step(session, fields, recipients)
    pending(session).append(event)
    return event


# PostgreSQL: both sequence numbers, the event and its notifications in ONE statement, the
# last one before COMMIT, so the shop's sequence row is locked for one round trip only
# (every write of a shop queues on that lock).
_RECORD_SQL = text(
    """
WITH o AS (
    UPDATE service_orders SET last_event_seq = last_event_seq + 1
    WHERE id = CAST(:order_id AS BIGINT) RETURNING last_event_seq
), a AS (
    UPDATE accounts SET last_event_seq = last_event_seq + 1
    WHERE id = CAST(:account_id AS BIGINT) RETURNING last_event_seq
), e AS (
    INSERT INTO order_events (account_id, order_id, order_seq, account_seq, type, staff_only,
                              actor_kind, actor_id, actor_name, payload, created_at)
    SELECT CAST(:account_id AS BIGINT), CAST(:order_id AS BIGINT), o.last_event_seq,
           a.last_event_seq, CAST(:type AS VARCHAR), CAST(:staff_only AS BOOLEAN),
           CAST(:actor_kind AS VARCHAR), CAST(:actor_id AS BIGINT),
           CAST(:actor_name AS VARCHAR), CAST(:payload AS JSON),
           CAST(:created_at AS TIMESTAMPTZ)
    FROM o, a
    RETURNING id, order_seq, account_seq
), n AS (
    INSERT INTO notifications (account_id, user_id, event_id, account_seq, created_at)
    SELECT CAST(:account_id AS BIGINT), r.uid, e.id, e.account_seq,
           CAST(:created_at AS TIMESTAMPTZ)
    FROM e, unnest(CAST(:recipients AS BIGINT[])) AS r(uid)
    RETURNING user_id, id
)
SELECT e.id, e.order_seq, e.account_seq,
       (SELECT json_agg(json_build_array(n.user_id, n.id)) FROM n) AS notified
FROM e
"""
)


async def _insert_in_one_statement(
    session: AsyncSession, fields: dict[str, Any], recipients: list[int]
) -> EventRecord:
    row = (
        await session.execute(
            _RECORD_SQL,
            {
                **fields,
                "payload": json.dumps(fields["payload"], default=str),
                "recipients": recipients,
            },
        )
    ).one()
    notified = row.notified if isinstance(row.notified, list) else json.loads(row.notified or "[]")
    return EventRecord(
        id=row.id,
        order_seq=row.order_seq,
        account_seq=row.account_seq,
        recipients={int(uid): int(nid) for uid, nid in notified},
        **fields,
    )


async def _insert_step_by_step(
    session: AsyncSession, fields: dict[str, Any], recipients: list[int]
) -> EventRecord:
    """SQLite: write transactions are serialised by BEGIN IMMEDIATE anyway."""
    orders_t = cast(Table, ServiceOrder.__table__)
    accounts_t = cast(Table, Account.__table__)
    order_seq = await session.scalar(
        update(orders_t)
        .where(orders_t.c.id == fields["order_id"])
        .values(last_event_seq=orders_t.c.last_event_seq + 1)
        .returning(orders_t.c.last_event_seq)
    )
    account_seq = await session.scalar(
        update(accounts_t)
        .where(accounts_t.c.id == fields["account_id"])
        .values(last_event_seq=accounts_t.c.last_event_seq + 1)
        .returning(accounts_t.c.last_event_seq)
    )
    assert order_seq is not None and account_seq is not None
    row = OrderEvent(order_seq=order_seq, account_seq=account_seq, **fields)
    session.add(row)
    await session.flush()
    notes = [
        Notification(
            account_id=row.account_id,
            user_id=user_id,
            event_id=row.id,
            account_seq=account_seq,
            created_at=row.created_at,
        )
        for user_id in recipients
    ]
    if notes:
        session.add_all(notes)
        await session.flush()
    return EventRecord.from_row(row, {n.user_id: n.id for n in notes})


# --- reading ------------------------------------------------------------------------------


async def order_events(
    session: AsyncSession,
    *,
    account_id: int,
    order_id: int,
    after: int | None,
    limit: int = DEFAULT_PAGE,
    include_staff_only: bool = True,
) -> list[EventRecord]:
    stmt = select(OrderEvent).where(
        OrderEvent.order_id == order_id, OrderEvent.account_id == account_id
    )
    if after is not None:
        stmt = stmt.where(OrderEvent.order_seq > after)
    if not include_staff_only:
        stmt = stmt.where(OrderEvent.staff_only.is_(False))
    rows = await session.scalars(stmt.order_by(OrderEvent.order_seq).limit(limit))
    return [EventRecord.from_row(r) for r in rows]


async def account_events(
    session: AsyncSession, *, account_id: int, after: int | None, limit: int = DEFAULT_PAGE
) -> list[EventRecord]:
    stmt = select(OrderEvent).where(OrderEvent.account_id == account_id)
    if after is not None:
        stmt = stmt.where(OrderEvent.account_seq > after)
    rows = await session.scalars(stmt.order_by(OrderEvent.account_seq).limit(limit))
    return [EventRecord.from_row(r) for r in rows]


async def last_order_seq(session: AsyncSession, *, account_id: int, order_id: int) -> int:
    seq = await session.scalar(
        select(ServiceOrder.last_event_seq).where(
            ServiceOrder.id == order_id, ServiceOrder.account_id == account_id
        )
    )
    if seq is None:
        raise not_found("Service order")
    return int(seq)


async def last_account_seq(session: AsyncSession, *, account_id: int) -> int:
    return int(
        await session.scalar(select(Account.last_event_seq).where(Account.id == account_id)) or 0
    )


# --- notifications ------------------------------------------------------------------------


@dataclass(frozen=True)
class NotificationRecord:
    id: int
    read_at: datetime | None
    event: EventRecord


async def notifications(
    session: AsyncSession,
    *,
    actor: Actor,
    unread_only: bool,
    after_seq: int | None,
    limit: int,
    newest_first: bool,
    before_seq: int | None = None,
) -> list[NotificationRecord]:
    stmt = (
        select(Notification, OrderEvent)
        .join(OrderEvent, OrderEvent.id == Notification.event_id)
        .where(Notification.user_id == actor.user_id, Notification.account_id == actor.account_id)
    )
    if unread_only:
        stmt = stmt.where(Notification.read_at.is_(None))
    if after_seq is not None:
        stmt = stmt.where(Notification.account_seq > after_seq)
    if before_seq is not None:
        stmt = stmt.where(Notification.account_seq < before_seq)
    order = Notification.account_seq.desc() if newest_first else Notification.account_seq
    rows = (await session.execute(stmt.order_by(order).limit(limit))).all()
    return [
        NotificationRecord(
            id=n.id, read_at=n.read_at, event=EventRecord.from_row(e, {actor.user_id: n.id})
        )
        for n, e in rows
    ]


async def unread_count(session: AsyncSession, *, actor: Actor) -> int:
    return int(
        await session.scalar(
            select(func.count()).where(
                Notification.user_id == actor.user_id,
                Notification.account_id == actor.account_id,
                Notification.read_at.is_(None),
            )
        )
        or 0
    )


async def mark_read(
    session: AsyncSession, *, actor: Actor, notification_ids: list[int] | None, all_: bool
) -> int:
    """Mark some (or all) of the viewer's notifications read; returns how many changed."""
    stmt = update(Notification).where(
        Notification.user_id == actor.user_id,
        Notification.account_id == actor.account_id,
        Notification.read_at.is_(None),
    )
    if not all_:
        stmt = stmt.where(Notification.id.in_(notification_ids or []))
    result = await session.execute(
        stmt.values(read_at=utcnow()).execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
