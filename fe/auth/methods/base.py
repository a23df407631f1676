"""What every authentication method shares: the attempt it is handed, the services it may use, the steps it
yields, and how it refuses.

A method's `exchange(attempt, account, services)` is an async generator. It yields `bytes` — a payload to send
to the client (an AuthSwitchRequest or AuthMoreData) — and is sent the client's reply to it; it yields `Accept`
once the client proved who it is, or raises LoginDenied. It never reads or writes a stream and never frames a
packet: the connection driver does, so the connect path and COM_CHANGE_USER run the same exchange.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from fe.auth.token_spec import TokenAuthSpec
from fe.mysql import messages
from fe.mysql.errors import ErrorCode
from fe.util.lru import BoundedLRU

# COM_CHANGE_USER: no client plugin counts as already in use, so every account's plugin switches.
CHANGE_USER_NO_PLUGIN = "<change-user>"


class LoginAccount(Protocol):
    """The catalog's account as a login sees it (read-only)."""

    @property
    def name(self) -> str: ...

    @property
    def host(self) -> str: ...

    @property
    def plugin(self) -> str: ...

    @property
    def auth_string(self) -> str: ...

    @property
    def token_spec(self) -> TokenAuthSpec | None: ...

    @property
    def is_user_admin(self) -> bool: ...  # root, or a member of root or user_admin

    @property
    def effective_roles(self) -> frozenset[str]: ...  # granted directly and through roles


class TokenChecker(Protocol):
    async def verify(self, token: str | bytes, user_name: str, spec: TokenAuthSpec) -> dict[str, Any]: ...


@dataclass(slots=True)
class LoginAttempt:
    """What the client sent to start a login, and what the exchange learnt on the way."""

    user: str
    client_host: str
    client_plugin: str  # the plugin the client's first auth data was made for ("" if none)
    auth_response: bytes  # that first auth data
    nonce: bytes  # the 20-byte scramble the client's proofs are made with
    secure: bool  # the connection is TLS
    plugin: str = ""  # the plugin whose exchange runs, for the log
    data_version: int | None = None  # the catalog's change marker read for this login
    sent_later: bool = False  # a packet after the first auth data carried something (`received`)

    @property
    def sent_credentials(self) -> bool:
        """MySQL's "(using password: YES)": the first auth data, or a later packet, carried something. (Worked out
        when asked, i.e. for a refusal, rather than at every login's start.)"""
        return self.sent_later or bool(self.auth_response)

    def received(self, payload: bytes) -> bytes:
        if payload:
            self.sent_later = True
        return payload


@dataclass(slots=True)
class Accept:
    """The client proved who it is. `before_ok`: payloads that precede the OK (caching_sha2's fast-auth marker)."""

    claims: Mapping[str, Any] | None = None
    before_ok: tuple[bytes, ...] = ()
    integration: str | None = None  # the security integration that vouched for a name with no account


Step = bytes | Accept


@dataclass(slots=True)
class LoginOutcome:
    """One login's result, kept by the session: who, as which account, by which method, with which token claims."""

    user: str
    account: LoginAccount
    method: str
    reason: str
    claims: Mapping[str, Any] | None
    secure: bool
    after_ok: tuple[bytes, ...] = ()  # sent just before the login's OK
    integration: str | None = None  # the security integration that admitted a name with no account
    groups: frozenset[str] = frozenset()  # from the group providers of the account or integration
    roles: frozenset[str] = frozenset()  # granted to the account, to its groups, and public (with inherited ones)


class LoginDenied(Exception):
    """The login is refused. The client gets ERR `code` (1045 "Access denied …" unless `message` says otherwise)
    with `detail` appended; the log gets `reason` and `detail` or, for what the client must not be told,
    `log_detail`."""

    def __init__(
        self,
        reason: str,
        detail: str = "",
        *,
        log_detail: str = "",
        code: int = ErrorCode.ACCESS_DENIED,
        message: str = "",
    ) -> None:
        super().__init__(detail or log_detail or reason)
        self.reason = reason
        self.detail = detail
        self.log_detail = log_detail or detail
        self.code = code
        self.message = message

    def client_message(self, attempt: LoginAttempt, full_detail: bool = False) -> str:
        """The ERR text. `full_detail` (a development setting) tells the client what only the log is told."""
        if self.message:
            return self.message
        using = "YES" if attempt.sent_credentials else "NO"
        text = f"Access denied for user '{attempt.user}'@'{attempt.client_host}' (using password: {using})"
        detail = self.log_detail if full_detail else self.detail
        return f"{text}: {detail}" if detail else text


@dataclass
class LoginServices:
    """What methods may use besides the client's packets: each an injected value, so methods stay free of I/O."""

    tokens: TokenChecker
    # A cleartext password against a stored verifier, off the event loop (a hash costs milliseconds).
    verify_password: Callable[[bytes, str], Awaitable[bool]]
    # After a full authentication: replace an outdated verifier with a current one (done in the background).
    upgrade_password: Callable[[LoginAccount, bytes], None]
    rsa_public_pem: bytes
    decrypt_password: Callable[[bytes], bytes]  # RSA-OAEP, raises ValueError
    decoy_verifier: str  # what an unknown user's password is checked against, so timing tells nothing
    max_token_bytes: int
    token_as_password: bool = True  # a token user may send the token as the password (over TLS)
    # The groups group providers give a user (run off the event loop: files and the OS's group database).
    resolve_groups: Callable[[tuple[Any, ...], str, Mapping[str, Any] | None], Awaitable[frozenset[str]]] | None = None
    full_error_detail: bool = False  # development: every refusal tells the client its reason
    # caching_sha2_password's fast path: SHA256(SHA256(pw)) of users who did a full authentication.
    sha2_fast_path: BoundedLRU[tuple[str, str, str], bytes] = field(
        default_factory=lambda: BoundedLRU[tuple[str, str, str], bytes](10_000)
    )


class AuthMethod(Protocol):
    """An authentication method, registered for the account plugin names in `account_plugins`.

    A method may also offer `accept_at_once(attempt, account, services) -> Accept | None`, tried before its
    exchange starts: the Accept its exchange would yield when the client's first packet settles the login with
    nothing to wait for (caching_sha2's fast path), else None. It spares the login an async generator; a method
    without it runs its exchange every time."""

    account_plugins: ClassVar[tuple[str, ...]]

    def exchange(
        self, attempt: LoginAttempt, account: LoginAccount | None, services: LoginServices
    ) -> AsyncGenerator[Step, bytes]: ...


def switch_request(plugin: str, attempt: LoginAttempt) -> bytes:
    """An AuthSwitchRequest to `plugin`, carrying the nonce the client's proof must be made with."""
    return messages.auth_switch(plugin, attempt.nonce + b"\x00")


def strip_nul(payload: bytes) -> bytes:
    return payload[:-1] if payload.endswith(b"\x00") else payload
