"""Input checks shared by the services: IMEI (Luhn), phone (E.164), email, text, money."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services import money
from services.errors import Collector, DomainError, DomainErrors, ErrorCode
from services.validation import (
    luhn_ok,
    normalize_email,
    normalize_imei,
    normalize_phone,
    text,
)

FIELD = ["device", "imei"]
# "490154203237518" typed with full-width digits (as some input methods do)
FULL_WIDTH_IMEI = "490154203237518".translate({ord(d): ord(d) + 0xFEE0 for d in "0123456789"})


def codes(errors: Collector) -> list[tuple[str, list[str] | None]]:
    return [(e.code.value, e.field) for e in errors.errors]


# --- IMEI -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("digits", "ok"),
    [
        ("79927398713", True),  # the textbook Luhn example
        ("79927398710", False),
        ("490154203237518", True),
        ("490154203237519", False),
        ("356938035643809", True),
        ("0", True),
        ("18", True),
        ("17", False),
    ],
)
def test_luhn(digits: str, ok: bool) -> None:
    assert luhn_ok(digits) is ok


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("490154203237518", "490154203237518"),
        (" 49 015420 323751 8 ", "490154203237518"),
        ("49-015420-323751-8", "490154203237518"),
        ("35-693803/564380-9", "356938035643809"),
    ],
)
def test_valid_imei_is_normalised_to_15_digits(raw: str, expected: str) -> None:
    errors = Collector()
    assert normalize_imei(raw, errors, FIELD) == expected
    assert errors.errors == []


@pytest.mark.parametrize(
    "raw",
    [
        "490154203237519",  # wrong check digit
        "49015420323751",  # 14 digits
        "4901542032375180",  # 16 digits
        "49015420323751A",  # a letter
        FULL_WIDTH_IMEI,  # full-width digits are not ASCII digits
        "490154203237518.",
        "49015420323751\u00b2",  # superscript two: isdigit() but not a digit for int()
    ],
)
def test_invalid_imei_is_reported_on_its_field(raw: str) -> None:
    errors = Collector()
    assert normalize_imei(raw, errors, FIELD) is None
    assert codes(errors) == [("INVALID_IMEI", FIELD)]
    assert "15 digits" in errors.errors[0].message


@pytest.mark.parametrize("raw", [None, "", "  ", " - / "])
def test_missing_imei_is_no_imei_and_no_error(raw: str | None) -> None:
    errors = Collector()
    assert normalize_imei(raw, errors, FIELD) is None
    assert errors.errors == []


# --- phone ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+1 415 555 0101", "US", "+14155550101"),
        ("(415) 555-0101", "US", "+14155550101"),
        ("415.555.0101", "us", "+14155550101"),
        ("912 345 678", "PT", "+351912345678"),  # read in the shop's country
        ("+44 20 7946 0958", "PT", "+442079460958"),  # a country code wins over the shop's
        ("0044 20 7946 0958", "PT", "+442079460958"),
    ],
)
def test_phone_numbers_become_e164(raw: str, region: str, expected: str) -> None:
    errors = Collector()
    assert normalize_phone(raw, region, errors, ["client", "phone"]) == expected
    assert errors.errors == []


@pytest.mark.parametrize("raw", ["abc", "12", "+1 415", "call me"])
def test_invalid_phone(raw: str) -> None:
    errors = Collector()
    assert normalize_phone(raw, "US", errors, ["client", "phone"]) is None
    assert codes(errors) == [("INVALID_PHONE", ["client", "phone"])]


@pytest.mark.parametrize("raw", [None, "", "   "])
def test_missing_phone_is_no_phone(raw: str | None) -> None:
    errors = Collector()
    assert normalize_phone(raw, "US", errors, ["phone"]) is None
    assert errors.errors == []


# --- email ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" Alice@Example.COM ", "alice@example.com"),
        ("first.last+repairs@sub.example.co.uk", "first.last+repairs@sub.example.co.uk"),
    ],
)
def test_email_is_trimmed_and_lower_cased(raw: str, expected: str) -> None:
    errors = Collector()
    assert normalize_email(raw, errors, ["email"]) == expected
    assert errors.errors == []


@pytest.mark.parametrize(
    "raw",
    [
        "no-at-sign",
        "a@b",
        "a b@example.com",
        "a@@example.com",
        "@example.com",
        "a@example.",
        "x" * 310 + "@example.com",
    ],
)
def test_invalid_email(raw: str) -> None:
    errors = Collector()
    assert normalize_email(raw, errors, ["client", "email"]) is None
    assert codes(errors) == [("INVALID_EMAIL", ["client", "email"])]


def test_missing_email_is_no_email() -> None:
    errors = Collector()
    assert normalize_email(None, errors, ["email"]) is None
    assert normalize_email("  ", errors, ["email"]) is None
    assert errors.errors == []


# --- text -------------------------------------------------------------------------------------


def test_text_strips_requires_and_limits() -> None:
    errors = Collector()
    assert text("  Pixel 7 \n", errors, ["model"], max_len=10) == "Pixel 7"
    assert text("   ", errors, ["brand"], max_len=10) is None  # optional and blank: no error
    assert errors.errors == []
    assert text(" ", errors, ["model"], max_len=10, required=True, label="Device model") is None
    assert text("x" * 11, errors, ["model"], max_len=10, label="Device model") is None
    assert text("x" * 10, errors, ["model"], max_len=10) == "x" * 10
    assert [(e.code, e.message) for e in errors.errors] == [
        (ErrorCode.REQUIRED, "Device model is required."),
        (ErrorCode.TOO_LONG, "Device model is longer than 10 characters."),
    ]


def test_collector_raises_all_errors_at_once() -> None:
    errors = Collector()
    errors.raise_if_any()  # nothing collected: no exception
    normalize_imei("123", errors, ["device", "imei"])
    normalize_email("nope", errors, ["client", "email"])
    with pytest.raises(DomainErrors) as caught:
        errors.raise_if_any()
    assert [e.code for e in caught.value.errors] == [
        ErrorCode.INVALID_IMEI,
        ErrorCode.INVALID_EMAIL,
    ]
    assert caught.value.code is ErrorCode.INVALID_IMEI  # the first one, for single-error callers


# --- money ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("12.34", "USD", 1234),
        ("12.340", "USD", 1234),  # trailing zeros are not extra precision
        ("12", "EUR", 1200),
        ("0", "USD", 0),
        ("0.01", "usd", 1),
        ("1500", "JPY", 1500),  # JPY has no minor unit
        ("1500.0", "JPY", 1500),
        ("1E+3", "JPY", 1000),
        ("1.234", "KWD", 1234),  # KWD has three decimals
        ("0.005", "KWD", 5),
        ("7", "KWD", 7000),
        ("999999999999.99", "USD", 99999999999999),
    ],
)
def test_to_minor(amount: str, currency: str, minor: int) -> None:
    assert money.to_minor(Decimal(amount), currency, ["amount"]) == minor


@pytest.mark.parametrize(
    ("amount", "currency", "message"),
    [
        ("12.345", "USD", "USD amounts have at most 2 decimal places."),
        ("1500.5", "JPY", "JPY amounts have at most 0 decimal places."),
        ("1.2345", "KWD", "KWD amounts have at most 3 decimal places."),
        ("-0.01", "USD", "Amounts cannot be negative."),
        ("-5", "JPY", "Amounts cannot be negative."),
        ("NaN", "USD", "Not a valid amount."),
        ("sNaN", "USD", "Not a valid amount."),
        ("Infinity", "USD", "Not a valid amount."),
        ("-Infinity", "USD", "Not a valid amount."),
        ("10000000000000", "USD", "Amount is too large."),
        ("1000000000000000", "JPY", "Amount is too large."),
    ],
)
def test_to_minor_rejects(amount: str, currency: str, message: str) -> None:
    with pytest.raises(DomainError) as caught:
        money.to_minor(Decimal(amount), currency, ["estimatedCost"])
    assert caught.value.code is ErrorCode.INVALID_AMOUNT
    assert caught.value.message == message
    assert caught.value.field == ["estimatedCost"]


@pytest.mark.parametrize(
    ("minor", "currency", "shown"),
    [
        (1234, "USD", "12.34"),
        (100, "EUR", "1.00"),
        (0, "USD", "0.00"),
        (5, "USD", "0.05"),
        (1500, "JPY", "1500"),
        (0, "JPY", "0"),
        (1234, "KWD", "1.234"),
        (7000, "KWD", "7.000"),
        (5, "kwd", "0.005"),
    ],
)
def test_to_decimal_keeps_the_currency_scale(minor: int, currency: str, shown: str) -> None:
    value = money.to_decimal(minor, currency)
    assert isinstance(value, Decimal)
    assert str(value) == shown
    assert money.to_minor(value, currency, ["x"]) == minor  # round trip


def test_exponents() -> None:
    assert [money.exponent(c) for c in ("USD", "EUR", "JPY", "jpy", "KRW", "KWD", "BHD")] == [
        2,
        2,
        0,
        0,
        0,
        3,
        3,
    ]
