"""The `service-orders` command: serve, migrate, create-account, demo, schema."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from config import ConfigError, Settings


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _with_db(settings: Settings, work: Callable[[Any], Awaitable[Any]]) -> Any:
    from db.engine import Database

    async def main() -> Any:
        db = Database(settings.database_url)
        try:
            async with db.write_session() as session:
                return await work(session)
        finally:
            await db.dispose()

    return asyncio.run(main())


def cmd_migrate(args: argparse.Namespace) -> int:
    from db.migrate import upgrade

    settings = _settings()
    upgrade(settings.database_url)
    print(f"database is at the latest revision ({_safe_url(settings.database_url)})")
    return 0


def cmd_create_account(args: argparse.Namespace) -> int:
    from services.auth import create_account
    from services.errors import DomainError, flatten

    settings = _settings()
    password = os.environ.get("SERVICE_ORDERS_OWNER_PASSWORD")
    if not password:
        if not sys.stdin.isatty():
            print("set SERVICE_ORDERS_OWNER_PASSWORD or run in a terminal", file=sys.stderr)
            return 2
        password = getpass.getpass("Owner password: ")
        if getpass.getpass("Repeat it: ") != password:
            print("the passwords differ", file=sys.stderr)
            return 2

    async def work(session: Any) -> Any:
        return await create_account(
            session=session,
            name=args.name,
            owner_email=args.owner_email,
            owner_password=password,
            owner_name=args.owner_name,
            time_zone=args.time_zone,
            currency=args.currency,
            country=args.country,
        )

    try:
        account, user = _with_db(settings, work)
    except DomainError as exc:
        for error in flatten(exc):
            print(f"{error.code.value}: {error.message}", file=sys.stderr)
        return 1
    print(f"created shop {account.name!r} (id {account.id}); owner {user.email} can log in")
    return 0


def _load_demo(settings: Settings) -> Any:
    from services.demo import featured_link, load_demo
    from services.sharing import url_for

    async def work(session: Any) -> Any:
        shop = await load_demo(session)
        link = await featured_link(session, shop.account_id)
        url = url_for(link, settings.secret_key, settings.public_base_url) if link else None
        return shop, url

    return _with_db(settings, work)


def _print_demo(settings: Settings, loaded: Any) -> None:
    from services.demo import DEMO_PASSWORD

    shop, tracking_url = loaded
    state = "loaded" if shop.created else "already present"
    print(f"demo shop {state}. Log in with any of (password {DEMO_PASSWORD!r}):")
    for email, role in shop.logins.items():
        print(f"  {email:<22} {role}")
    if tracking_url:
        print(f"A customer's tracking page (estimate awaiting approval): {tracking_url}")


def cmd_demo(args: argparse.Namespace) -> int:
    settings = _settings()
    if args.migrate:
        from db.migrate import upgrade

        upgrade(settings.database_url)
    _print_demo(settings, _load_demo(settings))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app import configure_logging, create_app

    settings = _settings()
    if not settings.public_base_url_set:
        # links printed and shared point at this server unless told otherwise
        host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host  # noqa: S104
        settings = dataclasses.replace(settings, public_base_url=f"http://{host}:{args.port}")
        os.environ["PUBLIC_BASE_URL"] = settings.public_base_url  # for --workers processes
    configure_logging(settings.log_level)
    if args.demo:
        from db.migrate import upgrade

        upgrade(settings.database_url)
        _print_demo(settings, _load_demo(settings))
    base = f"http://{args.host}:{args.port}"
    print(f"GraphiQL: {base}/graphql   (database: {_safe_url(settings.database_url)})", flush=True)
    if args.demo:
        print(
            'Sign in: mutation { login(input: {email: "owner@demo.shop", '
            'password: "demo-password-1"}) { token } }  '
            "then set the header Authorization: Bearer <token>",
            flush=True,
        )
    if args.workers > 1:
        uvicorn.run(
            "app:factory",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            proxy_headers=True,
            log_level=settings.log_level.lower(),
        )
    else:
        uvicorn.run(
            create_app(settings),
            host=args.host,
            port=args.port,
            proxy_headers=True,
            log_level=settings.log_level.lower(),
        )
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    import schema

    text = schema.printed()
    if args.write:
        schema.SCHEMA_FILE.write_text(text)
        print(f"wrote {schema.SCHEMA_FILE}")
    else:
        sys.stdout.write(text)
    return 0


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="service-orders", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP and websocket server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers", type=int, default=1, help="server processes (needs PostgreSQL + Redis)"
    )
    serve.add_argument("--demo", action="store_true", help="migrate and load the demo shop first")
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="upgrade the database to the latest migration")
    migrate.set_defaults(func=cmd_migrate)

    account = sub.add_parser(
        "create-account",
        help="create a shop and its owner "
        "(password from SERVICE_ORDERS_OWNER_PASSWORD or a prompt)",
    )
    account.add_argument("--name", required=True, help="the shop's name")
    account.add_argument("--owner-email", required=True)
    account.add_argument("--owner-name")
    account.add_argument("--time-zone", default="UTC")
    account.add_argument("--currency", default="USD")
    account.add_argument(
        "--country", default="US", help="ISO 3166 code, used to read phone numbers"
    )
    account.set_defaults(func=cmd_create_account)

    demo = sub.add_parser("demo", help="load the demo shop (idempotent)")
    demo.add_argument("--no-migrate", dest="migrate", action="store_false")
    demo.set_defaults(func=cmd_demo)

    sch = sub.add_parser("schema", help="print the GraphQL schema (SDL)")
    sch.add_argument("--write", action="store_true", help="write schema.graphql instead")
    sch.set_defaults(func=cmd_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
