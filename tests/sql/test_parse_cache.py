"""Repeated session statements are parsed once; results still follow the session, and passwords are not kept."""

from __future__ import annotations

from fe.sql import Executor, Session
from tests.sql.conftest import rows, session_for


async def test_cached_statements_still_read_the_current_session(executor: Executor, root: Session) -> None:
    other = session_for("root", client="10.0.0.1", connection_id=99)
    assert await rows(executor, root, "SELECT @@autocommit, CONNECTION_ID()") == [[1, 7]]
    await executor.execute(root, "SET autocommit = 0")
    assert await rows(executor, root, "SELECT @@autocommit, CONNECTION_ID()") == [[0, 7]]
    assert await rows(executor, other, "SELECT @@autocommit, CONNECTION_ID()") == [[1, 99]]


async def test_account_statements_are_not_remembered(executor: Executor, root: Session) -> None:
    statement = "CREATE USER cached IDENTIFIED BY 'Secret-pw-9'"
    await executor.execute(root, statement)
    await executor.execute(root, "SELECT 1")
    assert "SELECT 1" in executor._parsed
    # The only text cached is "SELECT 1": none holds the password (the cache, a BoundedLRU, is not iterable).
    assert len(executor._parsed) == 1 and statement not in executor._parsed
