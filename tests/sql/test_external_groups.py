"""GRANT / REVOKE role TO / FROM EXTERNAL GROUP 'g' and SHOW GRANTS FOR EXTERNAL GROUP 'g': the same privilege
rules as any role grant (only root may give root, however held), notes for what was not granted, and a session's
own SHOW GRANTS naming the group each role came from."""

from __future__ import annotations

import pytest

from fe.catalog import Catalog
from fe.sql import Executor, OkResult, Session
from tests.sql.conftest import columns, error, rows, run, session_for


def ephemeral(name: str, *groups: str) -> Session:
    """A session as an integration login makes it: 'name'@'<client address>', no catalog account, some groups."""
    session = session_for(name, "10.0.0.7", "10.0.0.7")
    session.groups = frozenset(groups)
    return session


async def test_grant_show_revoke(executor: Executor, root: Session, catalog: Catalog) -> None:
    await run(executor, root, "CREATE ROLE analyst", "CREATE ROLE reader")
    await run(
        executor, root, "GRANT analyst, reader TO EXTERNAL GROUP 'dba'", "GRANT reader TO EXTERNAL GROUP `/team/ops`"
    )
    assert await columns(executor, root, "SHOW GRANTS FOR EXTERNAL GROUP 'dba'") == [
        "ExternalGroup",
        "Catalog",
        "Grants",
    ]
    assert await rows(executor, root, "SHOW GRANTS FOR EXTERNAL GROUP 'dba'") == [
        ["dba", None, "GRANT 'analyst', 'reader' TO EXTERNAL GROUP 'dba'"]
    ]
    assert await rows(executor, root, "SHOW GRANTS FOR EXTERNAL GROUP '/team/ops'") == [
        ["/team/ops", None, "GRANT 'reader' TO EXTERNAL GROUP '/team/ops'"]
    ]
    assert await rows(executor, root, "SHOW GRANTS FOR EXTERNAL GROUP 'nobody'") == []
    assert await executor.execute(root, "REVOKE analyst, reader FROM EXTERNAL GROUP '/team/ops'") == OkResult(
        warnings=1
    )
    assert await rows(executor, root, "SHOW WARNINGS") == [
        ["Note", 3530, "`analyst`@`%` is not granted to external group '/team/ops'"]
    ]
    assert catalog.roles_of_external_groups(["dba", "/team/ops"]) == {"dba": {"analyst", "reader"}}
    await run(executor, root, "DROP ROLE analyst")
    assert catalog.roles_of_external_groups(["dba"]) == {"dba": {"reader"}}


async def test_unknown_roles_and_bad_group_names(executor: Executor, root: Session, catalog: Catalog) -> None:
    failure = await error(executor, root, "GRANT nope TO EXTERNAL GROUP 'dba'")
    assert (failure.code, failure.message) == (3523, "Unknown authorization ID `nope`@`%`: role 'nope' does not exist")
    for group in ("", " dba", "a\tb", "x" * 257):
        failure = await error(executor, root, f"GRANT public TO EXTERNAL GROUP '{group}'")
        assert failure.code == 1210 and "invalid external group name" in failure.message
    assert catalog.roles_of_external_groups(["dba", " dba"]) == {}


async def test_only_root_gives_root_to_a_group_by_any_path(executor: Executor, root: Session, catalog: Catalog) -> None:
    await run(
        executor,
        root,
        "CREATE USER ua DEFAULT ROLE user_admin",
        "CREATE ROLE holder",
        "GRANT root TO ROLE holder",
    )
    admin = session_for("ua")
    for sql, what in [
        ("GRANT root TO EXTERNAL GROUP 'g'", "grant the role 'root'"),
        ("GRANT holder TO EXTERNAL GROUP 'g'", "grant a role that holds the role 'root'"),
    ]:
        failure = await error(executor, admin, sql)
        assert (failure.code, failure.message) == (1227, f"Access denied; only root may {what}")
    assert catalog.roles_of_external_groups(["g"]) == {}
    await run(executor, root, "GRANT root TO EXTERNAL GROUP 'g'")
    failure = await error(executor, admin, "REVOKE root FROM EXTERNAL GROUP 'g'")
    assert failure.message == "Access denied; only root may revoke the role 'root'"
    await run(executor, root, "REVOKE root FROM EXTERNAL GROUP 'g'")
    # A group member who became a user admin through the group still cannot give root.
    await run(executor, root, "GRANT user_admin TO EXTERNAL GROUP 'admins'")
    failure = await error(executor, ephemeral("tom", "admins"), "GRANT root TO EXTERNAL GROUP 'admins'")
    assert failure.code == 1227


@pytest.mark.parametrize(
    "sql",
    [
        "GRANT public TO EXTERNAL GROUP 'g'",
        "REVOKE public FROM EXTERNAL GROUP 'g'",
        "SHOW GRANTS FOR EXTERNAL GROUP 'g'",
    ],
)
async def test_only_user_admins(executor: Executor, root: Session, catalog: Catalog, sql: str) -> None:
    await run(executor, root, "CREATE USER bob", "CREATE USER ua DEFAULT ROLE user_admin")
    failure = await error(executor, session_for("bob"), sql)
    assert (failure.code, failure.sqlstate) == (1227, "42000")
    assert (await error(executor, ephemeral("eve", "staff"), sql)).code == 1227
    assert catalog.roles_of_external_groups(["g"]) == {}
    await executor.execute(session_for("ua"), sql)


async def test_a_sessions_grants_name_their_groups(executor: Executor, root: Session) -> None:
    await run(
        executor,
        root,
        "CREATE ROLE analyst",
        "CREATE ROLE reader",
        "GRANT reader TO ROLE analyst",
        "GRANT analyst TO EXTERNAL GROUP 'dba'",
        "GRANT reader, public TO EXTERNAL GROUP 'ops'",
        "CREATE USER tom DEFAULT ROLE analyst",
    )
    assert await rows(executor, root, "SHOW GRANTS") == [["'root'@'%'", None, "GRANT 'root' TO 'root'@'%'"]]
    session = ephemeral("ann", "dba", "ops", "staff")
    assert await rows(executor, session, "SHOW GRANTS") == [
        ["'ann'@'10.0.0.7'", None, "GRANT 'analyst' TO EXTERNAL GROUP 'dba'"],
        ["'ann'@'10.0.0.7'", None, "GRANT 'public', 'reader' TO EXTERNAL GROUP 'ops'"],
    ]
    # A catalog account with groups (a token user with a group provider): its own grants first.
    tom = session_for("tom")
    tom.groups = frozenset({"ops"})
    assert await rows(executor, tom, "SHOW GRANTS FOR CURRENT_USER") == [
        ["'tom'@'%'", None, "GRANT 'analyst' TO 'tom'@'%'"],
        ["'tom'@'%'", None, "GRANT 'public', 'reader' TO EXTERNAL GROUP 'ops'"],
    ]
    # Someone else's grants are the account's only: groups belong to sessions.
    assert await rows(executor, root, "SHOW GRANTS FOR tom") == [["'tom'@'%'", None, "GRANT 'analyst' TO 'tom'@'%'"]]


async def test_roles_through_groups_make_user_admins(executor: Executor, root: Session, catalog: Catalog) -> None:
    await run(executor, root, "CREATE ROLE ops", "GRANT user_admin TO ROLE ops", "GRANT ops TO EXTERNAL GROUP 'dba'")
    await run(executor, ephemeral("tom", "dba"), "CREATE USER made_by_a_group")
    assert catalog.get_account("made_by_a_group", "%") is not None
    await run(executor, root, "REVOKE ops FROM EXTERNAL GROUP 'dba'")
    assert (await error(executor, ephemeral("tom", "dba"), "CREATE USER another")).code == 1227
