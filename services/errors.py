"""Domain errors. Each carries a code from one shared enum; the API exposes the same enum."""

from __future__ import annotations

import enum
from collections.abc import Sequence


class ErrorCode(enum.Enum):
    INVALID_INPUT = "INVALID_INPUT"
    NOT_FOUND = "NOT_FOUND"
    FORBIDDEN = "FORBIDDEN"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    RATE_LIMITED = "RATE_LIMITED"
    INVALID_TRANSITION = "INVALID_TRANSITION"
    STALE_VERSION = "STALE_VERSION"
    CONCURRENT_MODIFICATION = "CONCURRENT_MODIFICATION"
    MISSING_DIAGNOSIS = "MISSING_DIAGNOSIS"
    MISSING_ESTIMATE = "MISSING_ESTIMATE"
    ORDER_CLOSED = "ORDER_CLOSED"
    INVALID_IMEI = "INVALID_IMEI"
    INVALID_EMAIL = "INVALID_EMAIL"
    INVALID_PHONE = "INVALID_PHONE"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    INVALID_QUANTITY = "INVALID_QUANTITY"
    REQUIRED = "REQUIRED"
    TOO_LONG = "TOO_LONG"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    EMAIL_TAKEN = "EMAIL_TAKEN"
    WEAK_PASSWORD = "WEAK_PASSWORD"
    ASSIGNEE_INACTIVE = "ASSIGNEE_INACTIVE"
    LAST_OWNER = "LAST_OWNER"
    CANNOT_DEACTIVATE_SELF = "CANNOT_DEACTIVATE_SELF"
    LINK_EXPIRED = "LINK_EXPIRED"
    LINK_REVOKED = "LINK_REVOKED"
    INVALID_VALIDITY = "INVALID_VALIDITY"
    NOT_AWAITING_APPROVAL = "NOT_AWAITING_APPROVAL"
    ALREADY_DECIDED = "ALREADY_DECIDED"
    ESTIMATE_CHANGED = "ESTIMATE_CHANGED"
    NOT_COMPLETED = "NOT_COMPLETED"
    ALREADY_RATED = "ALREADY_RATED"
    INVALID_RATING = "INVALID_RATING"


class DomainError(Exception):
    """An expected failure: shown to the client as a userErrors entry; nothing is written."""

    def __init__(self, code: ErrorCode, message: str, field: Sequence[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = list(field) if field else None

    def __repr__(self) -> str:
        return f"DomainError({self.code.value}, {self.message!r}, field={self.field})"


class DomainErrors(DomainError):
    """Several input problems found at once (validation collects them all)."""

    def __init__(self, errors: Sequence[DomainError]) -> None:
        first = errors[0]
        super().__init__(first.code, first.message, first.field)
        self.errors = list(errors)


def flatten(error: DomainError) -> list[DomainError]:
    return list(error.errors) if isinstance(error, DomainErrors) else [error]


class Collector:
    """Collects validation errors, then raises them together."""

    def __init__(self) -> None:
        self.errors: list[DomainError] = []

    def add(self, code: ErrorCode, message: str, field: Sequence[str] | None = None) -> None:
        self.errors.append(DomainError(code, message, field))

    def capture(self, error: DomainError) -> None:
        self.errors.extend(flatten(error))

    def raise_if_any(self) -> None:
        if self.errors:
            raise DomainErrors(self.errors)


def not_found(what: str, field: Sequence[str] | None = ("id",)) -> DomainError:
    return DomainError(ErrorCode.NOT_FOUND, f"{what} not found.", field)
