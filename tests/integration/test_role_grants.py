"""Role-to-role grants through real clients, with the StarRocks documentation's statements."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT_PASSWORD
from tests.support.clients import ALL_CLIENTS
from tests.support.server import FeProcess


@pytest.mark.parametrize("client", ["pymysql", "mariadb_cli"])
def test_grant_role_to_role_and_show_grants_for_role(fe_server: FeProcess, client: str) -> None:
    parent, child = f"example_role_{client}", f"test_role_{client}"
    outcome = ALL_CLIENTS[client](
        fe_server.host,
        fe_server.port,
        "root",
        ROOT_PASSWORD,
        statements=(
            f"CREATE ROLE {parent}",
            f"CREATE ROLE {child}",
            f"GRANT {parent} TO ROLE {child}",
            f"SHOW GRANTS FOR ROLE {child}",
            f"REVOKE {parent} FROM ROLE {child}",
            f"SHOW GRANTS FOR ROLE {child}",
        ),
    )
    assert outcome.ok, outcome.message
    assert [list(map(str, row)) for row in outcome.rows[3]] == [
        [child, "None" if client == "pymysql" else "NULL", f"GRANT '{parent}' TO ROLE '{child}'"]
    ]
    assert outcome.rows[5] == []
