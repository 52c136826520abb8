"""Schema extensions: masking of unexpected errors (logged with the request id)."""

from __future__ import annotations

import logging

from graphql.error import GraphQLError
from strawberry.extensions import MaskErrors

log = logging.getLogger("service_orders.errors")


def is_unexpected(error: GraphQLError) -> bool:
    """Validation, parse and deliberate GraphQLErrors pass; anything a resolver raised
    by accident is masked."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


class MaskAndLogErrors(MaskErrors):
    def __init__(self) -> None:
        super().__init__(should_mask_error=is_unexpected, error_message="Unexpected error.")

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        context = self.execution_context.context
        request_id = getattr(context, "request_id", None)
        log.error(
            "unexpected error in %s (request_id=%s)",
            ".".join(str(p) for p in error.path or []) or "operation",
            request_id,
            exc_info=error.original_error,
        )
        masked = super().anonymise_error(error)
        masked.extensions = {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}
        return masked
