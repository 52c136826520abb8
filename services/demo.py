"""The demo shop: four staff and about 30 orders spread over every status.

Built through the same service functions the API uses, so history rows, numbers and
totals are exactly what real use produces."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.base import utcnow
from db.models import ServiceOrder, ShareLink, StaffUser
from services import auth, orders
from services.clients import ClientData
from services.orders import DeviceData
from services.roles import Role
from services.statuses import OrderStatus as S

DEMO_PASSWORD = "demo-password-1"
DEMO_OWNER = "owner@demo.shop"


@dataclass(frozen=True)
class DemoShop:
    account_id: int
    logins: dict[str, str]  # email -> role
    created: bool


STAFF = [
    ("manager@demo.shop", "Maya Manager", Role.MANAGER),
    ("tech@demo.shop", "Tomas Technician", Role.TECHNICIAN),
    ("desk@demo.shop", "Dana Front Desk", Role.FRONT_DESK),
]

CLIENTS = [
    ("Alice Johnson", "alice@example.com", "+1 415 555 0101"),
    ("Bob Smith", "bob@example.com", "+1 415 555 0102"),
    ("Carla Gomez", None, "+1 415 555 0103"),
    ("Dmitri Petrov", "dmitri@example.com", None),
    ("Emma Brown", "emma@example.com", "+1 415 555 0105"),
    ("Farid Haddad", "farid@example.com", "+1 415 555 0106"),
    ("Grace Lee", None, "+1 415 555 0107"),
    ("Hiro Tanaka", "hiro@example.com", "+1 415 555 0108"),
]

DEVICES = [
    ("Apple", "iPhone 13", "Cracked screen after a drop", "490154203237518", None),
    ("Samsung", "Galaxy S22", "Battery drains in two hours", "356938035643809", None),
    ("Google", "Pixel 7", "Does not charge", "352099001761481", None),
    ("Apple", "MacBook Air M1", "Liquid spill on keyboard", None, "C02DX1ZQMD6M"),
    ("Lenovo", "ThinkPad T480", "Fan noise and overheating", None, "PF1ABCDE"),
    ("Dell", "XPS 13 9310", "No display on boot", None, "8XK2M53"),
    ("Apple", "iPad Air 4", "Touch unresponsive in one corner", None, "DMPZK1ABCD12"),
    ("Xiaomi", "Redmi Note 11", "Speaker crackles", "862203046574213", None),
    ("HP", "Pavilion 15", "Windows does not start", None, "5CD1234XYZ"),
    ("Nintendo", "Switch OLED", "Joy-Con drift", None, "XTW70012345678"),
]

# one per device above: (diagnosis, estimate, labour, parts)
DIAGNOSES = [
    (
        "Display assembly cracked; digitizer damaged.",
        "129.00",
        "40.00",
        [("Display assembly", 1, "89.00")],
    ),
    ("Battery worn to 71% capacity.", "79.00", "25.00", [("Battery", 1, "54.00")]),
    ("Charging port corroded.", "59.00", "30.00", [("USB-C port flex", 1, "29.00")]),
    (
        "Keyboard and top case damaged by liquid.",
        "349.00",
        "90.00",
        [("Top case with keyboard", 1, "239.00"), ("Isopropyl cleaning", 1, "20.00")],
    ),
    (
        "Fan bearing worn; thermal paste dried.",
        "69.00",
        "35.00",
        [("Fan", 1, "24.00"), ("Thermal paste", 1, "10.00")],
    ),
    ("Display cable unseated after a knock.", "89.00", "60.00", [("Display cable", 1, "29.00")]),
    ("Digitizer fault in the lower-left corner.", "159.00", "45.00", [("Digitizer", 1, "114.00")]),
    ("Earpiece speaker membrane torn.", "49.00", "25.00", [("Speaker module", 1, "24.00")]),
    (
        "Failing SSD; Windows image corrupted.",
        "139.00",
        "50.00",
        [("SSD 512 GB", 1, "69.00"), ("Windows reinstall", 1, "20.00")],
    ),
    (
        "Worn analog stick sensors in both Joy-Con.",
        "59.00",
        "25.00",
        [("Analog stick", 2, "17.00")],
    ),
]

# the path each demo order walks, ending in its final status
PATHS: dict[S, list[S]] = {
    S.PENDING: [],
    S.AWAITING_DIAGNOSIS: [S.AWAITING_DIAGNOSIS],
    S.DIAGNOSING: [S.AWAITING_DIAGNOSIS, S.DIAGNOSING],
    S.AWAITING_APPROVAL: [S.DIAGNOSING, S.AWAITING_APPROVAL],
    S.APPROVED: [S.DIAGNOSING, S.AWAITING_APPROVAL, S.APPROVED],
    S.REJECTED: [S.DIAGNOSING, S.AWAITING_APPROVAL, S.REJECTED],
    S.REPAIRING: [S.DIAGNOSING, S.AWAITING_APPROVAL, S.APPROVED, S.REPAIRING],
    S.TESTING: [S.DIAGNOSING, S.AWAITING_APPROVAL, S.APPROVED, S.REPAIRING, S.TESTING],
    S.READY: [S.DIAGNOSING, S.AWAITING_APPROVAL, S.APPROVED, S.REPAIRING, S.TESTING, S.READY],
    S.COMPLETED: [S.DIAGNOSING, S.AWAITING_APPROVAL, S.APPROVED, S.REPAIRING, S.READY, S.COMPLETED],
    S.CANCELLED: [S.AWAITING_DIAGNOSIS, S.CANCELLED],
}
FINAL_STATUSES = [
    s for s in S for _ in range(2 if s in (S.REJECTED, S.CANCELLED, S.TESTING) else 3)
]  # 30
NEEDS_DIAGNOSIS = {S.AWAITING_APPROVAL}


async def load_demo(session: AsyncSession) -> DemoShop:
    """Create the demo shop unless it exists (idempotent)."""
    logins = {DEMO_OWNER: Role.OWNER.value} | {e: r.value for e, _, r in STAFF}
    existing = await session.scalar(select(StaffUser).where(StaffUser.email == DEMO_OWNER))
    if existing is not None:
        return DemoShop(account_id=existing.account_id, logins=logins, created=False)

    account, owner = await auth.create_account(
        session=session,
        name="Fix-It Corner (demo)",
        owner_email=DEMO_OWNER,
        owner_password=DEMO_PASSWORD,
        owner_name="Olivia Owner",
        time_zone="America/Los_Angeles",
        currency="USD",
        country="US",
        phone="+1 415 555 0100",
        email="hello@fixit.example",
        address="12 Market Street, San Francisco, CA",
    )
    owner_actor = auth.actor_for(owner, account)
    actors = {Role.OWNER: owner_actor}
    for email, name, role in STAFF:
        user = await auth.create_staff_user(
            session=session,
            actor=owner_actor,
            email=email,
            name=name,
            role=role,
            password=DEMO_PASSWORD,
        )
        actors[role] = auth.actor_for(user, account)
    tech, desk, manager = actors[Role.TECHNICIAN], actors[Role.FRONT_DESK], actors[Role.MANAGER]

    rng = random.Random(42)  # noqa: S311 - demo data, not security
    for index, final in enumerate(FINAL_STATUSES):
        client_name, client_email, phone = CLIENTS[index % len(CLIENTS)]
        brand, model, problem, imei, serial = DEVICES[index % len(DEVICES)]
        result = await orders.create_order(
            session=session,
            actor=desk,
            client_id=None,
            client=ClientData(name=client_name, email=client_email, phone=phone),
            device=DeviceData(
                brand=brand,
                model=model,
                problem_reported=problem,
                imei=imei,
                serial_number=serial,
                accessories=rng.choice([None, "Charger", "Case", "Charger and case"]),
                condition_notes=rng.choice([None, "Scratches on the back", "Dent on a corner"]),
            ),
            promised_at=utcnow() + timedelta(days=rng.randint(1, 10)),
            assigned_to_id=tech.user_id if final is not S.PENDING else None,
        )
        order = result.order
        path = PATHS[final]
        if S.AWAITING_APPROVAL in path or final is S.REPAIRING:
            diagnosis, estimate, labour, parts = DIAGNOSES[index % len(DEVICES)]
            await orders.set_diagnosis(
                session=session,
                actor=tech,
                order_id=order.id,
                changes={
                    "diagnosis": diagnosis,
                    "estimated_cost": Decimal(estimate),
                    "labour_cost": Decimal(labour),
                    "warranty_days": 90,
                },
            )
            for part_name, quantity, cost in parts:
                await orders.add_part(
                    session=session,
                    actor=tech,
                    order_id=order.id,
                    name=part_name,
                    quantity=quantity,
                    unit_cost=Decimal(cost),
                )
        for step in path:
            actor = desk if step in (S.APPROVED, S.REJECTED, S.COMPLETED, S.CANCELLED) else tech
            note = {
                S.APPROVED: "Customer approved by phone.",
                S.REJECTED: "Customer declined: too expensive.",
                S.CANCELLED: "Customer collected the device unrepaired.",
                S.COMPLETED: "Handed over; customer paid at the counter.",
            }.get(step)
            await orders.transition_order(
                session=session, actor=actor, order_id=order.id, to_status=step, note=note
            )
        if index % 4 == 0:
            await orders.add_internal_note(
                session=session,
                actor=manager,
                order_id=order.id,
                body="Regular customer: offer 10% off the next repair.",
            )
    return DemoShop(account_id=account.id, logins=logins, created=True)


async def featured_link(session: AsyncSession, account_id: int) -> ShareLink | None:
    """An active share link of a demo order whose estimate awaits the customer's decision."""
    return await session.scalar(
        select(ShareLink)
        .join(ServiceOrder, ServiceOrder.id == ShareLink.order_id)
        .where(
            ShareLink.account_id == account_id,
            ServiceOrder.status == S.AWAITING_APPROVAL.value,
            ShareLink.revoked_at.is_(None),
            ShareLink.expires_at > utcnow(),
        )
        .order_by(ServiceOrder.id)
        .limit(1)
    )
