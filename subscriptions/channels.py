"""Channel names on the bus."""

from __future__ import annotations

CONTROL = "control"


def order_channel(order_id: int) -> str:
    return f"order:{order_id}"


def account_channel(account_id: int) -> str:
    return f"account:{account_id}"
