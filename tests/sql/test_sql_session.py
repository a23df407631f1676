"""What clients send on their own after login: SET, SELECT @@var, USER() & co, SHOW WARNINGS/VARIABLES/DATABASES."""

from __future__ import annotations

import pytest

from fe import __version__
from fe.sql import SERVER_VERSION, Executor, OkResult, Session
from tests.sql.conftest import columns, error, rows, run


async def test_connector_python_and_pymysql_openers(executor: Executor, root: Session) -> None:
    for statement in (
        "SET NAMES 'utf8mb4' COLLATE 'utf8mb4_0900_ai_ci'",
        "SET NAMES utf8mb4",
        "SET @@session.autocommit = OFF",
        "set autocommit=0",
        "SET AUTOCOMMIT = 0",
    ):
        assert isinstance(await executor.execute(root, statement), OkResult)
    assert root.autocommit is False
    assert root.variables["collation_connection"] == "utf8mb4_0900_ai_ci"
    await run(executor, root, "SET autocommit = ON")
    assert root.autocommit is True
    assert await rows(executor, root, "SELECT @@autocommit") == [[1]]


async def test_mysql_cli_opener(executor: Executor, root: Session) -> None:
    assert await columns(executor, root, "select @@version_comment limit 1") == ["@@version_comment"]
    assert await rows(executor, root, "select @@version_comment limit 1") == [[f"fe {__version__} " + (
        "(MySQL protocol, StarRocks account SQL, JWT / OpenID Connect logins)")]]  # fmt: skip


async def test_status_variables(executor: Executor, root: Session) -> None:
    sql = (
        "select @@character_set_client, @@character_set_connection, @@character_set_server, "
        "@@character_set_results, @@collation_connection, @@session.auto_increment_increment, "
        "@@max_allowed_packet, @@sql_mode, @@time_zone, @@system_time_zone, @@tx_isolation, "
        "@@transaction_isolation, @@lower_case_table_names, @@wait_timeout, @@interactive_timeout, @@license, "
        "@@init_connect, @@net_write_timeout, @@performance_schema, @@query_cache_size, @@query_cache_type, "
        "@@version, @@GLOBAL.version"
    )
    result = await executor.execute(root, sql)
    assert [c.name for c in result.columns][:6] == [  # type: ignore[union-attr]
        "@@character_set_client",
        "@@character_set_connection",
        "@@character_set_server",
        "@@character_set_results",
        "@@collation_connection",
        "@@session.auto_increment_increment",
    ]
    (row,) = result.rows  # type: ignore[union-attr]
    assert row[:6] == ["utf8mb4", "utf8mb4", "utf8mb4", "utf8mb4", "utf8mb4_0900_ai_ci", 1]
    assert row[6] == 64 * 1024 * 1024
    assert row[10] == row[11] == "REPEATABLE-READ"
    assert row[-2:] == [SERVER_VERSION, SERVER_VERSION]
    assert SERVER_VERSION.startswith("9.2.0-fe-") and SERVER_VERSION.endswith(__version__)


async def test_integer_values_are_typed_as_integers(executor: Executor, root: Session) -> None:
    result = await executor.execute(root, "SELECT @@wait_timeout, @@sql_mode, 1, 'x'")
    assert [c.type_code for c in result.columns] == [0x08, 0xFD, 0x08, 0xFD]  # type: ignore[union-attr]


async def test_unknown_system_variable(executor: Executor, root: Session) -> None:
    failure = await error(executor, root, "SELECT @@no_such_thing")
    assert (failure.code, failure.sqlstate) == (1193, "HY000")
    assert failure.message == "Unknown system variable 'no_such_thing'"


async def test_set_then_select_and_show_variables(executor: Executor, root: Session) -> None:
    await run(executor, root, "SET SESSION sql_mode = 'ANSI_QUOTES', @@session.wait_timeout = 30, net_write_timeout=99")
    assert await rows(executor, root, "SELECT @@sql_mode, @@wait_timeout, @@session.net_write_timeout") == [
        ["ANSI_QUOTES", 30, 99]
    ]
    assert await rows(executor, root, "SHOW VARIABLES LIKE 'wait_timeout'") == [["wait_timeout", "30"]]
    assert await columns(executor, root, "SHOW SESSION VARIABLES") == ["Variable_name", "Value"]
    names = [row[0] for row in await rows(executor, root, "SHOW GLOBAL VARIABLES")]
    assert names == sorted(names) and "version" in names and "autocommit" in names
    assert await rows(executor, root, "SHOW VARIABLES LIKE 'AUTOCOMMIT'") == [["autocommit", "ON"]]
    assert await rows(executor, root, "SHOW VARIABLES LIKE 'tx\\_isolation'") == [["tx_isolation", "REPEATABLE-READ"]]


async def test_set_transaction_isolation_and_user_variables(executor: Executor, root: Session) -> None:
    await run(executor, root, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", "SET @x = 5")
    assert await rows(executor, root, "SELECT @@transaction_isolation, @x, @missing") == [["READ-COMMITTED", 5, None]]


async def test_set_errors(executor: Executor, root: Session) -> None:
    failure = await error(executor, root, "SET autocommit = 'maybe'")
    assert (failure.code, failure.sqlstate) == (1231, "42000")
    failure = await error(executor, root, "SET version = '1'")
    assert (failure.code, failure.message) == (1238, "Variable 'version' is a read only variable")


async def test_set_global_needs_admin(executor: Executor, root: Session) -> None:
    await run(executor, root, "CREATE USER plain")
    plain = Session(3, "plain", "10.0.0.1", "plain", "%")
    for statement in ("SET GLOBAL wait_timeout = 5", "SET @@global.wait_timeout = 5"):
        failure = await error(executor, plain, statement)
        assert (failure.code, failure.sqlstate) == (1227, "42000")
    result = await executor.execute(root, "SET GLOBAL wait_timeout = 5")
    assert isinstance(result, OkResult) and result.warnings == 1


async def test_functions(executor: Executor, root: Session) -> None:
    sql = "SELECT USER(), CURRENT_USER(), DATABASE(), CONNECTION_ID(), VERSION(), CURRENT_USER"
    assert await columns(executor, root, sql) == [
        "USER()",
        "CURRENT_USER()",
        "DATABASE()",
        "CONNECTION_ID()",
        "VERSION()",
        "CURRENT_USER",
    ]
    assert await rows(executor, root, sql) == [["root@127.0.0.1", "root@%", None, 7, SERVER_VERSION, "root@%"]]


async def test_literal_selects(executor: Executor, root: Session) -> None:
    assert await rows(executor, root, "SELECT 1") == [[1]]
    assert await columns(executor, root, "SELECT 1") == ["1"]
    assert await rows(executor, root, "SELECT 1+1, 2 * 3 AS six, -4, 'text', NULL") == [[2, 6, -4, "text", None]]
    assert await columns(executor, root, "SELECT 1+1, 2 * 3 AS six, 'text'") == ["1+1", "six", "text"]
    assert await rows(executor, root, "SELECT 1 FROM DUAL") == [[1]]
    assert await rows(executor, root, "SELECT 1 LIMIT 0") == []
    assert await rows(executor, root, "SELECT 1;") == [[1]]


async def test_show_warnings_reports_the_previous_statement(executor: Executor, root: Session) -> None:
    assert await columns(executor, root, "SHOW WARNINGS") == ["Level", "Code", "Message"]
    assert await rows(executor, root, "SHOW WARNINGS") == []
    await error(executor, root, "SELECT @@nope")
    assert await rows(executor, root, "SHOW WARNINGS") == [["Error", 1193, "Unknown system variable 'nope'"]]
    assert await rows(executor, root, "SHOW ERRORS") == [["Error", 1193, "Unknown system variable 'nope'"]]
    await run(executor, root, "SELECT 1")
    assert await rows(executor, root, "SHOW WARNINGS") == []


async def test_databases_and_use(executor: Executor, root: Session) -> None:
    assert await rows(executor, root, "SHOW DATABASES") == [["information_schema"], ["sys"]]
    assert await columns(executor, root, "SHOW DATABASES") == ["Database"]
    assert await rows(executor, root, "SHOW DATABASES LIKE 'info%'") == [["information_schema"]]
    await run(executor, root, "USE information_schema")
    assert await rows(executor, root, "SELECT DATABASE()") == [["information_schema"]]
    await run(executor, root, "USE `sys`")
    assert root.database == "sys"
    failure = await error(executor, root, "USE nowhere")
    assert (failure.code, failure.sqlstate, failure.message) == (1049, "42000", "Unknown database 'nowhere'")
    executor.use_database(root, "INFORMATION_SCHEMA")
    assert root.database == "information_schema"


@pytest.mark.parametrize("sql", ["", "   ", ";", "-- only a comment", "/* nothing */"])
async def test_empty_query(executor: Executor, root: Session, sql: str) -> None:
    failure = await error(executor, root, sql)
    assert (failure.code, failure.sqlstate, failure.message) == (1065, "42000", "Query was empty")


@pytest.mark.parametrize(
    ("sql", "near"),
    [
        ("CREATE TABLE t (a INT)", "CREATE TABLE t (a INT)"),
        ("SELECT * FROM t", "SELECT * FROM t"),
        ("SHOW ENGINES", "SHOW ENGINES"),
        ("SHOW PROCESSLIST", "SHOW PROCESSLIST"),
        ("INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (1)"),
        ("GRANT SELECT ON *.* TO tom", "GRANT SELECT ON *.* TO tom"),
        ("SELECT NOW()", "NOW()"),
        ("SELECT 1; SELECT 2", "SELECT 2"),
        ("SELECT (1", "1"),
        ("CREATE USER", ""),
        ("DROP USER tom@", ""),
        ("ALTER USER tom", "tom"),
        ("CREATE USER tom IDENTIFIED", ""),
        ("CREATE USER tom IDENTIFIED BY", ""),
        ("CREATE USER tom IDENTIFIED WITH", ""),
        ("SET PASSWORD = ", ""),
        ("frobnicate the database", "frobnicate the database"),
        ("\x00\x01garbage", ""),
    ],
)
async def test_unsupported_and_malformed_statements_are_1064(
    executor: Executor, root: Session, sql: str, near: str
) -> None:
    failure = await error(executor, root, sql)
    assert (failure.code, failure.sqlstate) == (1064, "42000")
    assert failure.message.startswith("You have an error in your SQL syntax")
    assert near in failure.message


async def test_session_stays_usable_after_errors(executor: Executor, root: Session) -> None:
    await error(executor, root, "CREATE TABLE t (a INT)")
    assert await rows(executor, root, "SELECT 1") == [[1]]
