"""Input normalisation and checks shared by the services."""

from __future__ import annotations

import re

import phonenumbers

from services.errors import Collector, ErrorCode

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_IMEI = re.compile(r"[0-9]{15}")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def normalize_imei(value: str | None, errors: Collector, field: list[str]) -> str | None:
    """15 digits with a valid Luhn check digit; spaces, dashes and slashes are ignored."""
    if value is None:
        return None
    cleaned = re.sub(r"[\s\-/]", "", value)
    if not cleaned:
        return None
    # ASCII digits only: str.isdigit() also accepts e.g. '²' (which int() rejects) and
    # full-width digits (which would be stored as typed and never match a search)
    if not (_IMEI.fullmatch(cleaned) and luhn_ok(cleaned)):
        errors.add(
            ErrorCode.INVALID_IMEI,
            "An IMEI has 15 digits and a valid check digit (dial *#06# to read it).",
            field,
        )
        return None
    return cleaned


def normalize_email(value: str | None, errors: Collector, field: list[str]) -> str | None:
    if value is None:
        return None
    cleaned = value.strip().lower()
    if not cleaned:
        return None
    if len(cleaned) > 320 or not _EMAIL.match(cleaned):
        errors.add(ErrorCode.INVALID_EMAIL, "Not a valid email address.", field)
        return None
    return cleaned


def normalize_phone(
    value: str | None, region: str, errors: Collector, field: list[str]
) -> str | None:
    """E.164 (+15551234567); numbers without a country code are read in the shop's country."""
    if value is None:
        return None
    cleaned = value.strip()
    if not cleaned:
        return None
    try:
        parsed = phonenumbers.parse(cleaned, region.upper())
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_possible_number(parsed):
        errors.add(ErrorCode.INVALID_PHONE, "Not a valid phone number.", field)
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def text(
    value: str | None,
    errors: Collector,
    field: list[str],
    *,
    max_len: int,
    required: bool = False,
    label: str = "This field",
) -> str | None:
    """Strip; required fields must not be blank; enforce a maximum length."""
    cleaned = value.strip() if value is not None else None
    if not cleaned:
        if required:
            errors.add(ErrorCode.REQUIRED, f"{label} is required.", field)
        return None
    if len(cleaned) > max_len:
        errors.add(ErrorCode.TOO_LONG, f"{label} is longer than {max_len} characters.", field)
        return None
    return cleaned
