"""caching_sha2_password, as MySQL runs it: a scramble checked against an in-memory fast-path entry, else a full
authentication in which the client sends its password in cleartext over TLS, or RSA-encrypted over plain TCP.

An unknown user (account None) goes through the same exchange and pays the same hash as a wrong password, so
neither the packets nor their timing tell a stranger whether the account exists.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncGenerator
from typing import ClassVar

from fe.auth import passwords
from fe.auth.methods.base import (
    Accept,
    LoginAccount,
    LoginAttempt,
    LoginDenied,
    LoginServices,
    Step,
    strip_nul,
    switch_request,
)
from fe.mysql import messages
from fe.mysql.constants import PLUGIN_CACHING_SHA2

FAST_AUTH_OK = messages.auth_more_data(b"\x03")
PERFORM_FULL_AUTH = messages.auth_more_data(b"\x04")
REQUEST_PUBLIC_KEY = b"\x02"


class CachingSha2Password:
    account_plugins: ClassVar[tuple[str, ...]] = (PLUGIN_CACHING_SHA2,)
    takes_token_packet: ClassVar[bool] = False

    async def exchange(
        self, attempt: LoginAttempt, account: LoginAccount | None, services: LoginServices
    ) -> AsyncGenerator[Step, bytes]:
        attempt.plugin = PLUGIN_CACHING_SHA2
        response = attempt.auth_response
        if attempt.client_plugin != PLUGIN_CACHING_SHA2:
            response = attempt.received((yield switch_request(PLUGIN_CACHING_SHA2, attempt)))
        stored = account.auth_string if account is not None else None
        if response in (b"", b"\x00"):
            if stored is not None and hmac.compare_digest(stored.encode(), b""):
                yield Accept()
                return
            raise LoginDenied("bad_password")
        key = (account.name, account.host, account.auth_string) if account is not None else None
        double_hash = services.sha2_fast_path.get(key) if key is not None else None
        if double_hash is not None and passwords.verify_sha2_scramble(response, attempt.nonce, double_hash):
            yield Accept(before_ok=(FAST_AUTH_OK,))
            return
        payload = attempt.received((yield PERFORM_FULL_AUTH))
        if attempt.secure:
            password = strip_nul(payload)
        elif payload != REQUEST_PUBLIC_KEY:
            # A cleartext password over a plain connection: never accept it, whatever it is.
            raise LoginDenied("insecure_password", "send the password over TLS or with the server's RSA key")
        else:
            ciphertext = attempt.received((yield messages.auth_more_data(services.rsa_public_pem)))
            try:
                scrambled = services.decrypt_password(ciphertext)
            except ValueError:
                raise LoginDenied("bad_password") from None
            nonce = attempt.nonce
            password = strip_nul(bytes(b ^ nonce[i % len(nonce)] for i, b in enumerate(scrambled)))
        # An unknown user costs the same hash as a known one, so timing does not tell them apart either.
        checked = stored if stored is not None else services.decoy_verifier
        if not await services.verify_password(password, checked) or account is None or key is None:
            raise LoginDenied("bad_password")
        services.sha2_fast_path.put(key, passwords.sha256_double(password))
        services.upgrade_password(account, password)
        yield Accept()
