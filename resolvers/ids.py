"""Global opaque IDs ("ServiceOrder:42" in URL-safe base64) and page cursors."""

from __future__ import annotations

import base64
import binascii


def _b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _unb64(value: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def encode_id(type_name: str, pk: int) -> str:
    return _b64(f"{type_name}:{pk}")


def decode_any(global_id: str) -> tuple[str, int] | None:
    raw = _unb64(global_id.strip()) if len(global_id) < 200 else None
    if raw is None or ":" not in raw:
        return None
    type_name, _, pk = raw.partition(":")
    if not pk.isdigit() or len(pk) > 18:
        return None
    return type_name, int(pk)


def decode_id(global_id: str, type_name: str) -> int | None:
    """The primary key if `global_id` names an object of `type_name`, else None."""
    decoded = decode_any(global_id)
    if decoded is None or decoded[0] != type_name:
        return None
    return decoded[1]


def encode_cursor(pk: int) -> str:
    return _b64(f"cursor:{pk}")


def decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    decoded = decode_any(cursor)
    if decoded is None or decoded[0] != "cursor":
        raise ValueError("invalid cursor")
    return decoded[1]
