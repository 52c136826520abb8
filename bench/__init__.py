"""Benchmarks: the GraphQL API against a bare Starlette + asyncpg baseline and pgbench.

Run them with `make bench` or `python -m bench.run [--quick]`; see bench/README.md.
"""
