"""The services the authentication methods are handed (fe/auth/methods/base.py LoginServices), made from this
process's catalog, token verifier and TLS material: the I/O and the threads live here, not in the methods."""

from __future__ import annotations

import asyncio
import logging
import os

from fe.auth import passwords
from fe.auth.login import Authenticator, DomainCheck
from fe.auth.methods import LoginAccount, LoginServices, TokenChecker
from fe.catalog import Catalog
from fe.config import Settings
from fe.server.tls import TlsMaterial

log = logging.getLogger("fe.login")


async def verify_password(password: bytes, stored: str) -> bool:
    """A password hash costs milliseconds of CPU: never on the event loop."""
    return await asyncio.to_thread(passwords.verify_password, password, stored)


def make_authenticator(
    catalog: Catalog, tokens: TokenChecker, tls: TlsMaterial, settings: Settings, domains: DomainCheck | None
) -> Authenticator:
    services = LoginServices(
        tokens=tokens,
        verify_password=verify_password,
        upgrade_password=lambda account, password: None,
        rsa_public_pem=tls.rsa_public_pem,
        decrypt_password=tls.decrypt_password,
        decoy_verifier=passwords.hash_password(os.urandom(16).hex()),
        max_token_bytes=settings.max_token_bytes,
    )
    return Authenticator(catalog, services, domains)


__all__ = ["LoginAccount", "make_authenticator", "verify_password"]
