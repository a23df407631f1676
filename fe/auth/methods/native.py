"""mysql_native_password accounts: a native scramble SHA1(pw) XOR SHA1(nonce ‖ SHA1(SHA1(pw))) proves the
password; a cleartext password (over TLS, or RSA-encrypted) is checked against SHA1(SHA1(pw)) as well."""

from __future__ import annotations

import hashlib
import hmac
from typing import ClassVar

from fe.auth import passwords
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
from fe.mysql.constants import PLUGIN_CACHING_SHA2, PLUGIN_NATIVE


class NativePassword(CredentialMethod):
    account_plugins: ClassVar[tuple[str, ...]] = (PLUGIN_NATIVE,)

    def check_at_once(
        self, credential: Credential, attempt: LoginAttempt, account: LoginAccount | None, services: LoginServices
    ) -> Verdict:
        """Every native check is at once: SHA1s, no password hash to wait for."""
        assert account is not None
        stored = account.auth_string
        if isinstance(credential, NoPassword):
            return Accepted() if stored == "" else Unverified("bad_password")
        if isinstance(credential, Scramble) and credential.plugin == PLUGIN_NATIVE:
            if passwords.verify_native_scramble(credential.proof, attempt.nonce, stored):
                return Accepted()
        elif isinstance(credential, Scramble) and credential.plugin == PLUGIN_CACHING_SHA2:
            if fast_path_proof(credential, attempt, account, services):
                return Accepted(before_ok=(FAST_AUTH_OK,))
        elif isinstance(credential, Cleartext) and _matches(credential.password, stored):
            remember_for_fast_path(credential.password, account, services)
            return Accepted()
        return Unverified("bad_password")


def _matches(password: bytes, stored: str) -> bool:
    """A cleartext password against the stored `*` + hex SHA1(SHA1(pw)), in constant time."""
    computed = b"*" + hashlib.sha1(hashlib.sha1(password).digest()).hexdigest().upper().encode()
    return bool(stored) and hmac.compare_digest(computed, stored.upper().encode())
