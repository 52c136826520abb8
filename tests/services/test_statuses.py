"""The status machine as data: the transition table, colours, guards and who may move.

The expected values below are copied literally from the issue (and the role rules from the
README's permission section), so any change to `services/statuses.py` fails a test here and
has to be made on purpose in both places.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import pytest

from services import statuses
from services.roles import Role
from services.statuses import OrderStatus

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

# The table from the issue, in the issue's order (status names as the API spells them).
EXPECTED_TRANSITIONS: dict[str, list[str]] = {
    PENDING: [AWAITING_DIAGNOSIS, DIAGNOSING, REPAIRING, CANCELLED],
    AWAITING_DIAGNOSIS: [DIAGNOSING, CANCELLED],
    DIAGNOSING: [AWAITING_APPROVAL, REPAIRING, CANCELLED],
    AWAITING_APPROVAL: [APPROVED, REJECTED, DIAGNOSING, CANCELLED],
    APPROVED: [REPAIRING, CANCELLED],
    REPAIRING: [TESTING, READY, CANCELLED],
    TESTING: [READY, REPAIRING],
    READY: [COMPLETED],
    REJECTED: [],
    COMPLETED: [],
    CANCELLED: [],
}

EXPECTED_COLORS: dict[str, str] = {
    PENDING: "gray",
    AWAITING_DIAGNOSIS: "yellow",
    DIAGNOSING: "blue",
    AWAITING_APPROVAL: "orange",
    APPROVED: "green",
    REJECTED: "red",
    REPAIRING: "indigo",
    TESTING: "purple",
    READY: "teal",
    COMPLETED: "green",
    CANCELLED: "red",
}

EXPECTED_CLOSED = {REJECTED, COMPLETED, CANCELLED}

OWNER, MANAGER, TECHNICIAN, FRONT_DESK = "OWNER", "MANAGER", "TECHNICIAN", "FRONT_DESK"
# Who may move an order INTO each status: technicians do the bench work, front desk does
# intake, the customer's decision, hand-over and cancelling; owners and managers everything.
EXPECTED_ROLES_FOR_TARGET: dict[str, set[str]] = {
    AWAITING_DIAGNOSIS: {OWNER, MANAGER, TECHNICIAN, FRONT_DESK},
    DIAGNOSING: {OWNER, MANAGER, TECHNICIAN},
    AWAITING_APPROVAL: {OWNER, MANAGER, TECHNICIAN},
    APPROVED: {OWNER, MANAGER, FRONT_DESK},
    REJECTED: {OWNER, MANAGER, FRONT_DESK},
    REPAIRING: {OWNER, MANAGER, TECHNICIAN},
    TESTING: {OWNER, MANAGER, TECHNICIAN},
    READY: {OWNER, MANAGER, TECHNICIAN},
    COMPLETED: {OWNER, MANAGER, FRONT_DESK},
    CANCELLED: {OWNER, MANAGER, FRONT_DESK},
}

ALLOWED_PAIRS = [(f, t) for f, targets in EXPECTED_TRANSITIONS.items() for t in targets]
DISALLOWED_PAIRS = [
    (f, t)
    for f in EXPECTED_TRANSITIONS
    for t in EXPECTED_TRANSITIONS
    if t not in EXPECTED_TRANSITIONS[f]
]


def expected_available(from_status: str, role: str) -> list[str]:
    """What the literal tables say a `role` may do from `from_status`, in table order."""
    return [t for t in EXPECTED_TRANSITIONS[from_status] if role in EXPECTED_ROLES_FOR_TARGET[t]]


def test_the_statuses_are_exactly_the_eleven_of_the_issue() -> None:
    assert sorted(s.value for s in OrderStatus) == sorted(EXPECTED_TRANSITIONS)
    assert len(OrderStatus) == 11
    assert all(s.name == s.value for s in OrderStatus)
    assert statuses.INITIAL_STATUS is OrderStatus.PENDING


def test_transition_table_is_the_table_of_the_issue() -> None:
    actual = {f.value: [t.value for t in targets] for f, targets in statuses.TRANSITIONS.items()}
    assert actual == EXPECTED_TRANSITIONS
    # and in the issue's order (the API lists nextStatuses in this order)
    assert list(actual.items()) == list(EXPECTED_TRANSITIONS.items())
    assert len(ALLOWED_PAIRS) == 21 and len(DISALLOWED_PAIRS) == 100


@pytest.mark.parametrize("from_status", list(EXPECTED_TRANSITIONS))
def test_is_allowed_matches_the_table_for_every_pair(from_status: str) -> None:
    for to_status in EXPECTED_TRANSITIONS:
        expected = to_status in EXPECTED_TRANSITIONS[from_status]
        actual = statuses.is_allowed(OrderStatus(from_status), OrderStatus(to_status))
        assert actual is expected, (from_status, to_status)


def test_closed_statuses_have_no_way_out_and_nothing_returns_to_pending() -> None:
    assert {s.value for s in statuses.CLOSED_STATUSES} == EXPECTED_CLOSED
    for targets in statuses.TRANSITIONS.values():
        assert OrderStatus.PENDING not in targets
        assert len(set(targets)) == len(targets)
    for status, targets in statuses.TRANSITIONS.items():
        assert status not in targets  # no self-loops


def _reachable(start: OrderStatus) -> set[OrderStatus]:
    seen = {start}
    queue = deque([start])
    while queue:
        for nxt in statuses.TRANSITIONS[queue.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


def test_every_status_is_reachable_and_every_order_can_be_closed() -> None:
    assert _reachable(OrderStatus.PENDING) == set(OrderStatus)
    for status in OrderStatus:
        assert _reachable(status) & statuses.CLOSED_STATUSES, status


def test_colours_labels_and_descriptions() -> None:
    assert set(statuses.STATUS_INFO) == set(OrderStatus)
    assert {s.value: i.color for s, i in statuses.STATUS_INFO.items()} == EXPECTED_COLORS
    labels = []
    for status, info in statuses.STATUS_INFO.items():
        assert info.status is status
        assert info.label.strip() and info.label == info.label.strip()
        assert info.description.strip().endswith(".")
        assert len(info.description) > len(info.label)
        labels.append(info.label)
    assert len(set(labels)) == len(labels)  # two statuses never look the same to a reader


def test_roles_for_each_target_status() -> None:
    actual = {t.value: {r.value for r in roles} for t, roles in statuses.ROLES_FOR_TARGET.items()}
    assert actual == EXPECTED_ROLES_FOR_TARGET
    # every status an order can move into has a rule; nobody moves an order back to PENDING
    assert set(actual) == set(EXPECTED_TRANSITIONS) - {PENDING}
    for role in Role:
        assert not statuses.role_may_enter(role, OrderStatus.PENDING)


@pytest.mark.parametrize("role", [r.value for r in Role])
def test_role_may_enter_follows_the_rules(role: str) -> None:
    for target, roles in EXPECTED_ROLES_FOR_TARGET.items():
        assert statuses.role_may_enter(Role(role), OrderStatus(target)) is (role in roles)


@pytest.mark.parametrize("role", [r.value for r in Role])
def test_available_transitions_per_role(role: str) -> None:
    for from_status in EXPECTED_TRANSITIONS:
        actual = statuses.available_transitions(OrderStatus(from_status), Role(role))
        assert [s.value for s in actual] == expected_available(from_status, role), from_status


def test_available_transitions_spot_checks() -> None:
    """A few rows spelled out, so a reader sees what the rules mean in practice."""
    T, F = Role.TECHNICIAN, Role.FRONT_DESK
    avail = statuses.available_transitions
    S = OrderStatus
    assert avail(S.AWAITING_APPROVAL, T) == [S.DIAGNOSING]
    assert avail(S.AWAITING_APPROVAL, F) == [S.APPROVED, S.REJECTED, S.CANCELLED]
    assert avail(S.READY, T) == []
    assert avail(S.READY, F) == [S.COMPLETED]
    assert avail(S.TESTING, F) == []
    assert avail(S.PENDING, F) == [S.AWAITING_DIAGNOSIS, S.CANCELLED]
    for role in Role:
        for closed in statuses.CLOSED_STATUSES:
            assert avail(closed, role) == []
    for lead in (Role.OWNER, Role.MANAGER):
        for status in S:
            assert avail(status, lead) == list(statuses.TRANSITIONS[status])


def _codes(failures: list[statuses.GuardFailure]) -> list[tuple[str, str]]:
    return [(f.code, f.field) for f in failures]


def test_awaiting_approval_needs_a_diagnosis_and_an_estimate() -> None:
    guard = statuses.guard_failures
    S = OrderStatus.AWAITING_APPROVAL
    assert _codes(guard(S, diagnosis=None, estimated_cost=None)) == [
        ("MISSING_DIAGNOSIS", "diagnosis"),
        ("MISSING_ESTIMATE", "estimatedCost"),
    ]
    assert _codes(guard(S, diagnosis=" \n\t ", estimated_cost=1000)) == [
        ("MISSING_DIAGNOSIS", "diagnosis")
    ]
    assert _codes(guard(S, diagnosis="Broken screen", estimated_cost=None)) == [
        ("MISSING_ESTIMATE", "estimatedCost")
    ]
    assert guard(S, diagnosis="Broken screen", estimated_cost=12900) == []
    # a free estimate is still an estimate
    assert guard(S, diagnosis="Loose cable, reseated", estimated_cost=0) == []
    messages = [f.message for f in guard(S, diagnosis="", estimated_cost=None)]
    assert messages == [
        "Set a diagnosis before asking for approval.",
        "Set an estimated cost before asking for approval.",
    ]


@pytest.mark.parametrize(
    "target", [s for s in OrderStatus if s is not OrderStatus.AWAITING_APPROVAL]
)
def test_no_other_status_has_a_guard(target: OrderStatus) -> None:
    assert statuses.guard_failures(target, diagnosis=None, estimated_cost=None) == []


# --- the README is printed from this module ---------------------------------------------------

README = Path(__file__).resolve().parents[2] / "README.md"
BEGIN = "<!-- generated from services/statuses.py: begin -->"
END = "<!-- generated from services/statuses.py: end -->"


def _readme_block() -> str:
    text = README.read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1, "README status-machine markers"
    return text.split(BEGIN, 1)[1].split(END, 1)[0]


def _render_parts() -> dict[str, str]:
    """The README's tables and diagram, rendered from services/statuses.py."""
    info_rows = [
        f"| `{s.value}` | {i.label} | {i.color} | {i.description} |"
        for s, i in statuses.STATUS_INFO.items()
    ]
    move_rows = [
        f"| `{f.value}` | "
        + (", ".join(f"`{t.value}`" for t in targets) if targets else "none (closed)")
        + " |"
        for f, targets in statuses.TRANSITIONS.items()
    ]
    arrows = [f"    [*] --> {statuses.INITIAL_STATUS.value}"]
    arrows += [f"    {f.value} --> {t.value}" for f, ts in statuses.TRANSITIONS.items() for t in ts]
    arrows += [f"    {s.value} --> [*]" for s, ts in statuses.TRANSITIONS.items() if not ts]
    roles = list(Role)
    role_rows = [
        f"| `{target.value}` | "
        + " | ".join("yes" if r in allowed else "\u2014" for r in roles)
        + " |"
        for target, allowed in statuses.ROLES_FOR_TARGET.items()
    ]
    return {
        "statuses": "\n".join(
            ["| Status | Label | Colour | Meaning |", "|---|---|---|---|", *info_rows]
        ),
        "transitions": "\n".join(["| From | May move to |", "|---|---|", *move_rows]),
        "diagram": "\n".join(["```mermaid", "stateDiagram-v2", *arrows, "```"]),
        "roles": "\n".join(
            [
                "| Into | " + " | ".join(f"`{r.value}`" for r in roles) + " |",
                "|---" * (len(roles) + 1) + "|",
                *role_rows,
            ]
        ),
    }


@pytest.mark.parametrize("part", ["statuses", "transitions", "diagram", "roles"])
def test_readme_shows_the_machine_as_it_is(part: str) -> None:
    assert _render_parts()[part] in _readme_block(), f"README {part} drifted from statuses.py"


def test_readme_block_has_no_stale_rows() -> None:
    rendered = "\n".join(_render_parts().values()).splitlines()
    block = _readme_block().splitlines()
    for line in block:
        if line.startswith(("|", "    ")):
            assert line in rendered, f"README line not produced by statuses.py: {line!r}"
