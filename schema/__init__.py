"""The GraphQL schema: types, inputs, permissions, extensions and the root."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import strawberry
from graphql.error import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from schema.events import Subscription
from schema.extensions import MaskAndLogErrors
from schema.mutation import Mutation
from schema.query import Query
from schema.scalars import DateTimeScalar
from schema.sharing import SharingMutation, SharingQuery, SharingSubscription

MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_TOKENS = 2000

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"


class Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        # unexpected errors are logged (with the request id) by MaskAndLogErrors; the rest
        # are the client's own mistakes and not worth an ERROR line each
        return None


# The depth and alias rules are built ONCE: ValidationCache keys on the rule classes, and
# a limiter constructed per request makes new classes, so the cache would never hit.
LIMIT_RULES = [
    *QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules,
    *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
]


def build_schema() -> Schema:
    return Schema(
        query=merge_types("Query", (Query, SharingQuery)),
        mutation=merge_types("Mutation", (Mutation, SharingMutation)),
        subscription=merge_types("Subscription", (Subscription, SharingSubscription)),
        config=StrawberryConfig(auto_camel_case=True, scalar_map={datetime: DateTimeScalar}),
        extensions=[
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            lambda: AddValidationRules(LIMIT_RULES),
            lambda: ParserCache(maxsize=512),
            lambda: ValidationCache(maxsize=512),
            MaskAndLogErrors,
        ],
    )


schema = build_schema()


def printed() -> str:
    return schema.as_str() + "\n"
