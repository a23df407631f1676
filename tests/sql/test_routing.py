"""Which statements fe answers itself through the gateway, and which go to the database."""

from __future__ import annotations

import pytest

from fe.sql.routing import MAX_FE_STATEMENT, is_fe_query, is_fe_statement

FE = [
    "CREATE USER a IDENTIFIED BY 'x'",
    "  /* a comment */ create user a",
    "-- a comment\nGRANT r1, r2 TO 'u'@'%'",
    "# a comment\nSET PASSWORD = 'x'",
    "REVOKE r FROM u",
    "DROP ROLE r",
    "ALTER USER u DEFAULT ROLE r",
    "SHOW GRANTS",
    "show all authentication",
    "SHOW USERS",
    "SHOW ROLES",
    "SHOW SECURITY INTEGRATIONS",
    "SHOW CREATE GROUP PROVIDER p",
    "CREATE SECURITY INTEGRATION i PROPERTIES ('type' = 'authentication_jwt')",
    "DROP GROUP PROVIDER p",
    "ADMIN SET FRONTEND CONFIG ('authentication_chain' = 'native')",
    "ADMIN SHOW FRONTEND CONFIG",
    "SHOW GLOBAL STATUS LIKE 'Fe_logins%'",
]
DATABASE = [
    "SELECT 1",
    "SELECT CURRENT_USER()",
    "INSERT INTO t VALUES (1)",
    "CREATE TABLE t (a INT)",
    "DROP TABLE t",
    "ALTER TABLE t ADD b INT",
    "GRANT SELECT ON db.* TO u",
    "REVOKE INSERT ON db.t FROM u",
    "GRANT PROXY ON a TO b",
    "SET NAMES utf8mb4",
    "SET autocommit = 0",
    "/*!40101 SET NAMES utf8 */",
    "SHOW TABLES",
    "SHOW STATUS",
    "SHOW GLOBAL STATUS LIKE 'Threads%'",
    "CALL p()",
    "",
    "'unterminated",
]


@pytest.mark.parametrize("sql", FE)
def test_fe_answers_its_own_statements(sql: str) -> None:
    assert is_fe_statement(sql)


@pytest.mark.parametrize("sql", DATABASE)
def test_everything_else_is_the_databases(sql: str) -> None:
    assert not is_fe_statement(sql)


def test_a_statement_longer_than_any_of_fes_is_never_read() -> None:
    assert not is_fe_statement("CREATE USER a IDENTIFIED BY '" + "x" * MAX_FE_STATEMENT + "'")


def test_long_runs_of_whitespace_and_comments_are_read_in_linear_time() -> None:
    """A query indented with thousands of spaces before a `(` must not make the routing regex backtrack (that
    would stall the event loop of every session)."""
    import time

    started = time.perf_counter()
    assert not is_fe_statement(" " * 10_000 + "(SELECT 1)")
    assert not is_fe_statement("/* a */ " * 2_000 + "{")
    assert is_fe_statement("\n" * 10_000 + "SHOW GRANTS")
    assert time.perf_counter() - started < 5  # generous: it takes milliseconds; exponential would take forever


@pytest.mark.parametrize(
    "sql",
    FE + DATABASE + ["\u3000SHOW GRANTS", "ShowX GRANTS", "SHOW\u00a0GRANTS", "select\tuser()", "Grant r TO u"],
)
def test_a_querys_bytes_are_routed_as_its_text_is(sql: str) -> None:
    """is_fe_query decides on the bytes of a COM_QUERY without decoding most of them: always as the text would."""
    assert is_fe_query(sql.encode()) == is_fe_statement(sql)


def test_a_query_that_is_not_utf8_is_routed_as_its_replacement_text() -> None:
    body = b"SHOW GRANTS -- \xff"
    assert is_fe_query(body) == is_fe_statement(body.decode("utf-8", "replace")) is True
