"""The per-request context handed to every resolver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from config import Settings
from db.engine import Database
from db.models import Account, StaffUser
from services.policy import Actor

if TYPE_CHECKING:
    from resolvers.loaders import Loaders
    from subscriptions.realtime import Realtime


@dataclass
class Context:
    db: Database
    settings: Settings
    request_id: str
    client_ip: str
    request: Any = None
    response: Any = None
    token: str | None = None
    user: StaffUser | None = None
    account: Account | None = None
    actor: Actor | None = None
    token_expires_at: Any = None
    realtime: Realtime | None = None
    loaders: Loaders = field(init=False)
    # read by strawberry on websockets (connection_init payload)
    connection_params: dict[str, Any] | None = None
    # HTTP requests share one read session (one pooled connection) among all their
    # resolvers and DataLoader batches; a websocket's context lives for the whole socket,
    # so there every read takes a short session of its own
    shared_reads: bool = True
    _reads: AsyncSession | None = field(default=None, init=False, repr=False)
    _reads_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        from resolvers.loaders import Loaders

        self.loaders = Loaders(self)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A session for reads. Sibling resolvers run concurrently, so the shared session
        is used by one of them at a time (never nest two `reading()` blocks)."""
        if not self.shared_reads:
            async with self.db.read_session() as session:
                yield session
            return
        async with self._reads_lock:
            if self._reads is None:
                self._reads = self.db.new_read_session()
            yield self._reads

    async def close_reads(self) -> None:
        """End the shared read session: at the end of the request, and after a write
        commits (so later reads start a fresh transaction that sees it)."""
        async with self._reads_lock:
            session, self._reads = self._reads, None
        if session is not None:
            await session.close()
