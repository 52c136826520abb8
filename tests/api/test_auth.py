"""Login, tokens, logout, rate limiting, staff management, account scoping of the viewer."""

from __future__ import annotations

from sqlalchemy import func, select

from db.models import AuthToken, LoginFailure, StaffUser
from tests.conftest import PASSWORD, GraphQLClient, Shop

LOGIN = """
mutation($email: String!, $password: String!) {
  login(input: {email: $email, password: $password}) {
    token expiresAt staffUser { email role } userErrors { field message code }
  }
}"""
ME = "{ me { email role account { name currency timeZone } permissions } }"


async def test_login_returns_a_working_token_stored_only_hashed(
    api: GraphQLClient, shop: Shop, db
) -> None:
    payload = await api.mutate(LOGIN, {"email": "OWNER@a.test ", "password": PASSWORD})
    assert payload["userErrors"] == []
    token = payload["token"]
    assert token.startswith("so_") and len(token) > 40
    assert payload["staffUser"] == {"email": "owner@a.test", "role": "OWNER"}

    me = await api.as_(token).ok(ME)
    assert me["me"]["account"] == {"name": "Shop A", "currency": "EUR", "timeZone": "Europe/Lisbon"}
    assert "STAFF_MANAGE" in me["me"]["permissions"]

    async with db.read_session() as session:
        hashes = list(await session.scalars(select(AuthToken.token_hash)))
    assert token not in hashes and all(len(h) == 64 for h in hashes)


async def test_wrong_password_and_unknown_email_look_the_same(
    api: GraphQLClient, shop: Shop
) -> None:
    wrong = await api.mutate(LOGIN, {"email": "owner@a.test", "password": "nope-nope-nope"})
    unknown = await api.mutate(LOGIN, {"email": "ghost@a.test", "password": PASSWORD})
    for payload in (wrong, unknown):
        assert payload["token"] is None
        assert payload["userErrors"] == [
            {"field": None, "message": "Wrong email or password.", "code": "INVALID_CREDENTIALS"}
        ]


async def test_login_failures_are_rate_limited_per_email(
    api: GraphQLClient, shop: Shop, db
) -> None:
    for _ in range(5):
        payload = await api.mutate(LOGIN, {"email": "owner@a.test", "password": "bad-password-x"})
        assert payload["userErrors"][0]["code"] == "INVALID_CREDENTIALS"
    # even the right password is refused now: the guessing window is closed
    payload = await api.mutate(LOGIN, {"email": "owner@a.test", "password": PASSWORD})
    assert payload["token"] is None
    assert payload["userErrors"][0]["code"] == "RATE_LIMITED"
    async with db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(LoginFailure)) == 5
    # another user is not affected
    other = await api.mutate(LOGIN, {"email": "manager@a.test", "password": PASSWORD})
    assert other["token"]


async def test_no_token_or_bad_token_is_unauthenticated(api: GraphQLClient, shop: Shop) -> None:
    for client in (api, api.as_("so_not-a-real-token"), api.as_("garbage")):
        body = await client.query(ME)
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_logout_revokes_the_token(api: GraphQLClient, shop: Shop) -> None:
    client = api.as_(shop.tokens["TECHNICIAN"])
    assert (await client.ok(ME))["me"]["role"] == "TECHNICIAN"
    payload = await client.mutate("mutation { logout { revoked userErrors { code } } }")
    assert payload == {"revoked": True, "userErrors": []}
    body = await client.query(ME)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


STAFF_CREATE = """
mutation($input: StaffUserCreateInput!) {
  staffUserCreate(input: $input) { staffUser { id email name role isActive } userErrors { field code } }
}"""
STAFF_DEACTIVATE = """
mutation($id: ID!) {
  staffUserDeactivate(input: {id: $id}) { staffUser { email isActive } userErrors { field code } }
}"""


async def test_owner_creates_staff_who_can_log_in(api: GraphQLClient, shop: Shop) -> None:
    owner = api.as_(shop.tokens["OWNER"])
    payload = await owner.mutate(
        STAFF_CREATE,
        {
            "input": {
                "email": "New.Tech@A.test",
                "name": " Nia ",
                "role": "TECHNICIAN",
                "password": "long-enough-pw",
            }
        },
    )
    assert payload["userErrors"] == []
    assert payload["staffUser"]["email"] == "new.tech@a.test"
    assert payload["staffUser"]["name"] == "Nia"
    login = await api.mutate(LOGIN, {"email": "new.tech@a.test", "password": "long-enough-pw"})
    assert login["token"]


async def test_staff_creation_errors(api: GraphQLClient, shop: Shop, db) -> None:
    owner = api.as_(shop.tokens["OWNER"])
    payload = await owner.mutate(
        STAFF_CREATE,
        {
            "input": {
                "email": "manager@a.test",
                "name": "",
                "role": "TECHNICIAN",
                "password": "short",
            }
        },
    )
    codes = {(tuple(e["field"]), e["code"]) for e in payload["userErrors"]}
    assert codes == {
        (("email",), "EMAIL_TAKEN"),
        (("name",), "REQUIRED"),
        (("password",), "WEAK_PASSWORD"),
    }
    assert payload["staffUser"] is None
    # a manager may not create owners; a technician may not create anyone
    manager = await api.as_(shop.tokens["MANAGER"]).mutate(
        STAFF_CREATE,
        {
            "input": {
                "email": "x@a.test",
                "name": "X",
                "role": "OWNER",
                "password": "long-enough-pw",
            }
        },
    )
    assert manager["userErrors"][0]["code"] == "FORBIDDEN"
    tech = await api.as_(shop.tokens["TECHNICIAN"]).mutate(
        STAFF_CREATE,
        {
            "input": {
                "email": "y@a.test",
                "name": "Y",
                "role": "FRONT_DESK",
                "password": "long-enough-pw",
            }
        },
    )
    assert tech["userErrors"][0]["code"] == "FORBIDDEN"
    async with db.read_session() as session:
        assert await session.scalar(select(func.count()).select_from(StaffUser)) == 4


async def test_deactivation_ends_sessions_and_guards_owners(
    api: GraphQLClient, shop: Shop, other_shop: Shop
) -> None:
    owner = api.as_(shop.tokens["OWNER"])
    tech_client = api.as_(shop.tokens["TECHNICIAN"])
    assert "errors" not in await tech_client.query(ME)

    payload = await owner.mutate(STAFF_DEACTIVATE, {"id": shop.gid("TECHNICIAN")})
    assert payload == {
        "staffUser": {"email": "technician@a.test", "isActive": False},
        "userErrors": [],
    }
    body = await tech_client.query(ME)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    login = await api.mutate(LOGIN, {"email": "technician@a.test", "password": PASSWORD})
    assert login["userErrors"][0]["code"] == "INVALID_CREDENTIALS"

    self_off = await owner.mutate(STAFF_DEACTIVATE, {"id": shop.gid("OWNER")})
    assert self_off["userErrors"][0]["code"] == "CANNOT_DEACTIVATE_SELF"
    # another shop's user is not found, not forbidden
    foreign = await owner.mutate(STAFF_DEACTIVATE, {"id": other_shop.gid("TECHNICIAN")})
    assert foreign["userErrors"][0]["code"] == "NOT_FOUND"
    manager_on_owner = await api.as_(shop.tokens["MANAGER"]).mutate(
        STAFF_DEACTIVATE, {"id": shop.gid("OWNER")}
    )
    assert manager_on_owner["userErrors"][0]["code"] == "FORBIDDEN"


async def test_staff_users_lists_only_own_shop(
    api: GraphQLClient, shop: Shop, other_shop: Shop
) -> None:
    data = await api.as_(shop.tokens["FRONT_DESK"]).ok("{ staffUsers { email role } }")
    assert sorted(u["email"] for u in data["staffUsers"]) == [
        "front_desk@a.test",
        "manager@a.test",
        "owner@a.test",
        "technician@a.test",
    ]
