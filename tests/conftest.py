"""Shared fixtures of the test suite. Keep each group in its own delimited section."""

# --- PostgreSQL and store backends (tests/pg_fixtures.py) --------------------------------
# postgres_url (session), pg_store_url (fresh database per test) and store_url
# (parametrized sqlite | postgres) for the store's contract tests.
from pg_fixtures import pg_store_url, postgres_url, store_url  # noqa: F401

# --- end PostgreSQL and store backends ----------------------------------------------------
