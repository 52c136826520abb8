"""Data for the realtime benchmarks: one shop, its staff and tokens, and thousands of orders.

Making an order through `services.orders.create_order` costs about ten round trips to
PostgreSQL (50 ms each when the machine is busy), too slow for 8,000 orders in a benchmark
of a few minutes. So one *template* order is made through the service, then cloned in
bulk with one `INSERT ... SELECT` per table (every column copied from the template row,
only the columns that must differ overridden): its client, the order (next numbers of the
order counter), its creation history row, its default share link (a fresh random nonce
each) and its ORDER_CREATED event (order sequence 1, consecutive account sequences), with
the same notifications the template's event got. The counters (`accounts.last_event_seq`,
the order counter) are set to match. So each order has what the services would have made.

The orders are made *before* the subscribed staff exist (ORDER_CREATED notifies every
active staff member). Then the staff are created (`create_staff_user`) and signed in
(`login`), and the orders are spread over the technicians with one UPDATE of
`assigned_to_id` (a shortcut: no ASSIGNED events; the assignee only decides who is
notified of a status change). Every seeded event is marked published, as the server's
publisher would have done, so that no server's relay republishes them during a run.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from db.base import Base
from db.engine import Database
from db.models import Notification, OrderEvent, ServiceOrder, ShareLink, StatusHistory
from resolvers.ids import encode_id
from services import auth, numbering, orders
from services.clients import ClientData
from services.orders import DeviceData
from services.roles import Role

PASSWORD = "bench-password-1"
TIME_ZONE = "Europe/Lisbon"


@dataclass
class Staff:
    user_id: int
    token: str
    role: str


@dataclass
class RealtimeData:
    account_id: int
    driver_token: str  # the owner: moves orders; never notified of its own changes
    staff: list[Staff]  # the subscribed staff (managers first, then technicians)
    order_ids: list[int]  # primary keys, in creation order (the template first)
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)


def gid(order_id: int) -> str:
    return encode_id("ServiceOrder", order_id)


def cheap_password_hashing() -> None:
    """argon2 at its cheapest: seeding signs in 200 users and measures nothing."""
    auth._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    auth._DUMMY_HASH = auth._hasher.hash("dummy")


async def clone(
    session: AsyncSession,
    table: str,
    template_id: int,
    arrays: dict[str, tuple[str, list[Any]]],
    overrides: dict[str, str],
    returning: str,
) -> list[Any]:
    """Copies row `template_id` of `table` once per element of the (equally long) arrays;
    `overrides` give SQL expressions (over `t`, the template row, and `u`, the arrays'
    current elements) for the columns that differ. Returns the `returning` column of the
    new rows, with their ids: [(id, value), ...]."""
    columns = [c.name for c in Base.metadata.tables[table].columns if c.name != "id"]
    names = list(arrays)
    unnest = ", ".join(f"CAST(:{n} AS {pg_type}[])" for n, (pg_type, _) in arrays.items())
    exprs = [overrides.get(c, f"t.{c}") for c in columns]
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) "
        f"SELECT {', '.join(exprs)} FROM {table} t, unnest({unnest}) AS u({', '.join(names)}) "
        f"WHERE t.id = :template RETURNING id, {returning}"
    )
    params: dict[str, Any] = {n: values for n, (_, values) in arrays.items()}
    params["template"] = template_id
    return list((await session.execute(text(sql), params)).all())


async def _clone_orders(
    session: AsyncSession, account_id: int, template: ServiceOrder, count: int
) -> list[int]:
    """`count` copies of the template order, each with its own client, history row, share
    link, ORDER_CREATED event and that event's notifications."""
    if count <= 0:
        return []
    year = numbering.current_year(TIME_ZONE)
    first_seq = int(template.number.rsplit("-", 1)[1]) + 1
    numbers = [numbering.format_number(year, first_seq + k) for k in range(count)]
    phones = [f"+35191{k:07d}" for k in range(count)]
    rows = await clone(
        session,
        "clients",
        template.client_id,
        {"phone": ("text", phones), "name": ("text", [f"Client {k}" for k in range(count)])},
        {"phone": "u.phone", "name": "u.name"},
        "phone",
    )
    client_of = {phone: cid for cid, phone in rows}
    rows = await clone(
        session,
        "service_orders",
        template.id,
        {
            "number": ("text", numbers),
            "client_id": ("bigint", [client_of[p] for p in phones]),
            "serial": ("text", [f"RT{k:08d}" for k in range(count)]),
        },
        {"number": "u.number", "client_id": "u.client_id", "device_serial_number": "u.serial"},
        "number",
    )
    order_of = {number: oid for oid, number in rows}
    new_ids = [order_of[n] for n in numbers]
    history_id = await session.scalar(
        select(StatusHistory.id).where(StatusHistory.order_id == template.id)
    )
    assert history_id is not None
    await clone(
        session,
        "status_history",
        history_id,
        {"order_id": ("bigint", new_ids)},
        {"order_id": "u.order_id"},
        "order_id",
    )
    link_id = await session.scalar(select(ShareLink.id).where(ShareLink.order_id == template.id))
    assert link_id is not None
    await clone(
        session,
        "share_links",
        link_id,
        {
            "order_id": ("bigint", new_ids),
            "nonce": ("text", [secrets.token_bytes(16).hex() for _ in new_ids]),
        },
        {"order_id": "u.order_id", "nonce": "u.nonce"},
        "order_id",
    )
    event = await session.scalar(select(OrderEvent).where(OrderEvent.order_id == template.id))
    assert event is not None
    account_seqs = [event.account_seq + 1 + k for k in range(count)]
    rows = await clone(
        session,
        "order_events",
        event.id,
        {
            "order_id": ("bigint", new_ids),
            "account_seq": ("bigint", account_seqs),
            "number": ("text", numbers),
        },
        {
            "order_id": "u.order_id",
            "account_seq": "u.account_seq",
            "payload": "CAST(jsonb_set(CAST(t.payload AS jsonb), '{number}', to_jsonb(u.number))"
            " AS json)",
        },
        "account_seq",
    )
    event_of = {seq: eid for eid, seq in rows}
    notes = await session.scalars(select(Notification.id).where(Notification.event_id == event.id))
    for note_id in notes:
        await clone(
            session,
            "notifications",
            note_id,
            {
                "event_id": ("bigint", [event_of[s] for s in account_seqs]),
                "account_seq": ("bigint", account_seqs),
            },
            {"event_id": "u.event_id", "account_seq": "u.account_seq"},
            "event_id",
        )
    await session.execute(
        text("UPDATE accounts SET last_event_seq = :seq WHERE id = :account"),
        {"seq": account_seqs[-1], "account": account_id},
    )
    await session.execute(
        text("UPDATE order_counters SET last_value = :seq WHERE account_id = :account"),
        {"seq": first_seq + count - 1, "account": account_id},
    )
    return new_ids


async def seed(db: Database, *, orders_count: int, staff_count: int, leads: int) -> RealtimeData:
    """`staff_count` subscribed staff: `leads` managers (notified of every status change)
    and technicians (notified of their own orders' changes)."""
    started = time.monotonic()
    cheap_password_hashing()
    async with db.write_session() as session:
        account, owner = await auth.create_account(
            session=session,
            name="Realtime Repairs",
            owner_email="owner@rt.bench",
            owner_password=PASSWORD,
            owner_name="Olga Owner",
            time_zone=TIME_ZONE,
            currency="EUR",
            country="PT",
        )
        owner_actor = auth.actor_for(owner, account)
        desk = await auth.create_staff_user(
            session=session,
            actor=owner_actor,
            email="desk@rt.bench",
            name="Dora Desk",
            role=Role.FRONT_DESK,
            password=PASSWORD,
        )
        account_id = account.id
        result = await orders.create_order(
            session=session,
            actor=auth.actor_for(desk, account),
            client_id=None,
            client=ClientData(name="Template Client", phone="+351900000000"),
            device=DeviceData(
                model="iPhone 13",
                brand="Apple",
                problem_reported="Does not charge",
                serial_number="RT-TEMPLATE",
            ),
        )
    async with db.write_session() as session:
        order_ids = [result.order.id]
        order_ids += await _clone_orders(session, account_id, result.order, orders_count - 1)

    staff_users = []
    async with db.write_session() as session:
        for i in range(staff_count):
            staff_users.append(
                await auth.create_staff_user(
                    session=session,
                    actor=owner_actor,
                    email=f"staff{i}@rt.bench",
                    name=f"Staff {i}",
                    role=Role.MANAGER if i < leads else Role.TECHNICIAN,
                    password=PASSWORD,
                )
            )
    tokens: dict[int, str] = {}
    async with db.write_session() as session:
        for user in [owner, *staff_users]:
            issued = await auth.login(
                session=session,
                email=user.email,
                password=PASSWORD,
                ip="bench",
                ttl=timedelta(days=2),
            )
            tokens[user.id] = issued.token
        techs = [u.id for u in staff_users if u.role == Role.TECHNICIAN.value]
        if techs:
            await session.execute(
                text(
                    "UPDATE service_orders o SET assigned_to_id = "
                    "(CAST(:techs AS bigint[]))[1 + CAST(s.rn % :n AS integer)] "
                    "FROM (SELECT id, row_number() OVER (ORDER BY id) - 1 AS rn "
                    "      FROM service_orders WHERE account_id = :account) s "
                    "WHERE o.id = s.id"
                ),
                {"techs": techs, "n": len(techs), "account": account_id},
            )
        await session.execute(
            text("UPDATE order_events SET published_at = now() WHERE published_at IS NULL")
        )
    async with db.write_session() as session:
        await session.execute(text("ANALYZE"))
    return RealtimeData(
        account_id=account_id,
        driver_token=tokens[owner.id],
        staff=[Staff(u.id, tokens[u.id], u.role) for u in staff_users],
        order_ids=order_ids,
        seconds=time.monotonic() - started,
        counts={"orders": len(order_ids), "staff": len(staff_users), "leads": leads},
    )
