"""Authorization policy: the permission matrix (README "Roles and permissions").

Coarse checks ("may this role do X at all") live here as data. Row rules (account scope)
are applied by every service function and query helper: an object of another account is
NOT_FOUND, never FORBIDDEN.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from services.errors import DomainError, ErrorCode
from services.roles import Role


class Action(enum.Enum):
    VIEW = "view orders, clients and staff"
    ORDER_CREATE = "create orders (intake)"
    ORDER_UPDATE = "edit client and device details"
    ORDER_DIAGNOSE = "set diagnosis, estimate, labour, final cost and warranty"
    PARTS_EDIT = "add, change and remove parts"
    ORDER_ASSIGN = "assign an order to anyone"
    ORDER_ASSIGN_SELF = "assign an order to oneself or unassign oneself"
    NOTE_ADD = "add internal notes"
    STAFF_MANAGE = "create and deactivate staff"


O, M, T, F = Role.OWNER, Role.MANAGER, Role.TECHNICIAN, Role.FRONT_DESK

MATRIX: dict[Action, frozenset[Role]] = {
    Action.VIEW: frozenset({O, M, T, F}),
    Action.ORDER_CREATE: frozenset({O, M, F}),
    Action.ORDER_UPDATE: frozenset({O, M, F, T}),
    Action.ORDER_DIAGNOSE: frozenset({O, M, T}),
    Action.PARTS_EDIT: frozenset({O, M, T}),
    Action.ORDER_ASSIGN: frozenset({O, M, F}),
    Action.ORDER_ASSIGN_SELF: frozenset({O, M, F, T}),
    Action.NOTE_ADD: frozenset({O, M, T, F}),
    Action.STAFF_MANAGE: frozenset({O, M}),
}

# Which roles each role may create or deactivate (managers cannot create owners or managers).
MANAGEABLE_ROLES: dict[Role, frozenset[Role]] = {
    O: frozenset({O, M, T, F}),
    M: frozenset({T, F}),
    T: frozenset(),
    F: frozenset(),
}


@dataclass(frozen=True)
class Actor:
    """The authenticated staff member on whose behalf a service function runs."""

    user_id: int
    account_id: int
    role: Role
    currency: str = "USD"
    time_zone: str = "UTC"
    country: str = "US"
    name: str = ""


def can(actor: Actor, action: Action) -> bool:
    return actor.role in MATRIX[action]


def require(actor: Actor, action: Action) -> None:
    if not can(actor, action):
        raise DomainError(
            ErrorCode.FORBIDDEN,
            f"Your role ({actor.role.value}) may not {action.value}.",
        )


def require_manageable(actor: Actor, role: Role) -> None:
    require(actor, Action.STAFF_MANAGE)
    if role not in MANAGEABLE_ROLES[actor.role]:
        raise DomainError(
            ErrorCode.FORBIDDEN,
            f"A {actor.role.value} may not manage {role.value} accounts.",
            ["role"],
        )
