"""The service-order status machine: statuses, the transition table, guards, who may move.

This module is the single source of truth; the README's tables were generated from it and
``tests/services/test_statuses.py`` pins the table against the issue's specification.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from services.roles import Role


class OrderStatus(enum.Enum):
    PENDING = "PENDING"
    AWAITING_DIAGNOSIS = "AWAITING_DIAGNOSIS"
    DIAGNOSING = "DIAGNOSING"
    AWAITING_APPROVAL = "AWAITING_APPROVAL"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    REPAIRING = "REPAIRING"
    TESTING = "TESTING"
    READY = "READY"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


S = OrderStatus


@dataclass(frozen=True)
class StatusInfo:
    status: OrderStatus
    label: str
    color: str
    description: str
    customer_description: str


STATUS_INFO: dict[OrderStatus, StatusInfo] = {
    info.status: info
    for info in (
        StatusInfo(
            S.PENDING,
            "Pending",
            "gray",
            "Received at the counter, not yet queued for a technician.",
            "We have received your device.",
        ),
        StatusInfo(
            S.AWAITING_DIAGNOSIS,
            "Awaiting diagnosis",
            "yellow",
            "Queued for a technician to examine.",
            "Your device is in the queue for a technician.",
        ),
        StatusInfo(
            S.DIAGNOSING,
            "Diagnosing",
            "blue",
            "A technician is finding out what is wrong.",
            "A technician is examining your device.",
        ),
        StatusInfo(
            S.AWAITING_APPROVAL,
            "Awaiting approval",
            "orange",
            "The estimate was sent; waiting for the customer's decision.",
            "We sent you an estimate: please approve or reject it.",
        ),
        StatusInfo(
            S.APPROVED,
            "Approved",
            "green",
            "The customer approved the estimate; the repair is scheduled.",
            "Thank you for approving the estimate. The repair is scheduled.",
        ),
        StatusInfo(
            S.REJECTED,
            "Rejected",
            "red",
            "The customer declined the estimate; the device is returned unrepaired.",
            "You declined the estimate. You can collect your device unrepaired.",
        ),
        StatusInfo(
            S.REPAIRING,
            "Repairing",
            "indigo",
            "The repair is in progress.",
            "Your device is being repaired.",
        ),
        StatusInfo(
            S.TESTING,
            "Testing",
            "purple",
            "The repair is done and being checked.",
            "The repair is done; we are testing your device.",
        ),
        StatusInfo(
            S.READY,
            "Ready for pickup",
            "teal",
            "The device is ready to be collected.",
            "Your device is ready for pickup.",
        ),
        StatusInfo(
            S.COMPLETED,
            "Completed",
            "green",
            "The device was handed back to the customer.",
            "You collected your device. Thank you!",
        ),
        StatusInfo(
            S.CANCELLED,
            "Cancelled",
            "red",
            "The job was cancelled.",
            "This repair was cancelled.",
        ),
    )
}

INITIAL_STATUS = S.PENDING

TRANSITIONS: dict[OrderStatus, tuple[OrderStatus, ...]] = {
    S.PENDING: (S.AWAITING_DIAGNOSIS, S.DIAGNOSING, S.REPAIRING, S.CANCELLED),
    S.AWAITING_DIAGNOSIS: (S.DIAGNOSING, S.CANCELLED),
    S.DIAGNOSING: (S.AWAITING_APPROVAL, S.REPAIRING, S.CANCELLED),
    S.AWAITING_APPROVAL: (S.APPROVED, S.REJECTED, S.DIAGNOSING, S.CANCELLED),
    S.APPROVED: (S.REPAIRING, S.CANCELLED),
    S.REPAIRING: (S.TESTING, S.READY, S.CANCELLED),
    S.TESTING: (S.READY, S.REPAIRING),
    S.READY: (S.COMPLETED,),
    S.REJECTED: (),
    S.COMPLETED: (),
    S.CANCELLED: (),
}

CLOSED_STATUSES = frozenset(s for s, targets in TRANSITIONS.items() if not targets)

_ALL = frozenset(Role)
_LEADS = frozenset({Role.OWNER, Role.MANAGER})
_BENCH = _LEADS | {Role.TECHNICIAN}
_COUNTER = _LEADS | {Role.FRONT_DESK}

# Who may move an order INTO each status. Technicians do the bench work; front desk does
# intake, records the customer's decision, hands devices back and cancels; owners and
# managers may do everything.
ROLES_FOR_TARGET: dict[OrderStatus, frozenset[Role]] = {
    S.AWAITING_DIAGNOSIS: _ALL,
    S.DIAGNOSING: _BENCH,
    S.AWAITING_APPROVAL: _BENCH,
    S.APPROVED: _COUNTER,
    S.REJECTED: _COUNTER,
    S.REPAIRING: _BENCH,
    S.TESTING: _BENCH,
    S.READY: _BENCH,
    S.COMPLETED: _COUNTER,
    S.CANCELLED: _COUNTER,
}


def is_allowed(from_status: OrderStatus, to_status: OrderStatus) -> bool:
    return to_status in TRANSITIONS[from_status]


def role_may_enter(role: Role, to_status: OrderStatus) -> bool:
    return role in ROLES_FOR_TARGET.get(to_status, frozenset())


def available_transitions(from_status: OrderStatus, role: Role) -> list[OrderStatus]:
    """What a staff member of `role` may do now (table and role; guards are checked on use)."""
    return [to for to in TRANSITIONS[from_status] if role_may_enter(role, to)]


@dataclass(frozen=True)
class GuardFailure:
    code: str
    message: str
    field: str


def guard_failures(
    to_status: OrderStatus, *, diagnosis: str | None, estimated_cost: int | None
) -> list[GuardFailure]:
    """What must be true to enter `to_status` (pure; the service maps to domain errors)."""
    failures: list[GuardFailure] = []
    if to_status is S.AWAITING_APPROVAL:
        if not (diagnosis or "").strip():
            failures.append(
                GuardFailure(
                    "MISSING_DIAGNOSIS", "Set a diagnosis before asking for approval.", "diagnosis"
                )
            )
        if estimated_cost is None:
            failures.append(
                GuardFailure(
                    "MISSING_ESTIMATE",
                    "Set an estimated cost before asking for approval.",
                    "estimatedCost",
                )
            )
    return failures
