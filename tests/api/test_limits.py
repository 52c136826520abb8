"""Operation limits (depth, aliases, tokens), no HTTP batching, masking of unexpected errors
with a request id, and the committed schema file."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

import schema as schema_module
from db.engine import Database
from resolvers import orders as order_resolvers
from tests.api.test_orders import EMPTY, create_order, order_input, row_counts
from tests.conftest import GraphQLClient, Shop

CREATE_INPUT = 'input: {device: {model: "M", problemReported: "P"}, client: {name: "N", email: "n@example.com"}}'


def nested_history(levels: int) -> str:
    """`levels` nested deviceHistory selections: depth = levels + 1 below the order."""
    selection = "id"
    for _ in range(levels):
        selection = f"deviceHistory {{ {selection} }}"
    return selection


@pytest.fixture
def error_log(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> Iterator[pytest.LogCaptureFixture]:
    """Records of the masking logger, caught at the logger itself (the app's logging setup
    may stop propagation to the root logger, where caplog listens)."""
    logger = logging.getLogger("service_orders.errors")
    monkeypatch.setattr(logger, "propagate", False)
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG, logger="service_orders.errors")
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)


def masking_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "service_orders.errors"]


# --- depth, aliases, tokens ----------------------------------------------------------------------


async def test_query_depth_limit(api: GraphQLClient, shop: Shop) -> None:
    tech = api.as_(shop.tokens["TECHNICIAN"])
    order = await create_order(api.as_(shop.tokens["FRONT_DESK"]))
    at_limit = f'{{ serviceOrder(id: "{order["id"]}") {{ {nested_history(9)} }} }}'
    assert (await tech.ok(at_limit))["serviceOrder"] == {"deviceHistory": []}

    too_deep = f'{{ serviceOrder(id: "{order["id"]}") {{ {nested_history(10)} }} }}'
    body = await tech.query(too_deep)
    assert body.get("data") is None
    assert [e["message"] for e in body["errors"]] == [
        "'anonymous' exceeds maximum operation depth of 10"
    ]


async def test_too_deep_mutation_is_not_executed(
    api: GraphQLClient, shop: Shop, db: Database
) -> None:
    desk = api.as_(shop.tokens["FRONT_DESK"])
    body = await desk.query(
        f"mutation Deep {{ serviceOrderCreate({CREATE_INPUT}) {{"
        f" serviceOrder {{ {nested_history(10)} }} }} }}"
    )
    assert body.get("data") is None
    assert body["errors"][0]["message"] == "'Deep' exceeds maximum operation depth of 10"
    assert await row_counts(db) == EMPTY


async def test_alias_limit(api: GraphQLClient, shop: Shop, db: Database) -> None:
    desk = api.as_(shop.tokens["FRONT_DESK"])
    thirty = " ".join(f"a{i}: me {{ id }}" for i in range(30))
    assert len(await desk.ok(f"{{ {thirty} }}")) == 30

    creates = " ".join(f"c{i}: serviceOrderCreate({CREATE_INPUT}) {{ created }}" for i in range(31))
    body = await desk.query(f"mutation {{ {creates} }}")
    assert body.get("data") is None
    assert [e["message"] for e in body["errors"]] == ["31 aliases found. Allowed: 30"]
    assert await row_counts(db) == EMPTY


async def test_token_limit(api: GraphQLClient, shop: Shop, db: Database) -> None:
    desk = api.as_(shop.tokens["FRONT_DESK"])
    fields = "created " * 2000
    body = await desk.query(f"mutation {{ serviceOrderCreate({CREATE_INPUT}) {{ {fields} }} }}")
    assert body.get("data") is None
    assert [e["message"] for e in body["errors"]] == [
        "Syntax Error: Document contains more than 2000 tokens. Parsing aborted."
    ]
    assert await row_counts(db) == EMPTY
    # an ordinary operation is far below the limit
    fine = await desk.query(
        f"mutation {{ serviceOrderCreate({CREATE_INPUT}) {{ {'created ' * 100} }} }}"
    )
    assert fine["data"]["serviceOrderCreate"]["created"] is True


async def test_http_batching_is_refused(api: GraphQLClient, shop: Shop, db: Database) -> None:
    create = (
        "mutation($input: ServiceOrderCreateInput!) {"
        " serviceOrderCreate(input: $input) { created } }"
    )
    operation = {"query": create, "variables": {"input": order_input()}}
    response = await api.http.post(
        "/graphql",
        json=[operation, operation],
        headers={"authorization": f"Bearer {shop.tokens['FRONT_DESK']}"},
    )
    assert response.status_code == 400
    assert "Batching is not enabled" in response.text
    assert await row_counts(db) == EMPTY
    # the same operation alone goes through
    single = await api.http.post(
        "/graphql",
        json=operation,
        headers={"authorization": f"Bearer {shop.tokens['FRONT_DESK']}"},
    )
    assert single.json() == {"data": {"serviceOrderCreate": {"created": True}}}


# --- masking ----------------------------------------------------------------------------------------


async def test_unexpected_errors_are_masked_and_logged_with_the_request_id(
    api: GraphQLClient,
    shop: Shop,
    monkeypatch: pytest.MonkeyPatch,
    error_log: pytest.LogCaptureFixture,
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("connection to 10.0.0.5 failed: password hunter2 rejected")

    monkeypatch.setattr(order_resolvers, "get_order_by_number", broken)
    tech = api.as_(shop.tokens["TECHNICIAN"])
    query = '{ me { email } serviceOrderByNumber(number: "OS-2026-0001") { id } }'

    # a request id chosen by the client is used; otherwise one is made
    for sent in ({"x-request-id": "req-abc-123"}, {}):
        response = await tech.post(query, headers=sent)
        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
        if sent:
            assert request_id == "req-abc-123"
        else:
            assert len(request_id) >= 16
        body = response.json()
        assert "hunter2" not in response.text and "RuntimeError" not in response.text
        # the rest of the operation still answers
        assert body["data"] == {"me": {"email": "technician@a.test"}, "serviceOrderByNumber": None}
        assert body["errors"] == [
            {
                "message": "Unexpected error.",
                "locations": [{"line": 1, "column": 16}],
                "path": ["serviceOrderByNumber"],
                "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
            }
        ]
        (record,) = masking_records(error_log)
        assert record.levelno == logging.ERROR
        assert f"request_id={request_id}" in record.getMessage()
        assert "serviceOrderByNumber" in record.getMessage()
        assert record.exc_info is not None
        assert isinstance(record.exc_info[1], RuntimeError)
        assert "hunter2" in str(record.exc_info[1])
        error_log.clear()


async def test_expected_errors_are_not_masked(
    api: GraphQLClient, shop: Shop, error_log: pytest.LogCaptureFixture
) -> None:
    tech = api.as_(shop.tokens["TECHNICIAN"])
    invalid = await tech.query("{ serviceOrders { nope } }")
    assert invalid["errors"][0]["message"].startswith(
        "Cannot query field 'nope' on type 'ServiceOrderConnection'."
    )
    bad_page = await tech.query("{ serviceOrders(first: 500) { totalCount } }")
    assert bad_page["errors"][0]["message"] == "`first` must be between 1 and 100."
    assert bad_page["errors"][0]["extensions"] == {"code": "INVALID_INPUT"}
    bad_variable = await tech.query(
        "query($first: Int) { serviceOrders(first: $first) { totalCount } }",
        {"first": "ten"},
    )
    assert "Int cannot represent non-integer value" in bad_variable["errors"][0]["message"]
    anonymous = await api.query("{ serviceOrders { totalCount } }")
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    user_error = await api.as_(shop.tokens["FRONT_DESK"]).mutate(
        'mutation { serviceOrderCreate(input: {device: {model: "", problemReported: "P"},'
        ' client: {name: "N", email: "n@example.com"}}) { userErrors { code } } }'
    )
    assert user_error == {"userErrors": [{"code": "REQUIRED"}]}
    for body in (invalid, bad_page, bad_variable, anonymous):
        assert all(e["message"] != "Unexpected error." for e in body["errors"])
        assert all(
            (e.get("extensions") or {}).get("code") != "INTERNAL_SERVER_ERROR"
            for e in body["errors"]
        )
    assert masking_records(error_log) == []


# --- the committed schema -----------------------------------------------------------------------------


def test_committed_schema_is_up_to_date() -> None:
    committed = schema_module.SCHEMA_FILE.read_text(encoding="utf-8")
    assert committed == schema_module.printed(), (
        f"{schema_module.SCHEMA_FILE.name} is out of date: run `make schema` and commit it"
    )
