"""The front door without sockets: for every kind of account, a wrong password costs exactly one password hash
(the account's own or a decoy), the packets are the same, and a verified credential is the only way in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from fe.auth import passwords
from fe.auth.errors import TokenRejected
from fe.auth.login import Authenticator, LoginAttempt, LoginDenied, LoginOutcome
from fe.auth.methods import LoginServices
from fe.auth.token_spec import TokenAuthSpec
from tests.support.rawclient import sha2_scramble

NONCE = b"n" * 20


@dataclass(frozen=True)
class Account:
    name: str
    plugin: str
    auth_string: str
    host: str = "%"
    is_user_admin: bool = False
    effective_roles: frozenset[str] = frozenset()

    @property
    def token_spec(self) -> TokenAuthSpec | None:
        return TokenAuthSpec(jwks_url="k.jwks") if self.plugin == "authentication_jwt" else None


ACCOUNTS = {
    "nat": Account("nat", "mysql_native_password", passwords.native_hash("Nat-pw-1")),
    "sha": Account("sha", "caching_sha2_password", passwords.hash_password("Sha-pw-1")),
    "tok": Account("tok", "authentication_jwt", '{"jwks_url": "k.jwks"}'),
    "old": Account("old", "a_plugin_no_longer_registered", "x"),
}


class Accounts:
    def change_marker(self) -> tuple[int, int]:
        return (1, 0)

    def find_login_account(self, name: str, client_ip: str, data_version: int | None = None) -> Account | None:
        return ACCOUNTS.get(name)


class Tokens:
    async def verify(self, token: str | bytes, user_name: str, spec: TokenAuthSpec) -> dict[str, Any]:
        if token == b"good-token":
            return {"sub": user_name, "exp": 2_000_000_000}
        raise TokenRejected("malformed", "not a token")


@dataclass
class Counting:
    hashed: list[str] = field(default_factory=list)

    async def verify(self, password: bytes, stored: str) -> bool:
        self.hashed.append(stored)
        return passwords.verify_password(password, stored)


def _services(counting: Counting) -> LoginServices:
    return LoginServices(
        tokens=Tokens(),
        verify_password=counting.verify,
        upgrade_password=lambda account, password: None,
        rsa_public_pem=b"",
        decrypt_password=lambda ciphertext: b"",
        decoy_verifier=passwords.hash_password("decoy"),
        max_token_bytes=16384,
    )


async def _run(user: str, password: bytes, counting: Counting) -> tuple[list[bytes], LoginOutcome | LoginDenied]:
    """A caching_sha2 client over TLS: scramble first, then the cleartext password when asked."""
    attempt = LoginAttempt(user, "10.0.0.7", "caching_sha2_password", sha2_scramble(password, NONCE), NONCE, True)
    login = Authenticator(Accounts(), _services(counting)).login(attempt)
    sent: list[bytes] = []
    reply: bytes | None = None
    try:
        while True:
            step = await login.asend(reply)  # type: ignore[arg-type]
            if isinstance(step, LoginOutcome):
                return sent, step
            sent.append(step)
            reply = password + b"\x00" if step == b"\x01\x04" else b""
    except LoginDenied as denied:
        return sent, denied


@pytest.mark.parametrize("user", ["ghost", "nat", "sha", "tok", "old"])
async def test_a_wrong_password_costs_one_hash_whatever_the_account(user: str) -> None:
    counting = Counting()
    sent, result = await _run(user, b"wrong-password", counting)
    assert sent == [b"\x01\x04"]
    assert isinstance(result, LoginDenied) and result.detail == ""
    assert len(counting.hashed) == 1  # the account's own verifier (sha) or the decoy (everyone else)


@pytest.mark.parametrize(("user", "password"), [("nat", b"Nat-pw-1"), ("sha", b"Sha-pw-1"), ("tok", b"good-token")])
async def test_the_right_credential_logs_in(user: str, password: bytes) -> None:
    counting = Counting()
    _, result = await _run(user, password, counting)
    assert isinstance(result, LoginOutcome) and result.account.name == user
    if user == "tok":
        assert result.claims == {"sub": "tok", "exp": 2_000_000_000}
        assert counting.hashed == []  # a token is no password: no hash, and no fast-path entry


async def test_an_unknown_user_is_logged_as_unknown_but_told_nothing_more() -> None:
    _, result = await _run("ghost", b"whatever", Counting())
    assert isinstance(result, LoginDenied) and result.reason == "unknown_user"
    assert result.client_message(LoginAttempt("ghost", "10.0.0.7", "", b"x", NONCE, True)).endswith(
        "(using password: YES)"
    )


async def test_an_account_whose_method_is_gone_is_refused_like_a_stranger_and_logged_as_such() -> None:
    sent, result = await _run("old", b"whatever", Counting())
    assert sent == [b"\x01\x04"]  # the same exchange as anyone's
    assert isinstance(result, LoginDenied) and result.reason == "bad_account" and result.detail == ""


async def test_a_fast_path_scramble_is_accepted_at_once_with_what_the_exchange_would_yield() -> None:
    """After a full authentication, the next caching_sha2 scramble is settled before any exchange runs (no async
    generator), with the fast-auth marker before the OK; a scramble that does not verify runs the exchange."""
    from fe.auth.methods.front_door import FAST_AUTH_OK, PERFORM_FULL_AUTH

    counting = Counting()
    services = _services(counting)
    authenticator = Authenticator(Accounts(), services)
    full = LoginAttempt("sha", "10.0.0.7", "mysql_clear_password", b"Sha-pw-1\x00", NONCE, True)
    login = authenticator.login(full)
    outcome = await login.asend(None)  # type: ignore[arg-type]
    assert isinstance(outcome, LoginOutcome) and outcome.after_ok == ()

    fast = LoginAttempt("sha", "10.0.0.7", "caching_sha2_password", sha2_scramble(b"Sha-pw-1", NONCE), NONCE, True)
    begun = await authenticator.begin(fast)
    assert begun.exchange is None and begun.accepted is not None
    assert begun.accepted.before_ok == (FAST_AUTH_OK,) and fast.plugin == "caching_sha2_password"
    outcome = await authenticator.finish(begun, begun.accepted)
    assert outcome.account.name == "sha" and outcome.after_ok == (FAST_AUTH_OK,)

    wrong = LoginAttempt("sha", "10.0.0.7", "caching_sha2_password", sha2_scramble(b"nope", NONCE), NONCE, True)
    begun = await authenticator.begin(wrong)
    assert begun.accepted is None and begun.exchange is not None
    assert await begun.exchange.asend(None) == PERFORM_FULL_AUTH  # type: ignore[arg-type]
    await begun.exchange.aclose()
