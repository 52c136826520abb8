"""The realtime layer of one server process: bus, publisher/relay, access registry, streams."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from sqlalchemy import select

from db.engine import Database
from db.models import Notification, OrderEvent
from services import auth as auth_service
from services import events as event_service
from services.events import EventRecord
from services.policy import Actor
from subscriptions.access import AccessEnded, AccessRegistry, StreamAccess
from subscriptions.bus import DEFAULT_QUEUE_SIZE, create_bus
from subscriptions.channels import account_channel, order_channel
from subscriptions.relay import Publisher
from subscriptions.streams import StreamSpec, resumable


class Realtime:
    def __init__(
        self, db: Database, redis_url: str | None, *, queue_size: int = DEFAULT_QUEUE_SIZE
    ) -> None:
        self.db = db
        self.bus = create_bus(redis_url, queue_size=queue_size)
        self.publisher = Publisher(self.bus, db)
        self.access = AccessRegistry(self.bus)

    async def start(self) -> None:
        await self.bus.connect()
        await self.access.start()
        await self.publisher.start()

    async def stop(self) -> None:
        await self.publisher.stop()
        await self.access.stop()
        await self.bus.disconnect()

    async def publish(self, events: list[EventRecord]) -> None:
        await self.publisher.publish(events)

    async def revoke(self, key: str, code: str, message: str) -> None:
        """End every stream holding `key`, on every process."""
        await self.publisher.publish_control({"key": key, "code": code, "message": message})

    # --- staff streams --------------------------------------------------------------------

    def staff_access(
        self, *, actor: Actor, token: str, expires_at: datetime | None
    ) -> StreamAccess:
        db = self.db

        async def revalidate() -> AccessEnded | None:
            async with db.read_session() as session:
                found = await auth_service.authenticate(session=session, token=token)
            if found is None:
                return AccessEnded(
                    "ACCESS_REVOKED", "Your session ended: signed out or deactivated."
                )
            return None

        return StreamAccess(
            keys=(f"staff:{actor.user_id}", f"token:{auth_service.hash_token(token)}"),
            expires_at=expires_at,
            revalidate=revalidate,
        )

    def order_events(
        self,
        *,
        account_id: int,
        order_id: int,
        access: StreamAccess,
        after: int | None,
        include_staff_only: bool,
    ) -> AsyncIterator[EventRecord]:
        """One order's stream: everything for staff; without the staff-only events for a
        share-link holder."""
        db = self.db

        async def replay(after_seq: int, limit: int) -> list[EventRecord]:
            async with db.read_session() as session:
                return await event_service.order_events(
                    session, account_id=account_id, order_id=order_id, after=after_seq, limit=limit
                )

        async def current() -> int:
            async with db.read_session() as session:
                return await event_service.last_order_seq(
                    session, account_id=account_id, order_id=order_id
                )

        spec = StreamSpec(
            channel=order_channel(order_id),
            seq=lambda e: e.order_seq,
            replay=replay,
            current=current,
            accept=lambda e: (
                e.account_id == account_id and (include_staff_only or not e.staff_only)
            ),
        )
        return resumable(self.bus, spec, after=after, access=access, registry=self.access)

    def staff_notifications(
        self, *, actor: Actor, access: StreamAccess, after: int | None
    ) -> AsyncIterator[EventRecord]:
        db = self.db
        user_id, account_id = actor.user_id, actor.account_id

        async def replay(after_seq: int, limit: int) -> list[EventRecord]:
            # every account event (to advance the sequence), marked for this user where a
            # notification exists
            async with db.read_session() as session:
                rows = (
                    await session.execute(
                        select(OrderEvent, Notification.id)
                        .outerjoin(
                            Notification,
                            (Notification.event_id == OrderEvent.id)
                            & (Notification.user_id == user_id),
                        )
                        .where(
                            OrderEvent.account_id == account_id, OrderEvent.account_seq > after_seq
                        )
                        .order_by(OrderEvent.account_seq)
                        .limit(limit)
                    )
                ).all()
            return [EventRecord.from_row(row, {user_id: nid} if nid else None) for row, nid in rows]

        async def current() -> int:
            async with db.read_session() as session:
                return await event_service.last_account_seq(session, account_id=account_id)

        spec = StreamSpec(
            channel=account_channel(account_id),
            seq=lambda e: e.account_seq,
            replay=replay,
            current=current,
            accept=lambda e: user_id in e.recipients,
        )
        return resumable(self.bus, spec, after=after, access=access, registry=self.access)
