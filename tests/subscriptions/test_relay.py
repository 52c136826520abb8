"""The relay (subscriptions.relay.Publisher): committed events that were never published
(the process died between commit and publish, or Redis was down) go out on the order's and
the account's channel and are marked `published_at`; while Redis is down they stay
unpublished, and the running relay loop sends them soon after it is back.

Runs on both database backends (the `db` fixture) with a real Redis.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta

import pytest
import redis
from sqlalchemy import select

from db.engine import Database
from db.models import OrderEvent
from services.events import EventRecord
from subscriptions.bus import RESYNC
from subscriptions.channels import account_channel, order_channel
from subscriptions.redis_backend import BACKOFF_MAX, RedisBackend
from subscriptions.relay import Publisher
from tests.conftest import Shop
from tests.servers import RedisServer
from tests.subscriptions.conftest import (
    OpenBus,
    add_note,
    new_order,
    next_event,
    wait_until,
)


async def published_at(db: Database, ids: list[int]) -> dict[int, bool]:
    async with db.read_session() as session:
        rows = await session.execute(
            select(OrderEvent.id, OrderEvent.published_at).where(OrderEvent.id.in_(ids))
        )
        return {event_id: at is not None for event_id, at in rows}


def wire(event: EventRecord) -> dict[str, object]:
    return json.loads(json.dumps(event.to_wire()))


async def test_relay_publishes_committed_but_unpublished_events_once(
    db: Database, shop: Shop, redis_url: str, open_bus: OpenBus
) -> None:
    """An order created and a note added, committed and never published (as if the process
    died after commit): relay_once(grace=0) sends both, in order, on the order channel and
    the account channel, and marks them published; a second pass sends nothing."""
    bus = await open_bus(redis_url)
    actor = shop.actors["FRONT_DESK"]
    order_id, created = await new_order(db, actor)
    note = await add_note(db, actor, order_id, "Customer called")
    events = [*created, note]
    ids = [e.id for e in events]
    assert await published_at(db, ids) == dict.fromkeys(ids, False)

    publisher = Publisher(bus, db)
    async with (
        bus.subscribe(order_channel(order_id)) as on_order,
        bus.subscribe(account_channel(shop.account_id)) as on_account,
    ):
        assert await publisher.relay_once(grace=timedelta(0)) == 2
        for sub in (on_order, on_account):
            received = [json.loads((await next_event(sub, 2.0)).message) for _ in events]
            assert received == [wire(e) for e in events]
        assert await published_at(db, ids) == dict.fromkeys(ids, True)

        assert await publisher.relay_once(grace=timedelta(0)) == 0
        assert await on_order.get(timeout=0.3) is None
        assert await on_account.get(timeout=0.05) is None
    assert publisher.relayed == 2


async def test_relay_respects_the_grace_period(
    db: Database, shop: Shop, redis_url: str, open_bus: OpenBus
) -> None:
    """A just-committed event is left to the normal publish path for RELAY_GRACE, so the
    relay does not race it."""
    bus = await open_bus(redis_url)
    _, (event,) = await new_order(db, shop.actors["FRONT_DESK"])
    publisher = Publisher(bus, db)
    assert await publisher.relay_once(grace=timedelta(hours=1)) == 0
    assert await published_at(db, [event.id]) == {event.id: False}


async def test_relay_while_redis_is_down_and_after_it_is_back(
    db: Database,
    shop: Shop,
    killable_redis: RedisServer,
    open_bus: OpenBus,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With Redis down, relay_once publishes nothing and leaves the events unpublished; the
    running relay loop (Publisher.start(), real RELAY_INTERVAL 0.5 s and RELAY_GRACE 1 s,
    not patched) keeps failing quietly, and once Redis is restarted it sends them within
    2.5 s of the restart (and the bus's reconnect), and marks them.

    The events are watched by an independent subscriber that subscribes synchronously right
    after the restart, before the event loop can run the relay: so "arrived" cannot be lost
    to the race between the relay's first successful PUBLISH and the bus's own resubscribe
    (which the stream layer covers with RESYNC, tested in test_streams)."""
    server = killable_redis
    bus = await open_bus(server.url)
    backend = bus.backend
    assert isinstance(backend, RedisBackend)
    actor = shop.actors["FRONT_DESK"]
    order_id, created = await new_order(db, actor)
    note = await add_note(db, actor, order_id, "Waiting for parts")
    ids = [e.id for e in [*created, note]]

    publisher = Publisher(bus, db)
    live_cm = bus.subscribe(order_channel(order_id))  # a live stream of this process
    live = await live_cm.__aenter__()
    server.stop()
    caplog.set_level(logging.WARNING, logger="service_orders.relay")
    assert await asyncio.wait_for(publisher.relay_once(grace=timedelta(0)), 10) == 0
    assert await published_at(db, ids) == dict.fromkeys(ids, False)
    caplog.clear()

    await publisher.start()
    try:
        # the loop runs against the dead Redis: it fails, logs and leaves them unpublished
        await wait_until(
            lambda: any("bus unavailable" in r.getMessage() for r in caplog.records),
            5.0,
            "the running relay loop to fail against the dead Redis",
        )
        assert await published_at(db, ids) == dict.fromkeys(ids, False)

        server.start()
        # blocking calls: the relay cannot run until the watcher is subscribed (confirmed)
        channels = [order_channel(order_id), account_channel(shop.account_id)]
        watcher_client = redis.Redis.from_url(server.url)
        watcher = watcher_client.pubsub()
        try:
            watcher.subscribe(*channels)
            for _ in channels:
                confirmation = watcher.get_message(timeout=2.0)
                assert confirmation is not None and confirmation["type"] == "subscribe"
            arrived: list[tuple[str, int]] = []

            def poll() -> bool:
                while (message := watcher.get_message(timeout=0)) is not None:
                    arrived.append((message["channel"].decode(), json.loads(message["data"])["id"]))
                return len(arrived) >= 2 * len(ids)

            took = await wait_until(poll, 2.5, "the relay to publish after the restart")
        finally:
            watcher.close()
            watcher_client.close()
        assert took <= 2.5
        assert sorted(arrived) == sorted((c, event_id) for c in channels for event_id in ids)
        await wait_until(lambda: _all_published(db, ids), 2.0, "the relayed events to be marked")

        # the bus came back too: its live subscriber is told to RESYNC (whether the relayed
        # events reached it depends on whether its resubscribe beat the relay's PUBLISH)
        seen: list[object] = []
        while RESYNC not in seen:
            item = await live.get(timeout=BACKOFF_MAX + 1.5)
            assert item is not None, f"no RESYNC after the restart (got {seen})"
            seen.append(item if item is RESYNC else json.loads(item.message)["id"])  # type: ignore[union-attr]
        assert set(seen) - {RESYNC} <= set(ids)
        assert backend.reconnects == 1
    finally:
        await asyncio.wait_for(publisher.stop(), 10)
        await live_cm.__aexit__(None, None, None)


async def _all_published(db: Database, ids: list[int]) -> bool:
    return all((await published_at(db, ids)).values())
