"""The event bus: broadcaster's `Broadcast` with the guards the released 0.3.1 lacks.

- Subscribe/unsubscribe bookkeeping runs under a lock: 50 concurrent first subscribers of a
  channel all get registered and all receive (upstream loses 49 and raises KeyError).
- Per-subscriber queues are bounded. A subscriber that falls behind is not allowed to grow
  memory: its backlog is dropped and it is told to RESYNC from the event table instead.
- A backend may emit RESYNC (the Redis backend does after a reconnect): every subscriber
  is told to resync, because messages published while the connection was down are lost.

Subscribers therefore receive `Event`s and, now and then, the `RESYNC` marker; the stream
layer (subscriptions/streams.py) turns that into a gap-free, ordered, de-duplicated stream
by replaying from the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from broadcaster import Broadcast, Event
from broadcaster._backends.base import BroadcastBackend

log = logging.getLogger("service_orders.bus")

RESYNC_CHANNEL = "__resync__"
DEFAULT_QUEUE_SIZE = 256


class Resync:
    """Marker put on a subscriber's queue: messages may have been lost; replay from the DB."""

    def __repr__(self) -> str:
        return "RESYNC"


RESYNC = Resync()
Item = Event | Resync


class BoundedSubscriber:
    def __init__(self, queue: asyncio.Queue[Item]) -> None:
        self.queue = queue
        self.overflows = 0

    async def get(self, timeout: float | None = None) -> Item | None:  # noqa: ASYNC109
        """The next item, or None after `timeout` seconds without one."""
        if timeout is None:
            return await self.queue.get()
        try:
            # asyncio.timeout, not wait_for: no extra task per wake-up (200 staff streams
            # wake on every account event)
            async with asyncio.timeout(timeout):
                return await self.queue.get()
        except TimeoutError:
            return None

    def offer(self, item: Item) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            # fell behind: drop the backlog (it is all in the event table) and resync
            self.overflows += 1
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(RESYNC)


class Bus(Broadcast):
    def __init__(self, backend: BroadcastBackend, *, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        super().__init__(backend=backend)
        self.queue_size = queue_size
        self._lock = asyncio.Lock()
        self._subs: dict[str, set[BoundedSubscriber]] = {}
        self._bus_listener: asyncio.Task[None] | None = None

    @property
    def backend(self) -> BroadcastBackend:
        return self._backend

    async def connect(self) -> None:
        await self._backend.connect()
        self._bus_listener = asyncio.create_task(self._listener(), name="bus-listener")

    async def disconnect(self) -> None:
        if self._bus_listener is not None:
            self._bus_listener.cancel()
            try:
                await self._bus_listener
            except asyncio.CancelledError:
                pass
            except Exception:  # the listener's own failure is logged, not re-raised here
                log.exception("bus listener had failed")
        await self._backend.disconnect()

    async def _listener(self) -> None:
        while True:
            event = await self._backend.next_published()
            if event.channel == RESYNC_CHANNEL:
                for subscribers in list(self._subs.values()):
                    for sub in list(subscribers):
                        sub.offer(RESYNC)
                continue
            for sub in list(self._subs.get(event.channel, ())):
                sub.offer(event)

    def subscriber_count(self, channel: str | None = None) -> int:
        if channel is not None:
            return len(self._subs.get(channel, ()))
        return sum(len(s) for s in self._subs.values())

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[BoundedSubscriber]:  # type: ignore[override]
        sub = BoundedSubscriber(asyncio.Queue(maxsize=self.queue_size))
        async with self._lock:
            subscribers = self._subs.get(channel)
            if subscribers:
                subscribers.add(sub)
            else:
                # register first so that nothing published right after SUBSCRIBE is missed
                self._subs[channel] = {sub}
                try:
                    await self._backend.subscribe(channel)
                except BaseException:
                    del self._subs[channel]
                    raise
        try:
            yield sub
        finally:
            async with self._lock:
                subscribers = self._subs.get(channel)
                if subscribers is not None:
                    subscribers.discard(sub)
                    if not subscribers:
                        del self._subs[channel]
                        try:
                            await self._backend.unsubscribe(channel)
                        except Exception:  # a dead connection forgets its channels anyway
                            log.warning("unsubscribe from %s failed", channel, exc_info=True)

    async def publish(self, channel: str, message: Any) -> None:
        await self._backend.publish(channel, message)


def create_bus(redis_url: str | None, *, queue_size: int = DEFAULT_QUEUE_SIZE) -> Bus:
    if redis_url:
        from subscriptions.redis_backend import RedisBackend

        return Bus(RedisBackend(redis_url), queue_size=queue_size)
    from subscriptions.memory_backend import MemoryBackend

    return Bus(MemoryBackend(), queue_size=queue_size)
