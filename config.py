"""Settings read from the environment (and a `.env` file in the working directory).

Every variable is validated at start; a bad value stops the process with a message
that names the variable. See the configuration table in README.md.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values

DEV_SECRET_FILE = ".service-orders-secret"
ENVIRONMENTS = ("development", "production", "test")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")  # the ones uvicorn accepts too


class ConfigError(Exception):
    """A configuration value is missing or invalid; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    environment: str = "development"
    database_url: str = "sqlite+aiosqlite:///service-orders.db"
    redis_url: str | None = None
    secret_key: str = field(default="", repr=False)
    allowed_origins: tuple[str, ...] = ()
    public_base_url: str = "http://127.0.0.1:8000"
    public_base_url_set: bool = False  # PUBLIC_BASE_URL was given (environment or .env)
    log_level: str = "INFO"
    token_ttl_hours: int = 24
    db_pool_size: int = 10

    @property
    def is_development(self) -> bool:
        return self.environment == "development"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, env_file: str | None = ".env"
    ) -> Settings:
        """Build settings from `environ` (default: `.env` overlaid by `os.environ`)."""
        if environ is None:
            values: dict[str, str] = {}
            if env_file and Path(env_file).is_file():
                values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
            values.update(os.environ)
            environ = values
        get = environ.get

        environment = get("SERVICE_ORDERS_ENV", "development").strip().lower()
        if environment not in ENVIRONMENTS:
            raise ConfigError(
                f"SERVICE_ORDERS_ENV must be one of {', '.join(ENVIRONMENTS)}, got {environment!r}"
            )

        database_url = _database_url(get("DATABASE_URL") or cls.database_url)
        redis_url = (get("REDIS_URL") or "").strip() or None
        redis_scheme = urlsplit(redis_url).scheme if redis_url is not None else "redis"
        if redis_scheme not in ("redis", "rediss"):
            # the scheme only: the URL may carry a password
            raise ConfigError(
                f"REDIS_URL must start with redis:// or rediss://, got scheme {redis_scheme!r}"
            )

        secret_key = (get("SECRET_KEY") or "").strip()
        if not secret_key:
            if environment == "production":
                raise ConfigError("SECRET_KEY is required when SERVICE_ORDERS_ENV=production")
            secret_key = _development_secret(
                Path(get("SERVICE_ORDERS_SECRET_FILE", DEV_SECRET_FILE))
            )
        elif len(secret_key) < 32:
            raise ConfigError("SECRET_KEY must be at least 32 characters long")

        origins = tuple(
            o.strip().rstrip("/") for o in get("ALLOWED_ORIGINS", "").split(",") if o.strip()
        )
        for origin in origins:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError(
                    f"ALLOWED_ORIGINS has an invalid origin {origin!r} (use scheme://host[:port])"
                )

        public_base_url = (get("PUBLIC_BASE_URL") or cls.public_base_url).strip().rstrip("/")
        parts = urlsplit(public_base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"PUBLIC_BASE_URL must be an http(s) URL, got {public_base_url!r}")

        log_level = (get("LOG_LEVEL") or "INFO").strip().upper()
        if log_level not in LOG_LEVELS:
            raise ConfigError(
                f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}"
            )

        return cls(
            environment=environment,
            database_url=database_url,
            redis_url=redis_url,
            secret_key=secret_key,
            allowed_origins=origins,
            public_base_url=public_base_url,
            public_base_url_set=bool((get("PUBLIC_BASE_URL") or "").strip()),
            log_level=log_level,
            token_ttl_hours=_positive_int(get, "TOKEN_TTL_HOURS", cls.token_ttl_hours),
            db_pool_size=_positive_int(get, "DB_POOL_SIZE", cls.db_pool_size),
        )


def _positive_int(get, name: str, default: int) -> int:
    raw = get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return value


def _database_url(url: str) -> str:
    """Accept the usual spellings and pick the async driver for each database."""
    url = url.strip()
    scheme = urlsplit(url).scheme
    if scheme in ("postgres", "postgresql", "postgresql+asyncpg"):
        return "postgresql+asyncpg" + url[len(scheme) :]
    if scheme in ("sqlite", "sqlite+aiosqlite"):
        return "sqlite+aiosqlite" + url[len(scheme) :]
    raise ConfigError(
        f"DATABASE_URL must be a postgresql:// or sqlite:// URL, got scheme {scheme!r}"
    )


def _development_secret(path: Path) -> str:
    """In development the secret is generated once and kept in a local file (mode 0600)."""
    if path.is_file():
        value = path.read_text().strip()
        if len(value) >= 32:
            return value
    value = secrets.token_urlsafe(48)
    path.write_text(value + "\n")
    path.chmod(0o600)
    return value
