"""The baseline: a bare Starlette + asyncpg server that answers the two read benchmarks.

It runs the same SELECT statements the GraphQL app runs for the same request (the bearer
token lookup, the order or page, then the clients, staff, parts, history and notes by id,
as the app's DataLoaders batch them), on one pooled asyncpg connection per request, and
returns the same JSON as the GraphQL response (`{"data": ...}`), built by hand from the
rows. No ORM, no GraphQL, no middleware. The column lists come from the SQLAlchemy table
metadata at import time, so they follow the models as the app's statements do.

    python -m bench.baseline --dsn postgresql://... --port 8001
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from db import models
from services.money import exponent
from services.roles import Role
from services.statuses import OrderStatus, available_transitions


def _columns(model: Any, prefix: str = "") -> str:
    table = model.__table__
    return ", ".join(
        f"{table.name}.{c.name}" + (f" AS {prefix}{c.name}" if prefix else "")
        for c in table.columns
    )


STAFF = _columns(models.StaffUser)
SQL_AUTH = (
    f"SELECT {STAFF}, {_columns(models.Account, 'account_')} "
    "FROM staff_users JOIN auth_tokens ON auth_tokens.user_id = staff_users.id "
    "JOIN accounts ON accounts.id = staff_users.account_id "
    "WHERE auth_tokens.token_hash = $1::VARCHAR AND auth_tokens.revoked_at IS NULL "
    "AND auth_tokens.expires_at > $2::TIMESTAMP WITH TIME ZONE "
    "AND staff_users.is_active IS true"
)
ORDERS = _columns(models.ServiceOrder)
SQL_ORDER = (
    f"SELECT {ORDERS} FROM service_orders "
    "WHERE service_orders.account_id = $1::BIGINT AND service_orders.id = $2::BIGINT"
)
SQL_PAGE = (
    f"SELECT {ORDERS} FROM service_orders WHERE service_orders.account_id = $1::BIGINT "
    "ORDER BY service_orders.id DESC LIMIT $2::INTEGER"
)
# The DataLoader statements take their keys as an expanded IN list ($2, $3, ...), as
# SQLAlchemy renders `column.in_(keys)`: {keys} is replaced per key count (cached).
SQL_CLIENTS = (
    f"SELECT {_columns(models.Client)} FROM clients "
    "WHERE clients.id IN ({keys}) AND clients.account_id = $1::BIGINT"
)
SQL_STAFF = (
    f"SELECT {STAFF} FROM staff_users "
    "WHERE staff_users.id IN ({keys}) AND staff_users.account_id = $1::BIGINT"
)
SQL_PARTS = (
    f"SELECT {_columns(models.PartLine)} FROM part_lines "
    "WHERE part_lines.order_id IN ({keys}) AND part_lines.account_id = $1::BIGINT "
    "ORDER BY part_lines.id"
)
HISTORY = _columns(models.StatusHistory)
SQL_HISTORY = (
    f"SELECT {HISTORY} FROM status_history "
    "WHERE status_history.order_id IN ({keys}) "
    "AND status_history.account_id = $1::BIGINT ORDER BY status_history.id"
)
SQL_LATEST_HISTORY = (
    f"SELECT {HISTORY} FROM status_history WHERE status_history.id IN ("
    "SELECT max(status_history.id) AS max_1 FROM status_history "
    "WHERE status_history.order_id IN ({keys}) "
    "AND status_history.account_id = $1::BIGINT GROUP BY status_history.order_id)"
)
SQL_NOTES = (
    f"SELECT {_columns(models.InternalNote)} FROM internal_notes "
    "WHERE internal_notes.order_id IN ({keys}) "
    "AND internal_notes.account_id = $1::BIGINT ORDER BY internal_notes.id"
)


@functools.cache
def in_list(template: str, count: int) -> str:
    return template.replace("{keys}", ", ".join(f"${i}::BIGINT" for i in range(2, count + 2)))


async def fetch_in(
    conn: asyncpg.Connection, template: str, account: int, keys: list[int]
) -> list[asyncpg.Record]:
    if not keys:
        return []
    return await conn.fetch(in_list(template, len(keys)), account, *keys)


# One statement per request kind, in the order the app runs them (the app runs the
# DataLoader statements concurrently on separate connections; here they run one after
# the other on one connection). Printed by bench.run beside the app's captured statements.
STATEMENTS = {
    "detail": [
        SQL_AUTH,
        SQL_ORDER,
        SQL_CLIENTS,
        SQL_PARTS,
        SQL_HISTORY,
        SQL_STAFF,
        SQL_NOTES,
        SQL_STAFF,
    ],
    "list": [SQL_AUTH, SQL_PAGE, SQL_CLIENTS, SQL_LATEST_HISTORY, SQL_STAFF, SQL_PARTS],
}


# --- JSON building ------------------------------------------------------------------------


def gid(type_name: str, pk: int) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode().rstrip("=")


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


class Money:
    def __init__(self, currency: str) -> None:
        self.currency = currency
        self.exp = -exponent(currency)

    def __call__(self, minor: int) -> dict[str, str]:
        return {"amount": str(Decimal(minor).scaleb(self.exp)), "currency": self.currency}

    def maybe(self, minor: int | None) -> dict[str, str] | None:
        return None if minor is None else self(minor)


def device(o: asyncpg.Record, *, full: bool) -> dict[str, Any]:
    out = {
        "brand": o["device_brand"],
        "model": o["device_model"],
        "imei": o["device_imei"],
        "serialNumber": o["device_serial_number"],
        "problemReported": o["problem_reported"],
    }
    if full:
        out["accessories"] = o["accessories"]
        out["conditionNotes"] = o["condition_notes"]
    return out


def part(p: asyncpg.Record, money: Money, *, created: bool) -> dict[str, Any]:
    out = {
        "id": gid("PartLine", p["id"]),
        "name": p["name"],
        "quantity": p["quantity"],
        "unitCost": money(p["unit_cost"]),
        "lineTotal": money(p["quantity"] * p["unit_cost"]),
    }
    if created:
        out["createdAt"] = iso(p["created_at"])
    return out


def staff_ref(u: asyncpg.Record | None, *, email: bool = False) -> dict[str, Any] | None:
    if u is None:
        return None
    out = {"id": gid("StaffUser", u["id"]), "name": u["name"]}
    if email:
        out["email"] = u["email"]
    out["role"] = u["role"]
    return out


class Viewer:
    def __init__(self, row: asyncpg.Record) -> None:
        self.account_id: int = row["account_id"]
        self.role = Role(row["role"])
        self.money = Money(row["account_currency"])


# --- endpoints ----------------------------------------------------------------------------


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def viewer_of(request: Request, conn: asyncpg.Connection) -> Viewer | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    row = await conn.fetchrow(SQL_AUTH, hash_token(token.strip()), datetime.now(UTC))
    return None if row is None else Viewer(row)


UNAUTHENTICATED = {"data": None, "errors": [{"message": "unauthenticated"}]}


def decode_order_id(global_id: str) -> int | None:
    try:
        raw = base64.urlsafe_b64decode(global_id + "=" * (-len(global_id) % 4)).decode()
    except ValueError:
        return None
    type_name, _, pk = raw.partition(":")
    return int(pk) if type_name == "ServiceOrder" and pk.isdigit() else None


async def detail(request: Request) -> Response:
    variables = (await request.json())["variables"]
    pool: asyncpg.Pool = request.app.state.pool
    async with pool.acquire() as conn:
        viewer = await viewer_of(request, conn)
        if viewer is None:
            return JSONResponse(UNAUTHENTICATED)
        account = viewer.account_id
        pk = decode_order_id(str(variables["id"]))
        o = None if pk is None else await conn.fetchrow(SQL_ORDER, account, pk)
        if o is None:
            return JSONResponse({"data": {"serviceOrder": None}})
        keys = [o["id"]]
        (client,) = await fetch_in(conn, SQL_CLIENTS, account, [o["client_id"]])
        parts = await fetch_in(conn, SQL_PARTS, account, keys)
        history = await fetch_in(conn, SQL_HISTORY, account, keys)
        assignee = [o["assigned_to_id"]] if o["assigned_to_id"] is not None else []
        staff = {u["id"]: u for u in await fetch_in(conn, SQL_STAFF, account, assignee)}
        notes = await fetch_in(conn, SQL_NOTES, account, keys)
        wanted = {h["actor_id"] for h in history if h["actor_id"] is not None}
        wanted |= {n["author_id"] for n in notes}
        for u in await fetch_in(conn, SQL_STAFF, account, sorted(wanted - staff.keys())):
            staff[u["id"]] = u
    money = viewer.money
    parts_total = sum(p["quantity"] * p["unit_cost"] for p in parts)
    data = {
        "id": gid("ServiceOrder", o["id"]),
        "number": o["number"],
        "status": o["status"],
        "version": o["version"],
        "diagnosis": o["diagnosis"],
        "warrantyDays": o["warranty_days"],
        "createdAt": iso(o["created_at"]),
        "updatedAt": iso(o["updated_at"]),
        "estimatedCost": money.maybe(o["estimated_cost"]),
        "labourCost": money(o["labour_cost"]),
        "client": {
            "id": gid("Client", client["id"]),
            "name": client["name"],
            "email": client["email"],
            "phone": client["phone"],
            "createdAt": iso(client["created_at"]),
        },
        "device": device(o, full=True),
        "parts": [part(p, money, created=True) for p in parts],
        "partsTotal": money(parts_total),
        "total": money(o["labour_cost"] + parts_total),
        "assignedTo": staff_ref(staff.get(o["assigned_to_id"]), email=True),
        "history": [
            {
                "fromStatus": h["from_status"],
                "toStatus": h["to_status"],
                "note": h["note"],
                "at": iso(h["created_at"]),
                "actor": staff_ref(staff.get(h["actor_id"])),
            }
            for h in history
        ],
        "internalNotes": [
            {
                "id": gid("InternalNote", n["id"]),
                "body": n["body"],
                "createdAt": iso(n["created_at"]),
                "author": staff_ref(staff.get(n["author_id"])),
            }
            for n in notes
        ],
        "availableTransitions": [
            s.value for s in available_transitions(OrderStatus(o["status"]), viewer.role)
        ],
    }
    return JSONResponse({"data": {"serviceOrder": data}})


async def order_list(request: Request) -> Response:
    variables = (await request.json())["variables"]
    first = int(variables["first"])
    pool: asyncpg.Pool = request.app.state.pool
    async with pool.acquire() as conn:
        viewer = await viewer_of(request, conn)
        if viewer is None:
            return JSONResponse(UNAUTHENTICATED)
        account = viewer.account_id
        rows = await conn.fetch(SQL_PAGE, account, first + 1)
        page = rows[:first]
        keys = [o["id"] for o in page]
        client_ids = list(dict.fromkeys(o["client_id"] for o in page))
        clients = {c["id"]: c for c in await fetch_in(conn, SQL_CLIENTS, account, client_ids)}
        latest = {h["order_id"]: h for h in await fetch_in(conn, SQL_LATEST_HISTORY, account, keys)}
        staff_ids = list(dict.fromkeys(o["assigned_to_id"] for o in page if o["assigned_to_id"]))
        staff = {u["id"]: u for u in await fetch_in(conn, SQL_STAFF, account, staff_ids)}
        parts: dict[int, list[asyncpg.Record]] = {k: [] for k in keys}
        for p in await fetch_in(conn, SQL_PARTS, account, keys):
            parts[p["order_id"]].append(p)
    money = viewer.money
    nodes = []
    for o in page:
        c = clients[o["client_id"]]
        h = latest.get(o["id"])
        order_parts = parts[o["id"]]
        nodes.append(
            {
                "id": gid("ServiceOrder", o["id"]),
                "number": o["number"],
                "status": o["status"],
                "createdAt": iso(o["created_at"]),
                "client": {
                    "id": gid("Client", c["id"]),
                    "name": c["name"],
                    "phone": c["phone"],
                    "email": c["email"],
                },
                "device": device(o, full=False),
                "parts": [part(p, money, created=False) for p in order_parts],
                "assignedTo": staff_ref(staff.get(o["assigned_to_id"])),
                "latestHistory": None
                if h is None
                else {
                    "fromStatus": h["from_status"],
                    "toStatus": h["to_status"],
                    "note": h["note"],
                    "at": iso(h["created_at"]),
                },
                "total": money(
                    o["labour_cost"] + sum(p["quantity"] * p["unit_cost"] for p in order_parts)
                ),
            }
        )
    end = gid("cursor", page[-1]["id"]) if page else None
    return JSONResponse(
        {
            "data": {
                "serviceOrders": {
                    "pageInfo": {"hasNextPage": len(rows) > first, "endCursor": end},
                    "nodes": nodes,
                }
            }
        }
    )


async def health(request: Request) -> Response:
    pool: asyncpg.Pool = request.app.state.pool
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT 1")
    return JSONResponse({"status": "ok"})


def create_app(dsn: str, *, pool_size: int = 20) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(dsn, min_size=2, max_size=pool_size)
        try:
            yield
        finally:
            await app.state.pool.close()

    return Starlette(
        routes=[
            Route("/healthz", health),
            Route("/detail", detail, methods=["POST"]),
            Route("/list", order_list, methods=["POST"]),
        ],
        lifespan=lifespan,
    )


def main() -> None:
    from bench.serve_app import add_server_arguments, serve

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dsn", required=True, help="postgresql://... (asyncpg form)")
    parser.add_argument("--pool-size", type=int, default=20)
    add_server_arguments(parser)
    args = parser.parse_args()
    serve(create_app(args.dsn, pool_size=args.pool_size), args)


if __name__ == "__main__":
    main()
