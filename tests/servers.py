"""Throwaway PostgreSQL (and, for the realtime suites, Redis) servers started by the tests.

initdb and pg_ctl refuse to run as root; as root we run them inside a user namespace that
maps our uid to the `postgres` user's (util-linux `unshare --map-user`). Pass
TEST_DATABASE_URL to use an existing server instead (a database per test session is
created on it, replacing a leftover one of the same name).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_bindir() -> Path:
    for candidate in (shutil.which("pg_config"),):
        if candidate:
            out = subprocess.run(
                [candidate, "--bindir"], capture_output=True, text=True, check=True
            )
            path = Path(out.stdout.strip())
            if (path / "initdb").exists():
                return path
    for path in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (path / "initdb").exists():
            return path
    raise RuntimeError("PostgreSQL server binaries not found: apt-get install postgresql")


def _as_postgres_prefix() -> list[str]:
    if os.geteuid() != 0:
        return []
    pg = pwd.getpwnam("postgres")
    return ["unshare", "--user", f"--map-user={pg.pw_uid}", f"--map-group={pg.pw_gid}"]


@dataclass
class PostgresServer:
    directory: Path
    port: int
    bindir: Path

    @property
    def admin_url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    @classmethod
    def start(cls, directory: Path) -> PostgresServer:
        bindir = pg_bindir()
        data = directory / "data"
        prefix = _as_postgres_prefix()
        subprocess.run(
            [
                *prefix,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--locale=C",
            ],
            check=True,
            capture_output=True,
        )
        port = free_port()
        options = " ".join(
            [
                f"-p {port}",
                f"-k {directory}",
                "-c listen_addresses=127.0.0.1",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=300",
                "-c shared_buffers=128MB",
            ]
        )
        subprocess.run(
            [
                *prefix,
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(directory / "log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ],
            check=True,
            capture_output=True,
        )
        return cls(directory=directory, port=port, bindir=bindir)

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [
                *_as_postgres_prefix(),
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.directory / "data"),
                *args,
            ],
            check=True,
            capture_output=True,
        )

    def stop(self) -> None:
        self.pg_ctl("-m", "immediate", "-w", "stop")


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("redis-server not found: apt-get install redis-server")
    return found


@dataclass
class RedisServer:
    """A throwaway redis-server on a free port; `stop()`/`start()` keep the port, so tests
    can kill Redis under live subscribers and bring it back."""

    directory: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @classmethod
    def create(cls, directory: Path) -> RedisServer:
        server = cls(directory=directory, port=free_port())
        server.start()
        return server

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                redis_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        """Kill it hard (SIGKILL), like a crash."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None
