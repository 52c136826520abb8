"""Serve the real application for the benchmarks: `app.create_app` under uvicorn, one worker.

    python -m bench.serve_app --database-url postgresql+asyncpg://... --port 8000

The baseline (bench/baseline.py) is served by the same `serve()`, so both run with the
same uvicorn settings (uvloop, httptools, no access log).
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--access-log", action="store_true", help="log every request (off by default)"
    )


def serve(app: Any, args: argparse.Namespace) -> None:
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        workers=1,
        loop="uvloop",
        http="httptools",
        log_level="info" if args.access_log else "warning",
        access_log=args.access_log,
        lifespan="on",
    )


def main() -> None:
    from app import configure_logging, create_app
    from config import Settings

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--pool-size", type=int, default=Settings.db_pool_size)
    add_server_arguments(parser)
    args = parser.parse_args()
    settings = Settings(
        environment="test",
        database_url=args.database_url,
        secret_key="x" * 48,
        log_level="WARNING",
        db_pool_size=args.pool_size,
    )
    configure_logging(settings.log_level)
    serve(create_app(settings), args)


if __name__ == "__main__":
    main()
