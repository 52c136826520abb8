"""Resolvers for the audit trail, notifications and the staff subscriptions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from graphql import GraphQLError

from db.queries import MAX_PAGE
from resolvers import run
from resolvers.context import Context
from resolvers.ids import decode_id
from resolvers.orders import actor_of
from services import events as event_service
from services import orders as order_service
from services.errors import DomainError, ErrorCode, not_found
from services.events import EventRecord, NotificationRecord
from subscriptions.access import AccessEnded

DEFAULT_EVENTS_PAGE = 50


def _size(first: int | None, default: int = DEFAULT_EVENTS_PAGE) -> int:
    size = default if first is None else first
    if not 1 <= size <= MAX_PAGE:
        raise GraphQLError(
            f"`first` must be between 1 and {MAX_PAGE}.", extensions={"code": "INVALID_INPUT"}
        )
    return size


def _after(after: int | None) -> int | None:
    if after is not None and after < 0:
        raise GraphQLError(
            "`after` is a sequence number (0 or more).", extensions={"code": "INVALID_INPUT"}
        )
    return after


async def order_events(
    ctx: Context, order_id: int, after: int | None, first: int | None
) -> list[EventRecord]:
    actor = actor_of(ctx)
    async with ctx.reading() as session:
        return await event_service.order_events(
            session,
            account_id=actor.account_id,
            order_id=order_id,
            after=_after(after),
            limit=_size(first) + 1,
        )


async def account_events(ctx: Context, after: int | None, first: int | None) -> list[EventRecord]:
    actor = actor_of(ctx)
    async with ctx.reading() as session:
        return await event_service.account_events(
            session, account_id=actor.account_id, after=_after(after), limit=_size(first) + 1
        )


async def notifications(
    ctx: Context, unread_only: bool, first: int | None, before: int | None
) -> list[NotificationRecord]:
    async with ctx.reading() as session:
        return await event_service.notifications(
            session,
            actor=actor_of(ctx),
            unread_only=unread_only,
            after_seq=None,
            before_seq=before,
            limit=_size(first, 20) + 1,
            newest_first=True,
        )


async def unread_count(ctx: Context) -> int:
    async with ctx.reading() as session:
        return await event_service.unread_count(session, actor=actor_of(ctx))


async def mark_read(
    ctx: Context, ids: list[Any] | None, all_: bool
) -> tuple[int | None, list[DomainError]]:
    pks: list[int] = []
    for gid in ids or []:
        pk = decode_id(str(gid), "Notification")
        if pk is None:
            return None, [not_found("Notification", ["ids"])]
        pks.append(pk)
    if not all_ and not pks:
        return None, [
            DomainError(ErrorCode.REQUIRED, "Give notification ids or all: true.", ["ids"])
        ]
    actor = actor_of(ctx)

    async def call(session: Any) -> int:
        await event_service.mark_read(session, actor=actor, notification_ids=pks, all_=all_)
        return await event_service.unread_count(session, actor=actor)

    return await run.write(ctx, call)


# --- subscriptions ------------------------------------------------------------------------


def _access(ctx: Context) -> Any:
    assert ctx.realtime is not None and ctx.token is not None
    return ctx.realtime.staff_access(
        actor=actor_of(ctx), token=ctx.token, expires_at=ctx.token_expires_at
    )


async def _guard(stream: AsyncIterator[EventRecord]) -> AsyncIterator[EventRecord]:
    try:
        async for record in stream:
            yield record
    except AccessEnded as ended:
        raise GraphQLError(ended.message, extensions={"code": ended.code}) from None


async def order_event_stream(
    ctx: Context, global_id: str, after: int | None
) -> AsyncIterator[EventRecord]:
    actor = actor_of(ctx)
    pk = decode_id(global_id, "ServiceOrder")
    async with ctx.reading() as session:
        order = await order_service.find_order(session, actor, pk) if pk is not None else None
    if order is None:
        raise GraphQLError("Service order not found.", extensions={"code": "NOT_FOUND"})
    assert ctx.realtime is not None
    stream = ctx.realtime.order_events(
        account_id=actor.account_id,
        order_id=order.id,
        access=_access(ctx),
        after=_after(after),
        include_staff_only=True,
    )
    async for record in _guard(stream):
        yield record


async def notification_stream(ctx: Context, after: int | None) -> AsyncIterator[EventRecord]:
    assert ctx.realtime is not None
    stream = ctx.realtime.staff_notifications(
        actor=actor_of(ctx), access=_access(ctx), after=_after(after)
    )
    async for record in _guard(stream):
        yield record
