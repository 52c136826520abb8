"""Engines and sessions.

PostgreSQL: one asyncpg engine; read and write sessions share it.

SQLite (the embedded default): WAL mode, a busy timeout, foreign keys on, and two engines.
Write sessions start with ``BEGIN IMMEDIATE`` so concurrent writers queue on the database
lock instead of failing with "database is locked" when a reader upgrades; read sessions
use plain deferred transactions, which WAL lets run beside a writer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SQLITE_BUSY_TIMEOUT_S = 30


class Database:
    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.write_engine = _sqlite_engine(url, immediate=True, echo=echo)
            self.read_engine = _sqlite_engine(url, immediate=False, echo=echo)
        else:
            self.write_engine = create_async_engine(
                url,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_pre_ping=True,
                echo=echo,
            )
            self.read_engine = self.write_engine
        self._write = async_sessionmaker(self.write_engine, expire_on_commit=False)
        self._read = async_sessionmaker(self.read_engine, expire_on_commit=False)

    @property
    def engines(self) -> list[AsyncEngine]:
        return list({id(e): e for e in (self.write_engine, self.read_engine)}.values())

    @asynccontextmanager
    async def write_session(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed on success, rolled back on any error."""
        async with self._write() as session, session.begin():
            yield session

    def new_read_session(self) -> AsyncSession:
        """A read session the caller closes."""
        return self._read()

    @asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        async with self._read() as session:
            yield session

    async def dispose(self) -> None:
        for engine in self.engines:
            await engine.dispose()


def _sqlite_engine(url: str, *, immediate: bool, echo: bool) -> AsyncEngine:
    memory = ":memory:" in url or url.rstrip("/").endswith("sqlite+aiosqlite:")
    engine = create_async_engine(url, echo=echo, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # take transaction control from the driver so that BEGIN is ours to emit
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
