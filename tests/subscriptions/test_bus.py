"""The bus (subscriptions.bus) against a real Redis and in memory: the first subscription,
concurrent first subscribers and bounded queues.

The `upstream` tests run the released `broadcaster.Broadcast("redis://...")` through the
same steps and assert the failures described in stack-notes ("broadcaster 0.3.1 is broken
as released"). They assert only what is deterministic: with redis-py 8 every SUBSCRIBE
suspends (the write goes through `asyncio.wait_for` because `socket_timeout` defaults to
5 s), so the released backend's listener always runs before the channel is registered, and
50 first subscribers always all pass the unguarded "no subscribers yet" check together.
They are skipped with an older redis-py, where those interleavings are not guaranteed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis
from broadcaster import Broadcast, Event

from subscriptions.bus import RESYNC, BoundedSubscriber, Bus
from subscriptions.memory_backend import MemoryBackend
from tests.subscriptions.conftest import (
    OpenBus,
    next_event,
    numsub,
    unique,
    wait_until,
)

REDIS_PY_8 = int(redis.__version__.split(".")[0]) >= 8
upstream_redis_py_8 = pytest.mark.skipif(
    not REDIS_PY_8, reason="the upstream failure is only deterministic with redis-py 8"
)

KINDS = ["redis", "memory"]


class SuspendingMemoryBackend(MemoryBackend):
    """The in-memory backend, but SUBSCRIBE suspends like any networked backend's does:
    exposes unguarded subscribe bookkeeping without Redis."""

    async def subscribe(self, channel: str) -> None:
        await asyncio.sleep(0.001)
        await super().subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        await asyncio.sleep(0.001)
        await super().unsubscribe(channel)


async def bus_of_kind(kind: str, redis_url: str, open_bus: OpenBus, **kw: int) -> Bus:
    if kind == "suspending-memory":
        return await open_bus(None, backend=SuspendingMemoryBackend(), **kw)
    return await open_bus(redis_url if kind == "redis" else None, **kw)


async def assert_backend_unsubscribed(kind: str, bus: Bus, redis_url: str, channel: str) -> None:
    assert bus.subscriber_count() == 0
    assert bus.subscriber_count(channel) == 0
    backend_channels = bus.backend._channels  # type: ignore[attr-defined]
    assert channel not in backend_channels
    if kind == "redis":
        # no Redis connection stays subscribed (a leaked, never-read one would buffer forever)
        async def unsubscribed() -> bool:
            return await numsub(redis_url, channel) == 0

        await wait_until(unsubscribed, 2.0, f"Redis to have no subscriber on {channel}")


# --- 1. the first subscription ------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_first_subscription_of_a_fresh_bus_receives(
    kind: str, redis_url: str, open_bus: OpenBus
) -> None:
    """Failure #1: the very first subscription of a new bus gets an event published right
    after `subscribe()` returns, on exactly one Redis connection, and unsubscribes fully."""
    bus = await bus_of_kind(kind, redis_url, open_bus)
    channel = unique("first")
    async with bus.subscribe(channel) as sub:
        await bus.publish(channel, "hello")
        assert await next_event(sub, 2.0) == Event(channel, "hello")
        if kind == "redis":
            # once the event arrived, SUBSCRIBE was processed; one connection, not two
            await asyncio.sleep(0.05)
            assert await numsub(redis_url, channel) == 1
        # and the second subscription to the same channel shares it
        async with bus.subscribe(channel) as second:
            await bus.publish(channel, "again")
            assert await next_event(sub, 2.0) == Event(channel, "again")
            assert await next_event(second, 2.0) == Event(channel, "again")
    await assert_backend_unsubscribed(kind, bus, redis_url, channel)


@upstream_redis_py_8
async def test_upstream_first_subscription_is_deaf_with_redis_py_8(redis_url: str) -> None:
    """Documents failure #1 in the released broadcaster: the same steps, nothing arrives."""
    upstream = Broadcast(redis_url)
    await upstream.connect()
    channel = unique("upstream-first")
    try:
        async with upstream.subscribe(channel) as sub:
            await upstream.publish(channel, "hello")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(sub.get(), 1.0)
    finally:
        await upstream.disconnect()


# --- 2. concurrent first subscribers ------------------------------------------------------


async def run_concurrent_first_subscribers(
    subscribe: Callable[[str], Any],
    publish: Callable[[str, str], Awaitable[None]],
    channel: str,
    count: int,
    wait: float,
) -> list[object]:
    """`count` clients subscribe to `channel` at once (asyncio.gather), then one event is
    published; returns what each got (an Event, "TIMEOUT", or the exception it raised)."""
    entered = 0
    everyone_in = asyncio.Event()

    async def client() -> object:
        nonlocal entered
        async with subscribe(channel) as sub:
            entered += 1
            if entered == count:
                everyone_in.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(everyone_in.wait(), 5.0)
            try:
                return await asyncio.wait_for(sub.get(), wait)
            except TimeoutError:
                return "TIMEOUT"

    async def publisher() -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(everyone_in.wait(), 5.0)
        await publish(channel, "x")

    results = await asyncio.wait_for(
        asyncio.gather(*(client() for _ in range(count)), publisher(), return_exceptions=True),
        20.0,
    )
    return list(results[:count])


@pytest.mark.parametrize("kind", [*KINDS, "suspending-memory"])
async def test_concurrent_first_subscribers_all_receive_and_leave_cleanly(
    kind: str, redis_url: str, open_bus: OpenBus
) -> None:
    """Failure #2: 50 clients subscribe at once (asyncio.gather) to a new channel of a fresh
    bus. Each one gets the message it publishes right after its own subscribe() returned
    (so no subscribe returns before the channel is really subscribed), then all get one
    common event, and all exit without error; afterwards the bus holds no subscriber and
    the backend (and Redis) no subscription. "suspending-memory" is the in-memory backend
    with a SUBSCRIBE that suspends, so the bookkeeping race is exercised without Redis."""
    bus = await bus_of_kind(kind, redis_url, open_bus)
    channel = unique("concurrent")
    count = 50
    entered = peak = 0
    everyone_in = asyncio.Event()

    async def until(sub: BoundedSubscriber, message: str) -> None:
        while (await next_event(sub, 3.0)).message != message:
            pass

    async def client(i: int) -> None:
        nonlocal entered, peak
        async with bus.subscribe(channel) as sub:
            await bus.publish(channel, f"own-{i}")
            await until(sub, f"own-{i}")
            entered += 1
            peak = max(peak, bus.subscriber_count(channel))
            if entered == count:
                everyone_in.set()
            await asyncio.wait_for(everyone_in.wait(), 5.0)
            await until(sub, "everyone")

    async def publisher() -> None:
        await asyncio.wait_for(everyone_in.wait(), 5.0)
        await bus.publish(channel, "everyone")

    results = await asyncio.wait_for(
        asyncio.gather(*(client(i) for i in range(count)), publisher(), return_exceptions=True),
        20.0,
    )
    assert [r for r in results if r is not None] == []
    assert peak == count
    await assert_backend_unsubscribed(kind, bus, redis_url, channel)


@upstream_redis_py_8
async def test_upstream_loses_concurrent_first_subscribers(redis_url: str) -> None:
    """Documents failure #2 in the released broadcaster: of 50 concurrent first subscribers
    only the last one stays registered (so at most one can receive; with redis-py 8 it is
    deaf too) and the other 49 raise KeyError on exit."""
    upstream = Broadcast(redis_url)
    await upstream.connect()
    channel = unique("upstream-concurrent")
    try:
        results = await run_concurrent_first_subscribers(
            upstream.subscribe, upstream.publish, channel, 50, wait=1.0
        )
    finally:
        await upstream.disconnect()
    outcome = Counter(type(r).__name__ if isinstance(r, BaseException) else "ok" for r in results)
    assert outcome["KeyError"] == 49
    received = [r for r in results if isinstance(r, Event)]
    assert len(received) <= 1


# --- 4. bounded queues --------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_a_subscriber_that_never_reads_is_bounded_and_told_to_resync(
    kind: str, redis_url: str, open_bus: OpenBus
) -> None:
    """A subscriber that never reads, while 10x queue_size events are published, never holds
    more than queue_size items; reading, it first gets RESYNC (its backlog was dropped, the
    event table has it) and then only the latest events. A subscriber that keeps up, on the
    same channel, gets every event in order and no RESYNC."""
    queue_size = 8
    bus = await bus_of_kind(kind, redis_url, open_bus, queue_size=queue_size)
    channel = unique("bounded")
    total = 10 * queue_size
    async with bus.subscribe(channel) as slow, bus.subscribe(channel) as fast:
        for i in range(total):
            await bus.publish(channel, str(i))
            # the reader keeps up: each event is taken before the next is published
            assert await next_event(fast, 2.0) == Event(channel, str(i))
            assert slow.queue.qsize() <= queue_size
        assert fast.queue.qsize() == 0
        assert fast.overflows == 0
        assert slow.overflows >= total // queue_size - 1
        assert slow.queue.qsize() <= queue_size

        assert await slow.get(timeout=1.0) is RESYNC
        rest: list[str] = []
        while (item := await slow.get(timeout=0.05)) is not None:
            assert isinstance(item, Event)
            rest.append(item.message)
        assert 0 < len(rest) < queue_size
        assert rest == [str(i) for i in range(total - len(rest), total)]
    await assert_backend_unsubscribed(kind, bus, redis_url, channel)


async def test_subscribe_waits_for_redis_to_confirm(redis_url: str, open_bus: OpenBus) -> None:
    """Streams replay from the database right after subscribing, so subscribe() may only
    return once Redis has processed the SUBSCRIBE. Here the confirmation is held back for
    0.3 s: subscribe() must not return before it, and Redis counts the subscriber then."""
    import time

    from subscriptions.redis_backend import RedisBackend

    bus = await open_bus(redis_url)
    backend = bus.backend
    assert isinstance(backend, RedisBackend)
    pubsub = backend._pubsub
    original = pubsub.get_message

    async def slow_confirmations(*args: Any, **kwargs: Any) -> Any:
        message = await original(*args, **kwargs)
        if message is not None and message.get("type") == "subscribe":
            await asyncio.sleep(0.3)
        return message

    pubsub.get_message = slow_confirmations
    channel = unique("confirmed")
    started = time.monotonic()
    async with bus.subscribe(channel):
        assert time.monotonic() - started >= 0.3
        assert await numsub(redis_url, channel) == 1
