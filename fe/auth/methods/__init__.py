"""The authentication methods, by account plugin name. A new method is one module with a class that satisfies
`AuthMethod`, registered with `register()`; the built-in ones register below. Nothing else needs to change: the
login (fe/auth/login.py) and the connection driver find a method by the account's plugin."""

from __future__ import annotations

from fe.auth.methods.base import (
    CHANGE_USER_NO_PLUGIN,
    Accept,
    AuthMethod,
    LoginAccount,
    LoginAttempt,
    LoginDenied,
    LoginOutcome,
    LoginServices,
    Step,
    TokenChecker,
)

__all__ = [
    "CHANGE_USER_NO_PLUGIN",
    "Accept",
    "AuthMethod",
    "LoginAccount",
    "LoginAttempt",
    "LoginDenied",
    "LoginOutcome",
    "LoginServices",
    "Step",
    "TokenChecker",
    "method_for",
    "register",
    "unregister",
]

_METHODS: dict[str, AuthMethod] = {}


def register(method: AuthMethod) -> AuthMethod:
    """Make `method` the one that logs in accounts of each plugin in `method.account_plugins`."""
    for plugin in method.account_plugins:
        _METHODS[plugin.lower()] = method
    return method


def unregister(method: AuthMethod) -> None:
    for plugin in method.account_plugins:
        if _METHODS.get(plugin.lower()) is method:
            del _METHODS[plugin.lower()]


def method_for(plugin: str) -> AuthMethod | None:
    return _METHODS.get(plugin.lower())


def _register_builtins() -> None:
    from fe.auth.methods.caching_sha2 import CachingSha2Password
    from fe.auth.methods.native import NativePassword
    from fe.auth.methods.openid_token import OpenIdToken

    for method in (NativePassword(), CachingSha2Password(), OpenIdToken()):
        register(method)


_register_builtins()
