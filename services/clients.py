"""Clients (the shop's customers): one client, many orders; phone and email normalised."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Client
from db.queries import Page, keyset_page, like_pattern
from services.errors import Collector, DomainError, ErrorCode, not_found
from services.policy import Actor
from services.validation import normalize_email, normalize_phone, text


@dataclass
class ClientData:
    name: str | None = None
    email: str | None = None
    phone: str | None = None


def _clean(
    values: Mapping[str, Any], actor: Actor, errors: Collector, *, creating: bool
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "name" in values or creating:
        out["name"] = text(
            values.get("name"),
            errors,
            ["client", "name"],
            max_len=200,
            required=True,
            label="Client name",
        )
    if "email" in values:
        out["email"] = normalize_email(values["email"], errors, ["client", "email"])
    if "phone" in values:
        out["phone"] = normalize_phone(values["phone"], actor.country, errors, ["client", "phone"])
    return out


async def resolve_client(
    *, session: AsyncSession, actor: Actor, client_id: int | None, data: ClientData | None
) -> Client:
    """The client for a new order: an existing one by id, else one matching the phone or
    email given (so a returning customer is not duplicated), else a new one."""
    if client_id is not None:
        client = await get_client(session, actor, client_id, field=["clientId"])
        return client
    if data is None:
        raise DomainError(ErrorCode.REQUIRED, "Give a clientId or a new client.", ["client"])
    errors = Collector()
    values = _clean(
        {k: v for k, v in vars(data).items() if v is not None}, actor, errors, creating=True
    )
    # a phone or email that was given but is invalid is reported as such; a missing one is
    # REQUIRED even when other fields (the name) are wrong too, so all errors come at once
    contact_errors = any(
        e.field in (["client", "email"], ["client", "phone"]) for e in errors.errors
    )
    if not values.get("email") and not values.get("phone") and not contact_errors:
        errors.add(
            ErrorCode.REQUIRED,
            "Give the client's phone or email so the shop can reach them.",
            ["client", "phone"],
        )
    errors.raise_if_any()
    matches = [
        Client.phone == values["phone"] if values.get("phone") else None,
        Client.email == values["email"] if values.get("email") else None,
    ]
    existing = await session.scalar(
        select(Client)
        .where(Client.account_id == actor.account_id, or_(*[m for m in matches if m is not None]))
        .order_by(Client.id)
        .limit(1)
    )
    if existing is not None:
        # fill in contact details the shop did not have yet
        if values.get("email") and not existing.email:
            existing.email = values["email"]
        if values.get("phone") and not existing.phone:
            existing.phone = values["phone"]
        return existing
    client = Client(account_id=actor.account_id, **values)
    session.add(client)
    await session.flush()
    return client


async def get_client(
    session: AsyncSession, actor: Actor, client_id: int, *, field: list[str] | None = None
) -> Client:
    client = await session.scalar(
        select(Client).where(Client.id == client_id, Client.account_id == actor.account_id)
    )
    if client is None:
        raise not_found("Client", field or ["id"])
    return client


async def patch_client(
    *, session: AsyncSession, actor: Actor, client_id: int, changes: Mapping[str, Any]
) -> Client:
    client = await get_client(session, actor, client_id)
    errors = Collector()
    values = _clean(changes, actor, errors, creating=False)
    errors.raise_if_any()
    for key, value in values.items():
        setattr(client, key, value)
    if not client.email and not client.phone:
        raise DomainError(
            ErrorCode.REQUIRED, "A client keeps a phone or an email.", ["client", "phone"]
        )
    return client


async def list_clients(
    session: AsyncSession, actor: Actor, *, search: str | None, first: int, after: int | None
) -> Page[Client]:
    stmt = select(Client).where(Client.account_id == actor.account_id)
    term = (search or "").strip()
    if term:
        pattern = like_pattern(term)
        conditions = [
            Client.name.ilike(pattern, escape="\\"),
            Client.email.ilike(pattern, escape="\\"),
        ]
        digits = "".join(ch for ch in term if ch.isdigit())
        if len(digits) >= 3:
            conditions.append(Client.phone.like(f"%{digits}%"))
        stmt = stmt.where(or_(*conditions))
    return await keyset_page(session, stmt, id_column=Client.id, first=first, after=after)
