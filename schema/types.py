"""Object types. Plain fields are copied from the row when the object is built (fast, sync);
related objects are loaded through the request's DataLoaders."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Generic, TypeVar

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry import Private
from strawberry.types import Info

from db import models
from resolvers import orders as order_resolvers
from resolvers.context import Context
from resolvers.ids import encode_cursor, encode_id
from schema.enums import ErrorCode, ServiceOrderStatus, StaffRole
from services import money
from services.errors import DomainError
from services.orders import warranty_expires_at
from services.statuses import STATUS_INFO, TRANSITIONS
from services.statuses import OrderStatus as _OrderStatus

if TYPE_CHECKING:
    from schema.events import OrderEventConnection
    from schema.sharing import ShareLink

CtxInfo = Info[Context, None]


@strawberry.interface(description="An object with a global, opaque ID.")
class Node:
    id: strawberry.ID


@strawberry.type(description="An amount of money: `amount` is exact (never a float).")
class Money:
    amount: Decimal
    currency: str

    @classmethod
    def of(cls, minor: int, currency: str) -> Money:
        return cls(amount=money.to_decimal(minor, currency), currency=currency)

    @classmethod
    def maybe(cls, minor: int | None, currency: str) -> Money | None:
        return None if minor is None else cls.of(minor, currency)


@strawberry.type(description="An expected failure of a mutation; nothing was changed.")
class UserError:
    field: list[str] | None = strawberry.field(
        description='Path to the input field at fault, e.g. ["device", "imei"].'
    )
    message: str
    code: ErrorCode

    @classmethod
    def list(cls, errors: list[DomainError]) -> list[UserError]:
        return [cls(field=e.field, message=e.message, code=e.code) for e in errors]


@strawberry.type(description="A status of the workflow, as shown to staff and customers.")
class ServiceOrderStatusInfo:
    status: ServiceOrderStatus
    label: str
    color: str
    description: str
    customer_description: str = strawberry.field(description="The same, addressed to the customer.")
    is_closed: bool
    next_statuses: list[ServiceOrderStatus] = strawberry.field(
        description="Statuses the table allows from this one (roles and guards aside)."
    )

    @classmethod
    def of(cls, status: _OrderStatus) -> ServiceOrderStatusInfo:
        info = STATUS_INFO[status]
        return cls(
            status=status,
            label=info.label,
            color=info.color,
            description=info.description,
            customer_description=info.customer_description,
            is_closed=not TRANSITIONS[status],
            next_statuses=list(TRANSITIONS[status]),
        )


STATUS_INFOS = {s: ServiceOrderStatusInfo.of(s) for s in _OrderStatus}


@strawberry.type(description="The shop.")
class Account(Node):
    name: str
    email: str | None
    phone: str | None
    address: str | None
    website: str | None
    time_zone: str
    currency: str
    country: str
    share_default_validity_days: int
    share_default_permissions: list[str]

    @classmethod
    def from_model(cls, m: models.Account) -> Account:
        return cls(
            id=strawberry.ID(encode_id("Account", m.id)),
            name=m.name,
            email=m.email,
            phone=m.phone,
            address=m.address,
            website=m.website,
            time_zone=m.time_zone,
            currency=m.currency,
            country=m.country,
            share_default_validity_days=m.share_default_validity_days,
            share_default_permissions=[p for p in m.share_default_permissions.split(",") if p],
        )


@strawberry.type(description="A member of the shop's staff.")
class StaffUser(Node):
    email: str
    name: str
    role: StaffRole
    is_active: bool
    created_at: datetime
    deactivated_at: datetime | None

    @classmethod
    def from_model(cls, m: models.StaffUser) -> StaffUser:
        return cls(
            id=strawberry.ID(encode_id("StaffUser", m.id)),
            email=m.email,
            name=m.name,
            role=StaffRole(m.role),
            is_active=m.is_active,
            created_at=m.created_at,
            deactivated_at=m.deactivated_at,
        )

    @classmethod
    def maybe(cls, m: models.StaffUser | None) -> StaffUser | None:
        return None if m is None else cls.from_model(m)


@strawberry.type(description="The viewer: the signed-in staff member and their shop.")
class Me(StaffUser):
    account: Account
    permissions: list[str] = strawberry.field(
        description="The actions the viewer's role allows (see the README's permission matrix)."
    )


@strawberry.type(description="A customer of the shop.")
class Client(Node):
    name: str
    email: str | None
    phone: str | None = strawberry.field(description="E.164, e.g. +15551234567.")
    created_at: datetime
    _pk: Private[int]

    @classmethod
    def from_model(cls, m: models.Client) -> Client:
        return cls(
            id=strawberry.ID(encode_id("Client", m.id)),
            name=m.name,
            email=m.email,
            phone=m.phone,
            created_at=m.created_at,
            _pk=m.id,
        )

    @strawberry.field(description="This client's orders, newest first.")
    async def service_orders(
        self, info: CtxInfo, first: int = 20, after: str | None = None
    ) -> ServiceOrderConnection:
        page = await order_resolvers.client_orders(info.context, self._pk, first=first, after=after)
        return ServiceOrderConnection.build(info.context, page, ServiceOrder.builder(info.context))


@strawberry.type(description="The device received with an order.")
class Device:
    brand: str | None
    model: str
    imei: str | None
    serial_number: str | None
    problem_reported: str
    accessories: str | None
    condition_notes: str | None


@strawberry.type(description="A part used in a repair.")
class PartLine(Node):
    name: str
    quantity: int
    unit_cost: Money
    line_total: Money = strawberry.field(description="quantity x unit cost")
    created_at: datetime

    @classmethod
    def from_model(cls, m: models.PartLine, currency: str) -> PartLine:
        return cls(
            id=strawberry.ID(encode_id("PartLine", m.id)),
            name=m.name,
            quantity=m.quantity,
            unit_cost=Money.of(m.unit_cost, currency),
            line_total=Money.of(m.quantity * m.unit_cost, currency),
            created_at=m.created_at,
        )


@strawberry.type(description="A staff-only note on an order.")
class InternalNote(Node):
    body: str
    created_at: datetime
    _author_id: Private[int]

    @classmethod
    def from_model(cls, m: models.InternalNote) -> InternalNote:
        return cls(
            id=strawberry.ID(encode_id("InternalNote", m.id)),
            body=m.body,
            created_at=m.created_at,
            _author_id=m.author_id,
        )

    @strawberry.field
    async def author(self, info: CtxInfo) -> StaffUser | None:
        return StaffUser.maybe(await info.context.loaders.staff_user.load(self._author_id))


@strawberry.type(description="One status change of an order.")
class StatusHistoryEntry:
    from_status: ServiceOrderStatus | None = strawberry.field(
        description="null for the entry written when the order was created"
    )
    to_status: ServiceOrderStatus
    note: str | None
    at: datetime
    _actor_id: Private[int | None]

    @classmethod
    def from_model(cls, m: models.StatusHistory) -> StatusHistoryEntry:
        return cls(
            from_status=ServiceOrderStatus(m.from_status) if m.from_status else None,
            to_status=ServiceOrderStatus(m.to_status),
            note=m.note,
            at=m.created_at,
            _actor_id=m.actor_id,
        )

    @classmethod
    def maybe(cls, m: models.StatusHistory | None) -> StatusHistoryEntry | None:
        return None if m is None else cls.from_model(m)

    @strawberry.field(description="Who made the change.")
    async def actor(self, info: CtxInfo) -> StaffUser | None:
        if self._actor_id is None:
            return None
        return StaffUser.maybe(await info.context.loaders.staff_user.load(self._actor_id))


@strawberry.type(description="A repair job, from intake to pickup.")
class ServiceOrder(Node):
    number: str = strawberry.field(description="OS-YYYY-NNNN, unique in the shop, never reused.")
    status: ServiceOrderStatus
    device: Device
    diagnosis: str | None = strawberry.field(description="Customer-visible findings.")
    estimated_cost: Money | None
    labour_cost: Money
    final_cost: Money | None = strawberry.field(
        description="What the customer pays; set to the total on completion if not given."
    )
    warranty_days: int
    warranty_expires_at: datetime | None = strawberry.field(
        description="Completion time + warranty days; null before completion or without warranty."
    )
    promised_at: datetime | None
    completed_at: datetime | None
    version: int = strawberry.field(
        description="Increases with every change; pass it as expectedVersion to detect conflicts."
    )
    created_at: datetime
    updated_at: datetime
    _m: Private[models.ServiceOrder]
    _currency: Private[str]

    @classmethod
    def from_model(cls, m: models.ServiceOrder, currency: str) -> ServiceOrder:
        return cls(
            id=strawberry.ID(encode_id("ServiceOrder", m.id)),
            number=m.number,
            status=ServiceOrderStatus(m.status),
            device=Device(
                brand=m.device_brand,
                model=m.device_model,
                imei=m.device_imei,
                serial_number=m.device_serial_number,
                problem_reported=m.problem_reported,
                accessories=m.accessories,
                condition_notes=m.condition_notes,
            ),
            diagnosis=m.diagnosis,
            estimated_cost=Money.maybe(m.estimated_cost, currency),
            labour_cost=Money.of(m.labour_cost, currency),
            final_cost=Money.maybe(m.final_cost, currency),
            warranty_days=m.warranty_days,
            warranty_expires_at=warranty_expires_at(m),
            promised_at=m.promised_at,
            completed_at=m.completed_at,
            version=m.version,
            created_at=m.created_at,
            updated_at=m.updated_at,
            _m=m,
            _currency=currency,
        )

    @staticmethod
    def builder(ctx: Context):
        assert ctx.actor is not None
        currency = ctx.actor.currency
        return lambda m: ServiceOrder.from_model(m, currency)

    @strawberry.field
    def status_info(self) -> ServiceOrderStatusInfo:
        return STATUS_INFOS[_OrderStatus(self._m.status)]

    @strawberry.field(description="What the viewer may move this order to now (table and role).")
    def available_transitions(self, info: CtxInfo) -> list[ServiceOrderStatus]:
        return order_resolvers.available_transitions(info.context, self._m)

    @strawberry.field
    async def client(self, info: CtxInfo) -> Client:
        row = await info.context.loaders.client.load(self._m.client_id)
        assert row is not None
        return Client.from_model(row)

    @strawberry.field
    async def assigned_to(self, info: CtxInfo) -> StaffUser | None:
        if self._m.assigned_to_id is None:
            return None
        return StaffUser.maybe(await info.context.loaders.staff_user.load(self._m.assigned_to_id))

    @strawberry.field
    async def created_by(self, info: CtxInfo) -> StaffUser | None:
        if self._m.created_by_id is None:
            return None
        return StaffUser.maybe(await info.context.loaders.staff_user.load(self._m.created_by_id))

    async def _parts(self, info: CtxInfo) -> list[models.PartLine]:
        return await info.context.loaders.parts.load(self._m.id)

    @strawberry.field
    async def parts(self, info: CtxInfo) -> list[PartLine]:
        return [PartLine.from_model(p, self._currency) for p in await self._parts(info)]

    @strawberry.field(description="Sum of the part lines.")
    async def parts_total(self, info: CtxInfo) -> Money:
        return Money.of(
            sum(p.quantity * p.unit_cost for p in await self._parts(info)), self._currency
        )

    @strawberry.field(description="Labour + parts.")
    async def total(self, info: CtxInfo) -> Money:
        parts = sum(p.quantity * p.unit_cost for p in await self._parts(info))
        return Money.of(self._m.labour_cost + parts, self._currency)

    @strawberry.field(description="Every status change, oldest first.")
    async def history(self, info: CtxInfo) -> list[StatusHistoryEntry]:
        rows = await info.context.loaders.history.load(self._m.id)
        return [StatusHistoryEntry.from_model(r) for r in rows]

    @strawberry.field(description="The most recent status change.")
    async def latest_history(self, info: CtxInfo) -> StatusHistoryEntry | None:
        return StatusHistoryEntry.maybe(await info.context.loaders.latest_history.load(self._m.id))

    @strawberry.field(description="Staff-only notes, oldest first.")
    async def internal_notes(self, info: CtxInfo) -> list[InternalNote]:
        rows = await info.context.loaders.notes.load(self._m.id)
        return [InternalNote.from_model(r) for r in rows]

    @strawberry.field(
        description="The order's audit trail: events after sequence `after`, oldest first "
        "(`first` 1 to 100, default 50)."
    )
    async def events(
        self, info: CtxInfo, after: int | None = None, first: int | None = None
    ) -> Annotated[OrderEventConnection, strawberry.lazy("schema.events")]:
        from resolvers import events as event_resolvers
        from schema.events import OrderEventConnection

        records = await event_resolvers.order_events(info.context, self._m.id, after, first)
        return OrderEventConnection.build(records, first, per_order=True, after=after)

    @strawberry.field(description="The order's share links, newest first (active and past).")
    async def share_links(
        self, info: CtxInfo
    ) -> list[Annotated[ShareLink, strawberry.lazy("schema.sharing")]]:
        from schema.sharing import order_share_links

        return await order_share_links(info, self)

    @strawberry.field(description="Other orders of this shop for the same IMEI or serial number.")
    async def device_history(self, info: CtxInfo) -> list[ServiceOrder]:
        rows = await order_resolvers.device_history(info.context, self._m)
        return [ServiceOrder.from_model(r, self._currency) for r in rows]


T = TypeVar("T")


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    nodes: list[T]
    page_info: PageInfo
    _count: Private[object]

    @strawberry.field(description="Matching items across all pages (one COUNT query).")
    async def total_count(self, info: CtxInfo) -> int:
        async with info.context.reading() as session:
            return await _count(session, self._count)

    @classmethod
    def build(cls, ctx: Context, page, convert):
        nodes = [convert(item) for item in page.items]
        edges = [
            Edge(cursor=encode_cursor(item.id), node=n)
            for item, n in zip(page.items, nodes, strict=True)
        ]
        return cls(
            edges=edges,
            nodes=nodes,
            page_info=PageInfo(
                has_next_page=page.has_next,
                has_previous_page=page.has_previous,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
            _count=page.count_statement,
        )


async def _count(session: AsyncSession, stmt: object) -> int:
    return int(await session.scalar(stmt) or 0)  # type: ignore[call-overload]


ServiceOrderConnection = Connection[ServiceOrder]
ClientConnection = Connection[Client]
