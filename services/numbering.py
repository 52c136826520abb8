"""Order numbers: OS-YYYY-NNNN per account, the year in the account's time zone.

The counter row for (account, year) is incremented with UPDATE ... RETURNING inside the
order's own transaction. The row lock serialises concurrent creations; a creation that fails
rolls the increment back with it. So numbers are sequential, never reused, and gap-free.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import OrderCounter

PREFIX = "OS"


def format_number(year: int, seq: int) -> str:
    return f"{PREFIX}-{year}-{seq:04d}"


def current_year(time_zone: str, now: datetime | None = None) -> int:
    return (now or datetime.now(ZoneInfo(time_zone))).astimezone(ZoneInfo(time_zone)).year


async def next_number(session: AsyncSession, *, account_id: int, year: int) -> str:
    bump = (
        update(OrderCounter)
        .where(OrderCounter.account_id == account_id, OrderCounter.year == year)
        .values(last_value=OrderCounter.last_value + 1)
        .returning(OrderCounter.last_value)
    )
    seq = await session.scalar(bump)
    if seq is None:
        dialect = session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        await session.execute(
            insert(OrderCounter)
            .values(account_id=account_id, year=year, last_value=0)
            .on_conflict_do_nothing()
        )
        seq = await session.scalar(bump)
    assert seq is not None
    return format_number(year, seq)
