"""A new authentication method is one module and one `register()` call: the connection code runs it unchanged,
and the connect path and COM_CHANGE_USER run the same exchange."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import mysql.connector
import pymysql
import pytest

from fe.auth.methods import (
    Accept,
    LoginAccount,
    LoginAttempt,
    LoginDenied,
    LoginServices,
    method_for,
    register,
    unregister,
)
from fe.auth.methods.base import strip_nul, switch_request
from fe.auth.token_spec import TokenAuthSpec
from fe.catalog import Catalog
from fe.config import Settings
from fe.mysql import messages
from fe.server.context import ServerContext
from fe.server.listener import Listener, make_listening_socket
from fe.server.login_services import make_authenticator
from fe.server.stats import ServerStats
from fe.server.tls import prepare_tls
from fe.sql.executor import Executor

MAGIC_PLUGIN = "fe_test_magic_word"


class MagicWord:
    """A toy method for the test: the client's cleartext password must be the magic word (TLS only)."""

    account_plugins: ClassVar[tuple[str, ...]] = (MAGIC_PLUGIN,)

    async def exchange(
        self, attempt: LoginAttempt, account: LoginAccount | None, services: LoginServices
    ) -> AsyncGenerator[bytes | Accept, bytes]:
        attempt.plugin = MAGIC_PLUGIN
        if not attempt.secure:
            raise LoginDenied("insecure_password")
        reply = attempt.received((yield switch_request("mysql_clear_password", attempt)))
        if account is None or strip_nul(reply) != account.auth_string.encode():
            raise LoginDenied("bad_password", "not the magic word")
        yield Accept(claims={"magic": True})


@dataclass(frozen=True)
class MagicAccount:
    name: str
    host: str = "%"
    plugin: str = MAGIC_PLUGIN
    auth_string: str = "open sesame"

    @property
    def token_spec(self) -> TokenAuthSpec | None:
        return None

    @property
    def is_user_admin(self) -> bool:
        return False

    @property
    def effective_roles(self) -> frozenset[str]:
        return frozenset()


class CatalogWithMagicUser:
    """The real catalog, plus an account of the new plugin that SQL could not create (its plugin is a test's)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def change_marker(self) -> tuple[int, int]:
        return self.catalog.change_marker()

    def find_login_account(self, name: str, client_ip: str, data_version: int | None = None) -> LoginAccount | None:
        if name == "wizard":
            return MagicAccount("wizard")
        return self.catalog.find_login_account(name, client_ip, data_version)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[str, int]]:
    method = register(MagicWord())
    settings = Settings(home=tmp_path)
    catalog = Catalog.open(settings.meta_dir / "catalog.db")
    tls = prepare_tls(settings)
    authenticator = make_authenticator(catalog, None, tls, settings, None)  # type: ignore[arg-type]
    authenticator.accounts = CatalogWithMagicUser(catalog)
    context = ServerContext(settings, "9.2.0-test", tls, authenticator, Executor(catalog, settings), ServerStats())
    listener = Listener(context)
    sock = make_listening_socket("127.0.0.1", 0, reuse_port=False)
    await listener.start(sock)
    try:
        yield sock.getsockname()[:2]
    finally:
        await listener.shutdown(1.0)
        catalog.close()
        unregister(method)


def _connect(host: str, port: int, password: str) -> pymysql.Connection:  # type: ignore[type-arg]
    return pymysql.connect(
        host=host, port=port, user="wizard", password=password, ssl={"check_hostname": False, "verify_mode": 0}
    )


def _current_user(host: str, port: int, password: str) -> str:
    connection = _connect(host, port, password)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT CURRENT_USER()")
            return str(cursor.fetchone()[0])  # type: ignore[index]
    finally:
        connection.close()


async def test_a_registered_method_logs_in_through_the_unchanged_connection_code(
    server: tuple[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fe.login")
    host, port = server
    assert method_for(MAGIC_PLUGIN) is not None
    assert await asyncio.to_thread(_current_user, host, port, "open sesame") == "wizard@%"
    with pytest.raises(pymysql.err.OperationalError) as refused:
        await asyncio.to_thread(_current_user, host, port, "abracadabra")
    assert refused.value.args[0] == 1045 and "not the magic word" in refused.value.args[1]
    assert "reason=bad_password" in caplog.text


async def test_change_user_runs_the_same_exchange(server: tuple[str, int]) -> None:
    host, port = server

    def change() -> str:
        connection = mysql.connector.connect(
            host=host, port=port, user="root", password="", use_pure=True, ssl_verify_cert=False
        )
        try:
            connection.cmd_change_user(username="wizard", password="open sesame")
            cursor = connection.cursor()
            cursor.execute("SELECT CURRENT_USER()")
            return str(cursor.fetchone()[0])  # type: ignore[index]
        finally:
            connection.close()

    assert await asyncio.to_thread(change) == "wizard@%"


def test_the_built_in_methods_are_registered_by_plugin_name() -> None:
    for plugin in ("caching_sha2_password", "mysql_native_password", "authentication_jwt"):
        assert method_for(plugin) is not None
    assert method_for("AUTHENTICATION_OPENID_CONNECT") is method_for("authentication_jwt")
    assert messages.auth_switch("x", b"") == b"\xfex\x00"
