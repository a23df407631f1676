"""A password verifier stored before argon2id (PBKDF2) still logs in, and the login's full authentication replaces it
with an argon2id one in the background; the password goes on working, and a wrong one is still refused."""

from __future__ import annotations

from pathlib import Path

from fe.catalog import CACHING_SHA2, Catalog, Credentials
from tests.auth.test_password_storage import legacy_pbkdf2
from tests.conftest import ROOT_PASSWORD
from tests.support.clients import ALL_CLIENTS
from tests.support.server import running_fe


def _stored(home: Path) -> str:
    catalog = Catalog.open(home / "meta" / "catalog.db")
    try:
        account = catalog.get_account("olga", "%")
        assert account is not None
        return account.auth_string
    finally:
        catalog.close()


def test_a_legacy_verifier_is_upgraded_at_the_next_full_authentication(tmp_path: Path) -> None:
    (tmp_path / "meta").mkdir(mode=0o700)
    catalog = Catalog.open(tmp_path / "meta" / "catalog.db", root_password=ROOT_PASSWORD)
    catalog.create_user("olga", "%", Credentials(CACHING_SHA2, legacy_pbkdf2(b"Olga-pw-1"), ""))
    catalog.close()
    assert _stored(tmp_path).startswith("pbkdf2_sha256$")
    with running_fe(tmp_path, env={"FE_ROOT_PASSWORD": ROOT_PASSWORD}) as server:
        login = ALL_CLIENTS["pymysql"]
        assert login(server.host, server.port, "olga", "wrong").errno == 1045  # a wrong password upgrades nothing
        assert _stored(tmp_path).startswith("pbkdf2_sha256$")
        assert login(server.host, server.port, "olga", "Olga-pw-1").ok  # full authentication over TLS
        server.wait_for_log(r"upgraded the password verifier of olga@% to argon2id")
        assert _stored(tmp_path).startswith("$argon2id$")
        assert login(server.host, server.port, "olga", "Olga-pw-1").ok
        assert login(server.host, server.port, "olga", "wrong").errno == 1045
