"""Publishing committed events, and the relay that republishes what was not published.

After a transaction commits, `Publisher.publish()` sends each of its events on the order's
and the account's channel and queues its id to be marked `published_at` (marked in
batches, one UPDATE per batch). If publishing fails (Redis down) or the process dies
between commit and publish, the event keeps `published_at = NULL`; every process runs
`relay_once()` every half second, which publishes such events once they are older than a
grace period (so it does not race the normal path) and marks them. PostgreSQL's
`FOR UPDATE SKIP LOCKED` keeps two processes' relays from taking the same rows.

Publishing an event twice is harmless to clients: streams de-duplicate by sequence.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from db.base import utcnow
from db.engine import Database
from db.models import Notification, OrderEvent
from services.events import EventRecord
from subscriptions.bus import Bus
from subscriptions.channels import CONTROL, account_channel, order_channel

log = logging.getLogger("service_orders.relay")

RELAY_INTERVAL = 0.5
RELAY_GRACE = timedelta(seconds=1)
MARK_INTERVAL = 0.2
RELAY_BATCH = 500


def encode(event: EventRecord) -> str:
    return json.dumps(event.to_wire(), separators=(",", ":"))


class Publisher:
    def __init__(self, bus: Bus, db: Database) -> None:
        self.bus = bus
        self.db = db
        self._to_mark: list[int] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.relayed = 0

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._mark_loop(), name="event-marker"),
            asyncio.create_task(self._relay_loop(), name="event-relay"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._flush_marks()

    async def _send(self, event: EventRecord) -> None:
        message = encode(event)
        await self.bus.publish(order_channel(event.order_id), message)
        await self.bus.publish(account_channel(event.account_id), message)

    def _bus_down(self) -> bool:
        connected = getattr(self.bus.backend, "connected", None)
        return connected is not None and not connected.is_set()

    async def publish(self, events: Iterable[EventRecord]) -> None:
        """Best effort, after commit: a failure leaves the event to the relay. While the bus
        is known to be reconnecting, nothing is attempted (no retries on the request path)."""
        if self._bus_down():
            return
        for event in events:
            try:
                await self._send(event)
            except Exception as exc:
                log.warning("publishing event %s failed (%s); the relay will retry", event.id, exc)
                continue
            self._to_mark.append(event.id)

    async def publish_control(self, message: dict[str, Any]) -> None:
        try:
            await self.bus.publish(CONTROL, json.dumps(message))
        except Exception as exc:
            log.warning("publishing control message failed (%s)", exc)

    async def _flush_marks(self) -> None:
        if not self._to_mark:
            return
        ids, self._to_mark = self._to_mark, []
        try:
            async with self.db.write_session() as session:
                await session.execute(
                    update(OrderEvent)
                    .where(OrderEvent.id.in_(ids), OrderEvent.published_at.is_(None))
                    .values(published_at=utcnow())
                    .execution_options(synchronize_session=False)
                )
        except Exception:
            log.warning(
                "marking %d events published failed; the relay may resend them",
                len(ids),
                exc_info=True,
            )

    async def _mark_loop(self) -> None:
        while True:
            await asyncio.sleep(MARK_INTERVAL)
            await self._flush_marks()

    async def relay_once(self, *, grace: timedelta = RELAY_GRACE) -> int:
        """Publish committed events that were never published; returns how many."""
        async with self.db.write_session() as session:
            stmt = (
                select(OrderEvent)
                .where(OrderEvent.published_at.is_(None), OrderEvent.created_at < utcnow() - grace)
                .order_by(OrderEvent.account_id, OrderEvent.account_seq)
                .limit(RELAY_BATCH)
            )
            if not self.db.is_sqlite:
                stmt = stmt.with_for_update(skip_locked=True)
            rows = list(await session.scalars(stmt))
            if not rows:
                return 0
            sent: list[int] = []
            recipients = await _recipients_of(session, [row.id for row in rows])
            for row in rows:
                try:
                    await self._send(EventRecord.from_row(row, recipients.get(row.id)))
                except Exception as exc:
                    log.warning("relay: bus unavailable (%s); will retry", exc)
                    break
                sent.append(row.id)
            if sent:
                await session.execute(
                    update(OrderEvent)
                    .where(OrderEvent.id.in_(sent))
                    .values(published_at=utcnow())
                    .execution_options(synchronize_session=False)
                )
        if sent:
            self.relayed += len(sent)
            log.info("relay published %d unpublished event(s)", len(sent))
        return len(sent)

    async def _relay_loop(self) -> None:
        while True:
            await asyncio.sleep(RELAY_INTERVAL)
            try:
                await self.relay_once()
            except Exception:
                log.warning("relay pass failed", exc_info=True)


async def _recipients_of(session: Any, event_ids: list[int]) -> dict[int, dict[int, int]]:
    """event id -> {staff user id: notification id}, in one query."""
    rows = await session.execute(
        select(Notification.event_id, Notification.user_id, Notification.id).where(
            Notification.event_id.in_(event_ids)
        )
    )
    found: dict[int, dict[int, int]] = {}
    for event_id, user_id, notification_id in rows:
        found.setdefault(event_id, {})[user_id] = notification_id
    return found
