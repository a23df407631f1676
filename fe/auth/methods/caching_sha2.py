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

    def check_at_once(
        self, credential: Credential, attempt: LoginAttempt, account: LoginAccount | None, services: LoginServices
    ) -> Verdict | None:
        assert account is not None
        if isinstance(credential, NoPassword):
            return Accepted() if hmac.compare_digest(account.auth_string.encode(), b"") else Unverified("bad_password")
        if isinstance(credential, Scramble):
            if credential.plugin == PLUGIN_CACHING_SHA2 and fast_path_proof(credential, attempt, account, services):
                return Accepted(before_ok=(FAST_AUTH_OK,))
            return Unverified("bad_password")
        return None  # a cleartext password: one hash, off the event loop

    async def check(
        self, credential: Credential, attempt: LoginAttempt, account: LoginAccount | None, services: LoginServices
    ) -> Verdict:
        assert account is not None
        if isinstance(credential, Cleartext):
            if await services.verify_password(credential.password, account.auth_string):
                remember_for_fast_path(credential.password, account, services)
                services.upgrade_password(account, credential.password)
                return Accepted()
            return Unverified("bad_password", hashed=True)
        return Unverified("bad_password")
