"""authentication_jwt / authentication_openid_connect accounts: an ID token, verified against the account's own
keys and rules, from the OpenID Connect client plugin's packet or — over TLS, from any client — as the password.
A token is never taken over plain TCP, and never enters the caching_sha2 fast path (that is for passwords)."""

from __future__ import annotations

from typing import ClassVar

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
from fe.auth.token_spec import TOKEN_PLUGINS


class OpenIdToken(CredentialMethod):
    account_plugins: ClassVar[tuple[str, ...]] = TOKEN_PLUGINS

    def check_at_once(
        self, credential: Credential, attempt: LoginAttempt, account: LoginAccount | None, services: LoginServices
    ) -> Verdict | None:
        """Everything but the token itself: an account or a connection that takes no token, or no token sent."""
        assert account is not None
        if account.token_spec is None:
            return Unverified("bad_account", "the account's token settings are unreadable")
        if not attempt.secure:
            return Unverified("insecure_transport", f"{account.plugin} accepts tokens only over TLS")
        if isinstance(credential, TokenPacket) or (isinstance(credential, Cleartext) and credential.password):
            return None  # a token: its signature is checked
        return Unverified("token_missing", "no token was sent")

    async def check(
        self, credential: Credential, attempt: LoginAttempt, account: LoginAccount | None, services: LoginServices
    ) -> Verdict:
        assert account is not None and account.token_spec is not None  # check_at_once refused the rest
        spec = account.token_spec
        if isinstance(credential, TokenPacket):
            unpacked = unpack_token(credential, services.max_token_bytes)
            if isinstance(unpacked, Unverified):
                return unpacked
            token = unpacked
        else:
            assert isinstance(credential, Cleartext)
            if not (services.token_as_password and spec.token_as_password):
                return Unverified("password_for_token_user", "this account logs in with a token, not a password")
            token = credential.password
        try:
            claims = await services.tokens.verify(token, attempt.user, spec)
        except TokenRejected as exc:
            if exc.signature_verified:
                return Refused(exc.reason, exc.message)
            return Unverified(exc.reason, exc.message)
        return Accepted(claims=claims)
