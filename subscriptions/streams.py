"""Gap-free, ordered, exactly-once event streams on top of an at-most-once bus.

A stream subscribes to its bus channel first, then replays from the event table
everything after the client's `after`, then forwards live events:
- an event whose sequence is not above the last one sent is a duplicate: dropped;
- an event whose sequence skips ahead means something was lost: the gap is replayed from
  the database (the live event is part of that replay, since it is committed);
- RESYNC (Redis reconnected, or this subscriber fell behind and its queue was dropped)
  replays from the database after the last sequence sent.
So whatever the bus does, the client receives every event exactly once, in order.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from broadcaster import Event

from services.events import EventRecord
from subscriptions.access import StreamAccess
from subscriptions.bus import RESYNC, Bus

REPLAY_PAGE = 500
IDLE_CHECK_SECONDS = 15.0


def decode(event: Event) -> EventRecord:
    """Decoded once per bus message, shared by every subscriber that receives it."""
    cached: EventRecord | None = getattr(event, "_record", None)
    if cached is None:
        cached = EventRecord.from_wire(json.loads(event.message))
        event._record = cached  # type: ignore[attr-defined]
    return cached


@dataclass
class StreamSpec:
    channel: str
    seq: Callable[[EventRecord], int]
    # events (already filtered or not) with sequence > after, at most `limit`, in order
    replay: Callable[[int, int], Awaitable[list[EventRecord]]]
    # the latest sequence now (where a stream without `after` starts)
    current: Callable[[], Awaitable[int]]
    accept: Callable[[EventRecord], bool] = lambda _event: True


async def resumable(
    bus: Bus,
    spec: StreamSpec,
    *,
    after: int | None,
    access: StreamAccess,
    registry: Any,
) -> AsyncIterator[EventRecord]:
    async with bus.subscribe(spec.channel) as sub:
        access.subscriber = sub
        registry.register(access)
        try:
            await access.check(force=True)
            last = after if after is not None else await spec.current()

            async def replay(from_seq: int) -> AsyncIterator[EventRecord]:
                nonlocal last
                while True:
                    page = await spec.replay(from_seq, REPLAY_PAGE)
                    for record in page:
                        seq = spec.seq(record)
                        if seq <= last:
                            continue
                        last = seq
                        if spec.accept(record):
                            await access.check()
                            yield record
                    if len(page) < REPLAY_PAGE:
                        return
                    from_seq = spec.seq(page[-1])

            async for record in replay(last):
                yield record
            while True:
                item = await sub.get(timeout=IDLE_CHECK_SECONDS)
                if item is None:
                    await access.check()
                    continue
                if item is RESYNC:
                    await access.check(force=True)
                    async for record in replay(last):
                        yield record
                    continue
                record = decode(item)  # type: ignore[arg-type]
                seq = spec.seq(record)
                if seq <= last:
                    continue
                if seq > last + 1:
                    async for replayed in replay(last):
                        yield replayed
                    continue
                last = seq
                if spec.accept(record):
                    await access.check()
                    yield record
        finally:
            registry.unregister(access)
            access.subscriber = None
