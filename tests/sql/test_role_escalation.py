"""Only root may give the role root, by any path: CREATE USER … DEFAULT ROLE, GRANT to a user, GRANT to a role,
ALTER USER … DEFAULT ROLE; named directly (any quoting) or held through role-to-role grants. Nor may anyone but
root take over an account that holds root (its password, its authentication, dropping it)."""

from __future__ import annotations

import pytest

from fe.catalog import Catalog
from fe.sql import Executor, Session
from tests.sql.conftest import error, run, session_for

DEPUTY = "CREATE USER deputy IDENTIFIED BY 'Deputy-pw-1' DEFAULT ROLE user_admin"


@pytest.fixture
async def deputy(executor: Executor, root: Session) -> Session:
    """A member of user_admin who is not root, and a role `ops` that root made hold root."""
    await run(executor, root, DEPUTY, "CREATE ROLE ops", "GRANT root TO ROLE ops")
    await run(executor, root, "CREATE ROLE plain_role", "CREATE ROLE other_role")
    await run(executor, root, "CREATE ROLE outer_ops", "GRANT ops TO ROLE outer_ops")
    await run(executor, root, "CREATE USER bystander")
    return session_for("deputy")


ESCALATIONS = [
    # CREATE USER … DEFAULT ROLE: the path that used to skip the check.
    "CREATE USER evil IDENTIFIED BY 'e' DEFAULT ROLE root",
    "CREATE USER evil IDENTIFIED BY 'e' DEFAULT ROLE 'root'",
    "CREATE USER evil IDENTIFIED BY 'e' DEFAULT ROLE \"root\"",
    "CREATE USER evil IDENTIFIED BY 'e' DEFAULT ROLE `root`",
    "CREATE USER evil DEFAULT ROLE plain_role, root",
    "CREATE USER IF NOT EXISTS evil DEFAULT ROLE root",
    "CREATE USER evil DEFAULT ROLE ops",  # holds root through GRANT root TO ROLE ops
    "CREATE USER evil DEFAULT ROLE outer_ops",  # two steps away
    # GRANT to a user, directly and through inheritance.
    "GRANT root TO bystander",
    "GRANT ROOT TO bystander",
    "GRANT ops TO bystander",
    "GRANT outer_ops TO USER deputy",
    # GRANT to a role: every holder of plain_role would hold root.
    "GRANT root TO ROLE plain_role",
    "GRANT ops TO ROLE plain_role",
    "GRANT other_role, outer_ops TO ROLE plain_role",
]


@pytest.mark.parametrize("statement", ESCALATIONS)
async def test_no_path_gives_root_to_a_user_admin(
    executor: Executor, root: Session, catalog: Catalog, deputy: Session, statement: str
) -> None:
    before = (catalog.list_accounts(), catalog.list_roles(), catalog.roles_of_role("plain_role"))
    failure = await error(executor, deputy, statement)
    assert (failure.code, failure.sqlstate) == (1227, "42000"), failure.message
    assert "only root may" in failure.message
    assert (catalog.list_accounts(), catalog.list_roles(), catalog.roles_of_role("plain_role")) == before
    assert catalog.get_account("evil", "%") is None
    # Root itself may (given a role that exists).
    if "ROOT" not in statement:
        await executor.execute(root, statement)


async def test_alter_user_default_role_follows_the_same_rule(
    executor: Executor, root: Session, catalog: Catalog, deputy: Session
) -> None:
    await run(executor, root, "GRANT ops TO bystander")  # root's own doing
    for statement in ("ALTER USER bystander DEFAULT ROLE ops", "ALTER USER bystander DEFAULT ROLE ALL"):
        failure = await error(executor, deputy, statement)
        assert failure.code == 1227 and "only root may" in failure.message, statement
    account = catalog.get_account("bystander", "%")
    assert account is not None and account.default_roles == ()
    await run(executor, root, "ALTER USER bystander DEFAULT ROLE ops")


async def test_accounts_that_hold_root_are_roots_business(
    executor: Executor, root: Session, catalog: Catalog, deputy: Session
) -> None:
    await run(executor, root, "CREATE USER ops_member IDENTIFIED BY 'Ops-pw-1'", "GRANT outer_ops TO ops_member")
    stored = catalog.get_account("ops_member", "%")
    for statement in (
        "ALTER USER ops_member IDENTIFIED BY 'taken-over'",
        'ALTER USER ops_member IDENTIFIED WITH authentication_jwt AS \'{"jwks_url": "evil.jwks"}\'',
        "SET PASSWORD FOR ops_member = 'taken-over'",
        "DROP USER ops_member",
    ):
        failure = await error(executor, deputy, statement)
        assert failure.code == 1227 and "only root may" in failure.message, statement
    assert catalog.get_account("ops_member", "%") == stored
    # Accounts that do not hold root stay the user admins' business.
    await run(executor, deputy, "ALTER USER bystander IDENTIFIED BY 'fine'", "GRANT plain_role TO bystander")
    await run(executor, deputy, "CREATE USER helper DEFAULT ROLE plain_role", "GRANT plain_role TO ROLE outer_ops")


async def test_roles_named_like_built_in_roles_in_another_case_are_refused(
    executor: Executor, root: Session, deputy: Session
) -> None:
    for name in ("ROOT", "Root", "USER_ADMIN", "Public"):
        for session in (deputy, root):
            failure = await error(executor, session, f"CREATE ROLE {name}")
            assert failure.code == 1396 and "built-in" in failure.message, (name, failure.message)
