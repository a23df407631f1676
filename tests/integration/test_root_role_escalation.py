"""A member of user_admin who is not root cannot give anyone the role root, by any statement, through a real
client: 1227/42000, and nothing is stored."""

from __future__ import annotations

from collections.abc import Iterator

import mysql.connector
import pytest

from tests.conftest import ROOT_PASSWORD
from tests.support.server import FeProcess
from tests.support.sessions import Session

ATTEMPTS = [
    "CREATE USER evil IDENTIFIED BY 'e' DEFAULT ROLE root",
    "CREATE USER evil IDENTIFIED BY 'e' DEFAULT ROLE 'root'",
    "CREATE USER evil IDENTIFIED BY 'e' DEFAULT ROLE `root`",
    "CREATE USER evil IDENTIFIED BY 'e' DEFAULT ROLE esc_ops",
    "GRANT esc_ops TO esc_bystander",
    "GRANT esc_ops TO ROLE esc_plain",
    "ALTER USER esc_holder DEFAULT ROLE esc_ops",
    "ALTER USER esc_holder IDENTIFIED BY 'taken-over'",
    "SET PASSWORD FOR esc_holder = 'taken-over'",
]


@pytest.fixture
def deputy(fe_server: FeProcess) -> Iterator[Session]:
    with Session(fe_server, "root", ROOT_PASSWORD) as root:
        for statement in (
            "CREATE USER esc_deputy IDENTIFIED BY 'Deputy-pw-1' DEFAULT ROLE user_admin",
            "CREATE ROLE esc_ops",
            "GRANT root TO ROLE esc_ops",
            "CREATE ROLE esc_plain",
            "CREATE USER esc_bystander",
            "CREATE USER esc_holder IDENTIFIED BY 'Holder-pw-1'",
            "GRANT esc_ops TO esc_holder",
        ):
            root.run(statement)
        try:
            with Session(fe_server, "esc_deputy", "Deputy-pw-1") as session:
                yield session
        finally:
            for statement in (
                "DROP USER IF EXISTS evil",
                "DROP USER IF EXISTS esc_deputy",
                "DROP USER IF EXISTS esc_bystander",
                "DROP USER IF EXISTS esc_holder",
                "DROP ROLE IF EXISTS esc_ops",
                "DROP ROLE IF EXISTS esc_plain",
            ):
                root.run(statement)


def snapshot(server: FeProcess) -> tuple[object, ...]:
    with Session(server, "root", ROOT_PASSWORD) as root:
        return (
            root.rows("SHOW ALL AUTHENTICATION"),
            root.rows("SHOW ROLES"),
            root.rows("SHOW GRANTS FOR esc_bystander"),
            root.rows("SHOW GRANTS FOR esc_holder"),
            root.rows("SHOW GRANTS FOR ROLE esc_plain"),
        )


def test_user_admin_members_cannot_give_root(fe_server: FeProcess, deputy: Session) -> None:
    before = snapshot(fe_server)
    for statement in ATTEMPTS:
        errno, message = deputy.error(statement)
        assert errno == 1227 and "only root may" in message, (statement, errno, message)
    assert snapshot(fe_server) == before
    # Connector/Python sees the same error and SQLSTATE.
    connection = mysql.connector.connect(
        host=fe_server.host,
        port=fe_server.port,
        user="esc_deputy",
        password="Deputy-pw-1",
        use_pure=True,
        ssl_verify_cert=False,
        connection_timeout=10,
    )
    try:
        cursor = connection.cursor()
        with pytest.raises(mysql.connector.Error) as refused:
            cursor.execute("CREATE USER evil IDENTIFIED BY 'e' DEFAULT ROLE root")
        assert (refused.value.errno, refused.value.sqlstate) == (1227, "42000")
    finally:
        connection.close()
    assert snapshot(fe_server) == before
    # evil never existed: it cannot log in.
    with pytest.raises(Exception, match="1045"):
        Session(fe_server, "evil", "e")
