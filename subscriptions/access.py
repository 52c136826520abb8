"""Per-event access checks for long-lived streams.

Permission classes run once, at subscribe time; a stream can live for hours. Each stream
holds a `StreamAccess`, checked before every event it sends:
- in memory: revoked flag and token expiry (no query per event);
- a `control` message on the bus (published after a deactivation, logout or, later, a
  share-link revoke commits) marks the matching accesses revoked at once and wakes their
  streams, which end with an error;
- as a fallback for a control message lost while Redis was down, the access is checked
  against the database again after every RESYNC and at least every REVALIDATE_SECONDS.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime

from db.base import utcnow
from subscriptions.bus import RESYNC, BoundedSubscriber, Bus
from subscriptions.channels import CONTROL

log = logging.getLogger("service_orders.access")

# the control channel ends streams at once; this database re-check is only the fallback
# for a control message lost while Redis was down (every RESYNC re-checks too)
REVALIDATE_SECONDS = 300.0


class AccessEnded(Exception):
    """The stream's credentials were revoked or expired; `code` says which."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class StreamAccess:
    def __init__(
        self,
        *,
        keys: tuple[str, ...],
        expires_at: datetime | None,
        revalidate: Callable[[], Awaitable[AccessEnded | None]],
    ) -> None:
        self.keys = keys  # e.g. ("staff:12", "token:<hash>")
        self.expires_at = expires_at
        self._revalidate = revalidate
        self._checked_at = time.monotonic()
        self.ended: AccessEnded | None = None
        self.subscriber: BoundedSubscriber | None = None

    def end(self, reason: AccessEnded) -> None:
        self.ended = reason
        if self.subscriber is not None:
            self.subscriber.offer(RESYNC)  # wake the stream

    async def check(self, *, force: bool = False) -> None:
        if self.ended is None and self.expires_at is not None and utcnow() >= self.expires_at:
            self.ended = AccessEnded("TOKEN_EXPIRED", "Your session expired. Sign in again.")
        if self.ended is None and (
            force or time.monotonic() - self._checked_at > REVALIDATE_SECONDS
        ):
            self._checked_at = time.monotonic()
            self.ended = await self._revalidate()
        if self.ended is not None:
            raise self.ended


class AccessRegistry:
    """Process-wide: listens on the control channel and ends the matching streams."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._by_key: dict[str, set[StreamAccess]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="access-control")
        await asyncio.wait_for(self._ready.wait(), 10)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def register(self, access: StreamAccess) -> None:
        for key in access.keys:
            self._by_key[key].add(access)

    def unregister(self, access: StreamAccess) -> None:
        for key in access.keys:
            accesses = self._by_key.get(key)
            if accesses is not None:
                accesses.discard(access)
                if not accesses:
                    del self._by_key[key]

    def revoke(self, key: str, code: str, message: str) -> int:
        accesses = list(self._by_key.get(key, ()))
        for access in accesses:
            access.end(AccessEnded(code, message))
        return len(accesses)

    async def _listen(self) -> None:
        async with self.bus.subscribe(CONTROL) as sub:
            self._ready.set()
            while True:
                item = await sub.get()
                if item is RESYNC or item is None:
                    continue
                try:
                    data = json.loads(item.message)  # type: ignore[union-attr]
                    self.revoke(str(data["key"]), str(data["code"]), str(data["message"]))
                except (ValueError, KeyError, TypeError):
                    log.warning("ignoring a malformed control message")
