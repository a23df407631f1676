"""The MySQL errors statements end with. Where MySQL has an exact code we use it; the choices where it has none
are listed here:

- 1210 ER_WRONG_ARGUMENTS / HY000 "Incorrect arguments to <STATEMENT>: <reason>": a bad user or role name or
  host, an invalid token JSON (the reason names the problem), an auth form fe does not support, PROPERTIES.
- 1396 ER_CANNOT_USER / HY000 "Operation <STATEMENT> failed for 'u'@'h'[: reason]": MySQL's form, with
  StarRocks' reason appended (already exists, cannot find, root/built-in roles are protected).
"""

from __future__ import annotations

from fe.sql.results import SqlError

ER_UNKNOWN_ERROR = 1105
ER_PASSWORD_NO_MATCH = 1133
ER_UNKNOWN_SYSTEM_VARIABLE = 1193
ER_LOCK_WAIT_TIMEOUT = 1205
ER_WRONG_ARGUMENTS = 1210
ER_SPECIFIC_ACCESS_DENIED = 1227
ER_WRONG_VALUE_FOR_VAR = 1231
ER_INCORRECT_GLOBAL_LOCAL_VAR = 1238
ER_PASSWORD_FORMAT = 1372
ER_CANNOT_USER = 1396
ER_PLUGIN_IS_NOT_LOADED = 1524
ER_SET_PASSWORD_AUTH_PLUGIN = 1699
ER_NO_DB_ERROR = 1046
ER_BAD_DB = 1049
ER_EMPTY_QUERY = 1065
ER_USER_DOES_NOT_EXIST = 3162  # a Note: "Authorization ID 'u'@'h' does not exist." (IF EXISTS)
ER_USER_ALREADY_EXISTS = 3163  # a Note: "Authorization ID 'u'@'h' already exists." (IF NOT EXISTS)
ER_UNKNOWN_AUTHID = 3523
ER_ROLE_NOT_GRANTED = 3530


def access_denied_user_admin() -> SqlError:
    return SqlError(
        ER_SPECIFIC_ACCESS_DENIED,
        "42000",
        "Access denied; you need (at least one of) the GRANT/user_admin privilege(s) for this operation",
    )


def access_denied_root_only(what: str) -> SqlError:
    return SqlError(ER_SPECIFIC_ACCESS_DENIED, "42000", f"Access denied; only root may {what}")


def access_denied_system_variables() -> SqlError:
    return SqlError(
        ER_SPECIFIC_ACCESS_DENIED,
        "42000",
        "Access denied; you need (at least one of) the SUPER or SYSTEM_VARIABLES_ADMIN privilege(s) for this operation",
    )


def operation_failed(operation: str, target: str, reason: str = "") -> SqlError:
    message = f"Operation {operation} failed for {target}"
    return SqlError(ER_CANNOT_USER, "HY000", f"{message}: {reason}" if reason else message)


def wrong_arguments(statement: str, reason: str) -> SqlError:
    return SqlError(ER_WRONG_ARGUMENTS, "HY000", f"Incorrect arguments to {statement}: {reason}")


def unknown_authorization_id(name: str, host: str = "%", reason: str = "") -> SqlError:
    message = f"Unknown authorization ID `{name}`@`{host}`"
    return SqlError(ER_UNKNOWN_AUTHID, "HY000", f"{message}: {reason}" if reason else message)


def role_not_granted(role: str, user_identity: str) -> SqlError:
    return SqlError(ER_ROLE_NOT_GRANTED, "HY000", f"`{role}`@`%` is not granted to {user_identity}")


def plugin_not_loaded(plugin: str) -> SqlError:
    return SqlError(ER_PLUGIN_IS_NOT_LOADED, "HY000", f"Plugin '{plugin}' is not loaded")


def password_format() -> SqlError:
    return SqlError(ER_PASSWORD_FORMAT, "HY000", "Password hash should be a 41-digit hexadecimal number")


def set_password_not_applicable(user_identity: str) -> SqlError:
    return SqlError(
        ER_SET_PASSWORD_AUTH_PLUGIN,
        "HY000",
        f"SET PASSWORD has no significance for user {user_identity} as the authentication method used doesn't "
        "store authentication data in the server. Please consider using ALTER USER instead if you want to "
        "change authentication parameters.",
    )


def no_matching_user() -> SqlError:
    return SqlError(ER_PASSWORD_NO_MATCH, "42000", "Can't find any matching row in the user table")


def unknown_system_variable(name: str) -> SqlError:
    return SqlError(ER_UNKNOWN_SYSTEM_VARIABLE, "HY000", f"Unknown system variable '{name}'")


def read_only_variable(name: str) -> SqlError:
    return SqlError(ER_INCORRECT_GLOBAL_LOCAL_VAR, "HY000", f"Variable '{name}' is a read only variable")


def wrong_value_for_variable(name: str, value: object) -> SqlError:
    return SqlError(ER_WRONG_VALUE_FOR_VAR, "42000", f"Variable '{name}' can't be set to the value of '{value}'")


def no_database_selected() -> SqlError:
    return SqlError(ER_NO_DB_ERROR, "3D000", "No database selected")


def unknown_database(name: str) -> SqlError:
    return SqlError(ER_BAD_DB, "42000", f"Unknown database '{name}'")


def empty_query() -> SqlError:
    return SqlError(ER_EMPTY_QUERY, "42000", "Query was empty")


def catalog_unavailable(detail: str) -> SqlError:
    return SqlError(ER_LOCK_WAIT_TIMEOUT, "HY000", f"Lock wait timeout exceeded; try restarting transaction ({detail})")


def internal_error() -> SqlError:
    return SqlError(ER_UNKNOWN_ERROR, "HY000", "Unknown error while executing the statement; see the server log")
