"""Accounts, staff users, passwords (argon2) and bearer tokens (opaque, stored hashed)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.base import utcnow
from db.models import Account, AuthToken, LoginFailure, StaffUser
from services.errors import Collector, DomainError, ErrorCode, not_found
from services.policy import Actor, require_manageable
from services.roles import Role
from services.validation import normalize_email, normalize_phone, text

TOKEN_PREFIX = "so_"
MIN_PASSWORD_LENGTH = 10
LOGIN_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_EMAIL = 5
MAX_FAILURES_PER_IP = 30

_hasher = PasswordHasher()
# verified against when the email is unknown, so both paths cost the same time
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_password_strength(password: str, errors: Collector, field: list[str]) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        errors.add(
            ErrorCode.WEAK_PASSWORD,
            f"Passwords have at least {MIN_PASSWORD_LENGTH} characters.",
            field,
        )


def actor_for(user: StaffUser, account: Account) -> Actor:
    return Actor(
        user_id=user.id,
        account_id=account.id,
        role=Role(user.role),
        currency=account.currency,
        time_zone=account.time_zone,
        country=account.country,
        name=user.name,
    )


# --- accounts ---------------------------------------------------------------------------


async def create_account(
    *,
    session: AsyncSession,
    name: str,
    owner_email: str,
    owner_password: str,
    owner_name: str | None = None,
    time_zone: str = "UTC",
    currency: str = "USD",
    country: str = "US",
    phone: str | None = None,
    email: str | None = None,
    address: str | None = None,
) -> tuple[Account, StaffUser]:
    """A new shop and its first OWNER."""
    errors = Collector()
    shop_name = text(name, errors, ["name"], max_len=200, required=True, label="Shop name")
    owner = normalize_email(owner_email, errors, ["ownerEmail"])
    if owner is None and not errors.errors:
        errors.add(ErrorCode.REQUIRED, "Owner email is required.", ["ownerEmail"])
    check_password_strength(owner_password, errors, ["ownerPassword"])
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        errors.add(ErrorCode.INVALID_INPUT, f"Unknown time zone {time_zone!r}.", ["timeZone"])
    if not (len(currency) == 3 and currency.isalpha()):
        errors.add(ErrorCode.INVALID_INPUT, "Currency is a 3-letter ISO 4217 code.", ["currency"])
    if not (len(country) == 2 and country.isalpha()):
        errors.add(ErrorCode.INVALID_INPUT, "Country is a 2-letter ISO 3166 code.", ["country"])
    shop_phone = normalize_phone(phone, country, errors, ["phone"]) if country.isalpha() else None
    shop_email = normalize_email(email, errors, ["email"])
    if owner and await _email_taken(session, owner):
        errors.add(ErrorCode.EMAIL_TAKEN, "A staff user with this email exists.", ["ownerEmail"])
    errors.raise_if_any()
    assert shop_name is not None and owner is not None

    account = Account(
        name=shop_name,
        time_zone=time_zone,
        currency=currency.upper(),
        country=country.upper(),
        phone=shop_phone,
        email=shop_email,
        address=address,
    )
    session.add(account)
    await session.flush()
    user = StaffUser(
        account_id=account.id,
        email=owner,
        name=(owner_name or owner.split("@")[0]).strip()[:200],
        role=Role.OWNER.value,
        password_hash=hash_password(owner_password),
    )
    session.add(user)
    await session.flush()
    return account, user


async def _email_taken(session: AsyncSession, email: str) -> bool:
    found = await session.scalar(select(StaffUser.id).where(StaffUser.email == email))
    return found is not None


# --- login / tokens -----------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime
    user: StaffUser


async def login(
    *, session: AsyncSession, email: str, password: str, ip: str, ttl: timedelta
) -> IssuedToken:
    """Check the password and issue a token; failures are counted and rate limited.

    The caller commits even when this raises INVALID_CREDENTIALS, so that the failure is
    recorded (see ``resolvers.auth``).
    """
    normalized = (email or "").strip().lower()
    since = utcnow() - LOGIN_WINDOW
    by_email = await session.scalar(
        select(func.count()).where(
            LoginFailure.email == normalized, LoginFailure.created_at > since
        )
    )
    by_ip = await session.scalar(
        select(func.count()).where(LoginFailure.ip == ip, LoginFailure.created_at > since)
    )
    if (by_email or 0) >= MAX_FAILURES_PER_EMAIL or (by_ip or 0) >= MAX_FAILURES_PER_IP:
        raise DomainError(
            ErrorCode.RATE_LIMITED,
            "Too many failed logins. Try again in 15 minutes.",
        )
    user = await session.scalar(select(StaffUser).where(StaffUser.email == normalized))
    ok = verify_password(user.password_hash if user else _DUMMY_HASH, password or "")
    if user is None or not ok or not user.is_active:
        session.add(LoginFailure(email=normalized[:320], ip=ip[:64]))
        raise DomainError(ErrorCode.INVALID_CREDENTIALS, "Wrong email or password.")
    # a successful login clears the email's failures
    await session.execute(delete(LoginFailure).where(LoginFailure.email == normalized))
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires_at = utcnow() + ttl
    session.add(AuthToken(user_id=user.id, token_hash=hash_token(token), expires_at=expires_at))
    await session.flush()
    return IssuedToken(token=token, expires_at=expires_at, user=user)


async def logout(*, session: AsyncSession, token: str) -> bool:
    result = await session.execute(
        update(AuthToken)
        .where(AuthToken.token_hash == hash_token(token), AuthToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def authenticate(
    *, session: AsyncSession, token: str
) -> tuple[StaffUser, Account, datetime] | None:
    """The active user, account and token expiry behind a live token, or None. One query."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = (
        await session.execute(
            select(StaffUser, Account, AuthToken.expires_at)
            .join(AuthToken, AuthToken.user_id == StaffUser.id)
            .join(Account, Account.id == StaffUser.account_id)
            .where(
                AuthToken.token_hash == hash_token(token),
                AuthToken.revoked_at.is_(None),
                AuthToken.expires_at > utcnow(),
                StaffUser.is_active.is_(True),
            )
        )
    ).first()
    return (row[0], row[1], row[2]) if row else None


# --- staff --------------------------------------------------------------------------------


async def create_staff_user(
    *,
    session: AsyncSession,
    actor: Actor,
    email: str,
    name: str,
    role: Role,
    password: str,
) -> StaffUser:
    require_manageable(actor, role)
    errors = Collector()
    normalized = normalize_email(email, errors, ["email"])
    if normalized is None and not errors.errors:
        errors.add(ErrorCode.REQUIRED, "Email is required.", ["email"])
    clean_name = text(name, errors, ["name"], max_len=200, required=True, label="Name")
    check_password_strength(password, errors, ["password"])
    if normalized and await _email_taken(session, normalized):
        errors.add(ErrorCode.EMAIL_TAKEN, "A staff user with this email exists.", ["email"])
    errors.raise_if_any()
    assert normalized is not None and clean_name is not None
    user = StaffUser(
        account_id=actor.account_id,
        email=normalized,
        name=clean_name,
        role=role.value,
        password_hash=hash_password(password),
    )
    session.add(user)
    await session.flush()
    return user


async def deactivate_staff_user(*, session: AsyncSession, actor: Actor, user_id: int) -> StaffUser:
    user = await session.scalar(
        select(StaffUser)
        .where(StaffUser.id == user_id, StaffUser.account_id == actor.account_id)
        .with_for_update()
    )
    if user is None:
        raise not_found("Staff user")
    require_manageable(actor, Role(user.role))
    if user.id == actor.user_id:
        raise DomainError(
            ErrorCode.CANNOT_DEACTIVATE_SELF, "You cannot deactivate yourself.", ["id"]
        )
    if user.is_active and user.role == Role.OWNER.value:
        owners = await session.scalar(
            select(func.count()).where(
                StaffUser.account_id == actor.account_id,
                StaffUser.role == Role.OWNER.value,
                StaffUser.is_active.is_(True),
            )
        )
        if (owners or 0) <= 1:
            raise DomainError(ErrorCode.LAST_OWNER, "The last owner cannot be deactivated.", ["id"])
    if user.is_active:
        user.is_active = False
        user.deactivated_at = utcnow()
        # every session of the user ends now
        await session.execute(
            update(AuthToken)
            .where(AuthToken.user_id == user.id, AuthToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        await session.flush()
    return user
