"""Benchmark data, loaded through the service functions the API itself uses.

One shop with an owner, a manager, a front desk and three technicians; a few hundred
orders, each with 1-3 parts, a diagnosis, history rows from walking the status machine and
some internal notes. Orders for the transition benchmark are made first (so the newest 50,
the list benchmark's page, are ordinary orders) and are left in REPAIRING, from where they
can cycle REPAIRING -> TESTING -> REPAIRING for ever.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from argon2 import PasswordHasher

from db.engine import Database
from db.models import StaffUser
from resolvers.ids import encode_id
from services import auth, orders
from services.clients import ClientData
from services.orders import DeviceData
from services.policy import Actor
from services.roles import Role
from services.statuses import OrderStatus as S

PASSWORD = "bench-password-1"
SEED_CONCURRENCY = 4  # orders made at once (hides round trips; numbers stay gap-free)

# Paths through the status machine; each read order follows one (by index), so the data has
# every open status and 1-9 history rows per order.
PATHS: list[list[S]] = [
    [],
    [S.AWAITING_DIAGNOSIS],
    [S.AWAITING_DIAGNOSIS, S.DIAGNOSING],
    [S.DIAGNOSING, S.AWAITING_APPROVAL],
    [S.DIAGNOSING, S.AWAITING_APPROVAL, S.APPROVED],
    [S.DIAGNOSING, S.AWAITING_APPROVAL, S.APPROVED, S.REPAIRING],
    [S.DIAGNOSING, S.REPAIRING, S.TESTING],
    [S.DIAGNOSING, S.AWAITING_APPROVAL, S.APPROVED, S.REPAIRING, S.TESTING, S.READY],
    [S.REPAIRING, S.TESTING, S.REPAIRING, S.TESTING, S.READY, S.COMPLETED],
    [S.DIAGNOSING, S.AWAITING_APPROVAL, S.DIAGNOSING, S.AWAITING_APPROVAL, S.REJECTED],
]
BENCH_ROLES = {S.DIAGNOSING, S.AWAITING_APPROVAL, S.REPAIRING, S.TESTING, S.READY}

BRANDS = [
    ("Apple", "iPhone 13"),
    ("Samsung", "Galaxy S22"),
    ("Google", "Pixel 7"),
    ("Xiaomi", "Redmi Note 12"),
    ("Apple", "iPad Air 4"),
    ("Lenovo", "ThinkPad T480"),
]
PROBLEMS = [
    "Cracked screen after a drop",
    "Battery drains in two hours",
    "Does not charge",
    "No sound from the speaker",
    "Camera shows a black image",
]
PARTS = [
    ("Screen assembly", Decimal("89.90")),
    ("Battery", Decimal("39.50")),
    ("Charging port", Decimal("19.99")),
    ("Speaker module", Decimal("12.00")),
    ("Adhesive kit", Decimal("2.50")),
    ("Camera module", Decimal("54.00")),
]


@dataclass
class BenchData:
    account_id: int
    read_token: str  # an OWNER's token: reads see every available transition
    transition_tokens: list[str]  # TECHNICIANs' tokens
    read_order_ids: list[str]  # global IDs, newest first
    transition_order_ids: list[str]  # global IDs of orders in REPAIRING
    sample_order_id: str  # an order with an assignee, notes and several history rows
    counts: dict[str, int] = field(default_factory=dict)


def cheap_password_hashing() -> None:
    """argon2 at its cheapest: seeding logs in a handful of users and measures nothing."""
    auth._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    auth._DUMMY_HASH = auth._hasher.hash("dummy")


def imei(n: int) -> str:
    body = f"35{n:012d}"[-14:]
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:  # doubled positions, counted from the check digit's left neighbour
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return body + str((10 - total % 10) % 10)


def client_data(n: int) -> ClientData:
    email = f"client{n}@example.com" if n % 3 else None
    phone = f"+3519{1 + n % 3}{n:07d}"[:13]
    return ClientData(name=f"Client {n} Silva", email=email, phone=phone)


async def _make_staff(db: Database) -> tuple[int, dict[str, Actor], dict[str, str], list[str]]:
    """The shop and its staff; returns (account id, actors by key, tokens by key, tech keys)."""
    actors: dict[str, Actor] = {}
    tokens: dict[str, str] = {}
    async with db.write_session() as session:
        account, owner = await auth.create_account(
            session=session,
            name="Bench Repairs",
            owner_email="owner@bench.test",
            owner_password=PASSWORD,
            owner_name="Olga Owner",
            time_zone="Europe/Lisbon",
            currency="EUR",
            country="PT",
        )
        owner_actor = auth.actor_for(owner, account)
        users: dict[str, StaffUser] = {"owner": owner}
        staff = [
            ("manager", "Mario Manager", Role.MANAGER),
            ("desk", "Dora Desk", Role.FRONT_DESK),
            ("tech1", "Tiago Technician", Role.TECHNICIAN),
            ("tech2", "Teresa Technician", Role.TECHNICIAN),
            ("tech3", "Tomas Technician", Role.TECHNICIAN),
        ]
        for key, name, role in staff:
            users[key] = await auth.create_staff_user(
                session=session,
                actor=owner_actor,
                email=f"{key}@bench.test",
                name=name,
                role=role,
                password=PASSWORD,
            )
        for key, user in users.items():
            issued = await auth.login(
                session=session,
                email=user.email,
                password=PASSWORD,
                ip="bench",
                ttl=timedelta(days=2),
            )
            tokens[key] = issued.token
            actors[key] = auth.actor_for(user, account)
    return account.id, actors, tokens, ["tech1", "tech2", "tech3"]


async def seed(db: Database, *, read_orders: int, transition_orders: int) -> BenchData:
    cheap_password_hashing()
    rng = random.Random(20261123)
    account_id, actors, tokens, techs = await _make_staff(db)
    desk, owner = actors["desk"], actors["owner"]
    counts = {"orders": 0, "parts": 0, "history": 0, "notes": 0}
    client_ids: list[int] = []

    async def make_order(n: int, path: list[S], *, assign: bool) -> int:
        tech = actors[techs[n % len(techs)]]
        brand, model = BRANDS[n % len(BRANDS)]
        async with db.write_session() as session:
            reuse = client_ids and n % 4 == 0
            result = await orders.create_order(
                session=session,
                actor=desk,
                client_id=rng.choice(client_ids) if reuse else None,
                client=None if reuse else client_data(n),
                device=DeviceData(
                    model=model,
                    brand=brand,
                    problem_reported=PROBLEMS[n % len(PROBLEMS)],
                    imei=imei(n) if n % 2 == 0 else None,
                    serial_number=None if n % 2 == 0 else f"SN{n:08d}",
                    accessories="Charger and case" if n % 3 == 0 else None,
                    condition_notes="Scratches on the back" if n % 5 == 0 else None,
                ),
                assigned_to_id=tech.user_id if assign and n % 7 else None,
            )
            order = result.order
            if not reuse:
                client_ids.append(order.client_id)
        # the rest in a second transaction: the first one holds the order-number counter's
        # row lock until it commits, and other orders are being made concurrently
        async with db.write_session() as session:
            await orders.set_diagnosis(
                session=session,
                actor=tech,
                order_id=order.id,
                changes={
                    "diagnosis": f"Finding {n}: the part needs replacing.",
                    "estimated_cost": Decimal(60 + n % 90),
                    "labour_cost": Decimal("25.00") + Decimal(n % 4) * 5,
                    "warranty_days": 90,
                },
            )
            for k in range(1 + n % 3):
                name, cost = PARTS[(n + k) % len(PARTS)]
                await orders.add_part(
                    session=session,
                    actor=tech,
                    order_id=order.id,
                    name=name,
                    quantity=1 + (n + k) % 2,
                    unit_cost=cost,
                )
                counts["parts"] += 1
            for k in range(n % 3):
                await orders.add_internal_note(
                    session=session,
                    actor=tech if k % 2 == 0 else owner,
                    order_id=order.id,
                    body=f"Note {k + 1} on order {n}: customer called for an update.",
                )
                counts["notes"] += 1
            for step in path:
                await orders.transition_order(
                    session=session,
                    actor=tech if step in BENCH_ROLES else desk,
                    order_id=order.id,
                    to_status=step,
                    note=f"Moved to {step.value.lower()}" if n % 2 else None,
                )
            counts["orders"] += 1
            counts["history"] += 1 + len(path)
            return order.id

    gate = asyncio.Semaphore(SEED_CONCURRENCY)

    async def made(n: int, path: list[S]) -> int:
        async with gate:
            return await make_order(n, path, assign=True)

    transition_pks = await asyncio.gather(
        *(made(n, [S.REPAIRING]) for n in range(transition_orders))
    )
    read_pks = await asyncio.gather(
        *(made(transition_orders + n, PATHS[n % len(PATHS)]) for n in range(read_orders))
    )
    rich = [
        pk
        for n, pk in enumerate(read_pks, start=transition_orders)
        if n % 3 == 2 and n % 7 and len(PATHS[(n - transition_orders) % len(PATHS)]) >= 3
    ]
    return BenchData(
        account_id=account_id,
        read_token=tokens["owner"],
        transition_tokens=[tokens[t] for t in techs],
        read_order_ids=[encode_id("ServiceOrder", pk) for pk in sorted(read_pks, reverse=True)],
        transition_order_ids=[encode_id("ServiceOrder", pk) for pk in transition_pks],
        sample_order_id=encode_id("ServiceOrder", (rich or read_pks)[-1]),
        counts=counts,
    )
