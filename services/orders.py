"""Service-order use cases. One function per use case, keyword-only arguments.

Each function runs inside the caller's transaction (``Database.write_session``): it loads,
checks, changes, writes the history row and flushes. A ``DomainError`` means nothing is
written (the caller rolls back). Every change to an order goes through the ORM with the
order's ``version`` as an optimistic lock: a concurrent change makes the flush fail, which
is reported as STALE_VERSION when the client sent ``expected_version`` and retried otherwise.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from db.base import utcnow
from db.models import Client, InternalNote, PartLine, ServiceOrder, StaffUser, StatusHistory
from db.queries import Page, keyset_page, like_pattern
from services import money, numbering, statuses
from services.clients import ClientData, patch_client, resolve_client
from services.errors import Collector, DomainError, ErrorCode, not_found
from services.events import EventType, record
from services.policy import Action, Actor, can, require
from services.statuses import OrderStatus
from services.validation import normalize_imei, text

MAX_NOTE = 5000
MAX_TEXT = 5000
MAX_WARRANTY_DAYS = 3650


class RetryableConflict(DomainError):
    """The order changed between read and write and no expected version was given: retry."""

    def __init__(self) -> None:
        super().__init__(
            ErrorCode.CONCURRENT_MODIFICATION,
            "The order was changed by someone else at the same time. Reload and try again.",
        )


@dataclass
class DeviceData:
    model: str | None = None
    problem_reported: str | None = None
    brand: str | None = None
    imei: str | None = None
    serial_number: str | None = None
    accessories: str | None = None
    condition_notes: str | None = None


DEVICE_COLUMNS = {
    "brand": "device_brand",
    "model": "device_model",
    "imei": "device_imei",
    "serial_number": "device_serial_number",
    "problem_reported": "problem_reported",
    "accessories": "accessories",
    "condition_notes": "condition_notes",
}
DEVICE_LIMITS = {
    "brand": 100,
    "model": 200,
    "serial_number": 100,
    "problem_reported": MAX_TEXT,
    "accessories": MAX_TEXT,
    "condition_notes": MAX_TEXT,
}
DEVICE_LABELS = {
    "model": "Device model",
    "problem_reported": "Problem reported",
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _clean_device(
    values: Mapping[str, Any], errors: Collector, *, creating: bool
) -> dict[str, Any]:
    """Validate device fields; only keys present in `values` are returned (patch semantics)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        path = ["device", _camel(key)]
        if key == "imei":
            out[key] = normalize_imei(value, errors, path)
            continue
        required = key in DEVICE_LABELS
        cleaned = text(
            value,
            errors,
            path,
            max_len=DEVICE_LIMITS[key],
            required=required,
            label=DEVICE_LABELS.get(key, key.replace("_", " ").capitalize()),
        )
        out[key] = cleaned
    if creating:
        for key, label in DEVICE_LABELS.items():
            if key not in values:
                errors.add(ErrorCode.REQUIRED, f"{label} is required.", ["device", _camel(key)])
    return out


def _fingerprint(payload: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


# --- loading ------------------------------------------------------------------------------


def scoped_orders(actor: Actor) -> Select[ServiceOrder]:
    return select(ServiceOrder).where(ServiceOrder.account_id == actor.account_id)


async def get_order(
    session: AsyncSession, actor: Actor, order_id: int, *, field: str = "id"
) -> ServiceOrder:
    """The order, or NOT_FOUND on `field` (the input that named it: "id" or "orderId")."""
    order = await session.scalar(scoped_orders(actor).where(ServiceOrder.id == order_id))
    if order is None:
        raise not_found("Service order", [field])
    return order


async def find_order(session: AsyncSession, actor: Actor, order_id: int) -> ServiceOrder | None:
    return await session.scalar(scoped_orders(actor).where(ServiceOrder.id == order_id))


async def find_order_by_number(
    session: AsyncSession, actor: Actor, number: str
) -> ServiceOrder | None:
    return await session.scalar(
        scoped_orders(actor).where(ServiceOrder.number == number.strip().upper())
    )


def _check_open(order: ServiceOrder) -> None:
    if OrderStatus(order.status) in statuses.CLOSED_STATUSES:
        raise DomainError(
            ErrorCode.ORDER_CLOSED,
            f"Order {order.number} is {order.status} and can no longer be changed.",
        )


def _check_version(order: ServiceOrder, expected_version: int | None) -> None:
    if expected_version is not None and order.version != expected_version:
        raise DomainError(
            ErrorCode.STALE_VERSION,
            f"The order is at version {order.version}, not {expected_version}: "
            "someone changed it meanwhile. Reload and try again.",
            ["expectedVersion"],
        )


async def _flush(session: AsyncSession, expected_version: int | None) -> None:
    try:
        await session.flush()
    except StaleDataError:
        if expected_version is not None:
            raise DomainError(
                ErrorCode.STALE_VERSION,
                "Someone changed the order meanwhile. Reload and try again.",
                ["expectedVersion"],
            ) from None
        raise RetryableConflict() from None


def _utc(value: datetime | None) -> datetime | None:
    """Times are stored and answered in UTC, whatever offset the client sent."""
    return value.astimezone(UTC) if value is not None else None


def _touch(order: ServiceOrder) -> None:
    order.updated_at = utcnow()


# --- create -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateResult:
    order: ServiceOrder
    created: bool


async def create_order(
    *,
    session: AsyncSession,
    actor: Actor,
    client_id: int | None,
    client: ClientData | None,
    device: DeviceData,
    promised_at: datetime | None = None,
    assigned_to_id: int | None = None,
    idempotency_key: str | None = None,
) -> CreateResult:
    require(actor, Action.ORDER_CREATE)
    key = (idempotency_key or "").strip() or None
    fingerprint = _fingerprint(
        {
            "client_id": client_id,
            "client": asdict(client) if client else None,
            "device": asdict(device),
            "promised_at": promised_at.isoformat() if promised_at else None,
            "assigned_to_id": assigned_to_id,
        }
    )
    if key is not None:
        if len(key) > 200:
            raise DomainError(
                ErrorCode.TOO_LONG, "Idempotency key is too long.", ["idempotencyKey"]
            )
        existing = await session.scalar(
            scoped_orders(actor).where(ServiceOrder.idempotency_key == key)
        )
        if existing is not None:
            return _replay(existing, fingerprint)

    errors = Collector()
    device_values = _clean_device(
        {k: v for k, v in asdict(device).items() if v is not None}, errors, creating=True
    )
    if assigned_to_id is not None:
        try:
            await _check_assignee(session, actor, assigned_to_id, field=["assignedToId"])
        except DomainError as exc:
            errors.capture(exc)
    try:
        client_row = await resolve_client(
            session=session, actor=actor, client_id=client_id, data=client
        )
    except DomainError as exc:
        errors.capture(exc)
        client_row = None
    errors.raise_if_any()
    assert client_row is not None

    now = utcnow()
    number = await numbering.next_number(
        session,
        account_id=actor.account_id,
        year=numbering.current_year(actor.time_zone),
    )
    order = ServiceOrder(
        account_id=actor.account_id,
        number=number,
        client_id=client_row.id,
        status=statuses.INITIAL_STATUS.value,
        promised_at=_utc(promised_at),
        assigned_to_id=assigned_to_id,
        created_by_id=actor.user_id,
        idempotency_key=key,
        idempotency_hash=fingerprint if key else None,
        created_at=now,
        updated_at=now,
        **{DEVICE_COLUMNS[k]: v for k, v in device_values.items()},
    )
    session.add(order)
    try:
        await session.flush()
    except IntegrityError:
        # a concurrent request with the same idempotency key won; the caller retries and
        # the retry finds that order
        if key is None:
            raise
        raise RetryableConflict() from None
    session.add(
        StatusHistory(
            account_id=actor.account_id,
            order_id=order.id,
            from_status=None,
            to_status=order.status,
            note="Order created",
            actor_id=actor.user_id,
            created_at=now,
        )
    )
    await session.flush()
    # every order gets a share link at once (services.sharing imports this module)
    from services.sharing import create_default_link

    await create_default_link(session, actor=actor, order=order)
    device_label = " ".join(p for p in (order.device_brand, order.device_model) if p)
    await record(
        session,
        actor=actor,
        order=order,
        type=EventType.ORDER_CREATED,
        payload={"device": device_label},
    )
    return CreateResult(order=order, created=True)


def _replay(existing: ServiceOrder, fingerprint: str) -> CreateResult:
    if existing.idempotency_hash != fingerprint:
        raise DomainError(
            ErrorCode.IDEMPOTENCY_KEY_REUSED,
            "This idempotency key was already used for a different order.",
            ["idempotencyKey"],
        )
    return CreateResult(order=existing, created=False)


# --- update client and device ------------------------------------------------------------


async def update_order(
    *,
    session: AsyncSession,
    actor: Actor,
    order_id: int,
    client: Mapping[str, Any] | None = None,
    device: Mapping[str, Any] | None = None,
    changes: Mapping[str, Any] | None = None,
    expected_version: int | None = None,
) -> ServiceOrder:
    """Patch client and device fields and the promised date: only the keys given change."""
    require(actor, Action.ORDER_UPDATE)
    order = await get_order(session, actor, order_id)
    _check_open(order)
    _check_version(order, expected_version)
    errors = Collector()
    device_values = _clean_device(device or {}, errors, creating=False)
    if client:
        try:
            await patch_client(
                session=session, actor=actor, client_id=order.client_id, changes=client
            )
        except DomainError as exc:
            errors.capture(exc)
    errors.raise_if_any()
    for key, value in device_values.items():
        setattr(order, DEVICE_COLUMNS[key], value)
    if changes and "promised_at" in changes:
        order.promised_at = _utc(changes["promised_at"])
    _touch(order)
    await _flush(session, expected_version)
    fields = [f"device.{_camel(k)}" for k in device_values]
    fields += [f"client.{k}" for k in (client or {})]
    fields += ["promisedAt"] if changes and "promised_at" in changes else []
    await record(
        session, actor=actor, order=order, type=EventType.ORDER_UPDATED, payload={"fields": fields}
    )
    return order


# --- diagnosis and money ------------------------------------------------------------------


async def set_diagnosis(
    *,
    session: AsyncSession,
    actor: Actor,
    order_id: int,
    changes: Mapping[str, Any],
    expected_version: int | None = None,
) -> ServiceOrder:
    """Set any of: diagnosis, estimated_cost, labour_cost, final_cost (Decimal), warranty_days."""
    require(actor, Action.ORDER_DIAGNOSE)
    order = await get_order(session, actor, order_id)
    _check_open(order)
    _check_version(order, expected_version)
    errors = Collector()
    values: dict[str, Any] = {}
    for key, value in changes.items():
        field = [_camel(key)]
        try:
            if key == "diagnosis":
                values[key] = text(value, errors, field, max_len=MAX_TEXT)
            elif key in ("estimated_cost", "final_cost"):
                values[key] = (
                    None if value is None else money.to_minor(value, actor.currency, field)
                )
            elif key == "labour_cost":
                values[key] = 0 if value is None else money.to_minor(value, actor.currency, field)
            elif key == "warranty_days":
                days = 0 if value is None else int(value)
                if not 0 <= days <= MAX_WARRANTY_DAYS:
                    errors.add(
                        ErrorCode.INVALID_INPUT,
                        f"Warranty days are between 0 and {MAX_WARRANTY_DAYS}.",
                        field,
                    )
                values[key] = days
            else:  # pragma: no cover - the API only passes the keys above
                raise KeyError(key)
        except DomainError as exc:
            errors.capture(exc)
    errors.raise_if_any()
    for key, value in values.items():
        setattr(order, key, value)
    _touch(order)
    await _flush(session, expected_version)
    await record(
        session,
        actor=actor,
        order=order,
        type=EventType.DIAGNOSIS_UPDATED,
        payload={
            "fields": [_camel(k) for k in values],
            "diagnosis": order.diagnosis,
            "estimated_cost": order.estimated_cost,
            "labour_cost": order.labour_cost,
            "final_cost": order.final_cost,
            "warranty_days": order.warranty_days,
            "currency": actor.currency,
        },
    )
    return order


# --- status machine -----------------------------------------------------------------------


async def parts_total(session: AsyncSession, order_id: int) -> int:
    rows = await session.execute(
        select(PartLine.quantity, PartLine.unit_cost).where(PartLine.order_id == order_id)
    )
    return sum(q * c for q, c in rows)


async def transition_order(
    *,
    session: AsyncSession,
    actor: Actor,
    order_id: int,
    to_status: OrderStatus,
    note: str | None = None,
    expected_version: int | None = None,
) -> ServiceOrder:
    order = await get_order(session, actor, order_id)
    _check_version(order, expected_version)
    current = OrderStatus(order.status)
    if not statuses.is_allowed(current, to_status):
        allowed = statuses.TRANSITIONS[current]
        listed = ", ".join(s.value for s in allowed) if allowed else "none (the order is closed)"
        raise DomainError(
            ErrorCode.INVALID_TRANSITION,
            f"An order cannot go from {current.value} to {to_status.value}. Allowed: {listed}.",
            ["to"],
        )
    if not statuses.role_may_enter(actor.role, to_status):
        raise DomainError(
            ErrorCode.FORBIDDEN,
            f"Your role ({actor.role.value}) may not move orders to {to_status.value}.",
            ["to"],
        )
    errors = Collector()
    for failure in statuses.guard_failures(
        to_status, diagnosis=order.diagnosis, estimated_cost=order.estimated_cost
    ):
        errors.add(ErrorCode(failure.code), failure.message, [failure.field])
    clean_note = text(note, errors, ["note"], max_len=MAX_NOTE)
    errors.raise_if_any()

    now = utcnow()
    if to_status is OrderStatus.COMPLETED:
        # read the parts total before touching the order: a query after a change would
        # autoflush it outside _flush (a second version bump, and a lost lock unmapped)
        final_cost = order.final_cost
        if final_cost is None:
            final_cost = order.labour_cost + await parts_total(session, order.id)
        order.completed_at = now
        order.final_cost = final_cost
    order.status = to_status.value
    order.updated_at = now
    session.add(
        StatusHistory(
            account_id=actor.account_id,
            order_id=order.id,
            from_status=current.value,
            to_status=to_status.value,
            note=clean_note,
            actor_id=actor.user_id,
            created_at=now,
        )
    )
    await _flush(session, expected_version)
    await record(
        session,
        actor=actor,
        order=order,
        type=EventType.STATUS_CHANGED,
        payload={"from": current.value, "to": to_status.value, "note": clean_note},
    )
    return order


def available_transitions(order: ServiceOrder, actor: Actor) -> list[OrderStatus]:
    return statuses.available_transitions(OrderStatus(order.status), actor.role)


def warranty_expires_at(order: ServiceOrder) -> datetime | None:
    if order.completed_at is None or not order.warranty_days:
        return None
    return order.completed_at + timedelta(days=order.warranty_days)


# --- assignment ---------------------------------------------------------------------------


async def _check_assignee(
    session: AsyncSession, actor: Actor, user_id: int, *, field: list[str]
) -> StaffUser:
    user = await session.scalar(
        select(StaffUser).where(StaffUser.id == user_id, StaffUser.account_id == actor.account_id)
    )
    if user is None:
        raise not_found("Staff user", field)
    if not user.is_active:
        raise DomainError(ErrorCode.ASSIGNEE_INACTIVE, f"{user.name} is deactivated.", field)
    if user.id != actor.user_id and not can(actor, Action.ORDER_ASSIGN):
        raise DomainError(
            ErrorCode.FORBIDDEN, "Your role may only assign orders to yourself.", field
        )
    return user


async def assign_order(
    *,
    session: AsyncSession,
    actor: Actor,
    order_id: int,
    assignee_id: int | None,
    expected_version: int | None = None,
) -> ServiceOrder:
    require(actor, Action.ORDER_ASSIGN_SELF)
    order = await get_order(session, actor, order_id)
    _check_open(order)
    _check_version(order, expected_version)
    assignee = None
    if assignee_id is not None:
        assignee = await _check_assignee(session, actor, assignee_id, field=["assigneeId"])
    elif order.assigned_to_id not in (None, actor.user_id) and not can(actor, Action.ORDER_ASSIGN):
        raise DomainError(
            ErrorCode.FORBIDDEN, "Your role may only unassign yourself.", ["assigneeId"]
        )
    if order.assigned_to_id != assignee_id:
        previous = order.assigned_to_id
        order.assigned_to_id = assignee_id
        _touch(order)
        await _flush(session, expected_version)
        await record(
            session,
            actor=actor,
            order=order,
            type=EventType.ASSIGNED,
            payload={
                "assignee_id": assignee_id,
                "assignee_name": assignee.name if assignee else None,
                "previous_assignee_id": previous,
            },
        )
    return order


# --- parts --------------------------------------------------------------------------------


def _clean_part(
    values: Mapping[str, Any], actor: Actor, errors: Collector, *, creating: bool
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "name" in values or creating:
        out["name"] = text(
            values.get("name"), errors, ["name"], max_len=200, required=True, label="Part name"
        )
    if "quantity" in values or creating:
        quantity = values.get("quantity", 1 if creating else None)
        if quantity is None or not 1 <= int(quantity) <= 10_000:
            errors.add(
                ErrorCode.INVALID_QUANTITY,
                "Quantity is a whole number from 1 to 10000.",
                ["quantity"],
            )
        else:
            out["quantity"] = int(quantity)
    if "unit_cost" in values or creating:
        cost = values.get("unit_cost")
        if cost is None:
            errors.add(ErrorCode.REQUIRED, "Unit cost is required.", ["unitCost"])
        else:
            try:
                out["unit_cost"] = money.to_minor(Decimal(cost), actor.currency, ["unitCost"])
            except DomainError as exc:
                errors.capture(exc)
    return out


async def add_part(
    *,
    session: AsyncSession,
    actor: Actor,
    order_id: int,
    name: str,
    quantity: int,
    unit_cost: Decimal,
    expected_version: int | None = None,
) -> tuple[ServiceOrder, PartLine]:
    require(actor, Action.PARTS_EDIT)
    order = await get_order(session, actor, order_id, field="orderId")
    _check_open(order)
    _check_version(order, expected_version)
    errors = Collector()
    values = _clean_part(
        {"name": name, "quantity": quantity, "unit_cost": unit_cost}, actor, errors, creating=True
    )
    errors.raise_if_any()
    part = PartLine(account_id=actor.account_id, order_id=order.id, **values)
    session.add(part)
    _touch(order)
    await _flush(session, expected_version)
    await record(
        session,
        actor=actor,
        order=order,
        type=EventType.PART_ADDED,
        payload=_part_payload(part, actor),
    )
    return order, part


def _part_payload(part: PartLine, actor: Actor) -> dict[str, Any]:
    return {
        "part_id": part.id,
        "name": part.name,
        "quantity": part.quantity,
        "unit_cost": part.unit_cost,
        "currency": actor.currency,
    }


async def _get_part(
    session: AsyncSession, actor: Actor, part_id: int
) -> tuple[ServiceOrder, PartLine]:
    part = await session.scalar(
        select(PartLine).where(PartLine.id == part_id, PartLine.account_id == actor.account_id)
    )
    if part is None:
        raise not_found("Part line")
    return await get_order(session, actor, part.order_id), part


async def update_part(
    *,
    session: AsyncSession,
    actor: Actor,
    part_id: int,
    changes: Mapping[str, Any],
    expected_version: int | None = None,
) -> tuple[ServiceOrder, PartLine]:
    require(actor, Action.PARTS_EDIT)
    order, part = await _get_part(session, actor, part_id)
    _check_open(order)
    _check_version(order, expected_version)
    errors = Collector()
    values = _clean_part(changes, actor, errors, creating=False)
    errors.raise_if_any()
    for key, value in values.items():
        setattr(part, key, value)
    _touch(order)
    await _flush(session, expected_version)
    await record(
        session,
        actor=actor,
        order=order,
        type=EventType.PART_UPDATED,
        payload=_part_payload(part, actor),
    )
    return order, part


async def remove_part(
    *,
    session: AsyncSession,
    actor: Actor,
    part_id: int,
    expected_version: int | None = None,
) -> ServiceOrder:
    require(actor, Action.PARTS_EDIT)
    order, part = await _get_part(session, actor, part_id)
    _check_open(order)
    _check_version(order, expected_version)
    payload = _part_payload(part, actor)
    await session.delete(part)
    _touch(order)
    await _flush(session, expected_version)
    await record(session, actor=actor, order=order, type=EventType.PART_REMOVED, payload=payload)
    return order


# --- internal notes -----------------------------------------------------------------------


async def add_internal_note(
    *, session: AsyncSession, actor: Actor, order_id: int, body: str
) -> InternalNote:
    require(actor, Action.NOTE_ADD)
    order = await get_order(session, actor, order_id, field="orderId")
    errors = Collector()
    clean = text(body, errors, ["body"], max_len=MAX_NOTE, required=True, label="Note")
    errors.raise_if_any()
    note = InternalNote(
        account_id=actor.account_id, order_id=order.id, author_id=actor.user_id, body=clean
    )
    session.add(note)
    await session.flush()
    await record(
        session,
        actor=actor,
        order=order,
        type=EventType.NOTE_ADDED,
        payload={"note_id": note.id, "body": note.body},
    )
    return note


# --- lists --------------------------------------------------------------------------------


@dataclass
class OrderFilter:
    statuses: list[OrderStatus] | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    search: str | None = None
    assigned_to: int | None = None
    client_id: int | None = None


def _search_condition(term: str):
    pattern = like_pattern(term)
    columns = [
        ServiceOrder.number,
        Client.name,
        Client.email,
        ServiceOrder.device_brand,
        ServiceOrder.device_model,
        ServiceOrder.device_imei,
        ServiceOrder.device_serial_number,
    ]
    conditions = [c.ilike(pattern, escape="\\") for c in columns]
    digits = "".join(ch for ch in term if ch.isdigit())
    if len(digits) >= 3:
        conditions.append(Client.phone.like(f"%{digits}%"))
    return or_(*conditions)


async def list_orders(
    session: AsyncSession,
    actor: Actor,
    flt: OrderFilter,
    *,
    first: int,
    after: int | None,
) -> Page[ServiceOrder]:
    stmt = scoped_orders(actor)
    if flt.statuses:
        stmt = stmt.where(ServiceOrder.status.in_([s.value for s in flt.statuses]))
    if flt.created_from is not None:
        stmt = stmt.where(ServiceOrder.created_at >= flt.created_from)
    if flt.created_to is not None:
        stmt = stmt.where(ServiceOrder.created_at < flt.created_to)
    if flt.assigned_to is not None:
        stmt = stmt.where(ServiceOrder.assigned_to_id == flt.assigned_to)
    if flt.client_id is not None:
        stmt = stmt.where(ServiceOrder.client_id == flt.client_id)
    term = (flt.search or "").strip()
    if term:
        stmt = stmt.join(Client, Client.id == ServiceOrder.client_id).where(_search_condition(term))
    return await keyset_page(session, stmt, id_column=ServiceOrder.id, first=first, after=after)


async def device_history(
    session: AsyncSession, actor: Actor, order: ServiceOrder
) -> list[ServiceOrder]:
    """Earlier and later orders of this account for the same IMEI or serial number."""
    matches = []
    if order.device_imei:
        matches.append(ServiceOrder.device_imei == order.device_imei)
    if order.device_serial_number:
        matches.append(ServiceOrder.device_serial_number == order.device_serial_number)
    if not matches:
        return []
    rows = await session.scalars(
        scoped_orders(actor)
        .where(or_(*matches), ServiceOrder.id != order.id)
        .order_by(ServiceOrder.id.desc())
        .limit(100)
    )
    return list(rows)
