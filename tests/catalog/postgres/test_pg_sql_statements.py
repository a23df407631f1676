"""The account statements' tests (tests/sql/) run again through the executor with a PostgreSQL catalog: every
form, error, privilege rule and SHOW output must come out the same as with SQLite. The tests are taken from their
modules as they are, new ones included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from psycopg import sql

from fe.auth.passwords import hash_password
from fe.catalog import Credentials
from fe.catalog.copy import TABLES
from fe.catalog.pg import PostgresCatalog, parse_location
from fe.catalog.pg.schema import insert_root
from fe.config import Settings
from fe.sql import Executor, Session
from tests.sql import test_role_escalation, test_role_inheritance, test_sql_accounts, test_token_user_options
from tests.support.postgres_server import shared_postgres

_FIXTURES = ("deputy", "strict")  # defined in those modules, used by their tests
ROOT_HASH = hash_password("rootpw")


def _adopt(module: ModuleType) -> None:
    for name, value in vars(module).items():
        if name.startswith("test_") or name in _FIXTURES:
            globals()[name] = value


for _module in (test_sql_accounts, test_role_inheritance, test_role_escalation, test_token_user_options):
    _adopt(_module)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "conf").mkdir()
    return Settings(home=tmp_path)


@pytest.fixture(scope="module")
def module_catalog() -> Iterator[PostgresCatalog]:
    """One catalog for the module (opening one costs a schema's creation and a password hash): each test gets it
    back as a first start leaves it."""
    postgres = shared_postgres()
    schema = postgres.create_schema("sql")
    location = parse_location(postgres.url(schema=schema), password=postgres.test_password)
    with PostgresCatalog.open(location, root_password="rootpw") as opened:
        yield opened
    postgres.drop_schema(schema)


@pytest.fixture
def catalog(module_catalog: PostgresCatalog) -> PostgresCatalog:
    root = module_catalog.get_account("root", "%")
    assert root is not None
    with module_catalog._write() as conn:  # through the catalog, so that its caches start over at once
        for table in reversed(TABLES):
            if table.name != "roles":
                conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table.name)))
        conn.execute("DELETE FROM roles WHERE NOT builtin")
        insert_root(conn, Credentials(root.plugin, ROOT_HASH, root.plugin_display))
    return module_catalog


@pytest.fixture
def executor(catalog: PostgresCatalog, settings: Settings) -> Executor:
    return Executor(catalog, settings)  # type: ignore[arg-type]  # the same public methods as the SQLite Catalog


@pytest.fixture
def root() -> Session:
    return Session(connection_id=7, user="root", client_host="127.0.0.1", matched_name="root", matched_host="%")
