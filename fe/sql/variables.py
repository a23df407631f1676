"""System variables: the server version, the values clients ask for with SELECT @@var / SHOW VARIABLES, and
which of them a session may change."""

from __future__ import annotations

import time

from fe import __version__
from fe.config import Settings

# MySQL clients parse the leading "major.minor.patch"; 9.2 is the first MySQL with the OpenID Connect client plugin.
SERVER_VERSION = f"9.2.0-fe-{__version__}"
VERSION_COMMENT = f"fe {__version__} (MySQL protocol, StarRocks account SQL, JWT / OpenID Connect logins)"
LICENSE = "Apache License 2.0"
DEFAULT_CHARSET = "utf8mb4"
DEFAULT_COLLATION = "utf8mb4_0900_ai_ci"
SQL_MODE = (
    "ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,"
    "NO_ENGINE_SUBSTITUTION"
)

# Values a SET may not change.
# The security integration that admitted the session (a name with no account), for the session to read:
# SELECT @@security_integration (NULL for an account's session).
SECURITY_INTEGRATION_VARIABLE = "security_integration"

READ_ONLY = frozenset(
    {
        SECURITY_INTEGRATION_VARIABLE,
        "version",
        "version_comment",
        "license",
        "system_time_zone",
        "lower_case_table_names",
        "protocol_version",
        "port",
        "hostname",
        "have_ssl",
        "have_openssl",
        "default_authentication_plugin",
    }
)

_BOOLEAN_WORDS = {"ON": 1, "TRUE": 1, "1": 1, "OFF": 0, "FALSE": 0, "0": 0}


def system_variable_defaults(settings: Settings) -> dict[str, object]:
    """Every variable fe knows, with its server-wide value; lower-case names."""
    idle_timeout = int(settings.idle_timeout_seconds)
    return {
        "auto_increment_increment": 1,
        "auto_increment_offset": 1,
        "autocommit": 1,
        "character_set_client": DEFAULT_CHARSET,
        "character_set_connection": DEFAULT_CHARSET,
        "character_set_database": DEFAULT_CHARSET,
        "character_set_results": DEFAULT_CHARSET,
        "character_set_server": DEFAULT_CHARSET,
        "character_set_system": "utf8mb3",
        "collation_connection": DEFAULT_COLLATION,
        "collation_database": DEFAULT_COLLATION,
        "collation_server": DEFAULT_COLLATION,
        "default_authentication_plugin": "caching_sha2_password",
        "have_openssl": "YES",
        "have_ssl": "YES",
        "hostname": settings.host,
        "init_connect": "",
        "interactive_timeout": idle_timeout,
        "license": LICENSE,
        "lower_case_table_names": 0,
        "max_allowed_packet": settings.max_packet_size,
        "max_connections": settings.max_connections,
        "net_buffer_length": 16384,
        "net_read_timeout": 30,
        "net_write_timeout": 60,
        "performance_schema": 0,
        "port": settings.query_port,
        "protocol_version": 10,
        "query_cache_size": 0,
        "query_cache_type": "OFF",
        "require_secure_transport": "ON" if settings.require_secure_transport else "OFF",
        "sql_auto_is_null": 0,
        "sql_mode": SQL_MODE,
        "sql_select_limit": 18446744073709551615,
        "system_time_zone": time.tzname[0] or "UTC",
        "time_zone": "SYSTEM",
        "transaction_isolation": "REPEATABLE-READ",
        "transaction_read_only": 0,
        "tx_isolation": "REPEATABLE-READ",
        "tx_read_only": 0,
        "version": SERVER_VERSION,
        "version_comment": VERSION_COMMENT,
        "wait_timeout": idle_timeout,
    }


def boolean_value(value: object) -> int | None:
    """ON/OFF/TRUE/FALSE/1/0 → 1 or 0; None if it is none of these."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value if value in (0, 1) else None
    if isinstance(value, str):
        return _BOOLEAN_WORDS.get(value.strip().upper())
    return None
