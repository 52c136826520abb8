from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import strawberry

from schema.enums import ServiceOrderStatus, StaffRole

UNSET = strawberry.UNSET


@strawberry.input
class LoginInput:
    email: str
    password: str


@strawberry.input(
    description="A client: at least a phone or an email. Matched to an existing "
    "client of the shop by phone or email, else created."
)
class ClientInput:
    name: str | None = UNSET
    email: str | None = UNSET
    phone: str | None = strawberry.field(
        default=UNSET,
        description="Any common format; without a country code it is read in the shop's country.",
    )


@strawberry.input
class DeviceInput:
    model: str
    problem_reported: str
    brand: str | None = UNSET
    imei: str | None = strawberry.field(
        default=UNSET, description="15 digits with a valid check digit."
    )
    serial_number: str | None = UNSET
    accessories: str | None = UNSET
    condition_notes: str | None = UNSET


@strawberry.input(description="Device fields to change; fields left out keep their value.")
class DeviceUpdateInput:
    model: str | None = UNSET
    problem_reported: str | None = UNSET
    brand: str | None = UNSET
    imei: str | None = UNSET
    serial_number: str | None = UNSET
    accessories: str | None = UNSET
    condition_notes: str | None = UNSET


@strawberry.input
class ServiceOrderCreateInput:
    device: DeviceInput
    client_id: strawberry.ID | None = strawberry.field(
        default=None, description="An existing client."
    )
    client: ClientInput | None = strawberry.field(
        default=None, description="Or a new (or matched) client."
    )
    promised_at: datetime | None = None
    assigned_to_id: strawberry.ID | None = None
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="Retrying with the same key returns the same order instead of a second one.",
    )


@strawberry.input
class ServiceOrderUpdateInput:
    id: strawberry.ID
    client: ClientInput | None = UNSET
    device: DeviceUpdateInput | None = UNSET
    promised_at: datetime | None = UNSET
    expected_version: int | None = None


@strawberry.input(
    description="Fields left out keep their value; amounts are in the shop's currency."
)
class ServiceOrderSetDiagnosisInput:
    id: strawberry.ID
    diagnosis: str | None = UNSET
    estimated_cost: Decimal | None = UNSET
    labour_cost: Decimal | None = UNSET
    final_cost: Decimal | None = UNSET
    warranty_days: int | None = UNSET
    expected_version: int | None = None


@strawberry.input
class ServiceOrderTransitionInput:
    id: strawberry.ID
    to: ServiceOrderStatus
    note: str | None = None
    expected_version: int | None = strawberry.field(
        default=None,
        description="Fail with STALE_VERSION if the order is no longer at this version.",
    )


@strawberry.input
class ServiceOrderAssignInput:
    id: strawberry.ID
    assignee_id: strawberry.ID | None = strawberry.field(
        default=None, description="null unassigns."
    )
    expected_version: int | None = None


@strawberry.input
class PartLineAddInput:
    order_id: strawberry.ID
    name: str
    unit_cost: Decimal
    quantity: int = 1
    expected_version: int | None = None


@strawberry.input
class PartLineUpdateInput:
    id: strawberry.ID
    name: str | None = UNSET
    quantity: int | None = UNSET
    unit_cost: Decimal | None = UNSET
    expected_version: int | None = None


@strawberry.input
class PartLineRemoveInput:
    id: strawberry.ID
    expected_version: int | None = None


@strawberry.input
class InternalNoteAddInput:
    order_id: strawberry.ID
    body: str


@strawberry.input
class StaffUserCreateInput:
    email: str
    name: str
    role: StaffRole
    password: str


@strawberry.input
class StaffUserDeactivateInput:
    id: strawberry.ID


@strawberry.input
class ServiceOrderFilter:
    statuses: list[ServiceOrderStatus] | None = None
    created_from: datetime | None = strawberry.field(default=None, description="Inclusive.")
    created_to: datetime | None = strawberry.field(default=None, description="Exclusive.")
    search: str | None = strawberry.field(
        default=None,
        description="Matches number, client name, phone and email, brand, model, IMEI and serial.",
    )
    assigned_to: strawberry.ID | None = None
    client_id: strawberry.ID | None = None


@strawberry.input(description="Mark the given notifications read, or all of the viewer's.")
class NotificationsMarkReadInput:
    ids: list[strawberry.ID] | None = None
    all: bool = False
