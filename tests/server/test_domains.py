"""DomainResolver against a real catalog; the resolver's failures are faked (no DNS leaves this machine)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from fe.auth.passwords import hash_password
from fe.catalog import Catalog, Credentials
from fe.server.domains import DomainResolver

ANSWERS = {"db.example": ["10.0.0.7", "::ffff:10.0.0.8"]}


@pytest.fixture
async def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    answers = dict(ANSWERS)

    async def getaddrinfo(host: str, port: object, **_: object) -> list[tuple]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, 0)) for address in answers[host]]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    return answers


async def test_resolution_follows_the_catalog(tmp_path: Path, fake_dns: dict[str, list[str]]) -> None:
    with Catalog.open(tmp_path / "catalog.db") as catalog:
        resolver = DomainResolver(catalog, refresh_seconds=3600)
        catalog.set_domain_resolver(resolver.addresses, lambda: resolver.version)
        credentials = Credentials("caching_sha2_password", hash_password("pw"), "CACHING_SHA2_PASSWORD")
        catalog.create_user("app", "[db.example]", credentials)
        catalog.create_user("app", "[gone.example]", credentials)
        assert catalog.find_login_account("app", "10.0.0.8") is None  # not resolved yet

        await resolver.catch_up()
        assert resolver.addresses("db.example") == {"10.0.0.7", "10.0.0.8"}
        assert resolver.addresses("gone.example") == frozenset()  # failed lookup: matches nothing
        account = catalog.find_login_account("app", "10.0.0.8")
        assert account is not None and account.host == "[db.example]"

        # A failed lookup later keeps what the domain had; a dropped identity's domain is forgotten.
        del fake_dns["db.example"]
        await resolver._resolve("db.example")
        assert resolver.addresses("db.example") == {"10.0.0.7", "10.0.0.8"}
        catalog.drop_user("app", "[db.example]")
        await resolver.catch_up()
        assert resolver.addresses("db.example") == frozenset()
        assert catalog.find_login_account("app", "10.0.0.8") is None


class _StopLogin(Exception):
    pass


async def test_a_login_reads_the_change_marker_again_after_resolving_domains() -> None:
    """The marker a login reads first goes to the domain check; once domains were resolved (an await, during which
    the catalog may move on), the account lookup gets a marker read afterwards, never the stale one."""
    from types import SimpleNamespace

    from fe.auth.login import Authenticator

    class Accounts:
        def __init__(self) -> None:
            self.markers = iter([(1, 0), (2, 0)])
            self.data_versions: list[int | None] = []

        def change_marker(self) -> tuple[int, int]:
            return next(self.markers)

        def find_login_account(self, name: str, client_ip: str, data_version: int | None = None) -> None:
            self.data_versions.append(data_version)
            raise _StopLogin

    class Domains:
        def __init__(self) -> None:
            self.checked: list[tuple[int, int]] = []
            self.catch_ups = 0

        def is_current(self, marker: tuple[int, int]) -> bool:
            self.checked.append(marker)
            return False

        async def catch_up(self) -> None:
            self.catch_ups += 1

    accounts, domains = Accounts(), Domains()
    authenticator = Authenticator(accounts, None, domains)  # type: ignore[arg-type]
    with pytest.raises(_StopLogin):
        await authenticator.find_account(SimpleNamespace(user="app", client_host="10.0.0.8"))  # type: ignore[arg-type]
    assert domains.checked == [(1, 0)] and domains.catch_ups == 1
    assert accounts.data_versions == [2]
