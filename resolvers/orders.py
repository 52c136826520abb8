"""Resolvers for service orders, clients and parts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import strawberry
from graphql import GraphQLError

from db.models import InternalNote, ServiceOrder
from db.queries import DEFAULT_PAGE, MAX_PAGE, Page
from resolvers import run
from resolvers.context import Context
from resolvers.ids import decode_cursor, decode_id
from services import clients as client_service
from services import orders as order_service
from services.clients import ClientData
from services.errors import DomainError, not_found
from services.orders import DeviceData, OrderFilter
from services.policy import Actor
from services.statuses import OrderStatus

Result = tuple[Any, list[DomainError]]


def actor_of(ctx: Context) -> Actor:
    assert ctx.actor is not None, "permission classes guarantee an authenticated viewer"
    return ctx.actor


def given(obj: Any, *names: str) -> dict[str, Any]:
    """The fields of a strawberry input that the client actually sent (UNSET left out)."""
    if obj is None or obj is strawberry.UNSET:
        return {}
    return {n: getattr(obj, n) for n in names if getattr(obj, n) is not strawberry.UNSET}


def page_args(first: int | None, after: str | None) -> tuple[int, int | None]:
    size = DEFAULT_PAGE if first is None else first
    if not 1 <= size <= MAX_PAGE:
        raise GraphQLError(
            f"`first` must be between 1 and {MAX_PAGE}.", extensions={"code": "INVALID_INPUT"}
        )
    try:
        return size, decode_cursor(after)
    except ValueError:
        raise GraphQLError(
            "`after` is not a valid cursor.", extensions={"code": "INVALID_INPUT"}
        ) from None


def order_pk(global_id: Any, field: str = "id") -> int:
    """Decode an order ID; anything unusable is NOT_FOUND, exactly like another shop's order."""
    pk = decode_id(str(global_id), "ServiceOrder")
    if pk is None:
        raise not_found("Service order", [field])
    return pk


def decode_or_not_found(global_id: Any, type_name: str, field: str, what: str) -> int:
    pk = decode_id(str(global_id), type_name)
    if pk is None:
        raise not_found(what, [field])
    return pk


# --- queries ------------------------------------------------------------------------------


async def get_order(ctx: Context, global_id: str) -> ServiceOrder | None:
    pk = decode_id(global_id, "ServiceOrder")
    if pk is None:
        return None
    async with ctx.reading() as session:
        return await order_service.find_order(session, actor_of(ctx), pk)


async def get_order_by_number(ctx: Context, number: str) -> ServiceOrder | None:
    async with ctx.reading() as session:
        return await order_service.find_order_by_number(session, actor_of(ctx), number)


async def list_orders(
    ctx: Context, flt: Mapping[str, Any], first: int | None, after: str | None
) -> Page[ServiceOrder]:
    size, after_pk = page_args(first, after)
    assigned = flt.get("assigned_to")
    assigned_pk = decode_id(str(assigned), "StaffUser") if assigned else None
    if assigned and assigned_pk is None:
        assigned_pk = -1  # matches nothing, like an id of another shop
    client = flt.get("client_id")
    client_pk = decode_id(str(client), "Client") if client else None
    if client and client_pk is None:
        client_pk = -1
    service_filter = OrderFilter(
        statuses=[OrderStatus(s.value) for s in flt.get("statuses") or []] or None,
        created_from=flt.get("created_from"),
        created_to=flt.get("created_to"),
        search=flt.get("search"),
        assigned_to=assigned_pk,
        client_id=client_pk,
    )
    async with ctx.reading() as session:
        return await order_service.list_orders(
            session, actor_of(ctx), service_filter, first=size, after=after_pk
        )


async def client_orders(
    ctx: Context, client_pk: int, *, first: int | None, after: str | None
) -> Page[ServiceOrder]:
    size, after_pk = page_args(first, after)
    async with ctx.reading() as session:
        return await order_service.list_orders(
            session, actor_of(ctx), OrderFilter(client_id=client_pk), first=size, after=after_pk
        )


async def list_clients(
    ctx: Context, search: str | None, first: int | None, after: str | None
) -> Page[Any]:
    size, after_pk = page_args(first, after)
    async with ctx.reading() as session:
        return await client_service.list_clients(
            session, actor_of(ctx), search=search, first=size, after=after_pk
        )


def available_transitions(ctx: Context, order: ServiceOrder) -> list[OrderStatus]:
    return order_service.available_transitions(order, actor_of(ctx))


async def device_history(ctx: Context, order: ServiceOrder) -> list[ServiceOrder]:
    async with ctx.reading() as session:
        return await order_service.device_history(session, actor_of(ctx), order)


# --- mutations ----------------------------------------------------------------------------

DEVICE_FIELDS = (
    "brand",
    "model",
    "imei",
    "serial_number",
    "problem_reported",
    "accessories",
    "condition_notes",
)


async def create_order(ctx: Context, data: Any) -> Result:
    actor = actor_of(ctx)
    client_pk: int | None = None
    if data.client_id:
        client_pk = decode_id(str(data.client_id), "Client")
        if client_pk is None:
            return None, [not_found("Client", ["clientId"])]
    assignee_pk: int | None = None
    if data.assigned_to_id:
        assignee_pk = decode_id(str(data.assigned_to_id), "StaffUser")
        if assignee_pk is None:
            return None, [not_found("Staff user", ["assignedToId"])]
    client = ClientData(**given(data.client, "name", "email", "phone")) if data.client else None
    device = DeviceData(**given(data.device, *DEVICE_FIELDS))

    async def call(session: Any) -> Any:
        return await order_service.create_order(
            session=session,
            actor=actor,
            client_id=client_pk,
            client=client,
            device=device,
            promised_at=data.promised_at,
            assigned_to_id=assignee_pk,
            idempotency_key=data.idempotency_key,
        )

    return await run.write(ctx, call)


async def update_order(ctx: Context, data: Any) -> Result:
    return await run.write(
        ctx,
        lambda session: order_service.update_order(
            session=session,
            actor=actor_of(ctx),
            order_id=order_pk(data.id),
            client=given(data.client, "name", "email", "phone"),
            device=given(data.device, *DEVICE_FIELDS),
            changes=given(data, "promised_at"),
            expected_version=data.expected_version,
        ),
    )


async def set_diagnosis(ctx: Context, data: Any) -> Result:
    changes = given(
        data, "diagnosis", "estimated_cost", "labour_cost", "final_cost", "warranty_days"
    )
    return await run.write(
        ctx,
        lambda session: order_service.set_diagnosis(
            session=session,
            actor=actor_of(ctx),
            order_id=order_pk(data.id),
            changes=changes,
            expected_version=data.expected_version,
        ),
    )


async def transition_order(ctx: Context, data: Any) -> Result:
    return await run.write(
        ctx,
        lambda session: order_service.transition_order(
            session=session,
            actor=actor_of(ctx),
            order_id=order_pk(data.id),
            to_status=OrderStatus(data.to.value),
            note=data.note,
            expected_version=data.expected_version,
        ),
    )


async def assign_order(ctx: Context, data: Any) -> Result:
    return await run.write(
        ctx,
        lambda session: order_service.assign_order(
            session=session,
            actor=actor_of(ctx),
            order_id=order_pk(data.id),
            assignee_id=decode_or_not_found(
                data.assignee_id, "StaffUser", "assigneeId", "Staff user"
            )
            if data.assignee_id
            else None,
            expected_version=data.expected_version,
        ),
    )


async def add_part(ctx: Context, data: Any) -> Result:
    return await run.write(
        ctx,
        lambda session: order_service.add_part(
            session=session,
            actor=actor_of(ctx),
            order_id=order_pk(data.order_id, "orderId"),
            name=data.name,
            quantity=data.quantity,
            unit_cost=data.unit_cost,
            expected_version=data.expected_version,
        ),
    )


async def update_part(ctx: Context, data: Any) -> Result:
    return await run.write(
        ctx,
        lambda session: order_service.update_part(
            session=session,
            actor=actor_of(ctx),
            part_id=decode_or_not_found(data.id, "PartLine", "id", "Part line"),
            changes=given(data, "name", "quantity", "unit_cost"),
            expected_version=data.expected_version,
        ),
    )


async def remove_part(ctx: Context, data: Any) -> Result:
    return await run.write(
        ctx,
        lambda session: order_service.remove_part(
            session=session,
            actor=actor_of(ctx),
            part_id=decode_or_not_found(data.id, "PartLine", "id", "Part line"),
            expected_version=data.expected_version,
        ),
    )


async def add_note(
    ctx: Context, data: Any
) -> tuple[tuple[ServiceOrder, InternalNote] | None, list[DomainError]]:
    async def call(session: Any) -> tuple[ServiceOrder, InternalNote]:
        actor = actor_of(ctx)
        order_id = order_pk(data.order_id, "orderId")
        note = await order_service.add_internal_note(
            session=session, actor=actor, order_id=order_id, body=data.body
        )
        return await order_service.get_order(session, actor, order_id), note

    return await run.write(ctx, call)
