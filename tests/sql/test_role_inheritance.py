"""GRANT r TO ROLE r2 / REVOKE r FROM ROLE r2 / SHOW GRANTS FOR ROLE: privileges follow inherited roles."""

from __future__ import annotations

import pytest

from fe.sql import Executor, Session, SqlError
from tests.sql.conftest import rows, session_for


async def run(executor: Executor, session: Session, *statements: str) -> None:
    for statement in statements:
        await executor.execute(session, statement)


async def test_inherited_user_admin_is_a_privilege(executor: Executor, root: Session) -> None:
    bob = session_for("bob")
    await run(
        executor,
        root,
        "CREATE ROLE example_role",
        "CREATE ROLE test_role",
        "CREATE USER bob",
        "GRANT example_role TO ROLE test_role;",
        "GRANT test_role TO USER bob",
    )
    assert await rows(executor, root, "SHOW GRANTS FOR ROLE test_role") == [
        ["test_role", None, "GRANT 'example_role' TO ROLE 'test_role'"]
    ]
    with pytest.raises(SqlError) as refused:
        await executor.execute(bob, "CREATE USER x")
    assert refused.value.code == 1227
    await run(executor, root, "GRANT user_admin TO ROLE example_role")  # bob → test_role → example_role → user_admin
    await executor.execute(bob, "CREATE USER x")
    # SHOW GRANTS for the user lists what was granted to it directly, as StarRocks does.
    assert await rows(executor, root, "SHOW GRANTS FOR bob") == [["'bob'@'%'", None, "GRANT 'test_role' TO 'bob'@'%'"]]
    await run(executor, root, "REVOKE user_admin FROM ROLE example_role")
    with pytest.raises(SqlError):
        await executor.execute(bob, "CREATE USER y")


async def test_cycles_unknown_roles_and_notes(executor: Executor, root: Session) -> None:
    await run(
        executor, root, "CREATE ROLE a", "CREATE ROLE b", "CREATE ROLE c", "GRANT a TO ROLE b", "GRANT b TO ROLE c"
    )
    for statement in ("GRANT c TO ROLE a", "GRANT a TO ROLE a"):
        with pytest.raises(SqlError) as cycle:
            await executor.execute(root, statement)
        assert cycle.value.code == 1210 and "cycle" in cycle.value.message
    for statement in ("GRANT nope TO ROLE a", "GRANT a TO ROLE nope", "SHOW GRANTS FOR ROLE nope"):
        with pytest.raises(SqlError) as unknown:
            await executor.execute(root, statement)
        assert unknown.value.code == 3523
    await run(executor, root, "REVOKE c FROM ROLE a")
    assert await rows(executor, root, "SHOW WARNINGS") == [["Note", 3530, "`c`@`%` is not granted to role 'a'"]]
    await run(executor, root, "DROP ROLE a")
    assert await rows(executor, root, "SHOW GRANTS FOR ROLE b") == []
    with pytest.raises(SqlError) as refused:
        await executor.execute(session_for("nobody"), "SHOW GRANTS FOR ROLE b")
    assert refused.value.code == 1227
