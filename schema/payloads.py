from __future__ import annotations

from datetime import datetime

import strawberry

from schema.types import InternalNote, PartLine, ServiceOrder, StaffUser, UserError


@strawberry.type
class LoginPayload:
    token: str | None = strawberry.field(description="Send as `Authorization: Bearer <token>`.")
    expires_at: datetime | None
    staff_user: StaffUser | None
    user_errors: list[UserError]


@strawberry.type
class LogoutPayload:
    revoked: bool
    user_errors: list[UserError]


@strawberry.type
class ServiceOrderPayload:
    service_order: ServiceOrder | None
    user_errors: list[UserError]


@strawberry.type
class ServiceOrderCreatePayload(ServiceOrderPayload):
    created: bool = strawberry.field(
        description="false when an earlier request with the same idempotency key made the order"
    )


@strawberry.type
class ServiceOrderUpdatePayload(ServiceOrderPayload):
    pass


@strawberry.type
class ServiceOrderSetDiagnosisPayload(ServiceOrderPayload):
    pass


@strawberry.type
class ServiceOrderTransitionPayload(ServiceOrderPayload):
    pass


@strawberry.type
class ServiceOrderAssignPayload(ServiceOrderPayload):
    pass


@strawberry.type
class PartLineAddPayload(ServiceOrderPayload):
    part_line: PartLine | None


@strawberry.type
class PartLineUpdatePayload(ServiceOrderPayload):
    part_line: PartLine | None


@strawberry.type
class PartLineRemovePayload(ServiceOrderPayload):
    deleted_part_line_id: strawberry.ID | None


@strawberry.type
class InternalNoteAddPayload(ServiceOrderPayload):
    internal_note: InternalNote | None


@strawberry.type
class StaffUserPayload:
    staff_user: StaffUser | None
    user_errors: list[UserError]


@strawberry.type
class StaffUserCreatePayload(StaffUserPayload):
    pass


@strawberry.type
class StaffUserDeactivatePayload(StaffUserPayload):
    pass


@strawberry.type
class NotificationsMarkReadPayload:
    unread_count: int | None = strawberry.field(
        description="The viewer's unread count after the change."
    )
    user_errors: list[UserError]
