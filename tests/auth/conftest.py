from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from fe.auth.verifier import TokenVerifier
from fe.config import Settings
from tests.auth.jose_helpers import FakeClock
from tests.auth.jwks_server import JwksServer, make_tls_material


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "conf").mkdir()
    (tmp_path / "meta").mkdir()
    return tmp_path


@pytest.fixture
def settings(home: Path) -> Settings:
    return Settings(home=home, jwks_fetch_timeout_seconds=1.0)


@pytest.fixture
async def make_verifier(clock: FakeClock, home: Path) -> AsyncIterator[Callable[..., TokenVerifier]]:
    """make_verifier(**setting_overrides) → a TokenVerifier on the fake clock, closed after the test."""
    made: list[TokenVerifier] = []

    def make(**overrides: Any) -> TokenVerifier:
        values: dict[str, Any] = {"jwks_fetch_timeout_seconds": 1.0, **overrides}
        verifier = TokenVerifier(Settings(home=home, **values), clock=clock)
        made.append(verifier)
        return verifier

    yield make
    for verifier in made:
        await verifier.aclose()


@pytest.fixture
async def verifier(make_verifier: Callable[..., TokenVerifier]) -> TokenVerifier:
    return make_verifier()


@pytest.fixture
async def jwks_server() -> AsyncIterator[JwksServer]:
    server = JwksServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def tls_jwks_server(home: Path) -> AsyncIterator[JwksServer]:
    context, _ca_file = make_tls_material(home / "conf" / "tls")
    server = JwksServer(context)
    await server.start()
    yield server
    await server.stop()
