"""Browser fixtures: the real server process, headless Chromium, a staff GraphQL client.

The server is started exactly as in production (`python -m uvicorn --factory app:factory`)
once per backend: on a fresh, migrated SQLite file (the embedded default) and on a fresh
PostgreSQL database. The shop and its staff tokens are made in the test process; staff act
over HTTP GraphQL (httpx) and the customer's tracking page runs in Debian's Chromium
(/usr/bin/chromium) driven by Playwright's async API. Browsers are never downloaded.

Screenshots go to <repo>/test-artifacts/browser/ (gitignored); with
UPDATE_DOCS_SCREENSHOTS=1 the README's screenshots in <repo>/docs/ are written too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx
import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Frame,
    Page,
    ViewportSize,
    async_playwright,
    expect,
)
from sqlalchemy import update

from db.engine import Database
from db.migrate import upgrade
from db.models import Account
from tests.conftest import BACKENDS, Shop, _admin_dsn, create_pg_database, make_shop
from tests.servers import PostgresServer, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "browser"
DOCS = REPO_ROOT / "docs"
SECRET_KEY = "browser-secret-" + "b" * 33
assert len(SECRET_KEY) == 48

CHROMIUM = "/usr/bin/chromium"
# without the background-networking flags Chromium's own connections are refused here
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE: ViewportSize = {"width": 360, "height": 780}
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
WAIT_MS = 10_000  # every Playwright wait and expectation is bounded by this
START_TIMEOUT = 30.0
STOP_TIMEOUT = 8.0

expect.set_options(timeout=WAIT_MS)


# --- the server process -------------------------------------------------------------------


@dataclass
class LiveServer:
    """One `uvicorn --factory app:factory` process on a fresh database, with a shop."""

    backend: str
    database_url: str
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    db: Database | None = None
    shop: Shop | None = None
    _log: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database(self) -> Database:
        assert self.db is not None
        return self.db

    @property
    def the_shop(self) -> Shop:
        assert self.shop is not None
        return self.shop

    def env(self) -> dict[str, str]:
        skip = ("TEST_", "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "SERVICE_ORDERS_", "PUBLIC_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
        env.update(
            DATABASE_URL=self.database_url,
            SECRET_KEY=SECRET_KEY,
            SERVICE_ORDERS_ENV="test",
            PUBLIC_BASE_URL=self.base_url,
            LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
        )
        return env

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "app:factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            cwd=REPO_ROOT,
            env=self.env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    async def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Until GET /healthz answers 200 (fails at once if the process exits)."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(trust_env=False, timeout=2.0) as http:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise AssertionError(
                        f"server exited with {self.process.returncode}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{self.base_url}/healthz")).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise AssertionError(f"server not ready in {timeout}s:\n{self.log_tail()}")
                await asyncio.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within STOP_TIMEOUT."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"


_LIVE: list[LiveServer] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failing browser test shows the tail of the server's log."""
    report = yield
    if report.failed:
        for server in _LIVE:
            report.sections.append((f"server ({server.backend}) log", server.log_tail()))
    return report


async def _drop_pg_database(server: PostgresServer | str, name: str) -> None:
    admin, _ = _admin_dsn(server)
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="module", params=BACKENDS)
async def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveServer]:
    """The server on a fresh database of the backend, with a shop whose staff are signed in."""
    backend: str = request.param
    directory = tmp_path_factory.mktemp(f"browser-{backend}")
    pg_name = f"browser_{os.getpid()}"
    pg: PostgresServer | str | None = None
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{directory / 'service-orders.db'}"
    else:
        pg = request.getfixturevalue("pg_server")
        url = await create_pg_database(pg, pg_name)
    await asyncio.to_thread(upgrade, url)

    server = LiveServer(backend=backend, database_url=url, log_path=directory / "server.log")
    server.db = Database(url, pool_size=3)
    try:
        server.start()  # it boots while the shop is made
        _LIVE.append(server)
        server.shop = await make_shop(server.database, "Fixit Repairs", f"browser-{backend}")
        async with server.database.write_session() as session:
            await session.execute(
                update(Account)
                .where(Account.id == server.the_shop.account_id)
                .values(
                    phone="+351 213 000 000",
                    email="hello@fixit.example",
                    address="Rua Augusta 10, Lisboa",
                )
            )
        await server.wait_ready()
        yield server
    finally:
        if server in _LIVE:
            _LIVE.remove(server)
        await asyncio.to_thread(server.stop)
        await server.database.dispose()
        if pg is not None:
            await _drop_pg_database(pg, pg_name)


# --- staff over HTTP GraphQL --------------------------------------------------------------


class StaffApi:
    """Staff members of the live server's shop, over HTTP GraphQL (like a dashboard)."""

    def __init__(self, http: httpx.AsyncClient, server: LiveServer) -> None:
        self.http = http
        self.server = server

    async def data(
        self, role: str, query: str, variables: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The data of a query or mutation that must succeed without top-level errors."""
        response = await self.http.post(
            f"{self.server.base_url}/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"authorization": f"Bearer {self.server.the_shop.tokens[role]}"},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    async def mutate(
        self, role: str, query: str, variables: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The payload of a one-field mutation, which must have no user errors."""
        (payload,) = (await self.data(role, query, variables)).values()
        assert payload["userErrors"] == [], payload["userErrors"]
        assert isinstance(payload, dict)
        return payload


@pytest.fixture
async def staff(live: LiveServer) -> AsyncIterator[StaffApi]:
    async with httpx.AsyncClient(trust_env=False, timeout=10.0) as http:
        yield StaffApi(http, live)


# --- the browser --------------------------------------------------------------------------


def _chromium() -> str:
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} not found: apt-get install chromium")
    return CHROMIUM


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless (Playwright never downloads a browser here)."""
    executable = _chromium()
    playwright = await async_playwright().start()
    try:
        chromium = await playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            yield chromium
        finally:
            await chromium.close()
    finally:
        await playwright.stop()


@dataclass
class Customer:
    """A customer's browser tab with everything the page logged."""

    page: Page
    context: BrowserContext
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    navigations: list[str] = field(default_factory=list)

    def unexpected_errors(self, *, allow_network: bool = False) -> list[str]:
        """Uncaught exceptions and console errors (CSP violations included); with
        `allow_network`, the browser's own reports of requests failed while offline."""
        noise = ("ERR_INTERNET_DISCONNECTED", "WebSocket connection to", "Failed to fetch")
        console = [
            e for e in self.console_errors if not (allow_network and any(n in e for n in noise))
        ]
        return console + self.page_errors


OpenPage = Callable[..., Awaitable[Customer]]


@pytest.fixture
async def open_page(browser: Browser) -> AsyncIterator[OpenPage]:
    """`await open_page(url)` opens the tracking page in a fresh browser context (phone
    size by default), waits for the load event and marks `window` so that a later
    navigation or reload would be noticed. Contexts are closed at the end of the test."""
    contexts: list[BrowserContext] = []

    async def open_(url: str, *, viewport: ViewportSize = PHONE) -> Customer:
        context = await browser.new_context(
            viewport=viewport, locale="en-US", timezone_id="Europe/Lisbon"
        )
        contexts.append(context)
        context.set_default_timeout(WAIT_MS)
        context.set_default_navigation_timeout(WAIT_MS)
        page = await context.new_page()
        customer = Customer(page=page, context=context)

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                customer.console_errors.append(message.text)

        def on_navigated(frame: Frame) -> None:
            if frame == page.main_frame:
                customer.navigations.append(frame.url)

        page.on("console", on_console)
        page.on("pageerror", lambda error: customer.page_errors.append(str(error)))
        page.on("framenavigated", on_navigated)
        response = await page.goto(url, wait_until="load")
        assert response is not None and response.status == 200
        await page.evaluate("window.__sameDocument = 'still here'")
        return customer

    yield open_
    for context in contexts:
        with contextlib.suppress(Exception):
            await context.close()


async def assert_same_document(customer: Customer) -> None:
    """No reload or navigation happened since the page was opened."""
    assert await customer.page.evaluate("window.__sameDocument") == "still here"
    assert len(customer.navigations) == 1, customer.navigations


# --- screenshots --------------------------------------------------------------------------


async def assert_fits_phone(page: Page) -> None:
    """At 360 px there is no horizontal scrolling."""
    assert page.viewport_size == PHONE
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width}px wide at {PHONE['width']}px"


async def screenshots(page: Page, name: str, *, docs: bool = False) -> list[Path]:
    """Full-page screenshots at phone and desktop width (the viewport is put back to phone
    size afterwards; resizing is not a navigation). With `docs` and
    UPDATE_DOCS_SCREENSHOTS=1 they are also copied to docs/tracking-{phone,desktop}.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await assert_fits_phone(page)
    phone = ARTIFACTS / f"{name}-phone.png"
    desktop = ARTIFACTS / f"{name}-desktop.png"
    await page.screenshot(path=phone, full_page=True)
    await page.set_viewport_size(DESKTOP)
    try:
        await page.screenshot(path=desktop, full_page=True)
    finally:
        await page.set_viewport_size(PHONE)
    if docs and os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(phone, DOCS / "tracking-phone.png")
        shutil.copyfile(desktop, DOCS / "tracking-desktop.png")
    return [phone, desktop]
