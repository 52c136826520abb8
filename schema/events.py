"""Events (the audit trail and the live stream), notifications and the Subscription root."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any

import strawberry
from strawberry.permission import BasePermission
from strawberry.scalars import JSON

from resolvers import events as event_resolvers
from resolvers.ids import encode_id
from schema.enums import ServiceOrderStatus
from schema.permissions import IsStaff
from schema.types import CtxInfo, PageInfo
from services.events import ActorKind as _ActorKind
from services.events import EventRecord
from services.events import EventType as _EventType

strawberry.enum(_EventType, name="OrderEventType", description="What happened to the order.")
strawberry.enum(_ActorKind, name="ActorKind", description="Who caused an event.")
STAFF: list[type[BasePermission]] = [IsStaff]


@strawberry.type(description="Who caused an event.")
class EventActor:
    kind: _ActorKind
    name: str | None
    staff_user_id: strawberry.ID | None


@strawberry.type(
    description="One committed change to an order. `sequence` counts per order and "
    "`accountSequence` per shop, both without gaps; pass the last one you saw as `after` "
    "to resume."
)
class OrderEvent:
    id: strawberry.ID
    order_id: strawberry.ID
    order_number: str
    sequence: int
    account_sequence: int
    type: _EventType
    staff_only: bool
    status: ServiceOrderStatus = strawberry.field(description="The order's status after the event.")
    at: datetime
    actor: EventActor
    data: JSON = strawberry.field(
        description="Type-specific details (money in minor units), e.g. STATUS_CHANGED: "
        "{from, to, note}; PART_ADDED: {part_id, name, quantity, unit_cost, currency}."
    )

    @classmethod
    def of(cls, record: EventRecord) -> OrderEvent:
        """Built once per event and shared by every subscriber that receives it."""
        cached: OrderEvent | None = record.__dict__.get("_graphql")
        if cached is not None:
            return cached
        payload = dict(record.payload)
        number = str(payload.pop("number", ""))
        status = payload.pop("status", None)
        event = cls(
            id=strawberry.ID(encode_id("OrderEvent", record.id)),
            order_id=strawberry.ID(encode_id("ServiceOrder", record.order_id)),
            order_number=number,
            sequence=record.order_seq,
            account_sequence=record.account_seq,
            type=_EventType(record.type),
            staff_only=record.staff_only,
            status=ServiceOrderStatus(status),
            at=record.created_at,
            actor=EventActor(
                kind=_ActorKind(record.actor_kind),
                name=record.actor_name,
                staff_user_id=strawberry.ID(encode_id("StaffUser", record.actor_id))
                if record.actor_id
                else None,
            ),
            data=payload,  # type: ignore[arg-type]
        )
        object.__setattr__(record, "_graphql", event)
        return event


@strawberry.type
class OrderEventEdge:
    cursor: str
    node: OrderEvent


@strawberry.type(description="Events in sequence order; the cursor is the sequence number.")
class OrderEventConnection:
    edges: list[OrderEventEdge]
    nodes: list[OrderEvent]
    page_info: PageInfo

    @classmethod
    def build(
        cls, records: list[EventRecord], first: int | None, *, per_order: bool, after: int | None
    ) -> OrderEventConnection:
        size = first or event_resolvers.DEFAULT_EVENTS_PAGE
        page = records[:size]
        nodes = [OrderEvent.of(r) for r in page]
        seq = (lambda e: e.sequence) if per_order else (lambda e: e.account_sequence)
        edges = [OrderEventEdge(cursor=str(seq(n)), node=n) for n in nodes]
        return cls(
            edges=edges,
            nodes=nodes,
            page_info=PageInfo(
                has_next_page=len(records) > size,
                has_previous_page=bool(after),
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )


@strawberry.type(description="An event that needs the viewer's attention.")
class Notification:
    id: strawberry.ID
    read_at: datetime | None
    event: OrderEvent

    @strawberry.field
    def is_read(self) -> bool:
        return self.read_at is not None


@strawberry.type
class NotificationEdge:
    cursor: str
    node: Notification


@strawberry.type(description="Newest first; the cursor is the event's account sequence.")
class NotificationConnection:
    edges: list[NotificationEdge]
    nodes: list[Notification]
    page_info: PageInfo


def notification_of(
    notification_id: int | None, record: EventRecord, read_at: Any = None
) -> Notification:
    return Notification(
        id=strawberry.ID(encode_id("Notification", notification_id or 0)),
        read_at=read_at,
        event=OrderEvent.of(record),
    )


@strawberry.type
class Subscription:
    @strawberry.subscription(
        permission_classes=STAFF,
        description="Every event of one order, live. With `after`, first everything after "
        "that sequence, then live: each event exactly once, in order.",
    )
    async def service_order_events(
        self, info: CtxInfo, id: strawberry.ID, after: int | None = None
    ) -> AsyncGenerator[OrderEvent, None]:
        async for record in event_resolvers.order_event_stream(info.context, str(id), after):
            yield OrderEvent.of(record)

    @strawberry.subscription(
        permission_classes=STAFF,
        description="The viewer's notifications, live (new orders, status changes by "
        "others, assignments to them). Resume with the last accountSequence seen as `after`.",
    )
    async def staff_notifications(
        self, info: CtxInfo, after: int | None = None
    ) -> AsyncGenerator[Notification, None]:
        user_id = info.context.actor.user_id  # type: ignore[union-attr]
        async for record in event_resolvers.notification_stream(info.context, after):
            yield notification_of(record.recipients.get(user_id), record)
