"""Alembic migrations on a fresh database of each backend: up, all the way down, up again,
and the models match what the migrations build (no autogenerate differences)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import db.models  # noqa: F401  (registers every table on Base.metadata)
from db.base import Base
from db.migrate import alembic_config, downgrade, upgrade
from tests.conftest import BACKENDS, _admin_dsn, create_pg_database


@pytest.fixture(params=BACKENDS)
async def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A brand-new, empty database (not the session's test database)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
        return
    server = request.getfixturevalue("pg_server")
    name = f"so_migrations_{os.getpid()}"
    yield await create_pg_database(server, name)
    admin, _ = _admin_dsn(server)
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _inspect(url: str, fn: Any) -> Any:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(fn)
    finally:
        await engine.dispose()


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def _diff(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(
        conn,
        opts={"compare_type": True, "compare_server_default": True},
    )
    return list(compare_metadata(context, Base.metadata))


def _version(conn: Connection) -> list[str]:
    return [row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))]


def test_there_is_one_head_and_a_linear_history() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite+aiosqlite://"))
    assert len(script.get_heads()) == 1
    revisions = list(script.walk_revisions())
    assert revisions[-1].down_revision is None  # one root
    for revision in revisions:
        assert not revision.is_merge_point
        assert revision.doc, f"revision {revision.revision} has no description"


async def test_upgrade_downgrade_upgrade_on_a_fresh_database(fresh_url: str) -> None:
    expected = {t.name for t in Base.metadata.sorted_tables}
    head = ScriptDirectory.from_config(alembic_config(fresh_url)).get_current_head()
    assert await _inspect(fresh_url, _tables) == set()

    await asyncio.to_thread(upgrade, fresh_url)
    assert await _inspect(fresh_url, _tables) == expected | {"alembic_version"}
    assert await _inspect(fresh_url, _version) == [head]

    await asyncio.to_thread(downgrade, fresh_url, "base")
    assert await _inspect(fresh_url, _tables) == {"alembic_version"}
    assert await _inspect(fresh_url, _version) == []

    await asyncio.to_thread(upgrade, fresh_url)
    assert await _inspect(fresh_url, _tables) == expected | {"alembic_version"}
    assert await _inspect(fresh_url, _version) == [head]
    # upgrading an up-to-date database is a no-op
    await asyncio.to_thread(upgrade, fresh_url)
    assert await _inspect(fresh_url, _version) == [head]


async def test_each_revision_downgrades_and_upgrades_one_step(fresh_url: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(fresh_url))
    order = [r.revision for r in reversed(list(script.walk_revisions()))]
    for revision in order:
        await asyncio.to_thread(upgrade, fresh_url, revision)
        assert await _inspect(fresh_url, _version) == [revision]
    for index in range(len(order) - 1, -1, -1):
        target = order[index - 1] if index else "base"
        await asyncio.to_thread(downgrade, fresh_url, target)
        assert await _inspect(fresh_url, _version) == ([] if target == "base" else [target])
    assert await _inspect(fresh_url, _tables) == {"alembic_version"}


async def test_models_match_the_migrations(fresh_url: str) -> None:
    await asyncio.to_thread(upgrade, fresh_url)
    assert await _inspect(fresh_url, _diff) == []


async def test_the_comparison_does_see_a_difference(fresh_url: str) -> None:
    """Guard for the test above: a database missing a table is reported."""
    await asyncio.to_thread(upgrade, fresh_url)
    engine = create_async_engine(fresh_url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DROP TABLE part_lines"))
    finally:
        await engine.dispose()
    diff = await _inspect(fresh_url, _diff)
    assert [d[0] for d in diff if d[0] == "add_table"] == ["add_table"]
    assert any(d[0] == "add_table" and d[1].name == "part_lines" for d in diff)
