"""The `service-orders` console command, run for real in a subprocess, in an empty working
directory with a SQLite database there."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import schema
from tests.servers import free_port

COMMAND = Path(sys.executable).parent / "service-orders"
OWNER_PASSWORD = "a-very-private-passphrase-42"
CONFIG_VARIABLES = {
    "SERVICE_ORDERS_ENV",
    "DATABASE_URL",
    "REDIS_URL",
    "SECRET_KEY",
    "SERVICE_ORDERS_SECRET_FILE",
    "ALLOWED_ORIGINS",
    "PUBLIC_BASE_URL",
    "LOG_LEVEL",
    "TOKEN_TTL_HOURS",
    "DB_POOL_SIZE",
    "SERVICE_ORDERS_OWNER_PASSWORD",
}
STATUSES = {
    "PENDING",
    "AWAITING_DIAGNOSIS",
    "DIAGNOSING",
    "AWAITING_APPROVAL",
    "APPROVED",
    "REJECTED",
    "REPAIRING",
    "TESTING",
    "READY",
    "COMPLETED",
    "CANCELLED",
}


class Workdir:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.db_file = path / "shop.db"
        self.env = {k: v for k, v in os.environ.items() if k not in CONFIG_VARIABLES}
        self.env["DATABASE_URL"] = f"sqlite:///{self.db_file}"

    def run(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(COMMAND), *args],
            cwd=self.path,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def query(self, sql: str) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.db_file) as conn:
            return conn.execute(sql).fetchall()


@pytest.fixture
def work(tmp_path: Path) -> Workdir:
    assert COMMAND.exists(), f"{COMMAND} is not installed (pip install -e .)"
    return Workdir(tmp_path)


def test_migrate_creates_the_database(work: Workdir) -> None:
    result = work.run("migrate")
    assert result.returncode == 0, result.stderr
    assert "database is at the latest revision" in result.stdout
    assert str(work.db_file) in result.stdout
    tables = {row[0] for row in work.query("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"alembic_version", "accounts", "staff_users", "service_orders"} <= tables
    # the development secret was generated in the working directory, private
    secret = work.path / ".service-orders-secret"
    assert secret.stat().st_mode & 0o777 == 0o600
    again = work.run("migrate")
    assert again.returncode == 0, again.stderr


def test_create_account_never_shows_the_password(work: Workdir) -> None:
    assert work.run("migrate").returncode == 0
    env = {"SERVICE_ORDERS_OWNER_PASSWORD": OWNER_PASSWORD}
    result = work.run(
        "create-account",
        "--name",
        "Corner Fix",
        "--owner-email",
        "Boss@Corner.Example",
        "--owner-name",
        "Bea Boss",
        "--time-zone",
        "Europe/Lisbon",
        "--currency",
        "EUR",
        "--country",
        "PT",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "created shop 'Corner Fix'" in result.stdout
    assert "boss@corner.example can log in" in result.stdout
    assert OWNER_PASSWORD not in result.stdout + result.stderr

    accounts = work.query("SELECT id, name, time_zone, currency, country FROM accounts")
    assert [row[1:] for row in accounts] == [("Corner Fix", "Europe/Lisbon", "EUR", "PT")]
    users = work.query("SELECT account_id, email, name, role, password_hash FROM staff_users")
    assert len(users) == 1
    account_id, email, name, role, password_hash = users[0]
    assert (account_id, email, name, role) == (
        accounts[0][0],
        "boss@corner.example",
        "Bea Boss",
        "OWNER",
    )
    assert isinstance(password_hash, str) and password_hash.startswith("$argon2")
    assert OWNER_PASSWORD not in password_hash

    # the same owner email again: a clear message, exit code 1, nothing written
    duplicate = work.run(
        "create-account", "--name", "Second Shop", "--owner-email", "boss@corner.example", env=env
    )
    assert duplicate.returncode == 1
    assert "EMAIL_TAKEN: A staff user with this email exists." in duplicate.stderr
    assert OWNER_PASSWORD not in duplicate.stdout + duplicate.stderr
    assert work.query("SELECT count(*) FROM accounts") == [(1,)]


def test_create_account_reports_every_input_problem(work: Workdir) -> None:
    assert work.run("migrate").returncode == 0
    result = work.run(
        "create-account",
        "--name",
        " ",
        "--owner-email",
        "not-an-email",
        "--time-zone",
        "Mars/Olympus",
        env={"SERVICE_ORDERS_OWNER_PASSWORD": "short"},
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    codes = {line.split(":")[0] for line in lines}
    assert codes == {"REQUIRED", "INVALID_EMAIL", "WEAK_PASSWORD", "INVALID_INPUT"}
    assert any("Mars/Olympus" in line for line in lines)
    assert work.query("SELECT count(*) FROM accounts") == [(0,)]


def test_create_account_without_a_password_and_no_terminal_refuses(work: Workdir) -> None:
    assert work.run("migrate").returncode == 0
    result = work.run("create-account", "--name", "Shop", "--owner-email", "o@shop.example")
    assert result.returncode == 2
    assert "SERVICE_ORDERS_OWNER_PASSWORD" in result.stderr
    assert work.query("SELECT count(*) FROM accounts") == [(0,)]


def test_demo_loads_thirty_orders_over_every_status_once(work: Workdir) -> None:
    first = work.run("demo")
    assert first.returncode == 0, first.stderr
    assert "demo shop loaded" in first.stdout
    for login in ("owner@demo.shop", "manager@demo.shop", "tech@demo.shop", "desk@demo.shop"):
        assert login in first.stdout

    rows = work.query("SELECT status, count(*) FROM service_orders GROUP BY status")
    by_status = {str(status): int(str(count)) for status, count in rows}
    assert set(by_status) == STATUSES
    assert sum(by_status.values()) == 30
    numbers = [row[0] for row in work.query("SELECT number FROM service_orders ORDER BY id")]
    assert len(set(numbers)) == 30 and all(str(n).startswith("OS-") for n in numbers)
    assert [str(n)[-4:] for n in numbers] == [f"{i:04d}" for i in range(1, 31)]
    # every order's history ends in its current status
    mismatched = work.query(
        """
        SELECT o.number FROM service_orders o
        JOIN status_history h ON h.id = (
            SELECT max(id) FROM status_history WHERE order_id = o.id)
        WHERE h.to_status != o.status
        """
    )
    assert mismatched == []
    assert work.query("SELECT count(*) FROM staff_users") == [(4,)]

    second = work.run("demo")
    assert second.returncode == 0, second.stderr
    assert "already present" in second.stdout
    assert work.query("SELECT count(*) FROM service_orders") == [(30,)]
    assert work.query("SELECT count(*) FROM accounts") == [(1,)]
    assert work.query("SELECT count(*) FROM staff_users") == [(4,)]


@pytest.mark.parametrize(
    ("variable", "value"),
    [("LOG_LEVEL", "LOUD"), ("DATABASE_URL", "mysql://x@y/z"), ("TOKEN_TTL_HOURS", "-1")],
)
def test_a_bad_config_value_exits_2_naming_the_variable(
    work: Workdir, variable: str, value: str
) -> None:
    result = work.run("migrate", env={variable: value})
    assert result.returncode == 2
    assert result.stderr.startswith("configuration error: ")
    assert variable in result.stderr
    assert "Traceback" not in result.stderr
    assert not work.db_file.exists()


def test_schema_prints_the_sdl(work: Workdir) -> None:
    result = work.run("schema")
    assert result.returncode == 0, result.stderr
    assert result.stdout == schema.printed()
    assert "type Query {" in result.stdout
    assert "serviceOrderTransition(input: ServiceOrderTransitionInput!)" in result.stdout
    assert not (work.path / "schema.graphql").exists()  # printing writes nothing


def test_unknown_command_is_a_usage_error(work: Workdir) -> None:
    result = work.run("explode")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


@pytest.fixture
def server(work: Workdir) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    port = free_port()
    log = work.path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(COMMAND), "serve", "--demo", "--port", str(port)],
            cwd=work.path,
            env=work.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        yield process, port, log
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def test_serve_demo_answers_and_shows_how_to_sign_in(
    server: tuple[subprocess.Popen[bytes], int, Path],
) -> None:
    process, port, log = server
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    health = None
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            health = httpx.get(f"{base}/healthz", timeout=2)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    assert health is not None, f"no answer within 60 s:\n{log.read_text()}"
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}

    output = log.read_text()
    assert f"GraphiQL: {base}/graphql" in output
    assert 'login(input: {email: "owner@demo.shop", password: "demo-password-1"})' in output
    assert "demo shop loaded" in output

    # the printed login works against the running server
    login = httpx.post(
        f"{base}/graphql",
        json={
            "query": 'mutation { login(input: {email: "owner@demo.shop", '
            'password: "demo-password-1"}) { token userErrors { code } } }'
        },
        timeout=30,
    )
    token = login.json()["data"]["login"]["token"]
    assert token
    orders = httpx.post(
        f"{base}/graphql",
        json={"query": "{ serviceOrders(first: 100) { totalCount } }"},
        headers={"authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert orders.json() == {"data": {"serviceOrders": {"totalCount": 30}}}

    # a graceful stop: uvicorn runs the shutdown, then re-raises SIGTERM on itself
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in log.read_text()
