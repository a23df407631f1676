"""The MySQL errors statements end with. Where MySQL has an exact code we use it; the choices where it has none
are listed here:

- 1210 ER_WRONG_ARGUMENTS / HY000 "Incorrect arguments to <STATEMENT>: <reason>": a bad user or role name or
  host, an invalid token JSON (the reason names the problem), an auth form fe does not support, PROPERTIES; bad
  security integration / group provider PROPERTIES, an authentication_chain or config key that cannot be set.
- 1396 ER_CANNOT_USER / HY000 "Operation <STATEMENT> failed for 'u'@'h'[: reason]": MySQL's form, with
  StarRocks' reason appended (already exists, cannot find, root/built-in roles are protected); the same for a
  security integration or group provider ('name') that exists, is not found, or is still in use. IF [NOT] EXISTS
  turns "exists" / "not found" into a Note with the same code.
"""

from __future__ import annotations

from fe.mysql.errors import ErrorCode, sqlstate
from fe.sql.results import SqlError


def _error(code: ErrorCode, message: str) -> SqlError:
    return SqlError(int(code), sqlstate(code), message)


def access_denied_user_admin() -> SqlError:
    return _error(
        ErrorCode.SPECIFIC_ACCESS_DENIED,
        "Access denied; you need (at least one of) the GRANT/user_admin privilege(s) for this operation",
    )


def access_denied_root_only(what: str) -> SqlError:
    return _error(ErrorCode.SPECIFIC_ACCESS_DENIED, f"Access denied; only root may {what}")


def access_denied_system_variables() -> SqlError:
    return _error(
        ErrorCode.SPECIFIC_ACCESS_DENIED,
        "Access denied; you need (at least one of) the SUPER or SYSTEM_VARIABLES_ADMIN privilege(s) for this operation",
    )


def operation_failed(operation: str, target: str, reason: str = "") -> SqlError:
    message = f"Operation {operation} failed for {target}"
    return _error(ErrorCode.CANNOT_USER, f"{message}: {reason}" if reason else message)


def wrong_arguments(statement: str, reason: str) -> SqlError:
    return _error(ErrorCode.WRONG_ARGUMENTS, f"Incorrect arguments to {statement}: {reason}")


def unknown_authorization_id(name: str, host: str = "%", reason: str = "") -> SqlError:
    message = f"Unknown authorization ID `{name}`@`{host}`"
    return _error(ErrorCode.UNKNOWN_AUTHID, f"{message}: {reason}" if reason else message)


def role_not_granted(role: str, user_identity: str) -> SqlError:
    return _error(ErrorCode.ROLE_NOT_GRANTED, f"`{role}`@`%` is not granted to {user_identity}")


def plugin_not_loaded(plugin: str) -> SqlError:
    return _error(ErrorCode.PLUGIN_IS_NOT_LOADED, f"Plugin '{plugin}' is not loaded")


def password_format() -> SqlError:
    return _error(ErrorCode.PASSWORD_FORMAT, "Password hash should be a 41-digit hexadecimal number")


def set_password_not_applicable(user_identity: str) -> SqlError:
    return _error(
        ErrorCode.SET_PASSWORD_AUTH_PLUGIN,
        f"SET PASSWORD has no significance for user {user_identity} as the authentication method used doesn't "
        "store authentication data in the server. Please consider using ALTER USER instead if you want to "
        "change authentication parameters.",
    )


def no_matching_user() -> SqlError:
    return _error(ErrorCode.PASSWORD_NO_MATCH, "Can't find any matching row in the user table")


def unknown_system_variable(name: str) -> SqlError:
    return _error(ErrorCode.UNKNOWN_SYSTEM_VARIABLE, f"Unknown system variable '{name}'")


def read_only_variable(name: str) -> SqlError:
    return _error(ErrorCode.INCORRECT_GLOBAL_LOCAL_VAR, f"Variable '{name}' is a read only variable")


def wrong_value_for_variable(name: str, value: object) -> SqlError:
    return _error(ErrorCode.WRONG_VALUE_FOR_VAR, f"Variable '{name}' can't be set to the value of '{value}'")


def no_database_selected() -> SqlError:
    return _error(ErrorCode.NO_DB, "No database selected")


def unknown_database(name: str) -> SqlError:
    return _error(ErrorCode.BAD_DB, f"Unknown database '{name}'")


def empty_query() -> SqlError:
    return _error(ErrorCode.EMPTY_QUERY, "Query was empty")


def catalog_unavailable(detail: str) -> SqlError:
    return _error(ErrorCode.LOCK_WAIT_TIMEOUT, f"Lock wait timeout exceeded; try restarting transaction ({detail})")


def internal_error() -> SqlError:
    return _error(ErrorCode.UNKNOWN_ERROR, "Unknown error while executing the statement; see the server log")
