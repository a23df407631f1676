"""authentication_jwt / authentication_openid_connect: the OpenID Connect client plugin sends
`[0x01][length-encoded ID token]`, over TLS only; the token is verified against the account's own keys and rules."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import ClassVar

from fe.auth.errors import TokenRejected
from fe.auth.methods.base import Accept, LoginAccount, LoginAttempt, LoginDenied, LoginServices, Step, switch_request
from fe.auth.token_spec import TOKEN_PLUGINS
from fe.mysql import messages
from fe.mysql.codec import MalformedPacket
from fe.mysql.constants import PLUGIN_OIDC_CLIENT
from fe.mysql.errors import ErrorCode

_PACKET_OVERHEAD = 16  # the capability byte and the length prefix around the token


class OpenIdToken:
    account_plugins: ClassVar[tuple[str, ...]] = TOKEN_PLUGINS
    takes_token_packet: ClassVar[bool] = True

    async def exchange(
        self, attempt: LoginAttempt, account: LoginAccount | None, services: LoginServices
    ) -> AsyncGenerator[Step, bytes]:
        if account is None:
            raise LoginDenied("unknown_user")
        attempt.plugin = account.plugin
        spec = account.token_spec
        if spec is None:
            raise LoginDenied("bad_account", "the account's token settings are unreadable")
        if not attempt.secure:
            raise LoginDenied(
                "insecure_transport",
                code=ErrorCode.SECURE_TRANSPORT_REQUIRED,
                message="Connections using insecure transport are prohibited: "
                f"{account.plugin} accepts tokens only over TLS",
            )
        if attempt.client_plugin == PLUGIN_OIDC_CLIENT and attempt.auth_response:
            payload = attempt.auth_response
        elif attempt.auth_response not in (b"", b"\x00"):
            raise LoginDenied("password_for_token_user", "this account logs in with a token, not a password")
        else:
            payload = attempt.received((yield switch_request(PLUGIN_OIDC_CLIENT, attempt)))
            attempt.plugin = account.plugin
        if len(payload) > services.max_token_bytes + _PACKET_OVERHEAD:
            raise LoginDenied("too_large", f"token larger than {services.max_token_bytes} bytes")
        try:
            token = messages.parse_token_packet(payload)
        except MalformedPacket as exc:
            raise LoginDenied("malformed", f"malformed token packet: {exc}") from None
        attempt.sent_credentials = True
        try:
            claims = await services.tokens.verify(token, attempt.user, spec)
        except TokenRejected as exc:
            raise LoginDenied(exc.reason, exc.message) from None
        yield Accept(claims=claims)
