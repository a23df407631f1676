"""The authentication exchange of one login (or COM_CHANGE_USER): which plugin, which packets, which checks.

Every failure raises LoginFailed; the caller sends its ERR and closes the connection. Unknown users go through
the same exchange as a password user with a wrong password, so the reply does not reveal who exists.
"""

from __future__ import annotations

import asyncio
import hmac
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from fe.auth import passwords
from fe.auth.token_spec import TOKEN_PLUGINS, TokenAuthSpec
from fe.auth.verifier import TokenRejected
from fe.mysql import messages
from fe.mysql.codec import MalformedPacket
from fe.mysql.constants import (
    PLUGIN_CACHING_SHA2,
    PLUGIN_NATIVE,
    PLUGIN_OIDC_CLIENT,
)
from fe.mysql.errors import ErrorCode
from fe.server.domains import DomainResolver
from fe.server.stream import PacketStream
from fe.server.tls import TlsMaterial

FAST_AUTH_OK = b"\x03"
PERFORM_FULL_AUTH = b"\x04"
REQUEST_PUBLIC_KEY = b"\x02"
_FAST_PATH_CACHE_SIZE = 10_000
# COM_CHANGE_USER: no client plugin counts as already in use, so every account's plugin switches.
CHANGE_USER_NO_PLUGIN = "<change-user>"


class LoginAccount(Protocol):
    name: str
    host: str
    plugin: str
    auth_string: str

    @property
    def token_spec(self) -> TokenAuthSpec | None: ...


class AccountLookup(Protocol):
    def change_marker(self) -> tuple[int, int]: ...

    def find_login_account(self, name: str, client_ip: str, data_version: int | None = None) -> LoginAccount | None: ...


class TokenChecker(Protocol):
    async def verify(self, token: str | bytes, user_name: str, spec: TokenAuthSpec) -> dict[str, object]: ...


class LoginFailed(Exception):
    def __init__(self, code: int, sqlstate: str, message: str, reason: str) -> None:
        super().__init__(message)
        self.code = code
        self.sqlstate = sqlstate
        self.message = message
        self.reason = reason

    def as_err(self) -> tuple[int, str, str]:
        return self.code, self.sqlstate, self.message


@dataclass
class Exchange:
    """The state of one login exchange on one connection."""

    stream: PacketStream
    seq: int
    nonce: bytes
    user: str
    client_host: str
    client_plugin: str
    auth_response: bytes
    sent_credentials: bool = False
    plugin: str = ""

    def send(self, payload: bytes) -> None:
        """Queued: it leaves with whatever follows, when the server next waits for the client."""
        self.seq = self.stream.send((payload,), self.seq)

    async def receive(self) -> bytes:
        packet = await self.stream.read_packet()
        if packet.seq != self.seq:
            raise LoginFailed(ErrorCode.NET_PACKETS_OUT_OF_ORDER, "08S01", "Got packets out of order", "sequence_error")
        self.seq = packet.next_seq
        if packet.payload:
            self.sent_credentials = True
        return packet.payload

    async def switch_to(self, plugin: str, data: bytes) -> bytes:
        self.send(messages.auth_switch(plugin, data))
        return await self.receive()

    def denied(self, reason: str, detail: str = "") -> LoginFailed:
        using = "YES" if self.sent_credentials else "NO"
        message = f"Access denied for user '{self.user}'@'{self.client_host}' (using password: {using})"
        if detail:
            message += f": {detail}"
        return LoginFailed(ErrorCode.ACCESS_DENIED, "28000", message, reason)


class Authenticator:
    def __init__(
        self,
        accounts: AccountLookup,
        tokens: TokenChecker,
        tls: TlsMaterial,
        max_token_bytes: int,
        domains: DomainResolver | None = None,
    ) -> None:
        self.accounts = accounts
        self.domains = domains
        self.tokens = tokens
        self.tls = tls
        self.max_token_bytes = max_token_bytes
        # caching_sha2_password's fast path, as MySQL keeps it: SHA256(SHA256(pw)) of users who did a full
        # authentication, in memory only; keyed by the stored hash too, so a changed password drops out.
        self._sha2_fast_path: OrderedDict[tuple[str, str, str], bytes] = OrderedDict()
        self._decoy_hash = passwords.hash_password(os.urandom(16).hex())

    async def authenticate(self, exchange: Exchange) -> LoginAccount:
        # One read of the catalog's change marker serves both the domain check and the login cache.
        marker = self.accounts.change_marker()
        if self.domains is not None and not self.domains.is_current(marker):
            await self.domains.catch_up()
            marker = self.accounts.change_marker()  # it may have moved while domains were resolved
        account = self.accounts.find_login_account(exchange.user, exchange.client_host, data_version=marker[0])
        if account is None:
            await self._unknown_user(exchange)
            raise exchange.denied("unknown_user")
        if account.plugin in TOKEN_PLUGINS:
            await self._token(exchange, account)
        elif exchange.client_plugin == PLUGIN_OIDC_CLIENT and exchange.auth_response:
            exchange.plugin = PLUGIN_OIDC_CLIENT
            # No detail in the reply: it would tell a stranger that this password account exists.
            raise exchange.denied("token_for_password_user")
        elif account.plugin == PLUGIN_NATIVE:
            await self._native(exchange, account)
        else:
            await self._caching_sha2(exchange, account)
        return account

    # ---- password plugins ----

    async def _native(self, exchange: Exchange, account: LoginAccount) -> None:
        exchange.plugin = PLUGIN_NATIVE
        response = exchange.auth_response
        if exchange.client_plugin != PLUGIN_NATIVE:
            response = await exchange.switch_to(PLUGIN_NATIVE, exchange.nonce + b"\x00")
        if not passwords.verify_native_scramble(response, exchange.nonce, account.auth_string):
            raise exchange.denied("bad_password")

    async def _caching_sha2(self, exchange: Exchange, account: LoginAccount | None) -> None:
        exchange.plugin = PLUGIN_CACHING_SHA2
        response = exchange.auth_response
        if exchange.client_plugin != PLUGIN_CACHING_SHA2:
            response = await exchange.switch_to(PLUGIN_CACHING_SHA2, exchange.nonce + b"\x00")
        stored = account.auth_string if account is not None else None
        if response in (b"", b"\x00"):
            if stored is not None and hmac.compare_digest(stored.encode(), b""):
                return
            raise exchange.denied("bad_password")
        key = (account.name, account.host, account.auth_string) if account is not None else None
        double_hash = self._sha2_fast_path.get(key) if key is not None else None
        if double_hash is not None and passwords.verify_sha2_scramble(response, exchange.nonce, double_hash):
            self._sha2_fast_path.move_to_end(key)  # type: ignore[arg-type]
            exchange.send(messages.auth_more_data(FAST_AUTH_OK))
            return
        exchange.send(messages.auth_more_data(PERFORM_FULL_AUTH))
        password = await self._receive_cleartext_password(exchange)
        # An unknown user costs the same hash as a known one, so timing does not tell them apart either.
        checked = stored if stored is not None else self._decoy_hash
        if not await asyncio.to_thread(passwords.verify_password, password, checked) or stored is None:
            raise exchange.denied("bad_password")
        assert key is not None
        self._sha2_fast_path[key] = passwords.sha256_double(password)
        if len(self._sha2_fast_path) > _FAST_PATH_CACHE_SIZE:
            self._sha2_fast_path.popitem(last=False)

    async def _receive_cleartext_password(self, exchange: Exchange) -> bytes:
        payload = await exchange.receive()
        if exchange.stream.is_tls:
            return payload[:-1] if payload.endswith(b"\x00") else payload
        if payload != REQUEST_PUBLIC_KEY:
            # A cleartext password over a plain connection: never accept it, whatever it is.
            raise exchange.denied("insecure_password", "send the password over TLS or with the server's RSA key")
        exchange.send(messages.auth_more_data(self.tls.rsa_public_pem))
        ciphertext = await exchange.receive()
        try:
            scrambled = self.tls.decrypt_password(ciphertext)
        except ValueError:
            raise exchange.denied("bad_password") from None
        nonce = exchange.nonce
        plain = bytes(b ^ nonce[i % len(nonce)] for i, b in enumerate(scrambled))
        return plain[:-1] if plain.endswith(b"\x00") else plain

    async def _unknown_user(self, exchange: Exchange) -> None:
        if exchange.client_plugin == PLUGIN_OIDC_CLIENT and exchange.auth_response:
            exchange.plugin = PLUGIN_OIDC_CLIENT
            return
        await self._caching_sha2(exchange, None)

    # ---- tokens ----

    async def _token(self, exchange: Exchange, account: LoginAccount) -> None:
        exchange.plugin = account.plugin
        spec = account.token_spec
        if spec is None:
            raise exchange.denied("bad_account", "the account's token settings are unreadable")
        if not exchange.stream.is_tls:
            raise LoginFailed(
                ErrorCode.SECURE_TRANSPORT_REQUIRED,
                "HY000",
                f"Connections using insecure transport are prohibited: {account.plugin} accepts tokens only over TLS",
                "insecure_transport",
            )
        if exchange.client_plugin == PLUGIN_OIDC_CLIENT and exchange.auth_response:
            payload = exchange.auth_response
        elif exchange.auth_response not in (b"", b"\x00"):
            raise exchange.denied("password_for_token_user", "this account logs in with a token, not a password")
        else:
            payload = await exchange.switch_to(PLUGIN_OIDC_CLIENT, exchange.nonce + b"\x00")
        if len(payload) > self.max_token_bytes + 16:
            raise exchange.denied("too_large", f"token larger than {self.max_token_bytes} bytes")
        try:
            token = messages.parse_token_packet(payload)
        except MalformedPacket as exc:
            raise exchange.denied("malformed", f"malformed token packet: {exc}") from None
        exchange.sent_credentials = True
        try:
            await self.tokens.verify(token, exchange.user, spec)
        except TokenRejected as exc:
            raise exchange.denied(exc.reason, exc.message) from None
