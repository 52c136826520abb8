"""Customer sharing: links, the tracking view, approvals, comments and ratings.

Tokens: a link stores a random 128-bit `nonce`; its token is
``base64url(nonce || HMAC-SHA256(secret, nonce)[:16])``. The database alone does not give a
usable token (the HMAC needs SECRET_KEY), the shop can show the same link again, and a
token is checked with a constant-time comparison. Tokens are never logged.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from urllib.parse import quote

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from db.base import utcnow
from db.models import (
    Account,
    Client,
    OrderComment,
    PartLine,
    Rating,
    ServiceOrder,
    ShareLink,
    StaffUser,
    StatusHistory,
)
from db.queries import Page, keyset_page
from services import money
from services.errors import Collector, DomainError, ErrorCode, not_found
from services.events import EventType, record
from services.orders import RetryableConflict, get_order, warranty_expires_at
from services.policy import Action, Actor, require
from services.statuses import OrderStatus
from services.validation import text

NONCE_BYTES = 16
MAC_BYTES = 16
VALIDITY_CHOICES = (7, 14, 30)
MAX_COMMENT = 2000
MAX_RATING_COMMENT = 500
ACCESS_TOUCH_INTERVAL = timedelta(seconds=60)
COSTS_VISIBLE = frozenset(
    {
        OrderStatus.APPROVED,
        OrderStatus.REPAIRING,
        OrderStatus.TESTING,
        OrderStatus.READY,
        OrderStatus.COMPLETED,
    }
)


class Permission(enum.Enum):
    VIEW = "VIEW"
    APPROVE = "APPROVE"
    COMMENT = "COMMENT"


def encode_permissions(perms: set[Permission]) -> str:
    return ",".join(p.value for p in Permission if p in perms)


def decode_permissions(value: str) -> set[Permission]:
    return {Permission(p) for p in value.split(",") if p}


# --- tokens -------------------------------------------------------------------------------


def _mac(secret: str, nonce: bytes) -> bytes:
    return hmac.new(secret.encode(), b"share-link:" + nonce, hashlib.sha256).digest()[:MAC_BYTES]


def token_for(link: ShareLink, secret: str) -> str:
    nonce = bytes.fromhex(link.nonce)
    return base64.urlsafe_b64encode(nonce + _mac(secret, nonce)).decode().rstrip("=")


def _parse(token: str, secret: str) -> str | None:
    """The nonce (hex) of a well-formed, authentic token, else None."""
    if not token or len(token) > 64:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != NONCE_BYTES + MAC_BYTES:
        return None
    nonce, mac = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
    if not hmac.compare_digest(mac, _mac(secret, nonce)):
        return None
    return nonce.hex()


def url_for(link: ShareLink, secret: str, base_url: str) -> str:
    return f"{base_url.rstrip('/')}/t/{token_for(link, secret)}"


# --- links (staff) ------------------------------------------------------------------------


def is_active(link: ShareLink, now: datetime | None = None) -> bool:
    return link.revoked_at is None and link.expires_at > (now or utcnow())


def _new_link(
    order: ServiceOrder, perms: set[Permission], days: int, actor: Actor | None
) -> ShareLink:
    now = utcnow()
    return ShareLink(
        account_id=order.account_id,
        order_id=order.id,
        nonce=secrets.token_bytes(NONCE_BYTES).hex(),
        permissions=encode_permissions(perms),
        created_by_id=actor.user_id if actor else None,
        created_at=now,
        expires_at=now + timedelta(days=days),
    )


async def create_default_link(
    session: AsyncSession, *, actor: Actor, order: ServiceOrder
) -> ShareLink:
    """The link every order gets at creation, with the shop's default permissions/validity."""
    account = await session.get(Account, order.account_id)
    assert account is not None
    link = _new_link(
        order,
        decode_permissions(account.share_default_permissions),
        account.share_default_validity_days,
        actor,
    )
    session.add(link)
    await session.flush()
    return link


def _check_validity(days: int | None, field: list[str]) -> int:
    if days is None:
        return VALIDITY_CHOICES[0]
    if days not in VALIDITY_CHOICES:
        raise DomainError(
            ErrorCode.INVALID_VALIDITY,
            f"Links are valid for {', '.join(map(str, VALIDITY_CHOICES))} days.",
            field,
        )
    return days


@dataclass(frozen=True)
class LinkResult:
    link: ShareLink
    reused: bool


async def create_link(
    *,
    session: AsyncSession,
    actor: Actor,
    order_id: int,
    permissions: set[Permission] | None,
    validity_days: int | None,
) -> LinkResult:
    """Share an order again: reuse a valid link with the same permissions and validity,
    else make one (a longer validity asked for is never answered with a shorter link)."""
    require(actor, Action.ORDER_UPDATE)
    order = await get_order(session, actor, order_id)
    account = await session.get(Account, actor.account_id)
    assert account is not None
    perms = (
        permissions
        if permissions is not None
        else decode_permissions(account.share_default_permissions)
    )
    if not perms:
        raise DomainError(ErrorCode.INVALID_INPUT, "Give at least one permission.", ["permissions"])
    days = _check_validity(
        validity_days if validity_days is not None else account.share_default_validity_days,
        ["validityDays"],
    )
    wanted = encode_permissions(perms)
    now = utcnow()
    candidates = await session.scalars(
        select(ShareLink)
        .where(
            ShareLink.order_id == order.id,
            ShareLink.permissions == wanted,
            ShareLink.revoked_at.is_(None),
            ShareLink.expires_at > now,
        )
        .order_by(ShareLink.expires_at.desc())
    )
    existing = next(
        (c for c in candidates if round((c.expires_at - c.created_at) / timedelta(days=1)) == days),
        None,
    )
    if existing is not None:
        return LinkResult(existing, reused=True)
    link = _new_link(order, perms, days, actor)
    session.add(link)
    await session.flush()
    await record(
        session,
        actor=actor,
        order=order,
        type=EventType.SHARE_LINK_CREATED,
        payload={
            "link_id": link.id,
            "permissions": wanted,
            "expires_at": link.expires_at.isoformat(),
        },
    )
    return LinkResult(link, reused=False)


async def revoke_link(*, session: AsyncSession, actor: Actor, link_id: int) -> ShareLink:
    require(actor, Action.ORDER_UPDATE)
    link = await session.scalar(
        select(ShareLink).where(ShareLink.id == link_id, ShareLink.account_id == actor.account_id)
    )
    if link is None:
        raise not_found("Share link")
    if link.revoked_at is None:
        link.revoked_at = utcnow()
        await session.flush()
        order = await get_order(session, actor, link.order_id)
        await record(
            session,
            actor=actor,
            order=order,
            type=EventType.SHARE_LINK_REVOKED,
            payload={"link_id": link.id},
        )
    return link


async def order_links(session: AsyncSession, actor: Actor, order_id: int) -> list[ShareLink]:
    rows = await session.scalars(
        select(ShareLink)
        .where(ShareLink.order_id == order_id, ShareLink.account_id == actor.account_id)
        .order_by(ShareLink.id.desc())
    )
    return list(rows)


async def update_share_defaults(
    *,
    session: AsyncSession,
    actor: Actor,
    permissions: set[Permission] | None,
    validity_days: int | None,
) -> Account:
    require(actor, Action.STAFF_MANAGE)
    account = await session.get(Account, actor.account_id)
    assert account is not None
    if permissions is not None:
        if not permissions:
            raise DomainError(
                ErrorCode.INVALID_INPUT, "Give at least one permission.", ["sharePermissions"]
            )
        account.share_default_permissions = encode_permissions(permissions)
    if validity_days is not None:
        account.share_default_validity_days = _check_validity(validity_days, ["shareValidityDays"])
    await session.flush()
    return account


@dataclass(frozen=True)
class ShareMessage:
    text: str
    whatsapp_url: str | None


def share_message(
    *, url: str, order: ServiceOrder, client: Client, account: Account
) -> ShareMessage:
    first_name = client.name.split()[0] if client.name else "there"
    body = (
        f"Hi {first_name}, this is {account.name}. Follow your repair {order.number} "
        f"({order.device_model}) live, and approve the estimate when it is ready: {url}"
    )
    whatsapp = None
    if client.phone:
        whatsapp = f"https://wa.me/{client.phone.lstrip('+')}?text={quote(body, safe='')}"
    return ShareMessage(text=body, whatsapp_url=whatsapp)


# --- the link holder ----------------------------------------------------------------------


@dataclass
class LinkAccess:
    link: ShareLink
    order: ServiceOrder
    account: Account

    @property
    def permissions(self) -> set[Permission]:
        return decode_permissions(self.link.permissions)


async def resolve(
    session: AsyncSession, *, token: str, secret: str, for_update: bool = False
) -> LinkAccess:
    """The link, order and shop behind a token: NOT_FOUND (unknown or forged),
    LINK_REVOKED or LINK_EXPIRED otherwise."""
    nonce = _parse(token, secret)
    link = None
    if nonce is not None:
        link = await session.scalar(select(ShareLink).where(ShareLink.nonce == nonce))
    if link is None:
        raise DomainError(ErrorCode.NOT_FOUND, "This tracking link does not exist.", ["token"])
    if link.revoked_at is not None:
        raise DomainError(
            ErrorCode.LINK_REVOKED,
            "This link was withdrawn by the shop. Ask them for a new one.",
            ["token"],
        )
    if link.expires_at <= utcnow():
        raise DomainError(
            ErrorCode.LINK_EXPIRED,
            "This link has expired: access is no longer available.",
            ["token"],
        )
    order = await session.get(ServiceOrder, link.order_id, populate_existing=for_update)
    account = await session.get(Account, link.account_id)
    assert order is not None and account is not None
    return LinkAccess(link=link, order=order, account=account)


def _require_permission(access: LinkAccess, permission: Permission) -> None:
    if permission not in access.permissions:
        raise DomainError(
            ErrorCode.FORBIDDEN, f"This link does not allow {permission.value.lower()}.", ["token"]
        )


async def record_view(session: AsyncSession, *, token: str, secret: str) -> ShareLink:
    """A person opened the page (the page's script reports it; link previews run no script)."""
    access = await resolve(session, token=token, secret=secret)
    now = utcnow()
    await session.execute(
        update(ShareLink)
        .where(ShareLink.id == access.link.id)
        .values(view_count=ShareLink.view_count + 1, last_viewed_at=now, last_access_at=now)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(access.link)
    return access.link


async def touch_access(session: AsyncSession, link: ShareLink) -> None:
    """Last access, written at most once a minute per link (not a write per API call)."""
    now = utcnow()
    if link.last_access_at is None or now - link.last_access_at > ACCESS_TOUCH_INTERVAL:
        await session.execute(
            update(ShareLink)
            .where(ShareLink.id == link.id)
            .values(last_access_at=now)
            .execution_options(synchronize_session=False)
        )


@dataclass
class TimelineEntry:
    status: OrderStatus
    at: datetime
    note: str | None


@dataclass
class CommentView:
    id: int
    author_kind: str
    author_name: str
    body: str
    at: datetime


@dataclass
class PartView:
    name: str
    quantity: int
    unit_cost: int
    line_total: int


@dataclass
class TrackingView:
    access: LinkAccess
    timeline: list[TimelineEntry]
    comments: list[CommentView]
    parts: list[PartView] | None
    labour_cost: int | None
    parts_total: int | None
    total: int | None
    estimate: int | None
    approved_amount: int | None
    final_cost: int | None
    warranty_expires_at: datetime | None
    rating: Rating | None
    can_approve: bool
    can_comment: bool
    can_rate: bool
    masked_imei: str | None = None
    masked_serial: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


def _mask(value: str | None) -> str | None:
    if not value:
        return None
    return "•" * max(len(value) - 4, 0) + value[-4:]


async def tracking_view(session: AsyncSession, access: LinkAccess) -> TrackingView:
    order = access.order
    status = OrderStatus(order.status)
    history = await session.scalars(
        select(StatusHistory).where(StatusHistory.order_id == order.id).order_by(StatusHistory.id)
    )
    timeline = [
        TimelineEntry(OrderStatus(h.to_status), h.created_at, h.note if h.note_public else None)
        for h in history
    ]
    comment_rows = (
        await session.execute(
            select(OrderComment, StaffUser.name)
            .outerjoin(StaffUser, StaffUser.id == OrderComment.staff_user_id)
            .where(OrderComment.order_id == order.id)
            .order_by(OrderComment.id)
        )
    ).all()
    comments = [
        CommentView(
            id=c.id,
            author_kind=c.author_kind,
            author_name=(name.split()[0] if name else access.account.name)
            if c.author_kind == "STAFF"
            else "You",
            body=c.body,
            at=c.created_at,
        )
        for c, name in comment_rows
    ]
    parts = labour = parts_total = total = None
    if status in COSTS_VISIBLE:
        part_rows = list(
            await session.scalars(
                select(PartLine).where(PartLine.order_id == order.id).order_by(PartLine.id)
            )
        )
        parts = [
            PartView(p.name, p.quantity, p.unit_cost, p.quantity * p.unit_cost) for p in part_rows
        ]
        labour = order.labour_cost
        parts_total = sum(p.line_total for p in parts)
        total = labour + parts_total
    rating = await session.scalar(select(Rating).where(Rating.order_id == order.id))
    perms = access.permissions
    completed = status is OrderStatus.COMPLETED
    return TrackingView(
        access=access,
        timeline=timeline,
        comments=comments,
        parts=parts,
        labour_cost=labour,
        parts_total=parts_total,
        total=total,
        estimate=order.estimated_cost if status is OrderStatus.AWAITING_APPROVAL else None,
        approved_amount=order.approved_amount,
        final_cost=order.final_cost if completed else None,
        warranty_expires_at=warranty_expires_at(order) if completed else None,
        rating=rating,
        can_approve=Permission.APPROVE in perms and status is OrderStatus.AWAITING_APPROVAL,
        can_comment=Permission.COMMENT in perms,
        can_rate=completed and rating is None,
        masked_imei=_mask(order.device_imei),
        masked_serial=_mask(order.device_serial_number),
    )


# --- customer actions ---------------------------------------------------------------------


class Decision(enum.Enum):
    APPROVE = "APPROVE"
    REJECT = "REJECT"


@dataclass(frozen=True)
class DecisionResult:
    access: LinkAccess
    repeated: bool  # the same decision was already recorded: nothing new was written


async def decide(
    *,
    session: AsyncSession,
    token: str,
    secret: str,
    decision: Decision,
    reason: str | None = None,
    expected_estimate: Decimal | None = None,
) -> DecisionResult:
    """Approve or reject the estimate. Exactly one decision wins a race (optimistic lock on
    the order); the same decision repeated is idempotent; the other one gets ALREADY_DECIDED.
    With `expected_estimate` (the amount the customer saw) a changed estimate is refused
    with ESTIMATE_CHANGED instead of approving an amount the customer never saw."""
    access = await resolve(session, token=token, secret=secret, for_update=True)
    _require_permission(access, Permission.APPROVE)
    order = access.order
    target = OrderStatus.APPROVED if decision is Decision.APPROVE else OrderStatus.REJECTED
    current = OrderStatus(order.status)
    if current is not OrderStatus.AWAITING_APPROVAL:
        if current is target and order.decided_at is not None:
            return DecisionResult(access, repeated=True)
        if current in (OrderStatus.APPROVED, OrderStatus.REJECTED) and order.decided_at is not None:
            raise DomainError(
                ErrorCode.ALREADY_DECIDED,
                f"The estimate was already {current.value.lower()}.",
                ["token"],
            )
        raise DomainError(
            ErrorCode.NOT_AWAITING_APPROVAL,
            "There is no estimate waiting for your decision.",
            ["token"],
        )
    errors = Collector()
    clean_reason = text(reason, errors, ["reason"], max_len=MAX_COMMENT, label="Reason")
    errors.raise_if_any()
    amount = order.estimated_cost or 0
    if expected_estimate is not None:
        seen = money.to_minor(expected_estimate, access.account.currency, ["expectedEstimate"])
        if seen != amount:
            now_shown = money.to_decimal(amount, access.account.currency)
            raise DomainError(
                ErrorCode.ESTIMATE_CHANGED,
                f"The estimate changed to {now_shown} {access.account.currency} since you "
                "opened the page. Please review it again.",
                ["expectedEstimate"],
            )
    shown = f"{money.to_decimal(amount, access.account.currency)} {access.account.currency}"
    if decision is Decision.APPROVE:
        note = f"Estimate of {shown} approved via share link."
    else:
        note = f"Estimate of {shown} rejected via share link." + (
            f" Reason: {clean_reason}" if clean_reason else ""
        )
    now = utcnow()
    order.status = target.value
    order.decided_at = now
    order.updated_at = now
    if decision is Decision.APPROVE:
        order.approved_amount = amount
    session.add(
        StatusHistory(
            account_id=order.account_id,
            order_id=order.id,
            from_status=current.value,
            to_status=target.value,
            note=note,
            note_public=True,
            actor_id=None,
            share_link_id=access.link.id,
            created_at=now,
        )
    )
    try:
        await session.flush()
    except StaleDataError:
        raise RetryableConflict() from None
    await record(
        session,
        actor=None,
        order=order,
        type=EventType.ESTIMATE_APPROVED
        if decision is Decision.APPROVE
        else EventType.ESTIMATE_REJECTED,
        payload={
            "from": current.value,
            "to": target.value,
            "amount": amount,
            "currency": access.account.currency,
            "reason": clean_reason,
            "link_id": access.link.id,
        },
    )
    return DecisionResult(access, repeated=False)


async def customer_comment(
    *, session: AsyncSession, token: str, secret: str, body: str
) -> OrderComment:
    access = await resolve(session, token=token, secret=secret)
    _require_permission(access, Permission.COMMENT)
    return await _add_comment(session, access.order, body, actor=None, link_id=access.link.id)


async def staff_comment(
    *, session: AsyncSession, actor: Actor, order_id: int, body: str
) -> OrderComment:
    require(actor, Action.NOTE_ADD)
    order = await get_order(session, actor, order_id)
    return await _add_comment(session, order, body, actor=actor, link_id=None)


async def _add_comment(
    session: AsyncSession,
    order: ServiceOrder,
    body: str,
    *,
    actor: Actor | None,
    link_id: int | None,
) -> OrderComment:
    errors = Collector()
    clean = text(body, errors, ["body"], max_len=MAX_COMMENT, required=True, label="Comment")
    errors.raise_if_any()
    comment = OrderComment(
        account_id=order.account_id,
        order_id=order.id,
        author_kind="STAFF" if actor else "CUSTOMER",
        staff_user_id=actor.user_id if actor else None,
        share_link_id=link_id,
        body=clean,
    )
    session.add(comment)
    await session.flush()
    await record(
        session,
        actor=actor,
        order=order,
        type=EventType.COMMENT_ADDED,
        payload={"comment_id": comment.id, "author": comment.author_kind, "body": clean},
    )
    return comment


async def rate(
    *, session: AsyncSession, token: str, secret: str, stars: int, comment: str | None
) -> Rating:
    access = await resolve(session, token=token, secret=secret)
    order = access.order
    errors = Collector()
    if not 1 <= stars <= 5:
        errors.add(ErrorCode.INVALID_RATING, "Give 1 to 5 stars.", ["stars"])
    clean = text(comment, errors, ["comment"], max_len=MAX_RATING_COMMENT, label="Comment")
    errors.raise_if_any()
    if OrderStatus(order.status) is not OrderStatus.COMPLETED:
        raise DomainError(
            ErrorCode.NOT_COMPLETED, "You can rate the service once the order is completed."
        )
    if await session.scalar(select(Rating.id).where(Rating.order_id == order.id)) is not None:
        raise DomainError(ErrorCode.ALREADY_RATED, "This order was already rated. Thank you!")
    rating = Rating(
        account_id=order.account_id,
        order_id=order.id,
        share_link_id=access.link.id,
        stars=stars,
        comment=clean,
    )
    session.add(rating)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise DomainError(
            ErrorCode.ALREADY_RATED, "This order was already rated. Thank you!"
        ) from None
    await record(
        session,
        actor=None,
        order=order,
        type=EventType.RATED,
        payload={"stars": stars, "comment": clean},
    )
    return rating


# --- ratings summary (staff) --------------------------------------------------------------


@dataclass(frozen=True)
class RatingsSummary:
    average: float | None
    total: int
    per_star: dict[int, int]


async def ratings_summary(session: AsyncSession, actor: Actor) -> RatingsSummary:
    rows = (
        await session.execute(
            select(Rating.stars, func.count())
            .where(Rating.account_id == actor.account_id)
            .group_by(Rating.stars)
        )
    ).all()
    per_star = {star: 0 for star in range(1, 6)}
    for star, count in rows:
        per_star[int(star)] = int(count)
    total = sum(per_star.values())
    average = round(sum(s * c for s, c in per_star.items()) / total, 2) if total else None
    return RatingsSummary(average=average, total=total, per_star=per_star)


async def list_ratings(
    session: AsyncSession, actor: Actor, *, first: int, after: int | None, with_comment_only: bool
) -> Page[Rating]:
    stmt = select(Rating).where(Rating.account_id == actor.account_id)
    if with_comment_only:
        stmt = stmt.where(Rating.comment.is_not(None))
    return await keyset_page(session, stmt, id_column=Rating.id, first=first, after=after)
