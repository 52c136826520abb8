"""The API's enums are the domain's own enums, registered with GraphQL names."""

from __future__ import annotations

from typing import TypeAlias

import strawberry

from services.errors import ErrorCode as _ErrorCode
from services.roles import Role as _Role
from services.statuses import OrderStatus as _OrderStatus

strawberry.enum(
    _OrderStatus, name="ServiceOrderStatus", description="Where a service order is in the workflow."
)
strawberry.enum(_Role, name="StaffRole", description="A staff member's role in the shop.")
strawberry.enum(_ErrorCode, name="ErrorCode", description="Machine-readable code of a user error.")

ServiceOrderStatus: TypeAlias = _OrderStatus
StaffRole: TypeAlias = _Role
ErrorCode: TypeAlias = _ErrorCode
