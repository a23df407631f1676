"""The services the authentication methods are handed (fe/auth/methods/base.py LoginServices), made from this
process's catalog, token verifier, settings and TLS material: the I/O and the threads live here, not in the
methods."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fe.auth import passwords
from fe.auth.groups import GroupResolver
from fe.auth.login import Authenticator, DomainCheck
from fe.auth.methods import LoginAccount, LoginServices, TokenChecker
from fe.catalog import CatalogError
from fe.catalog.backends import CatalogBackend
from fe.config import Settings
from fe.server.tls import TlsMaterial

log = logging.getLogger("fe.login")


class PasswordUpgrades:
    """After a full authentication, an outdated verifier (PBKDF2, or argon2id with old parameters) is replaced by
    a current one in the background: the login does not wait for the hash or the catalog write."""

    def __init__(self, catalog: CatalogBackend) -> None:
        self._catalog = catalog
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, account: LoginAccount, password: bytes) -> None:
        if not passwords.needs_rehash(account.auth_string):
            return
        task = asyncio.get_running_loop().create_task(self._upgrade(account, password))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _upgrade(self, account: LoginAccount, password: bytes) -> None:
        try:
            text = password.decode("utf-8")
        except UnicodeDecodeError:
            return  # hash_password takes text; such a password keeps its old verifier
        try:
            new = await passwords.hash_password_async(text)
            replaced = await asyncio.to_thread(
                self._catalog.replace_password_hash, account.name, account.host, account.auth_string, new
            )
        except CatalogError as exc:
            log.warning("could not upgrade the password verifier of %s@%s: %s", account.name, account.host, exc)
            return  # the next full authentication tries again
        if replaced:
            log.info("upgraded the password verifier of %s@%s to argon2id", account.name, account.host)


def _group_resolver(
    settings: Settings,
) -> Callable[[tuple[Any, ...], str, Mapping[str, Any] | None], Awaitable[frozenset[str]]]:
    resolver = GroupResolver(settings.conf_dir)

    async def resolve(providers: tuple[Any, ...], user: str, claims: Mapping[str, Any] | None) -> frozenset[str]:
        if all(getattr(provider, "type", "") == "jwt" for provider in providers):
            return resolver.resolve_groups(providers, user, claims)  # the token's own claims: no I/O
        return await asyncio.to_thread(resolver.resolve_groups, providers, user, claims)

    return resolve


def make_authenticator(
    catalog: CatalogBackend, tokens: TokenChecker, tls: TlsMaterial, settings: Settings, domains: DomainCheck | None
) -> Authenticator:
    services = LoginServices(
        tokens=tokens,
        verify_password=passwords.verify_password_async,
        upgrade_password=PasswordUpgrades(catalog),
        rsa_public_pem=tls.rsa_public_pem,
        decrypt_password=tls.decrypt_password,
        decoy_verifier=passwords.hash_password(os.urandom(16).hex()),
        max_token_bytes=settings.max_token_bytes,
        token_as_password=settings.token_as_password,
        full_error_detail=settings.login_error_detail == "full",
        resolve_groups=_group_resolver(settings),
    )
    return Authenticator(catalog, services, domains, security=catalog)
