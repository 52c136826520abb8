"""Resolvers for login, logout, the viewer and staff management."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from db.models import Account, StaffUser
from resolvers import run
from resolvers.context import Context
from resolvers.ids import decode_id
from services import auth as auth_service
from services.errors import DomainError, ErrorCode, not_found
from services.policy import MATRIX
from services.roles import Role


async def authenticate(ctx: Context, authorization: str | None) -> None:
    """Fill ctx.user/account/actor from an `Authorization: Bearer <token>` value."""
    if not authorization:
        return
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return
    token = token.strip()
    async with ctx.db.read_session() as session:
        found = await auth_service.authenticate(session=session, token=token)
    if found is not None:
        ctx.token = token
        ctx.user, ctx.account, ctx.token_expires_at = found
        ctx.actor = auth_service.actor_for(ctx.user, ctx.account)


async def login(ctx: Context, email: str, password: str) -> tuple[Any, list[DomainError]]:
    ttl = timedelta(hours=ctx.settings.token_ttl_hours)
    try:
        async with ctx.db.write_session() as session:
            try:
                return await auth_service.login(
                    session=session, email=email, password=password, ip=ctx.client_ip, ttl=ttl
                ), []
            except DomainError as exc:
                if exc.code is not ErrorCode.INVALID_CREDENTIALS:
                    raise
                failure = exc  # commit the recorded failure, then report it
        return None, [failure]
    except DomainError as exc:
        return None, [exc]


async def logout(ctx: Context) -> bool:
    if ctx.token is None:
        return False
    async with ctx.db.write_session() as session:
        revoked = await auth_service.logout(session=session, token=ctx.token)
    if revoked and ctx.realtime is not None:
        key = f"token:{auth_service.hash_token(ctx.token)}"
        await ctx.realtime.revoke(key, "ACCESS_REVOKED", "You signed out.")
    return revoked


def permissions(role: Role) -> list[str]:
    return [action.name for action, roles in MATRIX.items() if role in roles]


async def staff_users(ctx: Context, include_inactive: bool) -> list[StaffUser]:
    assert ctx.actor is not None
    stmt = select(StaffUser).where(StaffUser.account_id == ctx.actor.account_id)
    if not include_inactive:
        stmt = stmt.where(StaffUser.is_active.is_(True))
    async with ctx.reading() as session:
        return list(await session.scalars(stmt.order_by(StaffUser.name, StaffUser.id)))


async def create_staff_user(ctx: Context, data: Any) -> tuple[Any, list[DomainError]]:
    assert ctx.actor is not None
    actor = ctx.actor
    return await run.write(
        ctx,
        lambda session: auth_service.create_staff_user(
            session=session,
            actor=actor,
            email=data.email,
            name=data.name,
            role=Role(data.role.value),
            password=data.password,
        ),
    )


async def deactivate_staff_user(ctx: Context, data: Any) -> tuple[Any, list[DomainError]]:
    assert ctx.actor is not None
    actor = ctx.actor
    pk = decode_id(str(data.id), "StaffUser")
    if pk is None:
        return None, [not_found("Staff user")]
    user, errors = await run.write(
        ctx,
        lambda session: auth_service.deactivate_staff_user(
            session=session, actor=actor, user_id=pk
        ),
    )
    if user is not None and ctx.realtime is not None:
        await ctx.realtime.revoke(f"staff:{pk}", "ACCESS_REVOKED", "Your account was deactivated.")
    return user, errors


async def load_account(ctx: Context, pk: int) -> Account | None:
    assert ctx.actor is not None
    if pk != ctx.actor.account_id:
        return None
    return ctx.account
