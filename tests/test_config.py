"""Settings from the environment: defaults, validation (the message names the variable),
the development secret file, URL spellings, and `.env` overlaid by the environment."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from config import ConfigError, Settings

VARIABLES = (
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
)
SECRET = "s" * 32


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty directory (no `.env`, and the default secret file lands there) with
    none of the variables set in the process environment."""
    monkeypatch.chdir(tmp_path)
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def load(**env: str) -> Settings:
    return Settings.from_env(environ=env, env_file=None)


def test_defaults(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    settings = load(SERVICE_ORDERS_SECRET_FILE=str(secret_file))
    assert settings.environment == "development" and settings.is_development
    assert settings.database_url == "sqlite+aiosqlite:///service-orders.db"
    assert settings.is_sqlite
    assert settings.redis_url is None
    assert settings.allowed_origins == ()
    assert settings.public_base_url == "http://127.0.0.1:8000"
    assert settings.log_level == "INFO"
    assert settings.token_ttl_hours == 24
    assert settings.db_pool_size == 10
    assert len(settings.secret_key) >= 32
    assert secret_file.read_text().strip() == settings.secret_key
    assert settings.secret_key not in repr(settings)


def test_empty_values_mean_the_default(tmp_path: Path) -> None:
    settings = load(
        SERVICE_ORDERS_SECRET_FILE=str(tmp_path / "secret"),
        DATABASE_URL="",
        REDIS_URL="  ",
        ALLOWED_ORIGINS=" , ",
        LOG_LEVEL="",
        TOKEN_TTL_HOURS=" ",
    )
    assert settings.database_url == "sqlite+aiosqlite:///service-orders.db"
    assert settings.redis_url is None
    assert settings.allowed_origins == ()
    assert settings.log_level == "INFO"
    assert settings.token_ttl_hours == 24


def test_good_values_are_normalised() -> None:
    settings = load(
        SERVICE_ORDERS_ENV=" Production ",
        DATABASE_URL="postgresql://so:pw@db.internal:5432/orders",
        REDIS_URL="rediss://cache.internal:6380/1",
        SECRET_KEY=f"  {SECRET}  ",
        ALLOWED_ORIGINS="https://shop.example/, http://localhost:3000",
        PUBLIC_BASE_URL="https://api.shop.example/",
        LOG_LEVEL="debug",
        TOKEN_TTL_HOURS="12",
        DB_POOL_SIZE="5",
    )
    assert settings.environment == "production" and not settings.is_development
    assert settings.database_url == "postgresql+asyncpg://so:pw@db.internal:5432/orders"
    assert not settings.is_sqlite
    assert settings.redis_url == "rediss://cache.internal:6380/1"
    assert settings.secret_key == SECRET
    assert settings.allowed_origins == ("https://shop.example", "http://localhost:3000")
    assert settings.public_base_url == "https://api.shop.example"
    assert settings.log_level == "DEBUG"
    assert (settings.token_ttl_hours, settings.db_pool_size) == (12, 5)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h:5432/db", "postgresql+asyncpg://u:p@h:5432/db"),
        ("postgresql://u@h/db?sslmode=require", "postgresql+asyncpg://u@h/db?sslmode=require"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:///data/shop.db", "sqlite+aiosqlite:///data/shop.db"),
        ("sqlite+aiosqlite:////abs/shop.db", "sqlite+aiosqlite:////abs/shop.db"),
        ("  sqlite:///x.db  ", "sqlite+aiosqlite:///x.db"),
    ],
)
def test_database_url_spellings(given: str, expected: str) -> None:
    assert load(DATABASE_URL=given, SECRET_KEY=SECRET).database_url == expected


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"DATABASE_URL": "mysql://u@h/db"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql+psycopg2://u@h/db"}, "DATABASE_URL"),
        ({"DATABASE_URL": "just-a-path.db"}, "DATABASE_URL"),
        ({"REDIS_URL": "http://cache:6379"}, "REDIS_URL"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL"),
        ({"SECRET_KEY": "s" * 31}, "SECRET_KEY"),
        ({"SERVICE_ORDERS_ENV": "production"}, "SECRET_KEY"),
        ({"SERVICE_ORDERS_ENV": "production", "SECRET_KEY": "   "}, "SECRET_KEY"),
        ({"ALLOWED_ORIGINS": "https://ok.example,shop.example"}, "ALLOWED_ORIGINS"),
        ({"ALLOWED_ORIGINS": "ftp://files.example"}, "ALLOWED_ORIGINS"),
        ({"ALLOWED_ORIGINS": "https://"}, "ALLOWED_ORIGINS"),
        ({"PUBLIC_BASE_URL": "api.shop.example"}, "PUBLIC_BASE_URL"),
        ({"PUBLIC_BASE_URL": "ws://api.shop.example"}, "PUBLIC_BASE_URL"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"LOG_LEVEL": "NOTSET"}, "LOG_LEVEL"),  # a logging name uvicorn does not take
        ({"LOG_LEVEL": "WARN"}, "LOG_LEVEL"),
        ({"TOKEN_TTL_HOURS": "a day"}, "TOKEN_TTL_HOURS"),
        ({"TOKEN_TTL_HOURS": "1.5"}, "TOKEN_TTL_HOURS"),
        ({"TOKEN_TTL_HOURS": "-3"}, "TOKEN_TTL_HOURS"),
        ({"TOKEN_TTL_HOURS": "0"}, "TOKEN_TTL_HOURS"),
        ({"DB_POOL_SIZE": "many"}, "DB_POOL_SIZE"),
        ({"SERVICE_ORDERS_ENV": "staging"}, "SERVICE_ORDERS_ENV"),
    ],
)
def test_a_bad_value_is_a_config_error_naming_the_variable(
    env: dict[str, str], names: str, tmp_path: Path
) -> None:
    env = {"SERVICE_ORDERS_SECRET_FILE": str(tmp_path / "secret"), **env}
    with pytest.raises(ConfigError) as caught:
        load(**env)
    assert names in str(caught.value)


def test_bad_values_quote_what_was_given() -> None:
    with pytest.raises(ConfigError, match=r"LOG_LEVEL .* got 'LOUD'"):
        load(SECRET_KEY=SECRET, LOG_LEVEL="loud")
    with pytest.raises(ConfigError, match=r"TOKEN_TTL_HOURS must be a whole number, got 'x'"):
        load(SECRET_KEY=SECRET, TOKEN_TTL_HOURS="x")
    with pytest.raises(ConfigError, match=r"TOKEN_TTL_HOURS must be positive, got -3"):
        load(SECRET_KEY=SECRET, TOKEN_TTL_HOURS="-3")
    with pytest.raises(ConfigError, match=r"SERVICE_ORDERS_ENV must be one of .*'staging'"):
        load(SECRET_KEY=SECRET, SERVICE_ORDERS_ENV="staging")


@pytest.mark.parametrize(
    "env",
    [
        {"SECRET_KEY": "hunter2-hunter2"},
        {"SECRET_KEY": SECRET, "DATABASE_URL": "mysql://app:hunter2-hunter2@db/orders"},
        {"SECRET_KEY": SECRET, "REDIS_URL": "http://:hunter2-hunter2@cache:6379/0"},
    ],
)
def test_passwords_are_never_in_an_error_message(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        load(**env)
    assert "hunter2" not in str(caught.value)


def test_the_development_secret_is_generated_once_kept_private_and_reused(
    tmp_path: Path,
) -> None:
    secret_file = tmp_path / "keys" / "dev-secret"
    secret_file.parent.mkdir()
    first = load(SERVICE_ORDERS_SECRET_FILE=str(secret_file)).secret_key
    assert len(first) >= 32
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert secret_file.read_text() == first + "\n"

    second = load(SERVICE_ORDERS_SECRET_FILE=str(secret_file)).secret_key
    assert second == first  # tokens survive a restart
    assert load(
        SERVICE_ORDERS_SECRET_FILE=str(secret_file), SERVICE_ORDERS_ENV="test"
    ).secret_key == (first)
    # an explicit SECRET_KEY wins and leaves the file alone
    assert load(SERVICE_ORDERS_SECRET_FILE=str(secret_file), SECRET_KEY=SECRET).secret_key == SECRET
    assert secret_file.read_text() == first + "\n"


def test_a_too_short_secret_file_is_replaced(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("short\n")
    secret = load(SERVICE_ORDERS_SECRET_FILE=str(secret_file)).secret_key
    assert secret != "short" and len(secret) >= 32
    assert secret_file.read_text().strip() == secret
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600


def test_the_default_secret_file_is_in_the_working_directory(isolated: Path) -> None:
    secret = load().secret_key
    path = isolated / ".service-orders-secret"
    assert path.read_text().strip() == secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_production_never_writes_a_secret_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    with pytest.raises(ConfigError):
        load(SERVICE_ORDERS_ENV="production", SERVICE_ORDERS_SECRET_FILE=str(secret_file))
    assert not secret_file.exists()


def test_dotenv_is_read_and_the_environment_overrides_it(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (isolated / ".env").write_text(
        "# local settings\n"
        "DATABASE_URL=postgres://app:pw@localhost/orders\n"
        "LOG_LEVEL=debug\n"
        "TOKEN_TTL_HOURS=6\n"
        f"SECRET_KEY={'e' * 40}\n"
    )
    monkeypatch.setenv("LOG_LEVEL", "warning")
    monkeypatch.setenv("SECRET_KEY", "v" * 40)

    settings = Settings.from_env()

    assert settings.database_url == "postgresql+asyncpg://app:pw@localhost/orders"  # from .env
    assert settings.token_ttl_hours == 6  # from .env
    assert settings.log_level == "WARNING"  # the environment wins
    assert settings.secret_key == "v" * 40
    assert not (isolated / ".service-orders-secret").exists()


def test_a_bad_value_in_dotenv_is_reported_too(isolated: Path) -> None:
    (isolated / ".env").write_text("REDIS_URL=memcached://localhost\n")
    with pytest.raises(ConfigError, match="REDIS_URL"):
        Settings.from_env()


def test_another_env_file_can_be_named_and_none_disables_it(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (isolated / ".env").write_text("LOG_LEVEL=ERROR\n")
    (isolated / "prod.env").write_text("LOG_LEVEL=CRITICAL\n")
    monkeypatch.setenv("SECRET_KEY", SECRET)
    assert Settings.from_env().log_level == "ERROR"
    assert Settings.from_env(env_file="prod.env").log_level == "CRITICAL"
    assert Settings.from_env(env_file=None).log_level == "INFO"
    assert Settings.from_env(env_file="missing.env").log_level == "INFO"
