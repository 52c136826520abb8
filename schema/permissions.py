from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission
from strawberry.types import Info


class IsStaff(BasePermission):
    """The caller sent a valid staff bearer token."""

    message = "Sign in first: send `Authorization: Bearer <token>` from the login mutation."
    error_extensions = {"code": "UNAUTHENTICATED"}

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return info.context.actor is not None
