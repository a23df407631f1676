"""The one exchange every built-in method runs, whatever the account: strangers learn nothing from it.

Until the client has presented a credential that verifies — a password that matches, a scramble that proves one,
or a token whose signature verifies against the account's own keys — the packets fe sends, their codes, texts and
timing are the same for an unknown user, a password user and a token user. So the exchange does not ask the
account how it logs in; it collects a credential in the form the client offers, and asks the account's method
whether that credential verifies:

- a token packet up front (OpenID Connect client plugin) → checked;
- no password → TLS: AuthSwitchRequest to the OpenID Connect client plugin, whose token is checked; plain TCP:
  refused (the client plugins send tokens over TLS only);
- mysql_clear_password → over TLS, the password is checked as it is; over plain TCP refused;
- a scramble → checked (mysql_native_password's, or caching_sha2_password's fast path); if it does not verify,
  caching_sha2_password's full authentication (an AuthSwitchRequest to it first, for a client that began with
  another plugin): the password in cleartext over TLS, or RSA-encrypted over plain TCP, then checked.

A password that does not verify always costs one password hash, the account's own or a decoy, so the refusal
takes as long for every kind of account. The refusal says only "Access denied"; the log has the reason. Once a
token's signature verified, the reason (expired, wrong audience, …) is the holder's to know and goes to the client.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import ClassVar, Protocol

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
from fe.mysql.codec import MalformedPacket
from fe.mysql.constants import PLUGIN_CACHING_SHA2, PLUGIN_NATIVE, PLUGIN_OIDC_CLIENT

PLUGIN_CLEAR = "mysql_clear_password"
FAST_AUTH_OK = messages.auth_more_data(b"\x03")
PERFORM_FULL_AUTH = messages.auth_more_data(b"\x04")
REQUEST_PUBLIC_KEY = b"\x02"
_SHA2_SCRAMBLE = 32
_NATIVE_SCRAMBLE = 20


# ---- credentials: what the client presented ----


@dataclass(slots=True)
class NoPassword:
    pass


@dataclass(slots=True)
class Scramble:
    """A challenge-response proof made with the attempt's nonce by `plugin` (native or caching_sha2)."""

    plugin: str
    proof: bytes


@dataclass(slots=True)
class Cleartext:
    """A password as typed (which may be a token). `over_tls`: it came inside TLS, not RSA-encrypted over TCP."""

    password: bytes
    over_tls: bool


@dataclass(slots=True)
class TokenPacket:
    """The OpenID Connect client plugin's payload, `[0x01][length-encoded token]`, not yet parsed."""

    payload: bytes


Credential = NoPassword | Scramble | Cleartext | TokenPacket


# ---- verdicts: what the account's method made of it ----


# The credential verified: the verdict is the Accept the exchange yields (claims, what precedes the OK, the security
# integration that vouched for a name with no account), not a copy of it made at every login.
Accepted = Accept


@dataclass(slots=True)
class Unverified:
    """The credential did not verify. `hashed`: a password hash was already spent on it (no decoy needed)."""

    reason: str
    detail: str = ""
    hashed: bool = False


@dataclass(slots=True)
class Refused:
    """The credential verified (a token's signature) but does not admit this login; `detail` may be told."""

    reason: str
    detail: str
    integration: str | None = None


Verdict = Accepted | Unverified | Refused

_PACKET_OVERHEAD = 16  # the capability byte and the length prefix around a token


def unpack_token(packet: TokenPacket, max_token_bytes: int) -> bytes | Unverified:
    """The token inside the OpenID Connect client plugin's packet, or why there is none (too large, malformed)."""
    if len(packet.payload) > max_token_bytes + _PACKET_OVERHEAD:
        return Unverified("too_large", f"token larger than {max_token_bytes} bytes")
    try:
        return messages.parse_token_packet(packet.payload)
    except MalformedPacket as exc:
        return Unverified("malformed", f"malformed token packet: {exc}")


def fast_path_proof(scramble: Scramble, attempt: LoginAttempt, account: LoginAccount, services: LoginServices) -> bool:
    """caching_sha2_password's fast path, for any password account that did a full authentication in this process:
    the scramble proves the password against the SHA256(SHA256(pw)) remembered then."""
    double_hash = services.sha2_fast_path.get((account.name, account.host, account.auth_string))
    return double_hash is not None and passwords.verify_sha2_scramble(scramble.proof, attempt.nonce, double_hash)


def remember_for_fast_path(password: bytes, account: LoginAccount, services: LoginServices) -> None:
    """A password account's cleartext password verified: its next scramble may take the fast path. Keyed by the
    stored verifier too, so a changed password drops out."""
    services.sha2_fast_path.put((account.name, account.host, account.auth_string), passwords.sha256_double(password))


class CredentialCheck(Protocol):
    def check_at_once(
        self, credential: Credential, attempt: LoginAttempt, account: LoginAccount | None, services: LoginServices
    ) -> Verdict | None: ...

    async def check(
        self, credential: Credential, attempt: LoginAttempt, account: LoginAccount | None, services: LoginServices
    ) -> Verdict: ...


class CredentialMethod:
    """Base of the built-in methods: the shared exchange, and `check_at_once` and `check` for what the account
    accepts."""

    account_plugins: ClassVar[tuple[str, ...]] = ()

    def check_at_once(
        self, credential: Credential, attempt: LoginAttempt, account: LoginAccount | None, services: LoginServices
    ) -> Verdict | None:
        """The verdict on a credential that needs nothing to be waited for (a scramble checked against memory), or
        None when only `check` can tell. Asked first, for every credential."""
        return None

    async def check(
        self, credential: Credential, attempt: LoginAttempt, account: LoginAccount | None, services: LoginServices
    ) -> Verdict:
        """The verdict on a credential `check_at_once` left open (a password hash, a token's signature)."""
        raise NotImplementedError

    def exchange(
        self, attempt: LoginAttempt, account: LoginAccount | None, services: LoginServices
    ) -> AsyncGenerator[Step, bytes]:
        return front_door(attempt, account, self, services)

    def accept_at_once(
        self, attempt: LoginAttempt, account: LoginAccount | None, services: LoginServices
    ) -> Accept | None:
        """The front door's shortest way through, without running it: the client's first packet carries a scramble
        that this method verifies at once (caching_sha2's fast path, a native scramble). The same Accept as the
        exchange would yield, and no async generator to drive. None: run the exchange, which checks that scramble
        again (a lookup and two hashes, beside the full authentication's password hash that follows)."""
        scramble = _opening_scramble(attempt)
        if scramble is None:
            return None
        verdict = self.check_at_once(scramble, attempt, account, services)
        if not isinstance(verdict, Accepted):
            return None
        attempt.plugin = _exchange_plugin(account)
        return verdict


class NoAccount(CredentialMethod):
    """The name is no account (or one whose method is not available): nothing verifies, and the exchange is the
    same as for everyone else. `reason` is what the log says."""

    def __init__(self, reason: str = "unknown_user", detail: str = "") -> None:
        self.reason = reason
        self.detail = detail

    def check_at_once(
        self, credential: Credential, attempt: LoginAttempt, account: LoginAccount | None, services: LoginServices
    ) -> Verdict:
        return Unverified(self.reason, self.detail)


def _opening_scramble(attempt: LoginAttempt) -> Scramble | None:
    """The client's first auth data as a scramble, when it is one (native, or caching_sha2's fast path)."""
    first, plugin = attempt.auth_response, attempt.client_plugin
    if plugin == PLUGIN_NATIVE and len(first) == _NATIVE_SCRAMBLE:
        return Scramble(PLUGIN_NATIVE, first)
    if plugin == PLUGIN_CACHING_SHA2 and first not in (b"", b"\x00"):
        return Scramble(PLUGIN_CACHING_SHA2, first)
    return None


def _exchange_plugin(account: LoginAccount | None) -> str:
    """The plugin the login log names: the account's own; a stranger's is the built-in exchange's."""
    return account.plugin if account is not None else PLUGIN_CACHING_SHA2


async def front_door(
    attempt: LoginAttempt, account: LoginAccount | None, method: CredentialCheck, services: LoginServices
) -> AsyncGenerator[Step, bytes]:
    first, plugin = attempt.auth_response, attempt.client_plugin
    attempt.plugin = _exchange_plugin(account)

    async def check(credential: Credential) -> Verdict:
        verdict = method.check_at_once(credential, attempt, account, services)
        if verdict is None:
            verdict = await method.check(credential, attempt, account, services)
        if isinstance(credential, Cleartext) and isinstance(verdict, Unverified) and not verdict.hashed:
            await services.verify_password(credential.password, services.decoy_verifier)  # the same time for all
        return verdict

    verdict: Verdict | None = None  # none yet (every way through below ends in one, or raises)
    if plugin == PLUGIN_OIDC_CLIENT and first:
        verdict = await check(TokenPacket(first))
    elif plugin == PLUGIN_CLEAR:
        if not attempt.secure:
            raise LoginDenied("insecure_password", "send the password over TLS")
        verdict = await check(Cleartext(strip_nul(first), over_tls=True))
    else:
        # (COM_CHANGE_USER's proof was made with the greeting's nonce: its plugin is none, so it starts again.)
        no_password = first in (b"", b"\x00")
        if not no_password:
            scramble = _opening_scramble(attempt)
            if scramble is not None:
                verdict = await check(scramble)
            if not isinstance(verdict, Accepted) and plugin != PLUGIN_CACHING_SHA2:
                # Another plugin began: caching_sha2_password, which every MySQL 8+ and MariaDB client has.
                reply = attempt.received((yield switch_request(PLUGIN_CACHING_SHA2, attempt)))
                no_password = reply in (b"", b"\x00")
                if not no_password:
                    verdict = await check(Scramble(PLUGIN_CACHING_SHA2, reply))
        if no_password:
            verdict = await check(NoPassword())
            if not isinstance(verdict, Accepted) and attempt.secure:
                # Send a token, if you have one (the OpenID Connect client plugin).
                reply = attempt.received((yield switch_request(PLUGIN_OIDC_CLIENT, attempt)))
                if reply:
                    verdict = await check(TokenPacket(reply))
        elif not isinstance(verdict, Accepted):
            reply = attempt.received((yield PERFORM_FULL_AUTH))
            if attempt.secure:
                password = strip_nul(reply)
            elif reply == REQUEST_PUBLIC_KEY:
                # A cleartext password over a plain connection is never taken; the server's RSA key protects it.
                ciphertext = attempt.received((yield messages.auth_more_data(services.rsa_public_pem)))
                try:
                    scrambled = services.decrypt_password(ciphertext)
                except ValueError:
                    raise LoginDenied("bad_password", log_detail="the encrypted password does not decrypt") from None
                nonce = attempt.nonce
                password = strip_nul(bytes(b ^ nonce[i % len(nonce)] for i, b in enumerate(scrambled)))
            else:
                raise LoginDenied("insecure_password", "send the password over TLS or with the server's RSA key")
            verdict = await check(Cleartext(password, over_tls=attempt.secure))
    if isinstance(verdict, Accepted):
        yield verdict
        return
    assert verdict is not None
    raise _denied(verdict)


def _denied(verdict: Verdict) -> LoginDenied:
    if isinstance(verdict, Refused):
        return LoginDenied(verdict.reason, verdict.detail)
    assert isinstance(verdict, Unverified)
    return LoginDenied(verdict.reason, log_detail=verdict.detail)
