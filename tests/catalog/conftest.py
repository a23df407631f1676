from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fe.catalog import Catalog


@pytest.fixture
def catalog_path(tmp_path: Path) -> Path:
    return tmp_path / "meta" / "catalog.db"


@pytest.fixture
def catalog(catalog_path: Path) -> Iterator[Catalog]:
    with Catalog.open(catalog_path, root_password="secret") as opened:
        yield opened
