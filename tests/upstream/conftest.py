"""One private MariaDB server for the whole session (TLS with a private CA, performance_schema on), with the
accounts and schema the upstream tests use."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace

import pytest

from fe.mysql.constants import Capability
from fe.upstream.endpoint import UpstreamAccount, UpstreamServer
from fe.upstream.tls import TlsMode, TlsOptions
from tests.support.mariadb_server import INSTALL_HINT, REQUIRE_ENV, MariaDbServer, find_binaries, running_mariadb

NATIVE = UpstreamAccount("fe_native", "native-pw-1")
TLS_ONLY = UpstreamAccount("fe_tls_only", "tls-pw-2")
OTHER = UpstreamAccount("fe_other", "other-pw-3")
ED25519 = UpstreamAccount("fe_ed", "ed-pw-4")

# What a typical modern client negotiates with fe (libmysqlclient-like: DEPRECATE_EOF, multi results).
CLIENT_CAPS = (
    Capability.LONG_PASSWORD
    | Capability.LONG_FLAG
    | Capability.PROTOCOL_41
    | Capability.TRANSACTIONS
    | Capability.SECURE_CONNECTION
    | Capability.MULTI_STATEMENTS
    | Capability.MULTI_RESULTS
    | Capability.PS_MULTI_RESULTS
    | Capability.PLUGIN_AUTH
    | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA
    | Capability.CONNECT_ATTRS
    | Capability.DEPRECATE_EOF
)
# ... and one without DEPRECATE_EOF (Connector/Python pure, PyMySQL): result sets end with EOF packets.
EOF_CLIENT_CAPS = CLIENT_CAPS & ~Capability.DEPRECATE_EOF

_SETUP = [
    "INSTALL SONAME 'auth_ed25519'",
    "CREATE DATABASE fe_test",
    "CREATE TABLE fe_test.t (id INT PRIMARY KEY, v VARCHAR(100)) ENGINE=InnoDB",
    "INSERT INTO fe_test.t VALUES (1, 'one'), (2, 'two'), (3, 'three'), (4, NULL), (5, 'five')",
    "CREATE TABLE fe_test.blobs (id INT PRIMARY KEY, b LONGBLOB) ENGINE=InnoDB",
    "CREATE PROCEDURE fe_test.two_results() BEGIN SELECT 1 AS a; SELECT 'x' AS b, 2 AS c; END",
    f"CREATE USER '{NATIVE.user}'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('{NATIVE.password}')",
    f"CREATE USER '{TLS_ONLY.user}'@'%' IDENTIFIED BY '{TLS_ONLY.password}' REQUIRE SSL",
    f"CREATE USER '{OTHER.user}'@'%' IDENTIFIED BY '{OTHER.password}'",
    f"CREATE USER '{ED25519.user}'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('{ED25519.password}')",
    *(f"GRANT ALL ON fe_test.* TO '{account.user}'@'%'" for account in (NATIVE, TLS_ONLY, OTHER, ED25519)),
    *(f"GRANT SELECT ON performance_schema.* TO '{account.user}'@'%'" for account in (NATIVE, TLS_ONLY, OTHER)),
]


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDbServer]:
    binaries = find_binaries()
    if binaries is None:
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"mariadbd or mariadb-install-db not found (with {REQUIRE_ENV} set); run `{INSTALL_HINT}`")
        pytest.skip(f"MariaDB is not installed (`{INSTALL_HINT}`)")
    with running_mariadb(binaries) as server:
        server.execute(*_SETUP)
        yield server


@pytest.fixture(scope="session")
def upstream_plain(mariadb: MariaDbServer) -> UpstreamServer:
    """The server over plain TCP on loopback."""
    return UpstreamServer(mariadb.host, mariadb.port, TlsOptions(TlsMode.DISABLED), connect_timeout=10)


@pytest.fixture(scope="session")
def upstream_tls(mariadb: MariaDbServer) -> UpstreamServer:
    """The server over TLS, certificate and host name verified against the private CA."""
    assert mariadb.certificates is not None
    options = TlsOptions(TlsMode.VERIFY_IDENTITY, str(mariadb.certificates.ca))
    return UpstreamServer(mariadb.host, mariadb.port, options, connect_timeout=10)


@pytest.fixture(scope="session")
def upstream_socket(mariadb: MariaDbServer, upstream_tls: UpstreamServer) -> UpstreamServer:
    """The server over its Unix socket (with upstream_tls's settings, which do not apply there)."""
    return replace(upstream_tls, socket_path=str(mariadb.socket_path))


def with_tls(server: UpstreamServer, **changes: object) -> UpstreamServer:
    return replace(server, tls=replace(server.tls, **changes))


def session_attributes(mariadb: MariaDbServer, connection_id: int) -> dict[str, str]:
    """The connection attributes the server shows for one session."""
    rows = mariadb.execute(
        "SELECT ATTR_NAME, ATTR_VALUE FROM performance_schema.session_connect_attrs "
        f"WHERE PROCESSLIST_ID = {connection_id}"
    )
    return {str(name): str(value) for name, value in rows}
