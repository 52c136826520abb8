"""The permission matrix: can / require / require_manageable for every role and action."""

from __future__ import annotations

from pathlib import Path

import pytest

from services import policy
from services.errors import DomainError, ErrorCode
from services.policy import Action, Actor
from services.roles import Role

O, M, T, F = "OWNER", "MANAGER", "TECHNICIAN", "FRONT_DESK"

# The README's "Roles and permissions" matrix, literally.
EXPECTED_MATRIX: dict[str, set[str]] = {
    "VIEW": {O, M, T, F},
    "ORDER_CREATE": {O, M, F},
    "ORDER_UPDATE": {O, M, T, F},
    "ORDER_DIAGNOSE": {O, M, T},
    "PARTS_EDIT": {O, M, T},
    "ORDER_ASSIGN": {O, M, F},
    "ORDER_ASSIGN_SELF": {O, M, T, F},
    "NOTE_ADD": {O, M, T, F},
    "STAFF_MANAGE": {O, M},
}
EXPECTED_MANAGEABLE: dict[str, set[str]] = {
    O: {O, M, T, F},
    M: {T, F},
    T: set(),
    F: set(),
}


def actor(role: str) -> Actor:
    return Actor(user_id=7, account_id=3, role=Role(role))


def test_matrix_is_the_documented_one() -> None:
    assert {a.name: {r.value for r in roles} for a, roles in policy.MATRIX.items()} == (
        EXPECTED_MATRIX
    )
    assert set(policy.MATRIX) == set(Action)
    assert {r.value: {m.value for m in ms} for r, ms in policy.MANAGEABLE_ROLES.items()} == (
        EXPECTED_MANAGEABLE
    )


@pytest.mark.parametrize("role", [O, M, T, F])
def test_can_and_require_agree_with_the_matrix(role: str) -> None:
    who = actor(role)
    for action_name, roles in EXPECTED_MATRIX.items():
        action = Action[action_name]
        allowed = role in roles
        assert policy.can(who, action) is allowed, action_name
        if allowed:
            policy.require(who, action)  # no exception
        else:
            with pytest.raises(DomainError) as caught:
                policy.require(who, action)
            assert caught.value.code is ErrorCode.FORBIDDEN
            assert caught.value.message == f"Your role ({role}) may not {action.value}."
            assert caught.value.field is None


@pytest.mark.parametrize("role", [O, M, T, F])
def test_require_manageable(role: str) -> None:
    who = actor(role)
    for target in (O, M, T, F):
        if target in EXPECTED_MANAGEABLE[role]:
            policy.require_manageable(who, Role(target))  # no exception
            continue
        with pytest.raises(DomainError) as caught:
            policy.require_manageable(who, Role(target))
        error = caught.value
        assert error.code is ErrorCode.FORBIDDEN
        if role in EXPECTED_MATRIX["STAFF_MANAGE"]:
            # may manage staff, but not this kind: the error points at the role field
            assert error.message == f"A {role} may not manage {target} accounts."
            assert error.field == ["role"]
        else:
            assert error.message == f"Your role ({role}) may not create and deactivate staff."
            assert error.field is None


def test_actor_defaults_and_immutability() -> None:
    who = actor(T)
    assert (who.currency, who.time_zone, who.country) == ("USD", "UTC", "US")
    with pytest.raises(AttributeError):
        who.role = Role.OWNER  # type: ignore[misc]


README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_permission_tables_match_the_policy() -> None:
    """README "Roles and permissions" shows MATRIX and MANAGEABLE_ROLES as they are."""
    roles = list(Role)
    dash = "\u2014"
    matrix = [
        "| Action | Allows | " + " | ".join(f"`{r.value}`" for r in roles) + " |",
        "|---" * (len(roles) + 2) + "|",
    ] + [
        f"| `{action.name}` | {action.value[0].upper()}{action.value[1:]} | "
        + " | ".join("yes" if r in allowed else dash for r in roles)
        + " |"
        for action, allowed in policy.MATRIX.items()
    ]
    manageable = ["| Role | May manage |", "|---|---|"] + [
        f"| `{role.value}` | "
        + (", ".join(f"`{r.value}`" for r in roles if r in managed) or dash)
        + " |"
        for role, managed in policy.MANAGEABLE_ROLES.items()
    ]
    text = README.read_text()
    assert "\n".join(matrix) in text
    assert "\n".join(manageable) in text
