from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.permission import BasePermission

from resolvers import auth as auth_resolvers
from resolvers import events as event_resolvers
from resolvers import nodes as node_resolvers
from resolvers import orders as order_resolvers
from schema.events import (
    NotificationConnection,
    NotificationEdge,
    OrderEventConnection,
    notification_of,
)
from schema.inputs import ServiceOrderFilter
from schema.permissions import IsStaff
from schema.types import (
    STATUS_INFOS,
    Account,
    Client,
    ClientConnection,
    Connection,
    CtxInfo,
    InternalNote,
    Me,
    Node,
    PageInfo,
    PartLine,
    ServiceOrder,
    ServiceOrderConnection,
    ServiceOrderStatusInfo,
    StaffUser,
)

STAFF: list[type[BasePermission]] = [IsStaff]


def _me(info: CtxInfo) -> Me:
    ctx = info.context
    assert ctx.user is not None and ctx.account is not None and ctx.actor is not None
    base = StaffUser.from_model(ctx.user)
    return Me(
        **{
            k: getattr(base, k)
            for k in ("id", "email", "name", "role", "is_active", "created_at", "deactivated_at")
        },
        account=Account.from_model(ctx.account),
        permissions=auth_resolvers.permissions(ctx.actor.role),
    )


@strawberry.type
class Query:
    @strawberry.field(permission_classes=STAFF, description="The signed-in staff member.")
    def me(self, info: CtxInfo) -> Me:
        return _me(info)

    @strawberry.field(permission_classes=STAFF, description="Any object by its global ID.")
    async def node(self, info: CtxInfo, id: strawberry.ID) -> Node | None:
        found = await node_resolvers.load_node(info.context, str(id))
        if found is None:
            return None
        type_name, row = found
        currency = info.context.actor.currency  # type: ignore[union-attr]
        converters = {
            "ServiceOrder": lambda r: ServiceOrder.from_model(r, currency),
            "Client": Client.from_model,
            "StaffUser": StaffUser.from_model,
            "PartLine": lambda r: PartLine.from_model(r, currency),
            "InternalNote": InternalNote.from_model,
            "Account": Account.from_model,
        }
        convert: Any = converters[type_name]
        return convert(row)

    @strawberry.field(permission_classes=STAFF)
    async def service_order(self, info: CtxInfo, id: strawberry.ID) -> ServiceOrder | None:
        row = await order_resolvers.get_order(info.context, str(id))
        return None if row is None else ServiceOrder.builder(info.context)(row)

    @strawberry.field(permission_classes=STAFF, description='By number, e.g. "OS-2026-0042".')
    async def service_order_by_number(self, info: CtxInfo, number: str) -> ServiceOrder | None:
        row = await order_resolvers.get_order_by_number(info.context, number)
        return None if row is None else ServiceOrder.builder(info.context)(row)

    @strawberry.field(
        permission_classes=STAFF, description="Newest first. `first` is 1 to 100 (default 20)."
    )
    async def service_orders(
        self,
        info: CtxInfo,
        filter: ServiceOrderFilter | None = None,
        first: int | None = 20,
        after: str | None = None,
    ) -> ServiceOrderConnection:
        flt = vars(filter) if filter is not None else {}
        page = await order_resolvers.list_orders(info.context, flt, first, after)
        return Connection.build(info.context, page, ServiceOrder.builder(info.context))

    @strawberry.field(permission_classes=STAFF, description="Search by name, phone or email.")
    async def clients(
        self,
        info: CtxInfo,
        search: str | None = None,
        first: int | None = 20,
        after: str | None = None,
    ) -> ClientConnection:
        page = await order_resolvers.list_clients(info.context, search, first, after)
        return Connection.build(info.context, page, Client.from_model)

    @strawberry.field(permission_classes=STAFF, description="The shop's staff, by name.")
    async def staff_users(self, info: CtxInfo, include_inactive: bool = False) -> list[StaffUser]:
        rows = await auth_resolvers.staff_users(info.context, include_inactive)
        return [StaffUser.from_model(r) for r in rows]

    @strawberry.field(
        permission_classes=STAFF,
        description="The shop's audit trail: every order event after account sequence "
        "`after`, oldest first (`first` 1 to 100, default 50).",
    )
    async def events(
        self, info: CtxInfo, after: int | None = None, first: int | None = None
    ) -> OrderEventConnection:
        records = await event_resolvers.account_events(info.context, after, first)
        return OrderEventConnection.build(records, first, per_order=False, after=after)

    @strawberry.field(
        permission_classes=STAFF,
        description="The viewer's notifications, newest first. `after` is the cursor "
        "(account sequence) of the last one of the previous page.",
    )
    async def notifications(
        self,
        info: CtxInfo,
        unread_only: bool = False,
        first: int | None = 20,
        after: str | None = None,
    ) -> NotificationConnection:
        before = None
        if after is not None:
            if not after.isdigit():
                raise GraphQLError(
                    "`after` is not a valid cursor.", extensions={"code": "INVALID_INPUT"}
                )
            before = int(after)
        rows = await event_resolvers.notifications(info.context, unread_only, first, before)
        size = first or 20
        page = rows[:size]
        edges = [
            NotificationEdge(
                cursor=str(n.event.account_seq), node=notification_of(n.id, n.event, n.read_at)
            )
            for n in page
        ]
        return NotificationConnection(
            edges=edges,
            nodes=[e.node for e in edges],
            page_info=PageInfo(
                has_next_page=len(rows) > size,
                has_previous_page=after is not None,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )

    @strawberry.field(permission_classes=STAFF)
    async def unread_notification_count(self, info: CtxInfo) -> int:
        return await event_resolvers.unread_count(info.context)

    @strawberry.field(description="Every status with its label, colour and description. Public.")
    def service_order_statuses(self) -> list[ServiceOrderStatusInfo]:
        return list(STATUS_INFOS.values())
