"""A name that is no account in the catalog: its token is tried against each security integration of the
authentication chain, in order. The first integration whose keys verify the token's signature decides: its issuer,
audience and principal checks then apply, and its reason is the one reported. The exchange is the front door's,
as for every other name, so a stranger still learns nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Protocol

from fe.auth.errors import TokenRejected
from fe.auth.methods.base import LoginAccount, LoginAttempt, LoginServices
from fe.auth.methods.front_door import (
    Accepted,
    Cleartext,
    Credential,
    CredentialMethod,
    Refused,
    TokenPacket,
    Unverified,
    Verdict,
    unpack_token,
)
from fe.auth.token_spec import TokenAuthSpec


class Integration(Protocol):
    """What a login needs of a security integration (fe/catalog/integration.py SecurityIntegration)."""

    @property
    def name(self) -> str: ...

    @property
    def spec(self) -> TokenAuthSpec: ...


class IntegrationChain(CredentialMethod):
    account_plugins: ClassVar[tuple[str, ...]] = ()

    def __init__(self, integrations: Sequence[Integration]) -> None:
        self.integrations = tuple(integrations)

    async def check(
        self, credential: Credential, attempt: LoginAttempt, account: LoginAccount | None, services: LoginServices
    ) -> Verdict:
        if not attempt.secure:
            return Unverified("unknown_user", "tokens are taken only over TLS")
        if isinstance(credential, TokenPacket):
            unpacked = unpack_token(credential, services.max_token_bytes)
            if isinstance(unpacked, Unverified):
                return Unverified("unknown_user", unpacked.detail)  # a stranger's: logged as unknown
            token = unpacked
        elif isinstance(credential, Cleartext) and credential.password and services.token_as_password:
            token = credential.password
        else:
            return Unverified("unknown_user")
        tried = []
        for integration in self.integrations:
            try:
                claims = await services.tokens.verify(token, attempt.user, integration.spec)
            except TokenRejected as exc:
                if exc.signature_verified:  # this integration's keys vouch for the token: it decides
                    return Refused(exc.reason, exc.message, integration=integration.name)
                tried.append(f"{integration.name}: {exc.reason}")
                continue
            attempt.plugin = f"integration:{integration.name}"
            return Accepted(claims=claims, integration=integration.name)
        detail = "; ".join(tried) if tried else "no security integration in authentication_chain"
        return Unverified("unknown_user", f"no account, and no integration verified the token ({detail})")
