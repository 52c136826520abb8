"""Money: integer minor units in storage, Decimal at the edges. Never floats."""

from __future__ import annotations

from decimal import Context, Decimal

from services.errors import DomainError, ErrorCode

# ISO 4217 minor-unit exponents that differ from 2.
_EXPONENTS = {
    "BIF": 0,
    "CLP": 0,
    "DJF": 0,
    "GNF": 0,
    "ISK": 0,
    "JPY": 0,
    "KMF": 0,
    "KRW": 0,
    "PYG": 0,
    "RWF": 0,
    "UGX": 0,
    "VND": 0,
    "VUV": 0,
    "XAF": 0,
    "XOF": 0,
    "XPF": 0,
    "BHD": 3,
    "IQD": 3,
    "JOD": 3,
    "KWD": 3,
    "LYD": 3,
    "OMR": 3,
    "TND": 3,
}
MAX_MINOR = 10**15  # a trillion in major units: far past any repair


def exponent(currency: str) -> int:
    return _EXPONENTS.get(currency.upper(), 2)


# Exact arithmetic for the conversion: wide enough for any amount below MAX_MINOR, and any
# rounding that would still happen is caught by comparing with the original.
_EXACT = Context(prec=40)


def to_minor(amount: Decimal, currency: str, field: list[str]) -> int:
    """Convert a Decimal amount to minor units; reject negatives, NaN and excess precision."""
    if not amount.is_finite():
        raise DomainError(ErrorCode.INVALID_AMOUNT, "Not a valid amount.", field)
    if amount < 0:
        raise DomainError(ErrorCode.INVALID_AMOUNT, "Amounts cannot be negative.", field)
    # checked before any arithmetic: a huge exponent ("1e999999") would overflow the context
    if amount.adjusted() >= len(str(MAX_MINOR)):
        raise DomainError(ErrorCode.INVALID_AMOUNT, "Amount is too large.", field)
    places = exponent(currency)
    quantized = amount.quantize(Decimal(1).scaleb(-places), context=_EXACT)
    if quantized != amount:  # exact comparison: no digit beyond the currency's minor unit
        raise DomainError(
            ErrorCode.INVALID_AMOUNT,
            f"{currency} amounts have at most {places} decimal places.",
            field,
        )
    minor = int(quantized.scaleb(places, context=_EXACT))
    if minor >= MAX_MINOR:
        raise DomainError(ErrorCode.INVALID_AMOUNT, "Amount is too large.", field)
    return minor


def to_decimal(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-exponent(currency))
