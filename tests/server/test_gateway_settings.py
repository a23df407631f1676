"""The gateway as fe.conf and the environment describe it: where the upstream is (host:port, [IPv6]:port or a Unix
socket's path), its TLS mode, the role mapping and where each upstream password comes from; every mistake is a
ConfigError that names it."""

from __future__ import annotations

from pathlib import Path

import pytest

from fe.config import ConfigError, load_settings
from fe.server.gateway import Gateway, make_gateway
from fe.upstream.tls import TlsMode


def gateway(home: Path, environ: dict[str, str]) -> Gateway | None:
    return make_gateway(load_settings(home, environ=environ), environ)


def test_no_upstream_no_gateway(tmp_path: Path) -> None:
    assert gateway(tmp_path, {}) is None


@pytest.mark.parametrize(
    ("upstream", "host", "port", "address"),
    [
        ("db.internal:3306", "db.internal", 3306, "db.internal:3306"),
        ("127.0.0.1:13306", "127.0.0.1", 13306, "127.0.0.1:13306"),
        ("[::1]:3307", "::1", 3307, "[::1]:3307"),
    ],
)
def test_a_tcp_upstream(tmp_path: Path, upstream: str, host: str, port: int, address: str) -> None:
    made = gateway(tmp_path, {"FE_UPSTREAM": upstream, "FE_UPSTREAM_USER": "svc"})
    assert made is not None
    assert (made.server.host, made.server.port, made.server.socket_path) == (host, port, "")
    assert made.server.address == address
    assert made.server.tls.mode is TlsMode.VERIFY_IDENTITY  # the default


def test_a_unix_socket_upstream(tmp_path: Path) -> None:
    made = gateway(tmp_path, {"FE_UPSTREAM": "/run/mysqld/mysqld.sock", "FE_UPSTREAM_USER": "svc"})
    assert made is not None
    assert made.server.socket_path == "/run/mysqld/mysqld.sock" == made.server.address


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"FE_UPSTREAM": "db.internal"}, "upstream must be host:port, .* or a Unix socket's absolute path"),
        ({"FE_UPSTREAM": "run/mysqld.sock"}, "got 'run/mysqld.sock'"),
        ({"FE_UPSTREAM": "db:0"}, "upstream must be host:port"),
        ({"FE_UPSTREAM": "db:65536"}, "upstream must be host:port"),
        ({"FE_UPSTREAM": ":3306"}, "upstream must be host:port"),
        ({"FE_UPSTREAM": "[]:3306"}, "upstream must be host:port, \\[IPv6\\]:port"),
        ({"FE_UPSTREAM": "[::1:3306"}, "got '\\[::1:3306'"),
        ({"FE_UPSTREAM": "db]:3306"}, "got 'db\\]:3306'"),
        ({"FE_UPSTREAM": "/run/" + "s" * 103 + ".sock"}, "a Unix socket's path has at most 107 bytes"),
        ({"FE_UPSTREAM": "db:3306", "FE_UPSTREAM_TLS": "preferred"}, "upstream_tls must be disabled, required"),
        ({"FE_UPSTREAM": "db:3306", "FE_UPSTREAM_ROLE_ACCOUNTS": "analysts"}, "'analysts' is not role:upstream_user"),
        ({"FE_UPSTREAM": "db:3306", "FE_UPSTREAM_ROLE_ACCOUNTS": "a:r, :w"}, "':w' is not role:upstream_user"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        gateway(tmp_path, environ)


def test_role_accounts_keep_their_order_and_passwords_come_from_the_environment_or_files(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "default.pw").write_text("from-a-file\n")
    (secrets / "writer").write_text("writer-pw\n")
    environ = {
        "FE_UPSTREAM": "db:3306",
        "FE_UPSTREAM_USER": "svc",
        "FE_UPSTREAM_PASSWORD_FILE": str(secrets / "default.pw"),
        "FE_UPSTREAM_ROLE_ACCOUNTS": "analysts:reader, engineers:writer",
        "FE_UPSTREAM_PASSWORD_READER": "reader-pw",
        "FE_UPSTREAM_PASSWORD_DIR": str(secrets),
    }
    made = gateway(tmp_path, environ)
    assert made is not None and made.default_account is not None
    assert (made.default_account.user, made.default_account.password) == ("svc", "from-a-file")
    mapped = [(m.role, m.account.user, m.account.password) for m in made.mappings]
    assert mapped == [("analysts", "reader", "reader-pw"), ("engineers", "writer", "writer-pw")]
    # The environment wins over the file.
    made = gateway(tmp_path, {**environ, "FE_UPSTREAM_PASSWORD": "from-env"})
    assert made is not None and made.default_account is not None and made.default_account.password == "from-env"


def test_an_unreadable_password_file_is_named(tmp_path: Path) -> None:
    environ = {"FE_UPSTREAM": "db:3306", "FE_UPSTREAM_USER": "svc", "FE_UPSTREAM_PASSWORD_FILE": "missing.pw"}
    with pytest.raises(ConfigError, match=r"cannot read the upstream password of 'svc' from .*missing\.pw"):
        gateway(tmp_path, environ)
