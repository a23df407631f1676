"""One login (the connection's, or COM_CHANGE_USER's), without I/O: find the account, pick its authentication
method, run the method's exchange, and end in one LoginOutcome or a LoginDenied.

`Authenticator.login(attempt)` is an async generator, like each method's exchange: it yields the payloads to
send (AuthSwitchRequest, AuthMoreData), is sent the client's reply to each, and yields the LoginOutcome last.
It never touches a socket or a packet header; the server's connection driver does that.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from fe.auth.methods import AuthMethod, LoginAccount, LoginAttempt, LoginDenied, LoginOutcome, LoginServices, Step
from fe.auth.methods import method_for as _method_for
from fe.auth.methods.base import Accept
from fe.auth.methods.front_door import NoAccount
from fe.auth.methods.integrations import IntegrationChain
from fe.auth.token_spec import TokenAuthSpec

_NO_ACCOUNT = NoAccount()

__all__ = ["AccountLookup", "Authenticator", "DomainCheck", "Login", "LoginAttempt", "LoginDenied", "LoginOutcome"]


class AccountLookup(Protocol):
    def change_marker(self) -> tuple[int, int]: ...

    def find_login_account(self, name: str, client_ip: str, data_version: int | None = None) -> LoginAccount | None: ...


class DomainCheck(Protocol):
    """Domain identities ('name'@['domain']) resolve before a login is matched (fe/server/domains.py)."""

    def is_current(self, marker: tuple[int, int]) -> bool: ...

    async def catch_up(self) -> None: ...


class SecurityView(Protocol):
    """The catalog's security integrations, group providers, chain and external-group grants (SecuritySnapshot)."""

    @property
    def chain(self) -> tuple[str, ...]: ...

    @property
    def integrations(self) -> Mapping[str, Any]: ...

    @property
    def group_providers(self) -> Mapping[str, Any]: ...

    def roles_of_external_groups(
        self, groups: Iterable[str], *, inherited: bool = False
    ) -> dict[str, frozenset[str]]: ...

    def with_inherited(self, roles: Iterable[str]) -> frozenset[str]: ...


class SecurityLookup(Protocol):
    def security_snapshot(self, data_version: int | None = None) -> SecurityView: ...


GROUP_ACCESS_DENIED = 5206  # StarRocks' ERR_GROUP_ACCESS_DENY (SQLSTATE 42000)


@dataclass(frozen=True)
class IntegrationUser:
    """The session identity of a name with no account that a security integration admitted: ephemeral, as
    StarRocks builds it (`'user'@'<client address>'`); nothing is written to the catalog for it."""

    name: str
    host: str
    plugin: str
    token_spec: TokenAuthSpec | None
    effective_roles: frozenset[str] = frozenset()
    auth_string: str = ""

    @property
    def is_user_admin(self) -> bool:
        return bool(self.effective_roles & {"root", "user_admin"})


class Authenticator:
    def __init__(
        self,
        accounts: AccountLookup,
        services: LoginServices,
        domains: DomainCheck | None = None,
        security: SecurityLookup | None = None,
    ) -> None:
        self.accounts = accounts
        self.services = services
        self.domains = domains
        self.security = security

    async def find_account(self, attempt: LoginAttempt) -> LoginAccount | None:
        # One read of the catalog's change marker serves both the domain check and the login cache.
        marker = self.accounts.change_marker()
        if self.domains is not None and not self.domains.is_current(marker):
            await self.domains.catch_up()
            marker = self.accounts.change_marker()  # it may have moved while domains were resolved
        attempt.data_version = marker[0]
        return self.accounts.find_login_account(attempt.user, attempt.client_host, data_version=marker[0])

    def choose(self, attempt: LoginAttempt, account: LoginAccount | None) -> AuthMethod:
        """The method that runs this login: the account's own; for a name that is no account, one whose exchange
        is the built-in methods' own (fe/auth/methods/front_door.py), so a stranger cannot tell the difference."""
        if account is None:
            if self.security is None:
                return _NO_ACCOUNT
            snapshot = self.security.security_snapshot(attempt.data_version)
            chain = [snapshot.integrations[name] for name in snapshot.chain if name in snapshot.integrations]
            return IntegrationChain(chain) if chain else _NO_ACCOUNT
        method = _method_for(account.plugin)
        if method is None:  # refused through the same exchange as a stranger, so the reply does not tell
            return NoAccount("bad_account", f"the account's authentication plugin {account.plugin!r} is not available")
        return method

    async def begin(self, attempt: LoginAttempt) -> Login:
        """Find the account and its method: the login accepted at once (the method's `accept_at_once`), or the
        exchange to run (the driver sends what it yields and hands it the client's replies, until it yields Accept
        or raises LoginDenied)."""
        account = await self.find_account(attempt)
        method = self.choose(attempt, account)
        at_once = getattr(method, "accept_at_once", None)  # optional (AuthMethod)
        accepted = at_once(attempt, account, self.services) if at_once is not None else None
        if accepted is not None:
            return Login(attempt, account, None, accepted)
        return Login(attempt, account, method.exchange(attempt, account, self.services))

    async def login(self, attempt: LoginAttempt) -> AsyncGenerator[bytes | LoginOutcome, bytes]:
        """The whole login as one generator: the payloads to send, then the LoginOutcome."""
        login = await self.begin(attempt)
        accept = login.accepted
        if accept is None:
            exchange = login.exchange
            assert exchange is not None
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
            accept = step
        yield await self.finish(login, accept)

    async def finish(self, login: Login, accept: Accept) -> LoginOutcome:
        """The outcome of an accepted login: its identity (an integration's ephemeral one for a name with no
        account), the groups its providers give it, and its roles — granted to it, to its groups, and public.
        Raises LoginDenied when the integration's permitted_groups admit none of its groups."""
        attempt, account = login.attempt, login.account
        spec = account.token_spec if account is not None else None
        providers = (spec.group_providers or ()) if spec is not None else ()  # (no getattr miss per password login)
        snapshot = None
        if self.security is not None and (accept.integration or providers):  # a password login needs none of it
            snapshot = self.security.security_snapshot(attempt.data_version)
        integration = snapshot.integrations.get(accept.integration) if snapshot and accept.integration else None
        if integration is not None:
            account = IntegrationUser(attempt.user, attempt.client_host, integration.type, integration.spec)
            providers = tuple(integration.group_providers)
        if account is None:  # a method must never accept a login for a name that is no account
            raise LoginDenied("unknown_user")
        groups: frozenset[str] = frozenset()
        if providers and snapshot is not None and self.services.resolve_groups is not None:
            known = tuple(snapshot.group_providers[name] for name in providers if name in snapshot.group_providers)
            groups = await self.services.resolve_groups(known, attempt.user, accept.claims)
        if integration is not None and not integration.permits(groups):
            raise LoginDenied(
                "group_denied",
                code=GROUP_ACCESS_DENIED,
                message=f"Group Access Denied: user '{attempt.user}' is in none of the permitted groups of security "
                f"integration '{integration.name}'",
                log_detail=f"groups {sorted(groups)}; permitted {list(integration.permitted_groups or ())}",
            )
        roles = frozenset(account.effective_roles)
        if snapshot is not None and groups:
            for granted in snapshot.roles_of_external_groups(groups, inherited=True).values():
                roles |= granted
        if integration is not None:
            account = IntegrationUser(
                attempt.user, attempt.client_host, integration.type, integration.spec, effective_roles=roles
            )
        return LoginOutcome(
            user=attempt.user,
            account=account,
            method=attempt.plugin,
            reason="ok",
            claims=accept.claims,
            secure=attempt.secure,
            after_ok=accept.before_ok,
            integration=integration.name if integration is not None else None,
            groups=groups,
            roles=roles | {"public"},
        )


@dataclass(slots=True)
class Login:
    """One login under way: the attempt, the account it names (None: no such account), and its method's exchange
    to run, or (exchange None) the Accept the method gave at once."""

    attempt: LoginAttempt
    account: LoginAccount | None
    exchange: AsyncGenerator[Step, bytes] | None
    accepted: Accept | None = None

    def refused(self, denied: LoginDenied) -> LoginDenied:
        if self.account is None and denied.reason == "bad_password":
            denied.reason = "unknown_user"  # the client cannot tell; the log can
        return denied
