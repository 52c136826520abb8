"""Query helpers: account-scoped selects and keyset pagination."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

T = TypeVar("T")

MAX_PAGE = 100
DEFAULT_PAGE = 20


@dataclass
class Page(Generic[T]):
    items: list[T]
    has_next: bool
    has_previous: bool
    count_statement: Select[Any] | None = None


def like_pattern(term: str) -> str:
    """A case-insensitive substring pattern with LIKE wildcards escaped (use escape='\\\\')."""
    escaped = term.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def keyset_page(
    session: AsyncSession,
    stmt: Select[Any],
    *,
    id_column: InstrumentedAttribute[int],
    first: int,
    after: int | None,
) -> Page[Any]:
    """Newest first by id; `after` is the id of the last item of the previous page."""
    count_statement = select(func.count()).select_from(stmt.order_by(None).subquery())
    page_stmt = stmt
    if after is not None:
        page_stmt = page_stmt.where(id_column < after)
    rows: Sequence[Any] = (
        await session.scalars(page_stmt.order_by(id_column.desc()).limit(first + 1))
    ).all()
    return Page(
        items=list(rows[:first]),
        has_next=len(rows) > first,
        has_previous=after is not None,
        count_statement=count_statement,
    )
