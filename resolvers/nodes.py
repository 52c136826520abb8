"""`node(id)`: any object by its global ID, within the viewer's shop."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from db import models
from resolvers.context import Context
from resolvers.ids import decode_any

MODELS: dict[str, Any] = {
    "ServiceOrder": models.ServiceOrder,
    "Client": models.Client,
    "StaffUser": models.StaffUser,
    "PartLine": models.PartLine,
    "InternalNote": models.InternalNote,
    "Account": models.Account,
}


async def load_node(ctx: Context, global_id: str) -> tuple[str, Any] | None:
    """(type name, row) or None; another shop's object is None, exactly like a missing one."""
    assert ctx.actor is not None
    decoded = decode_any(global_id)
    if decoded is None or decoded[0] not in MODELS:
        return None
    type_name, pk = decoded
    model = MODELS[type_name]
    scope = model.id if model is models.Account else model.account_id
    async with ctx.reading() as session:
        row = await session.scalar(
            select(model).where(model.id == pk, scope == ctx.actor.account_id)
        )
    return None if row is None else (type_name, row)
