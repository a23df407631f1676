"""SHOW STATUS (the server's counters, through a provider) and SHOW TABLES (fe keeps no tables)."""

from __future__ import annotations

import pytest

from fe.sql import Executor, ResultSet, Session, SqlError
from tests.sql.conftest import rows


async def test_show_status_reads_the_provider_each_time(catalog, settings, root: Session) -> None:
    counters = {"Connections": 1, "Fe_logins_failed": 0}
    executor = Executor(catalog, settings, status=lambda: dict(counters))
    assert await rows(executor, root, "SHOW STATUS") == [["Connections", "1"], ["Fe_logins_failed", "0"]]
    counters["Fe_logins_failed"] = 3
    assert await rows(executor, root, "SHOW GLOBAL STATUS LIKE 'fe\\_%'") == [["Fe_logins_failed", "3"]]
    assert await rows(Executor(catalog, settings), root, "SHOW SESSION STATUS") == []


async def test_show_tables_is_an_empty_list_of_a_real_database(executor: Executor, root: Session) -> None:
    with pytest.raises(SqlError) as no_db:
        await executor.execute(root, "SHOW TABLES")
    assert (no_db.value.code, no_db.value.sqlstate) == (1046, "3D000")
    executor.use_database(root, "sys")
    result = await executor.execute(root, "SHOW TABLES")
    assert isinstance(result, ResultSet) and [c.name for c in result.columns] == ["Tables_in_sys"]
    assert list(result.rows) == []
    full = await executor.execute(root, "SHOW FULL TABLES FROM information_schema LIKE 'x%'")
    assert isinstance(full, ResultSet)
    assert [c.name for c in full.columns] == ["Tables_in_information_schema", "Table_type"]
    with pytest.raises(SqlError) as unknown:
        await executor.execute(root, "SHOW TABLES FROM nowhere")
    assert unknown.value.code == 1049
