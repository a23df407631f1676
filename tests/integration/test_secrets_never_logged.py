"""Multi-statement text through real clients: MySQL's 1064 "near '<the rest>'" (fe runs one statement per
COM_QUERY), the session carries on, nothing ran, and the server's log holds neither a password nor a token."""

from __future__ import annotations

import time

import pytest

from fe.auth.devtools import generate_signing_key, mint_token
from tests.conftest import ROOT_PASSWORD
from tests.support.clients import connector_pure
from tests.support.server import FeProcess
from tests.support.sessions import Session

PASSWORD = "Never-logged-pw-41"


def a_token() -> str:
    key, jwk = generate_signing_key("ES256")
    now = int(time.time())
    return mint_token(key, "ES256", jwk["kid"], {"sub": "tom", "iss": "x", "aud": "fe", "iat": now, "exp": now + 60})


TOKEN = a_token()

STATEMENTS = [
    (f"SELECT 1; SET PASSWORD = '{PASSWORD}'", f"SET PASSWORD = '{PASSWORD}'"),
    ("SELECT 1; DROP USER sec_adm", "DROP USER sec_adm"),
    (f"SELECT 1; CREATE USER sec_evil IDENTIFIED BY '{PASSWORD}'", None),
    (f"SELECT 1; ALTER USER sec_adm IDENTIFIED BY '{PASSWORD}'", None),
    (f"SELECT 1; SET PASSWORD FOR sec_adm = PASSWORD('{PASSWORD}')", None),
    (f"SELECT 1; SET PASSWORD = '{TOKEN}'", None),
    (f"SELECT '{TOKEN}'; SELECT 2", "SELECT 2"),
]


@pytest.fixture
def users(fe_server: FeProcess) -> None:
    with Session(fe_server, "root", ROOT_PASSWORD) as root:
        root.run("CREATE USER IF NOT EXISTS sec_adm IDENTIFIED BY 'Sec-adm-1' DEFAULT ROLE user_admin")
        root.run("CREATE USER IF NOT EXISTS sec_plain IDENTIFIED BY 'Sec-plain-1'")


@pytest.mark.parametrize(("user", "password"), [("root", ROOT_PASSWORD), ("sec_plain", "Sec-plain-1")])
def test_multi_statement_text_gets_a_syntax_error_and_no_secret_is_logged(
    fe_server: FeProcess, users: None, user: str, password: str
) -> None:
    with Session(fe_server, user, password) as session:
        for sql, near in STATEMENTS:
            errno, message = session.error(sql)
            assert errno == 1064, (sql, errno, message)
            if near is not None:
                assert f"near '{near}'" in message, message
            assert session.rows("SELECT 1") == [(1,)]
    # The same through Connector/Python.
    outcome = connector_pure(fe_server.host, fe_server.port, user, password, statements=(STATEMENTS[0][0],))
    assert outcome.errno == 1064, outcome
    with Session(fe_server, "root", ROOT_PASSWORD) as root:
        accounts = {row[0] for row in root.rows("SHOW USERS")}
        assert "'sec_adm'@'%'" in accounts and "'sec_evil'@'%'" not in accounts
    # The old password still works: nothing after the first statement ran.
    with Session(fe_server, "sec_adm", "Sec-adm-1") as adm:
        assert adm.rows("SELECT CURRENT_USER()") == [("sec_adm@%",)]
    time.sleep(0.2)  # let the log reader catch up
    log = fe_server.log
    assert PASSWORD not in log
    for part in TOKEN.split("."):
        assert part not in log
    assert "Traceback" not in log
