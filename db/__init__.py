"""Persistence: SQLAlchemy models, engines and sessions, Alembic migrations, query helpers."""
