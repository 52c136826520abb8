"""Running one service call in one transaction and mapping its outcome."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from db.engine import Database
from services.errors import DomainError, flatten
from services.orders import RetryableConflict

T = TypeVar("T")
log = logging.getLogger("service_orders.resolvers")

MAX_ATTEMPTS = 4


async def write(
    db: Database, call: Callable[[AsyncSession], Awaitable[T]]
) -> tuple[T | None, list[DomainError]]:
    """Run `call` in a write transaction. A DomainError rolls everything back and is returned
    as errors; a retryable conflict (optimistic lock lost, no expected version given) runs
    the whole call again on fresh data."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            async with db.write_session() as session:
                return await call(session), []
        except RetryableConflict as exc:
            if attempt == MAX_ATTEMPTS:
                return None, [exc]
            log.info("optimistic lock lost, retrying (attempt %d)", attempt)
        except DomainError as exc:
            return None, flatten(exc)
    raise AssertionError("unreachable")  # pragma: no cover
