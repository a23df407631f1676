"""The PostgreSQL catalog's fixtures: the session's server (tests/support/postgres_server.py), a fresh schema per
test (in the tests' database, reached with `options=-csearch_path=...` in the URL), and a catalog in it.

Skipped when PostgreSQL is not installed, unless FE_TESTS_REQUIRE_POSTGRES is set (then failed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fe.catalog.pg import PostgresCatalog, PostgresLocation, parse_location
from tests.support.postgres_server import PostgresServer, shared_postgres


@pytest.fixture
def postgres() -> PostgresServer:
    return shared_postgres()


@pytest.fixture
def pg_schema(postgres: PostgresServer) -> Iterator[str]:
    name = postgres.create_schema()
    yield name
    if postgres.alive:
        postgres.drop_schema(name)


@pytest.fixture
def location(postgres: PostgresServer, pg_schema: str) -> PostgresLocation:
    return parse_location(postgres.url(schema=pg_schema), password=postgres.test_password)


@pytest.fixture
def catalog(location: PostgresLocation) -> Iterator[PostgresCatalog]:
    """Overrides tests/catalog/conftest.py's SQLite catalog, so that its tests can run on PostgreSQL."""
    with PostgresCatalog.open(location, root_password="secret") as opened:
        yield opened
