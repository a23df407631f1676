"""The README's security integration example runs as written, statement by statement."""

from __future__ import annotations

import re
from pathlib import Path

from fe.catalog import Catalog
from fe.config import Settings
from fe.sql import Executor, Session
from tests.sql.conftest import run

README = Path(__file__).resolve().parents[2] / "README.md"


def example() -> list[str]:
    section = README.read_text(encoding="utf-8").split("## Security integrations, the authentication chain", 1)[1]
    block = re.search(r"```sql\n(.*?)```", section, re.DOTALL)
    assert block is not None
    return [statement.strip() for statement in block.group(1).split(";") if statement.strip()]


async def test_readme_example(executor: Executor, root: Session, catalog: Catalog, settings: Settings) -> None:
    (settings.conf_dir / "groups.txt").write_text("dba:tom\nanalysts:tom,ann\n")
    statements = example()
    assert len(statements) == 7
    await run(executor, root, *statements)
    corp = catalog.get_integration("corp")
    assert corp is not None and corp.group_providers == ("corp_files", "corp_claims")
    assert catalog.authentication_chain() == ("native", "corp")
    assert catalog.roles_of_external_groups(["dba"]) == {"dba": {"analyst", "user_admin"}}
