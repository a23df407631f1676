"""Single sign-on without a CREATE USER per person: names that are no account log in through the security
integrations of the authentication chain, in order; their groups (file, unix and jwt providers) become roles
through GRANT … TO EXTERNAL GROUP; permitted_groups admits or refuses; a token user created with CREATE USER can
have group providers too."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mysql.connector
import pymysql
import pytest

from fe.auth.devtools import generate_signing_key, mint_token
from tests.conftest import ROOT_PASSWORD, root_execute
from tests.support.server import FeProcess, running_fe

TLS = {"check_hostname": False, "verify_mode": 0}
CORP = "https://corp.example"
LAB = "https://lab.example"


@dataclass
class Lab:
    server: FeProcess
    keys: dict[str, tuple[Any, str]]  # issuer name → (private key, kid)
    tokens_dir: Path

    def token(self, signer: str, sub: str, iss: str, aud: str = "fe", **claims: object) -> str:
        key, kid = self.keys[signer]
        body = {"iss": iss, "aud": aud, "sub": sub, "exp": int(time.time()) + 600, **claims}
        return mint_token(key, "ES256", kid, body)

    def token_file(self, token: str) -> str:
        path = self.tokens_dir / f"{abs(hash(token))}.token"
        path.write_text(token)
        return str(path)


def _rows(connection: pymysql.Connection, sql: str) -> list[tuple[object, ...]]:  # type: ignore[type-arg]
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return list(cursor.fetchall())


def _connect(lab: Lab, user: str, token: str) -> pymysql.Connection:  # type: ignore[type-arg]
    """The token as the password (PyMySQL has no OpenID Connect plugin)."""
    return pymysql.connect(host=lab.server.host, port=lab.server.port, user=user, password=token, ssl=TLS)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    home = tmp_path_factory.mktemp("fe-sso")
    (home / "conf").mkdir()
    keys = {}
    for name in ("corp", "lab"):
        key, jwk = generate_signing_key("ES256")
        (home / "conf" / f"{name}.jwks").write_text(json.dumps({"keys": [jwk]}))
        keys[name] = (key, jwk["kid"])
    (home / "conf" / "groups.txt").write_text("analysts:ann,bob\nengineers:eve\n")
    with running_fe(home, env={"FE_ROOT_PASSWORD": ROOT_PASSWORD}) as server:
        root_execute(
            server,
            'CREATE GROUP PROVIDER staff PROPERTIES ("type" = "file", "group_file_url" = "groups.txt")',
            'CREATE GROUP PROVIDER claims PROPERTIES ("type" = "jwt", "jwt_claim" = "groups")',
            'CREATE GROUP PROVIDER host PROPERTIES ("type" = "unix")',
            f'CREATE SECURITY INTEGRATION corp PROPERTIES ("type" = "authentication_jwt", "jwks_url" = "corp.jwks", '
            f'"required_issuer" = "{CORP}", "required_audience" = "fe", "group_provider" = "staff,claims", '
            '"comment" = "the company IdP")',
            f'CREATE SECURITY INTEGRATION lab PROPERTIES ("type" = "authentication_openid_connect", '
            f'"jwks_url" = "lab.jwks", "required_issuer" = "{LAB}", "required_audience" = "fe", '
            '"group_provider" = "claims", "permitted_groups" = "researchers")',
            'ADMIN SET FRONTEND CONFIG ("authentication_chain" = "native,corp,lab")',
            "CREATE ROLE analysts_role",
            "CREATE ROLE researchers_role",
            "GRANT analysts_role TO EXTERNAL GROUP 'analysts'",
            "GRANT researchers_role TO EXTERNAL GROUP 'researchers'",
        )
        yield Lab(server, keys, tmp_path_factory.mktemp("tokens"))


def test_a_person_never_created_logs_in_through_the_chain(lab: Lab) -> None:
    connection = _connect(lab, "ann", lab.token("corp", "ann", CORP))
    try:
        assert _rows(connection, "SELECT CURRENT_USER()") == [("ann@127.0.0.1",)]
        assert _rows(connection, "SELECT @@security_integration") == [("corp",)]
        grants = " ".join(str(row) for row in _rows(connection, "SHOW GRANTS"))
        assert "analysts_role" in grants and "analysts" in grants  # from the file provider's group
    finally:
        connection.close()
    lab.server.wait_for_log(r"login user=ann .*plugin=integration:corp .*outcome=success")
    users = [str(row[0]) for row in root_execute(lab.server, "SHOW USERS")]
    assert not any("ann" in user for user in users)  # nothing was written to the catalog for her


def test_the_openid_connect_plugin_packet_works_through_the_chain_too(lab: Lab) -> None:
    token_file = lab.token_file(lab.token("corp", "bob", CORP))
    connection = mysql.connector.connect(
        host=lab.server.host, port=lab.server.port, user="bob", openid_token_file=token_file, use_pure=True,
        ssl_verify_cert=False,
    )  # fmt: skip
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT CURRENT_USER(), @@security_integration")
        assert cursor.fetchall() == [("bob@127.0.0.1", "corp")]
    finally:
        connection.close()


def test_the_chain_order_decides_and_the_first_verifying_integration_reports(lab: Lab) -> None:
    # Signed by lab's key: corp's keys do not verify it, so lab decides (and admits a researcher).
    connection = _connect(lab, "rita", lab.token("lab", "rita", LAB, groups=["researchers"]))
    try:
        assert _rows(connection, "SELECT @@security_integration") == [("lab",)]
        assert "researchers_role" in " ".join(str(row) for row in _rows(connection, "SHOW GRANTS"))
    finally:
        connection.close()
    # Signed by corp's key but for another audience: corp's keys verify it, so corp decides — and its reason is told.
    with pytest.raises(pymysql.err.OperationalError) as refused:
        _connect(lab, "ann", lab.token("corp", "ann", CORP, aud="elsewhere"))
    assert refused.value.args[0] == 1045 and "audience" in refused.value.args[1]


def test_permitted_groups_refuse_with_starrocks_error(lab: Lab) -> None:
    with pytest.raises(pymysql.err.OperationalError) as refused:
        _connect(lab, "tim", lab.token("lab", "tim", LAB, groups=["visitors"]))
    assert refused.value.args[0] == 5206 and "Group Access Denied" in refused.value.args[1]
    lab.server.wait_for_log(r"login user=tim .*outcome=failure reason=group_denied")


def test_a_token_no_integration_verifies_is_refused_like_any_stranger(lab: Lab) -> None:
    other, _ = generate_signing_key("ES256")
    forged = mint_token(
        other, "ES256", "nobody", {"iss": CORP, "aud": "fe", "sub": "mal", "exp": int(time.time()) + 60}
    )
    with pytest.raises(pymysql.err.OperationalError) as refused:
        _connect(lab, "mal", forged)
    assert refused.value.args[0] == 1045 and refused.value.args[1].endswith("(using password: YES)")


def test_a_token_user_created_with_create_user_gets_groups_too(lab: Lab) -> None:
    spec = {"jwks_url": "corp.jwks", "required_issuer": CORP, "required_audience": "fe", "group_provider": "claims"}
    root_execute(
        lab.server, f"CREATE USER IF NOT EXISTS zoe IDENTIFIED WITH authentication_jwt AS '{json.dumps(spec)}'"
    )
    connection = _connect(lab, "zoe", lab.token("corp", "zoe", CORP, groups="researchers analysts"))
    try:
        assert _rows(connection, "SELECT CURRENT_USER()") == [("zoe@%",)]
        grants = " ".join(str(row) for row in _rows(connection, "SHOW GRANTS"))
        assert "researchers_role" in grants and "analysts_role" in grants
    finally:
        connection.close()


def test_the_unix_provider_gives_the_hosts_groups(lab: Lab) -> None:
    import grp
    import pwd

    user = "daemon"  # a system account on every Debian host, and no fe account: its groups are the host's
    group = grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
    root_execute(
        lab.server,
        f'CREATE SECURITY INTEGRATION IF NOT EXISTS hostint PROPERTIES ("type" = "authentication_jwt", '
        f'"jwks_url" = "corp.jwks", "required_issuer" = "{CORP}", "required_audience" = "hosts", '
        '"group_provider" = "host")',
        'ADMIN SET FRONTEND CONFIG ("authentication_chain" = "native,hostint,corp,lab")',
        "CREATE ROLE IF NOT EXISTS host_role",
        f"GRANT host_role TO EXTERNAL GROUP '{group}'",
    )
    try:
        connection = _connect(lab, user, lab.token("corp", user, CORP, aud="hosts"))
        try:
            assert "host_role" in " ".join(str(row) for row in _rows(connection, "SHOW GRANTS"))
        finally:
            connection.close()
    finally:
        root_execute(lab.server, 'ADMIN SET FRONTEND CONFIG ("authentication_chain" = "native,corp,lab")')
