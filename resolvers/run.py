"""Running one service call in one transaction, publishing its events after commit."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from services.errors import DomainError, flatten
from services.events import pending
from services.orders import RetryableConflict

if TYPE_CHECKING:
    from resolvers.context import Context

T = TypeVar("T")
log = logging.getLogger("service_orders.resolvers")

MAX_ATTEMPTS = 4


async def write(
    ctx: Context, call: Callable[[AsyncSession], Awaitable[T]]
) -> tuple[T | None, list[DomainError]]:
    """Run `call` in a write transaction. A DomainError (an undecodable ID included: calls
    decode their IDs first) rolls everything back (no row, no event) and is returned as
    errors; a retryable conflict (optimistic lock lost, no
    expected version given) runs the whole call again on fresh data. Events recorded by
    the call are published only after the commit succeeded."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            async with ctx.db.write_session() as session:
                result = await call(session)
                events = list(pending(session))
        except RetryableConflict as exc:
            if attempt == MAX_ATTEMPTS:
                return None, [exc]
            log.info("optimistic lock lost, retrying (attempt %d)", attempt)
            continue
        except DomainError as exc:
            return None, flatten(exc)
        await ctx.close_reads()  # later reads in this request see the commit
        if events and ctx.realtime is not None:
            await ctx.realtime.publish(events)
        return result, []
    raise AssertionError("unreachable")  # pragma: no cover
