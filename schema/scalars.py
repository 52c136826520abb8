"""Scalars stricter than Strawberry's defaults."""

from __future__ import annotations

from datetime import datetime

import dateutil.parser
from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.types.scalar import ScalarDefinition


def parse_aware_datetime(value: object) -> datetime:
    """ISO 8601 with a time zone offset. A naive time is refused (a clean input error)
    instead of being guessed or reaching the database, which stores UTC only."""
    if not isinstance(value, str):
        raise StrawberryInputCoercionError(
            f'Value cannot represent a DateTime: "{value}". Expected a string.'
        )
    try:
        parsed = dateutil.parser.isoparse(value)
    except (ValueError, OverflowError):
        raise StrawberryInputCoercionError(
            f'Value cannot represent a DateTime: "{value}".'
        ) from None
    if parsed.utcoffset() is None:
        raise StrawberryInputCoercionError(
            f'DateTime "{value}" has no time zone: add an offset, e.g. "Z" or "+01:00".'
        )
    return parsed


DateTimeScalar = ScalarDefinition(
    name="DateTime",
    description="Date with time (ISO 8601) and a time zone offset, e.g. 2026-01-31T09:00:00+00:00",
    specified_by_url=None,
    serialize=datetime.isoformat,
    parse_value=parse_aware_datetime,
    parse_literal=None,
    origin=datetime,
)
