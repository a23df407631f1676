"""One login (the connection's, or COM_CHANGE_USER's), without I/O: find the account, pick its authentication
method, run the method's exchange, and end in one LoginOutcome or a LoginDenied.

`Authenticator.login(attempt)` is an async generator, like each method's exchange: it yields the payloads to
send (AuthSwitchRequest, AuthMoreData), is sent the client's reply to each, and yields the LoginOutcome last.
It never touches a socket or a packet header; the server's connection driver does that.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Protocol

from fe.auth.methods import AuthMethod, LoginAccount, LoginAttempt, LoginDenied, LoginOutcome, LoginServices, Step
from fe.auth.methods import method_for as _method_for
from fe.auth.methods.base import Accept
from fe.auth.methods.front_door import NoAccount

_NO_ACCOUNT = NoAccount()

__all__ = ["AccountLookup", "Authenticator", "DomainCheck", "Login", "LoginAttempt", "LoginDenied", "LoginOutcome"]


class AccountLookup(Protocol):
    def change_marker(self) -> tuple[int, int]: ...

    def find_login_account(self, name: str, client_ip: str, data_version: int | None = None) -> LoginAccount | None: ...


class DomainCheck(Protocol):
    """Domain identities ('name'@['domain']) resolve before a login is matched (fe/server/domains.py)."""

    def is_current(self, marker: tuple[int, int]) -> bool: ...

    async def catch_up(self) -> None: ...


class Authenticator:
    def __init__(self, accounts: AccountLookup, services: LoginServices, domains: DomainCheck | None = None) -> None:
        self.accounts = accounts
        self.services = services
        self.domains = domains

    async def find_account(self, attempt: LoginAttempt) -> LoginAccount | None:
        # One read of the catalog's change marker serves both the domain check and the login cache.
        marker = self.accounts.change_marker()
        if self.domains is not None and not self.domains.is_current(marker):
            await self.domains.catch_up()
            marker = self.accounts.change_marker()  # it may have moved while domains were resolved
        return self.accounts.find_login_account(attempt.user, attempt.client_host, data_version=marker[0])

    def choose(self, attempt: LoginAttempt, account: LoginAccount | None) -> AuthMethod:
        """The method that runs this login: the account's own; for a name that is no account, one whose exchange
        is the built-in methods' own (fe/auth/methods/front_door.py), so a stranger cannot tell the difference."""
        if account is None:
            return _NO_ACCOUNT
        method = _method_for(account.plugin)
        if method is None:
            attempt.plugin = account.plugin
            raise LoginDenied("bad_account", log_detail="the account's authentication plugin is not available")
        return method

    async def begin(self, attempt: LoginAttempt) -> Login:
        """Find the account and its method: the exchange to run (the driver sends what it yields and hands it the
        client's replies, until it yields Accept or raises LoginDenied)."""
        account = await self.find_account(attempt)
        method = self.choose(attempt, account)
        return Login(attempt, account, method.exchange(attempt, account, self.services))

    async def login(self, attempt: LoginAttempt) -> AsyncGenerator[bytes | LoginOutcome, bytes]:
        """The whole login as one generator: the payloads to send, then the LoginOutcome."""
        login = await self.begin(attempt)
        exchange = login.exchange
        reply: bytes | None = None
        try:
            while True:
                step = await exchange.asend(reply)  # type: ignore[arg-type]  # the first asend must be None
                if isinstance(step, Accept):
                    break
                reply = yield step
        except LoginDenied as denied:
            raise login.refused(denied) from None
        finally:
            await exchange.aclose()
        yield login.accepted(step)


@dataclass
class Login:
    """One login under way: the attempt, the account it names (None: no such account) and its method's exchange."""

    attempt: LoginAttempt
    account: LoginAccount | None
    exchange: AsyncGenerator[Step, bytes]

    def accepted(self, accept: Accept) -> LoginOutcome:
        account, attempt = self.account, self.attempt
        if account is None:  # a method must never accept a login for an account that does not exist
            raise LoginDenied("unknown_user")
        return LoginOutcome(
            user=attempt.user,
            account=account,
            method=attempt.plugin,
            reason="ok",
            claims=accept.claims,
            secure=attempt.secure,
            after_ok=accept.before_ok,
        )

    def refused(self, denied: LoginDenied) -> LoginDenied:
        if self.account is None and denied.reason == "bad_password":
            denied.reason = "unknown_user"  # the client cannot tell; the log can
        return denied
