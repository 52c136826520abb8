"""broadcaster backend on redis.asyncio pub/sub, written for the failures of the released one.

- It never waits on a pub/sub connection that has no channel (redis-py 8 made the released
  backend's first subscription deaf) and does not report "ready" before SUBSCRIBE is sent.
- Any connection error in the reader reconnects with exponential backoff (50 ms .. 2 s),
  resubscribes every channel, then emits RESYNC so that every subscriber replays what it
  may have missed from the event table. Nothing hangs after a Redis restart.
- The pub/sub connection has its own client without retries: redis-py's retry would
  reconnect and resubscribe it silently after a quick Redis restart, and the subscribers
  would never be told to RESYNC. One lock serializes everything that (re)connects or
  (un)subscribes it, so the reader and `subscribe()` never open two connections.
- Publishing uses a client with retries, so the first command on a stale pooled
  connection after a Redis restart is retried instead of failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import redis.asyncio as redis
from broadcaster import Event
from broadcaster._backends.base import BroadcastBackend
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from subscriptions.bus import RESYNC_CHANNEL

log = logging.getLogger("service_orders.bus.redis")

RECOVERABLE = (RedisConnectionError, RedisTimeoutError, OSError, ConnectionError)
POLL_SECONDS = 1.0
BACKOFF_START = 0.05
BACKOFF_MAX = 2.0
CONFIRM_SECONDS = 2.0


class RedisBackend(BroadcastBackend):
    def __init__(self, url: str) -> None:
        self.url = url
        self._channels: set[str] = set()
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._has_channels = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._client: redis.Redis | None = None
        self._sub_client: redis.Redis | None = None
        self._pubsub: Any = None
        # held while connecting, (un)subscribing or replacing self._pubsub
        self._pubsub_lock = asyncio.Lock()
        # channel -> set when Redis confirms our SUBSCRIBE
        self._confirmed: dict[str, asyncio.Event] = {}
        self.connected = asyncio.Event()
        self.reconnects = 0

    def _new_client(self) -> redis.Redis:
        return redis.Redis.from_url(
            self.url,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
            socket_connect_timeout=2,
            health_check_interval=10,
        )

    def _new_sub_client(self) -> redis.Redis:
        # no retries: a lost pub/sub connection must surface in the reader (-> RESYNC)
        return redis.Redis.from_url(
            self.url,
            retry=Retry(NoBackoff(), retries=0),
            socket_connect_timeout=2,
            health_check_interval=10,
        )

    async def connect(self) -> None:
        self._client = self._new_client()
        self._sub_client = self._new_sub_client()
        self._pubsub = self._sub_client.pubsub()
        self.connected.set()
        self._reader = asyncio.create_task(self._read_loop(), name="redis-bus-reader")

    async def disconnect(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._pubsub is not None:
            try:
                await self._pubsub.aclose()
            except Exception:
                log.debug("closing pubsub failed", exc_info=True)
        for client in (self._sub_client, self._client):
            if client is not None:
                await client.aclose()

    async def subscribe(self, channel: str) -> None:
        """Returns once Redis confirmed the subscription: a stream replays from the database
        right after this, so nothing published later may be missed (Redis only delivers to
        a subscription it has processed)."""
        self._channels.add(channel)
        self._has_channels.set()
        confirmed = self._confirmed[channel] = asyncio.Event()
        try:
            async with self._pubsub_lock:
                await self._pubsub.subscribe(channel)
        except RECOVERABLE:
            # the reader is reconnecting; it subscribes every channel in self._channels and
            # then tells every subscriber to RESYNC
            log.warning("subscribe %s deferred: Redis unreachable", channel)
            return
        try:
            await asyncio.wait_for(confirmed.wait(), CONFIRM_SECONDS)
        except TimeoutError:
            log.warning("Redis did not confirm SUBSCRIBE %s in %ss", channel, CONFIRM_SECONDS)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        self._confirmed.pop(channel, None)
        if not self._channels:
            self._has_channels.clear()
        try:
            async with self._pubsub_lock:
                await self._pubsub.unsubscribe(channel)
        except RECOVERABLE:
            log.debug("unsubscribe %s: Redis unreachable", channel)

    async def publish(self, channel: str, message: Any) -> None:
        assert self._client is not None
        await self._client.publish(channel, message)

    async def next_published(self) -> Event:
        return await self._queue.get()

    async def _read_loop(self) -> None:
        while True:
            if not self._channels:
                await self._has_channels.wait()
                continue
            try:
                message = await self._pubsub.get_message(
                    ignore_subscribe_messages=False, timeout=POLL_SECONDS
                )
            except RECOVERABLE as exc:
                log.warning("Redis pub/sub connection lost (%s); reconnecting", exc)
                await self._reconnect()
                continue
            except RuntimeError:
                # "pubsub connection not set": no SUBSCRIBE reached Redis yet (Redis was
                # unreachable, or subscribe() is connecting right now: wait for it)
                try:
                    async with self._pubsub_lock:
                        if self._pubsub.connection is None:
                            await self._resubscribe_all()
                except RECOVERABLE as exc:
                    log.warning("Redis pub/sub unreachable (%s); reconnecting", exc)
                    await self._reconnect()
                continue
            if message is None:
                continue
            if message.get("type") == "subscribe":
                name = message["channel"]
                waiting = self._confirmed.get(name.decode() if isinstance(name, bytes) else name)
                if waiting is not None:
                    waiting.set()
                continue
            if message.get("type") != "message":
                continue
            channel = message["channel"]
            data = message["data"]
            self._queue.put_nowait(
                Event(
                    channel=channel.decode() if isinstance(channel, bytes) else channel,
                    message=data.decode() if isinstance(data, bytes) else data,
                )
            )

    async def _resubscribe_all(self) -> None:
        """Callers hold self._pubsub_lock."""
        channels = list(self._channels)
        if channels:
            await self._pubsub.subscribe(*channels)

    async def _reconnect(self) -> None:
        self.connected.clear()
        delay = BACKOFF_START
        while True:
            try:
                async with self._pubsub_lock:
                    try:
                        await self._pubsub.aclose()
                    except Exception:
                        log.debug("closing the broken pubsub failed", exc_info=True)
                    self._pubsub = self._sub_client.pubsub()  # type: ignore[union-attr]
                    await self._resubscribe_all()
                await self._client.ping()  # type: ignore[union-attr]
                break
            except RECOVERABLE:
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
        self.reconnects += 1
        self.connected.set()
        log.info("Redis pub/sub reconnected; telling subscribers to resync")
        self._queue.put_nowait(Event(channel=RESYNC_CHANNEL, message=""))
