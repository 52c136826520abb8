"""The ASGI application factory: wires settings, database and schema. No logic here."""

from __future__ import annotations

import contextvars
import logging
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from cross_web import HTTPException
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from config import Settings
from db.engine import Database
from resolvers.auth import authenticate
from resolvers.context import Context
from resolvers.sharing import share_link_is_valid
from schema import schema
from subscriptions.realtime import Realtime

WS_INIT_TIMEOUT = timedelta(seconds=10)
MAX_SUBSCRIPTIONS_PER_SOCKET = 20

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
log = logging.getLogger("service_orders")


WEB = Path(__file__).resolve().parent / "web"
PAGE_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}
_TOKEN_PATH = re.compile(r"/t/[^/?\s\"]+")


class RedactTokens(logging.Filter):
    """Share-link tokens never reach the logs: /t/<token> becomes /t/<redacted>."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN_PATH.sub("/t/<redacted>", a) if isinstance(a, str) else a
                for a in record.args
            )
        if isinstance(record.msg, str):
            record.msg = _TOKEN_PATH.sub("/t/<redacted>", record.msg)
        return True


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
    )
    root = logging.getLogger("service_orders")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())


class RequestIdMiddleware:
    """Takes X-Request-ID from the client (if sane) or makes one; echoes it on the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        rid = given if 0 < len(given) <= 64 and given.isprintable() else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        token = request_id_var.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


class GraphQLApp(GraphQL[Context, None]):
    def __init__(self, *, database: Database, settings: Settings, realtime: Realtime) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql",
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            allowed_origins=settings.allowed_origins,
            connection_init_wait_timeout=WS_INIT_TIMEOUT,
            max_subscriptions_per_connection=MAX_SUBSCRIPTIONS_PER_SOCKET,
        )
        self.database = database
        self.settings = settings
        self.realtime = realtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            ctx = scope.get("state", {}).get("graphql_context")
            if ctx is not None:
                await ctx.close_reads()

    async def on_ws_connect(self, context: Context) -> Any:
        """Sockets authenticate in `connection_init`: staff with
        {"authorization": "Bearer <token>"} (or {"token": "<token>"}), tracking pages with
        {"shareToken": "<share-link token>"}. Anything else is closed (4403)."""
        params = context.connection_params or {}
        value = params.get("authorization") or params.get("Authorization") or ""
        if not value and params.get("token"):
            value = f"Bearer {params['token']}"
        if isinstance(value, str) and value:
            await authenticate(context, value)
        if context.actor is not None:
            return {"viewer": context.actor.name}
        share_token = params.get("shareToken")
        if isinstance(share_token, str) and await share_link_is_valid(context, share_token):
            return {"viewer": "share-link"}
        raise ConnectionRejectionError(
            {"message": "A valid staff token or share link is required."}
        )

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        client = request.client
        ctx = Context(
            db=self.database,
            settings=self.settings,
            request_id=request.state.request_id,
            client_ip=client.host if client else "unknown",
            request=request,
            response=response,
            realtime=self.realtime,
            shared_reads=isinstance(request, Request),
        )
        request.state.graphql_context = ctx
        if isinstance(request, Request):
            try:
                await authenticate(ctx, request.headers.get("authorization"))
            except (SQLAlchemyError, OSError) as exc:
                # the database is unreachable: a clear 503, one log line, no traceback storm
                log.error("database unavailable while authenticating: %s", exc.__class__.__name__)
                raise HTTPException(
                    503, "Service temporarily unavailable; try again shortly."
                ) from None
        return ctx


def create_app(settings: Settings, *, database: Database | None = None) -> Starlette:
    db = database or Database(settings.database_url, pool_size=settings.db_pool_size)
    owns_db = database is None
    realtime = Realtime(db, settings.redis_url)
    graphql_app = GraphQLApp(database=db, settings=settings, realtime=realtime)

    async def health(_: Request) -> Response:
        try:
            async with db.read_session() as session:
                await session.execute(text("SELECT 1"))
        except Exception:
            log.exception("health check: database unreachable")
            return JSONResponse({"status": "error", "database": "unreachable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def home(_: Request) -> Response:
        return RedirectResponse("/graphql")

    page = (WEB / "track.html").read_bytes()

    async def tracking_page(_: Request) -> Response:
        # the same page for every token: the script reads it from the address
        return Response(page, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await realtime.start()
        try:
            yield
        finally:
            await realtime.stop()
            if owns_db:
                await db.dispose()

    middleware = [Middleware(RequestIdMiddleware)]
    if settings.allowed_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.allowed_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["authorization", "content-type", "x-request-id"],
                expose_headers=["x-request-id"],
                max_age=600,
            )
        )
    app = Starlette(
        routes=[
            Route("/", home),
            Route("/healthz", health),
            Route("/t/{token}", tracking_page),
            Mount("/static", StaticFiles(directory=WEB), name="static"),
            Route("/graphql", graphql_app, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql_app),
        ],
        middleware=middleware,
        lifespan=lifespan,
    )
    app.state.database = db
    app.state.settings = settings
    app.state.realtime = realtime
    return app


def factory() -> Starlette:
    """For `uvicorn --factory app:factory` (several worker processes)."""
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    return create_app(settings)
