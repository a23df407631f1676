"""caching_sha2_password accounts, as MySQL runs them: a scramble checked against the in-memory fast-path entry
of a user who did a full authentication; else the cleartext password against the stored verifier (one hash)."""

from __future__ import annotations

import hmac
from typing import ClassVar

from fe.auth.methods.base import LoginAccount, LoginAttempt, LoginServices
from fe.auth.methods.front_door import (
    FAST_AUTH_OK,
    Accepted,
    Cleartext,
    Credential,
    CredentialMethod,
    NoPassword,
    Scramble,
    Unverified,
    Verdict,
    fast_path_proof,
    remember_for_fast_path,
)
from fe.mysql.constants import PLUGIN_CACHING_SHA2


class CachingSha2Password(CredentialMethod):
    account_plugins: ClassVar[tuple[str, ...]] = (PLUGIN_CACHING_SHA2,)

    async def check(
        self, credential: Credential, attempt: LoginAttempt, account: LoginAccount | None, services: LoginServices
    ) -> Verdict:
        assert account is not None
        stored = account.auth_string
        if isinstance(credential, NoPassword):
            return Accepted() if hmac.compare_digest(stored.encode(), b"") else Unverified("bad_password")
        if isinstance(credential, Scramble) and credential.plugin == PLUGIN_CACHING_SHA2:
            if fast_path_proof(credential, attempt, account, services):
                return Accepted(before_ok=(FAST_AUTH_OK,))
        elif isinstance(credential, Cleartext):
            if await services.verify_password(credential.password, stored):
                remember_for_fast_path(credential.password, account, services)
                services.upgrade_password(account, credential.password)
                return Accepted()
            return Unverified("bad_password", hashed=True)
        return Unverified("bad_password")
