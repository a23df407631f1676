from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fe.catalog import Catalog
from fe.config import Settings
from fe.sql import Executor, Result, ResultSet, Session, SqlError


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "conf").mkdir()
    return Settings(home=tmp_path)


@pytest.fixture
def catalog(settings: Settings) -> Iterator[Catalog]:
    with Catalog.open(settings.meta_dir / "catalog.db", root_password="rootpw") as opened:
        yield opened


@pytest.fixture
def executor(catalog: Catalog, settings: Settings) -> Executor:
    return Executor(catalog, settings)


@pytest.fixture
def root() -> Session:
    return Session(connection_id=7, user="root", client_host="127.0.0.1", matched_name="root", matched_host="%")


def session_for(name: str, host: str = "%", client: str = "10.0.0.9", connection_id: int = 8) -> Session:
    return Session(connection_id=connection_id, user=name, client_host=client, matched_name=name, matched_host=host)


async def rows(executor: Executor, session: Session, sql: str) -> list[list[object]]:
    result = await executor.execute(session, sql)
    assert isinstance(result, ResultSet), result
    return [list(row) for row in result.rows]


async def columns(executor: Executor, session: Session, sql: str) -> list[str]:
    result = await executor.execute(session, sql)
    assert isinstance(result, ResultSet), result
    return [column.name for column in result.columns]


async def error(executor: Executor, session: Session, sql: str) -> SqlError:
    with pytest.raises(SqlError) as caught:
        await executor.execute(session, sql)
    return caught.value


async def run(executor: Executor, session: Session, *statements: str) -> Result:
    result: Result | None = None
    for statement in statements:
        result = await executor.execute(session, statement)
    assert result is not None
    return result
