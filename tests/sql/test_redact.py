"""mask_secrets: statement text as it may appear in a log, with every password and token masked."""

from __future__ import annotations

import pytest

from fe.sql.redact import mask_secrets

SECRET = "S3cr3t-pw"
# A compact JWS as identity providers issue them (header.payload.signature, base64url).
JWT = (
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0"
    ".eyJzdWIiOiJ0b20iLCJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlIiwiZXhwIjoxNzAwMDAwMDAwfQ"
    ".MEUCIQDx4v7wYJ0Hk2l-8kM1a_bQ9c3T0rY6"
)

PASSWORD_STATEMENTS = [
    f"CREATE USER bob IDENTIFIED BY '{SECRET}'",
    f"create user bob identified by '{SECRET}'",
    f'CREATE USER bob IDENTIFIED BY "{SECRET}"',
    f"CREATE USER IF NOT EXISTS 'bob'@'10.0.0.%' IDENTIFIED BY '{SECRET}' DEFAULT ROLE r1",
    f"CREATE USER bob IDENTIFIED BY PASSWORD '{SECRET}'",
    f"CREATE USER bob IDENTIFIED WITH caching_sha2_password BY '{SECRET}'",
    f"CREATE USER bob IDENTIFIED WITH 'mysql_native_password' AS '{SECRET}'",
    f"ALTER USER bob IDENTIFIED BY '{SECRET}'",
    f"ALTER USER bob IDENTIFIED /* a comment */ BY /* another */ '{SECRET}'",
    f"ALTER USER bob IDENTIFIED\n  BY\t'{SECRET}' -- trailing comment",
    f"SET PASSWORD = '{SECRET}'",
    f"SET PASSWORD='{SECRET}'",
    f"SET PASSWORD FOR bob = '{SECRET}'",
    f"SET PASSWORD FOR 'bob'@'%' = PASSWORD('{SECRET}')",
    f"set password = password('{SECRET}')",
    f"SELECT PASSWORD('{SECRET}')",
    f"SELECT 1; SET PASSWORD = '{SECRET}'",
    f"SELECT 1;SET PASSWORD = '{SECRET}';SELECT 2",
    f"CREATE USER bob IDENTIFIED BY '{SECRET}'; SELECT 'x'",
    f"CREATE USER bob IDENTIFIED BY N'{SECRET}'",
    f"CREATE USER bob IDENTIFIED BY _utf8mb4'{SECRET}'",
    f"CREATE USER bob IDENTIFIED BY {SECRET}",  # unquoted (a syntax error, still never logged)
    f"CREATE USER bob IDENTIFIED BY `{SECRET}`",
    f"ALTER USER bob IDENTIFIED BY 'it''s {SECRET}'",
    f"ALTER USER bob IDENTIFIED BY 'it\\'s {SECRET}'",
    f"ALTER USER bob IDENTIFIED BY '{SECRET} \\\\' DEFAULT ROLE r1",
    f"ALTER USER bob IDENTIFIED BY 'multi\nline {SECRET}'",
    f"CREATE USER bob IDENTIFIED BY '{SECRET}' '{SECRET}2'",
    f"ALTER USER bob IDENTIFIED BY /* '{SECRET}' */ 'other'",
]


@pytest.mark.parametrize("sql", PASSWORD_STATEMENTS)
def test_passwords_are_masked(sql: str) -> None:
    masked = mask_secrets(sql)
    assert SECRET not in masked, masked
    assert "***" in masked


@pytest.mark.parametrize(
    "sql",
    [
        # Text the tokenizer cannot read: everything quoted is masked, and everything after a password keyword.
        f"CREATE USER bob IDENTIFIED BY '{SECRET}",
        f'ALTER USER bob IDENTIFIED BY "{SECRET}',
        f"SET PASSWORD = '{SECRET}\\'",
        f"SELECT '{SECRET}",
        f"ALTER USER bob IDENTIFIED BY {SECRET} 'unterminated",
    ],
)
def test_text_the_tokenizer_refuses_is_masked_wholesale(sql: str) -> None:
    masked = mask_secrets(sql)
    assert SECRET not in masked, masked


@pytest.mark.parametrize(
    "sql",
    [
        f"SELECT '{JWT}'",
        f"SELECT 1 /* {JWT} */",
        f"SELECT 1 -- {JWT}",
        f"SET @token = '{JWT}'",
        f"SELECT `{JWT}`",
        f"SELECT 'Bearer {JWT}'",
        f"SELECT '{JWT}",  # unterminated
        JWT,
        f"{JWT}.extra.parts",  # JWE-like: five parts
        f"SELECT 1; SET PASSWORD = '{JWT}'",
        f"CREATE USER tom IDENTIFIED WITH authentication_openid_connect BY '{JWT}'",
    ],
)
def test_tokens_are_masked_wherever_they_appear(sql: str) -> None:
    masked = mask_secrets(sql)
    for part in JWT.split("."):
        assert part not in masked, masked


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "SELECT @@version_comment LIMIT 1",
        "SET NAMES utf8mb4",
        "SHOW VARIABLES LIKE 'auto%'",
        "SELECT 'hello', \"world\"",
        "SELECT information_schema.tables.table_name",
        "SELECT 'example_db.customers.name', example_db.customers.name",
        "DROP USER adm",
        "CREATE USER 'alice'@'%' DEFAULT ROLE r1",
        "GRANT r1 TO bob",
    ],
)
def test_statements_without_secrets_are_left_as_they_are(sql: str) -> None:
    assert mask_secrets(sql) == sql


def test_what_is_not_secret_stays_readable() -> None:
    masked = mask_secrets(f"CREATE USER 'alice'@'10.0.0.1' IDENTIFIED BY '{SECRET}' DEFAULT ROLE analysts")
    assert masked.startswith("CREATE USER 'alice'@'10.0.0.1' IDENTIFIED BY ")
    assert "DEFAULT ROLE" in masked
    assert mask_secrets("SET PASSWORD FOR 'bob'@'%' = 'x'") == "SET PASSWORD FOR '***'@'***' = '***'"
    plugin = mask_secrets('CREATE USER tom IDENTIFIED WITH authentication_jwt AS \'{"jwks_url": "x.jwks"}\'')
    assert plugin.startswith("CREATE USER tom IDENTIFIED WITH authentication_jwt AS ")


def test_empty_and_odd_text() -> None:
    assert mask_secrets("") == ""
    assert SECRET not in mask_secrets(f"\x00\x01 IDENTIFIED BY '{SECRET}'")
    assert SECRET not in mask_secrets(f"PASSWORD '{SECRET}'")
    assert SECRET not in mask_secrets(f"identified by '{SECRET}' " * 1000)
