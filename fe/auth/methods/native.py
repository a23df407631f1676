"""mysql_native_password: the client proves it knows the password with SHA1(pw) XOR SHA1(nonce ‖ SHA1(SHA1(pw)))."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import ClassVar

from fe.auth import passwords
from fe.auth.methods.base import Accept, LoginAccount, LoginAttempt, LoginDenied, LoginServices, Step, switch_request
from fe.mysql.constants import PLUGIN_NATIVE


class NativePassword:
    account_plugins: ClassVar[tuple[str, ...]] = (PLUGIN_NATIVE,)
    takes_token_packet: ClassVar[bool] = False

    async def exchange(
        self, attempt: LoginAttempt, account: LoginAccount | None, services: LoginServices
    ) -> AsyncGenerator[Step, bytes]:
        attempt.plugin = PLUGIN_NATIVE
        response = attempt.auth_response
        if attempt.client_plugin != PLUGIN_NATIVE:
            response = attempt.received((yield switch_request(PLUGIN_NATIVE, attempt)))
        if account is None or not passwords.verify_native_scramble(response, attempt.nonce, account.auth_string):
            raise LoginDenied("bad_password")
        yield Accept()
