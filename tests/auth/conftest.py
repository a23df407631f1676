from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from fe.auth.verifier import KeyFetchOptions, TokenVerifier
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
async def make_verifier(clock: FakeClock, home: Path) -> AsyncIterator[Callable[..., TokenVerifier]]:
    """make_verifier(**options) → a TokenVerifier for <home>/conf on the fake clock, closed after the test.

    `options` are KeyFetchOptions fields (fetch_timeout_seconds defaults to 1 s here) and TokenVerifier keywords.
    """
    made: list[TokenVerifier] = []
    fetch_fields = {f.name for f in fields(KeyFetchOptions)}

    def make(**options: Any) -> TokenVerifier:
        fetch = {"fetch_timeout_seconds": 1.0, **{k: v for k, v in options.items() if k in fetch_fields}}
        rest = {k: v for k, v in options.items() if k not in fetch_fields}
        verifier = TokenVerifier(home / "conf", key_fetch=KeyFetchOptions(**fetch), clock=clock, **rest)
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
