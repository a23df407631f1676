"""Faults a real part cannot produce on demand: a login step that raises unexpectedly still ends in a logged
ERR 1045 and a closed connection, and the server keeps serving."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from fe.auth.login import Authenticator, LoginAttempt
from fe.catalog import Catalog
from fe.config import Settings
from fe.server.context import ServerContext
from fe.server.listener import Listener, make_listening_socket
from fe.server.login_services import make_authenticator
from fe.server.stats import ServerStats
from fe.server.tls import prepare_tls
from fe.sql.executor import Executor
from tests.support.rawclient import RawClient, error_of


class BrokenAuthenticator(Authenticator):
    async def find_account(self, attempt: LoginAttempt) -> None:
        raise RuntimeError("the catalog disk went away")


async def test_unexpected_login_error_is_a_clean_refusal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fe.login")
    settings = Settings(home=tmp_path)
    catalog = Catalog.open(settings.meta_dir / "catalog.db")
    tls = prepare_tls(settings)
    context = ServerContext(
        settings,
        "9.2.0-test",
        tls,
        BrokenAuthenticator(catalog, make_authenticator(catalog, None, tls, settings, None).services),  # type: ignore[arg-type]
        Executor(catalog, settings),
        ServerStats(),
    )
    listener = Listener(context)
    sock = make_listening_socket("127.0.0.1", 0, reuse_port=False)
    await listener.start(sock)
    host, port = sock.getsockname()[:2]

    def attempt() -> tuple[bytes, bool]:
        client = RawClient(host, port)
        try:
            reply = client.login("root", "", tls=True)
            return reply, client.closed_by_server()
        finally:
            client.close()

    try:
        for _ in range(2):  # the second attempt shows the server still serves
            reply, closed = await asyncio.to_thread(attempt)
            code, message = error_of(reply)
            assert code == 1045 and message.startswith("Access denied for user 'root'@'127.0.0.1'")
            assert closed
        assert "reason=internal_error" in caplog.text
    finally:
        await listener.shutdown(1.0)
        catalog.close()
