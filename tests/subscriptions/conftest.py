"""Fixtures and helpers for the bus, relay and stream regression tests.

Every wait is bounded: `wait_until` polls with a deadline and subscribers are read with
`BoundedSubscriber.get(timeout=...)`, so a regression fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from broadcaster import Event
from broadcaster._backends.base import BroadcastBackend

from db.engine import Database
from services import events as event_service
from services.clients import ClientData
from services.events import EventRecord
from services.orders import DeviceData, add_internal_note, create_order
from services.policy import Actor
from subscriptions.bus import DEFAULT_QUEUE_SIZE, RESYNC, BoundedSubscriber, Bus, create_bus
from tests.servers import RedisServer

_names = itertools.count()


def unique(prefix: str) -> str:
    """A channel name no other test (nor an earlier run on a shared Redis) uses."""
    return f"test:{prefix}:{os.getpid()}:{next(_names)}:{time.monotonic_ns()}"


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]], timeout: float, what: str
) -> float:
    """Poll until `predicate()` is true; returns the seconds it took. Fails after `timeout`."""
    start = time.monotonic()
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


async def numsub(url: str, channel: str) -> int:
    """How many Redis connections are subscribed to `channel` (PUBSUB NUMSUB)."""
    client = aioredis.Redis.from_url(url)
    try:
        ((_, count),) = await client.pubsub_numsub(channel)
        return int(count)
    finally:
        await client.aclose()


async def next_event(sub: BoundedSubscriber, timeout: float) -> Event:
    """The next item, which must be an `Event` (not RESYNC) and arrive within `timeout`."""
    item = await sub.get(timeout=timeout)
    assert item is not None, f"nothing received within {timeout}s"
    assert item is not RESYNC, "unexpected RESYNC"
    assert isinstance(item, Event)
    return item


async def next_event_after_resyncs(sub: BoundedSubscriber, timeout: float) -> Event:
    """The next `Event`, skipping RESYNC markers; all within `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        item = await sub.get(timeout=max(0.0, deadline - time.monotonic()))
        assert item is not None, f"no event received within {timeout}s"
        if item is RESYNC:
            continue
        assert isinstance(item, Event)
        return item


@pytest.fixture
def redis_url(redis_server: Any) -> str:
    """The session's shared Redis (never killed: fault tests start their own)."""
    return redis_server if isinstance(redis_server, str) else str(redis_server.url)


@pytest.fixture
def killable_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own, which the test may SIGKILL and restart on the same port."""
    server = RedisServer.create(tmp_path)
    try:
        yield server
    finally:
        server.stop()


OpenBus = Callable[..., Awaitable[Bus]]


@pytest.fixture
async def open_bus() -> AsyncIterator[OpenBus]:
    """`await open_bus(url_or_None, queue_size=..., backend=...)`: a connected bus (on that
    backend if given), disconnected after the test."""
    buses: list[Bus] = []

    async def open_(
        url: str | None,
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        backend: BroadcastBackend | None = None,
    ) -> Bus:
        if backend is not None:
            bus = Bus(backend, queue_size=queue_size)
        else:
            bus = create_bus(url, queue_size=queue_size)
        await asyncio.wait_for(bus.connect(), 10)
        buses.append(bus)
        return bus

    yield open_
    for bus in reversed(buses):
        await asyncio.wait_for(bus.disconnect(), 10)


# --- committed changes -------------------------------------------------------------------


async def new_order(db: Database, actor: Actor) -> tuple[int, list[EventRecord]]:
    """Create an order (one ORDER_CREATED event), commit, and do NOT publish: the events
    are returned, as the API would have them after commit."""
    async with db.write_session() as session:
        created = await create_order(
            session=session,
            actor=actor,
            client_id=None,
            client=ClientData(name="Ana Silva", phone="+351 912 345 678"),
            device=DeviceData(model="Pixel 7", problem_reported="Does not charge"),
        )
        events = list(event_service.pending(session))
    return created.order.id, events


async def add_note(db: Database, actor: Actor, order_id: int, body: str) -> EventRecord:
    """Commit one change (a NOTE_ADDED event) without publishing it; returns the event."""
    async with db.write_session() as session:
        await add_internal_note(session=session, actor=actor, order_id=order_id, body=body)
        (event,) = event_service.pending(session)
    return event


async def db_order_events(db: Database, actor: Actor, order_id: int) -> list[EventRecord]:
    async with db.read_session() as session:
        return await event_service.order_events(
            session, account_id=actor.account_id, order_id=order_id, after=None, limit=10_000
        )
