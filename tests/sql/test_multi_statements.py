"""One statement per COM_QUERY: text with more gets MySQL's 1064 "near '<the rest>'" (what MySQL answers a client
without CLIENT_MULTI_STATEMENTS), nothing of it runs, and the log never shows a password."""

from __future__ import annotations

import logging

import pytest

from fe.catalog import Catalog
from fe.sql import Executor, Session
from tests.sql.conftest import error, rows, run

SECRET = "Leak-pw-77"

MULTI = [
    ("SELECT 1; SET PASSWORD = 'Leak-pw-77'", "SET PASSWORD = 'Leak-pw-77'"),
    ("SELECT 1; DROP USER adm", "DROP USER adm"),
    ("SELECT 1;DROP USER adm;", "DROP USER adm;"),
    ("SELECT 1; CREATE USER evil IDENTIFIED BY 'Leak-pw-77'", "CREATE USER evil IDENTIFIED BY 'Leak-pw-77'"),
    ("SELECT 1; GRANT root TO adm", "GRANT root TO adm"),
    ("SELECT 1; SELECT 2", "SELECT 2"),
    ("SET NAMES utf8mb4; SHOW USERS", "SHOW USERS"),
    ("SELECT 1 /* ; */; ALTER USER adm IDENTIFIED BY 'Leak-pw-77'", "ALTER USER adm IDENTIFIED BY 'Leak-pw-77'"),
    ("SET PASSWORD = 'Leak-pw-77'; SELECT 1", "SELECT 1"),
    ("SELECT ';'; DROP USER adm", "DROP USER adm"),
]


@pytest.mark.parametrize(("sql", "near"), MULTI)
async def test_multi_statement_text_is_a_syntax_error_and_runs_nothing(
    executor: Executor, root: Session, catalog: Catalog, caplog: pytest.LogCaptureFixture, sql: str, near: str
) -> None:
    await run(executor, root, "CREATE USER adm IDENTIFIED BY 'Adm-pw-1'")
    before = catalog.list_accounts()
    with caplog.at_level(logging.DEBUG):
        failure = await error(executor, root, sql)
    assert (failure.code, failure.sqlstate) == (1064, "42000"), failure.message
    assert failure.message.endswith(f"near '{near}'")
    assert catalog.list_accounts() == before
    assert SECRET not in caplog.text
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    # The session carries on.
    assert await rows(executor, root, "SELECT 1") == [[1]]


@pytest.mark.parametrize("sql", ["SELECT 1;", "SELECT 1; ", "SELECT 1;;", "SELECT 1; -- done", "SELECT ';'"])
async def test_one_statement_with_trailing_semicolons_or_comments_still_runs(
    executor: Executor, root: Session, sql: str
) -> None:
    assert (await executor.execute(root, sql)) is not None


async def test_an_unexpected_failure_logs_the_statement_masked(
    executor: Executor, root: Session, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJib2IiLCJleHAiOjE3MDAwMDAwMDB9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"

    def broken(*args: object) -> None:
        raise RuntimeError(f"something broke while handling {SECRET} and {token}")

    monkeypatch.setattr(executor._accounts, "create_user", broken)
    with caplog.at_level(logging.DEBUG):
        failure = await error(executor, root, f"CREATE USER bob IDENTIFIED BY '{SECRET}'")
    assert failure.code == 1105
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors, caplog.text
    assert "CREATE USER bob IDENTIFIED BY" in caplog.text and "RuntimeError" in caplog.text
    assert SECRET not in caplog.text
    assert token.split(".")[1] not in caplog.text

    monkeypatch.setattr(executor, "_select", broken)
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        failure = await error(executor, root, f"SELECT '{token}'")
    assert failure.code == 1105
    assert token.split(".")[1] not in caplog.text and "RuntimeError" in caplog.text
