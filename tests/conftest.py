"""Shared fixtures: a real `fe serve` process per test module, and a root session to set things up with."""

from __future__ import annotations

from collections.abc import Iterator

import pymysql
import pytest

from tests.support.server import FeProcess, running_fe

ROOT_PASSWORD = "Root#Pass-1"


def root_connection(server: FeProcess, password: str = ROOT_PASSWORD) -> pymysql.connections.Connection:
    """A PyMySQL session as root over TLS (the server's certificate is self-signed)."""
    return pymysql.connect(
        host=server.host,
        port=server.port,
        user="root",
        password=password,
        ssl={"check_hostname": False, "verify_mode": 0},
        connect_timeout=10,
    )


def root_execute(server: FeProcess, *statements: str, password: str = ROOT_PASSWORD) -> list[tuple]:
    """Run statements as root over TLS; returns the rows of the last one."""
    connection = root_connection(server, password)
    try:
        rows: list[tuple] = []
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
                rows = list(cursor.fetchall())
        return rows
    finally:
        connection.close()


# Modules on the shared server run once on each event loop fe supports (fe/server/eventloop.py).
EVENT_LOOPS = ["asyncio", "uvloop"]


@pytest.fixture(scope="module", params=EVENT_LOOPS)
def fe_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FeProcess]:
    home = tmp_path_factory.mktemp("fe-home")
    with running_fe(home, env={"FE_ROOT_PASSWORD": ROOT_PASSWORD, "FE_EVENT_LOOP": request.param}) as server:
        assert f"event loop {request.param})" in server.log
        yield server
