"""StarRocks' domain identities, 'name'@['domain']: matched against the addresses the domain resolves to."""

from __future__ import annotations

from tests.conftest import root_connection, root_execute
from tests.support.clients import ALL_CLIENTS
from tests.support.server import FeProcess


def test_domain_identity_matches_its_resolved_addresses(fe_server: FeProcess) -> None:
    root_execute(
        fe_server,
        "CREATE USER 'dom'@'%' IDENTIFIED BY 'Anywhere-pw'",
        "CREATE USER 'dom'@['localhost'] IDENTIFIED BY 'Localhost-pw'",
    )
    login = ALL_CLIENTS["pymysql"](fe_server.host, fe_server.port, "dom", "Localhost-pw", statements=("SHOW USER",))
    assert login.ok, login.message
    assert login.rows[0][0][0] == "'dom'@['localhost']"
    # From 127.0.0.1 the domain identity is more specific than '%': the '%' password does not get in.
    assert ALL_CLIENTS["pymysql"](fe_server.host, fe_server.port, "dom", "Anywhere-pw").errno == 1045
    root_execute(fe_server, "DROP USER 'dom'@['localhost']")
    assert ALL_CLIENTS["pymysql"](fe_server.host, fe_server.port, "dom", "Anywhere-pw").ok


def test_the_documentation_example_verbatim(fe_server: FeProcess) -> None:
    # One session for all of it: a later login would make the server look example_domain up, and tests send
    # nothing beyond this machine, DNS included.
    connection = root_connection(fe_server)
    try:
        with connection.cursor() as cursor:
            cursor.execute("CREATE USER 'jack'@['example_domain'] IDENTIFIED BY '12345';")
            cursor.execute("SHOW USERS")
            assert ("'jack'@['example_domain']",) in cursor.fetchall()
            cursor.execute("SHOW AUTHENTICATION FOR 'jack'@['example_domain']")
            assert cursor.fetchall()[0][:2] == ("'jack'@['example_domain']", "Yes")
            cursor.execute("DROP USER 'jack'@['example_domain']")
    finally:
        connection.close()
