"""DataLoaders: one SQL statement per batch, in a short session of its own (sibling
resolvers run concurrently and must not share one AsyncSession). Every loader filters by
the caller's account, so an id from another account loads nothing."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from strawberry.dataloader import DataLoader

from db.models import Client, InternalNote, PartLine, StaffUser, StatusHistory

if TYPE_CHECKING:
    from resolvers.context import Context


class Loaders:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self.client = DataLoader(self._clients)
        self.staff_user = DataLoader(self._staff_users)
        self.parts = DataLoader(self._parts)
        self.latest_history = DataLoader(self._latest_history)
        self.history = DataLoader(self._history)
        self.notes = DataLoader(self._notes)

    @property
    def _account_id(self) -> int:
        assert self._ctx.actor is not None
        return self._ctx.actor.account_id

    async def _rows(self, stmt: Any) -> Sequence[Any]:
        async with self._ctx.reading() as session:
            return (await session.scalars(stmt)).all()

    async def _by_id(self, model: Any, keys: list[int]) -> list[Any]:
        rows = await self._rows(
            select(model).where(model.id.in_(keys), model.account_id == self._account_id)
        )
        found = {r.id: r for r in rows}
        return [found.get(k) for k in keys]

    async def _grouped(self, model: Any, keys: list[int], order: Any) -> list[list[Any]]:
        rows = await self._rows(
            select(model)
            .where(model.order_id.in_(keys), model.account_id == self._account_id)
            .order_by(order)
        )
        groups: dict[int, list[Any]] = defaultdict(list)
        for r in rows:
            groups[r.order_id].append(r)
        return [groups.get(k, []) for k in keys]

    async def _clients(self, keys: list[int]) -> list[Client | None]:
        return await self._by_id(Client, keys)

    async def _staff_users(self, keys: list[int]) -> list[StaffUser | None]:
        return await self._by_id(StaffUser, keys)

    async def _parts(self, keys: list[int]) -> list[list[PartLine]]:
        return await self._grouped(PartLine, keys, PartLine.id)

    async def _history(self, keys: list[int]) -> list[list[StatusHistory]]:
        return await self._grouped(StatusHistory, keys, StatusHistory.id)

    async def _notes(self, keys: list[int]) -> list[list[InternalNote]]:
        return await self._grouped(InternalNote, keys, InternalNote.id)

    async def _latest_history(self, keys: list[int]) -> list[StatusHistory | None]:
        latest = (
            select(func.max(StatusHistory.id))
            .where(StatusHistory.order_id.in_(keys), StatusHistory.account_id == self._account_id)
            .group_by(StatusHistory.order_id)
        )
        rows = await self._rows(select(StatusHistory).where(StatusHistory.id.in_(latest)))
        found = {r.order_id: r for r in rows}
        return [found.get(k) for k in keys]
