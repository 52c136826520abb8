"""Resolvers for share links (staff) and the public tracking API (token holders)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any, TypeVar

from graphql import GraphQLError
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Client
from resolvers import run
from resolvers.context import Context
from resolvers.ids import decode_id
from resolvers.orders import actor_of, order_pk, page_args
from services import sharing
from services.errors import DomainError, ErrorCode, not_found
from services.events import EventRecord
from services.ratelimit import SlidingWindow
from services.sharing import Decision, Permission
from subscriptions.access import AccessEnded, StreamAccess

T = TypeVar("T")

# bad tokens from one address before it is refused for a while
BAD_TOKENS_PER_WINDOW = 20
BAD_TOKEN_WINDOW_SECONDS = 600
bad_tokens = SlidingWindow(limit=BAD_TOKENS_PER_WINDOW, window=BAD_TOKEN_WINDOW_SECONDS)

RATE_LIMITED = DomainError(
    ErrorCode.RATE_LIMITED, "Too many invalid links from your address. Try again later.", ["token"]
)


def _secret(ctx: Context) -> str:
    return ctx.settings.secret_key


def link_url(ctx: Context, link: Any) -> str:
    return sharing.url_for(link, _secret(ctx), ctx.settings.public_base_url)


async def _as_holder(ctx: Context, call: Callable[[], Awaitable[T]]) -> T:
    """Run a token holder's call: refuse a flooding address; count unknown tokens."""
    if bad_tokens.blocked(ctx.client_ip):
        raise RATE_LIMITED
    try:
        return await call()
    except DomainError as exc:
        if exc.code is ErrorCode.NOT_FOUND and exc.field == ["token"]:
            bad_tokens.hit(ctx.client_ip)
        raise


def public_error(exc: DomainError) -> GraphQLError:
    return GraphQLError(exc.message, extensions={"code": exc.code.value})


# --- staff --------------------------------------------------------------------------------


def _permissions(values: list[Any] | None) -> set[Permission] | None:
    return None if values is None else {Permission(v.value) for v in values}


async def create_link(ctx: Context, data: Any) -> tuple[Any, list[DomainError]]:
    return await run.write(
        ctx,
        lambda session: sharing.create_link(
            session=session,
            actor=actor_of(ctx),
            order_id=order_pk(data.order_id, "orderId"),
            permissions=_permissions(data.permissions),
            validity_days=data.validity_days,
        ),
    )


async def revoke_link(ctx: Context, global_id: Any) -> tuple[Any, list[DomainError]]:
    pk = decode_id(str(global_id), "ShareLink")
    if pk is None:
        return None, [not_found("Share link")]
    link, errors = await run.write(
        ctx, lambda session: sharing.revoke_link(session=session, actor=actor_of(ctx), link_id=pk)
    )
    if link is not None and ctx.realtime is not None:
        await ctx.realtime.revoke(
            f"share:{link.id}", "LINK_REVOKED", "This link was withdrawn by the shop."
        )
    return link, errors


async def order_links(ctx: Context, order_id: int) -> list[Any]:
    async with ctx.reading() as session:
        return await sharing.order_links(session, actor_of(ctx), order_id)


async def share_message(ctx: Context, link: Any) -> sharing.ShareMessage:
    actor = actor_of(ctx)
    async with ctx.reading() as session:
        from services.orders import get_order

        order = await get_order(session, actor, link.order_id)
        client = await session.get(Client, order.client_id)
    assert ctx.account is not None and client is not None
    return sharing.share_message(
        url=link_url(ctx, link), order=order, client=client, account=ctx.account
    )


async def update_share_defaults(ctx: Context, data: Any) -> tuple[Any, list[DomainError]]:
    return await run.write(
        ctx,
        lambda session: sharing.update_share_defaults(
            session=session,
            actor=actor_of(ctx),
            permissions=_permissions(data.share_permissions),
            validity_days=data.share_validity_days,
        ),
    )


async def staff_comment(ctx: Context, data: Any) -> tuple[Any, list[DomainError]]:
    return await run.write(
        ctx,
        lambda session: sharing.staff_comment(
            session=session,
            actor=actor_of(ctx),
            order_id=order_pk(data.order_id, "orderId"),
            body=data.body,
        ),
    )


async def ratings_summary(ctx: Context) -> sharing.RatingsSummary:
    async with ctx.reading() as session:
        return await sharing.ratings_summary(session, actor_of(ctx))


async def list_ratings(
    ctx: Context, first: int | None, after: str | None, with_comment_only: bool
) -> Any:
    size, after_pk = page_args(first, after)
    async with ctx.reading() as session:
        return await sharing.list_ratings(
            session, actor_of(ctx), first=size, after=after_pk, with_comment_only=with_comment_only
        )


# --- token holders ------------------------------------------------------------------------


async def tracking(ctx: Context, token: str) -> sharing.TrackingView:
    async def call() -> sharing.TrackingView:
        async with ctx.reading() as session:
            access = await sharing.resolve(session, token=token, secret=_secret(ctx))
            view = await sharing.tracking_view(session, access)
        if (
            access.link.last_access_at is None
            or sharing.utcnow() - access.link.last_access_at > sharing.ACCESS_TOUCH_INTERVAL
        ):
            async with ctx.db.write_session() as session:
                await sharing.touch_access(session, access.link)
        return view

    try:
        return await _as_holder(ctx, call)
    except DomainError as exc:
        raise public_error(exc) from None


async def _holder_write(
    ctx: Context, token: str, call: Callable[[AsyncSession], Awaitable[T]]
) -> tuple[T | None, list[DomainError]]:
    async def attempt() -> tuple[T | None, list[DomainError]]:
        result, errors = await run.write(ctx, call)
        for error in errors:
            if error.code is ErrorCode.NOT_FOUND and error.field == ["token"]:
                raise error
        return result, errors

    try:
        return await _as_holder(ctx, attempt)
    except DomainError as exc:
        return None, [exc]


async def record_view(ctx: Context, token: str) -> tuple[Any, list[DomainError]]:
    return await _holder_write(
        ctx, token, lambda session: sharing.record_view(session, token=token, secret=_secret(ctx))
    )


async def decide(
    ctx: Context,
    token: str,
    decision: Decision,
    reason: str | None,
    expected_estimate: Decimal | None = None,
) -> tuple[Any, list[DomainError]]:
    return await _holder_write(
        ctx,
        token,
        lambda session: sharing.decide(
            session=session,
            token=token,
            secret=_secret(ctx),
            decision=decision,
            reason=reason,
            expected_estimate=expected_estimate,
        ),
    )


async def customer_comment(ctx: Context, token: str, body: str) -> tuple[Any, list[DomainError]]:
    return await _holder_write(
        ctx,
        token,
        lambda session: sharing.customer_comment(
            session=session, token=token, secret=_secret(ctx), body=body
        ),
    )


async def rate(
    ctx: Context, token: str, stars: int, comment: str | None
) -> tuple[Any, list[DomainError]]:
    return await _holder_write(
        ctx,
        token,
        lambda session: sharing.rate(
            session=session, token=token, secret=_secret(ctx), stars=stars, comment=comment
        ),
    )


async def share_link_is_valid(ctx: Context, token: str) -> bool:
    async def call() -> None:
        async with ctx.reading() as session:
            await sharing.resolve(session, token=token, secret=_secret(ctx))

    try:
        await _as_holder(ctx, call)
    except DomainError:
        return False
    return True


async def tracking_events(
    ctx: Context, token: str, after: int | None
) -> AsyncIterator[EventRecord]:
    """The public, resumable stream of one order (never staff-only events)."""
    secret = _secret(ctx)

    async def resolve() -> sharing.LinkAccess:
        async with ctx.reading() as session:
            return await sharing.resolve(session, token=token, secret=secret)

    try:
        access = await _as_holder(ctx, resolve)
    except DomainError as exc:
        raise public_error(exc) from None
    if after is not None and after < 0:
        raise GraphQLError(
            "`after` is a sequence number (0 or more).", extensions={"code": "INVALID_INPUT"}
        )

    async def revalidate() -> AccessEnded | None:
        try:
            await resolve()
        except DomainError as exc:
            return AccessEnded(exc.code.value, exc.message)
        return None

    stream_access = StreamAccess(
        keys=(f"share:{access.link.id}",), expires_at=access.link.expires_at, revalidate=revalidate
    )
    assert ctx.realtime is not None
    stream = ctx.realtime.order_events(
        account_id=access.order.account_id,
        order_id=access.order.id,
        access=stream_access,
        after=after,
        include_staff_only=False,
    )
    try:
        async for record in stream:
            yield record
    except AccessEnded as ended:
        code = "LINK_EXPIRED" if ended.code == "TOKEN_EXPIRED" else ended.code
        message = (
            "This link has expired: access is no longer available."
            if code == "LINK_EXPIRED"
            else ended.message
        )
        raise GraphQLError(message, extensions={"code": code}) from None
