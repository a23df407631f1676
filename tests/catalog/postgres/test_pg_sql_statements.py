"""The account statements' tests (tests/sql/) run again through the executor with a PostgreSQL catalog: every
form, error, privilege rule and SHOW output must come out the same as with SQLite. The tests are taken from their
modules as they are, new ones included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from fe.catalog.pg import PostgresCatalog, PostgresLocation
from fe.config import Settings
from fe.sql import Executor, Session
from tests.sql import test_role_escalation, test_role_inheritance, test_sql_accounts, test_token_user_options

_FIXTURES = ("deputy", "strict")  # defined in those modules, used by their tests


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


@pytest.fixture
def catalog(location: PostgresLocation) -> Iterator[PostgresCatalog]:
    with PostgresCatalog.open(location, root_password="rootpw") as opened:
        yield opened


@pytest.fixture
def executor(catalog: PostgresCatalog, settings: Settings) -> Executor:
    return Executor(catalog, settings)  # type: ignore[arg-type]  # the same public methods as the SQLite Catalog


@pytest.fixture
def root() -> Session:
    return Session(connection_id=7, user="root", client_host="127.0.0.1", matched_name="root", matched_host="%")
