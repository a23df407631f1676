"""Hardening of token verification: each test either shows a weakness that was fixed in
fe/auth (the comment in the test says what went wrong before) or locks in a property no other test covered."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from fe.auth import key_files
from fe.auth.devtools import generate_signing_key, mint_token
from fe.auth.jwk import KeyParseError, parse_jwk, parse_key_document
from fe.auth.token_spec import TokenAuthSpec
from fe.auth.verifier import TokenRejected, TokenVerifier
from tests.auth.jose_helpers import (
    FakeClock,
    b64,
    claims_for,
    jwk_with,
    jwks,
    mint,
    resign,
    signing_key,
)


def write_keys(home: Path, name: str, *keys: dict[str, Any]) -> TokenAuthSpec:
    (home / "conf" / name).write_text(json.dumps(jwks(*keys)))
    return TokenAuthSpec(name)


async def rejection(
    verifier: TokenVerifier, token: str | bytes, spec: TokenAuthSpec, user: str = "tom"
) -> TokenRejected:
    with pytest.raises(TokenRejected) as info:
        await verifier.verify(token, user, spec)
    return info.value


@pytest.fixture
def spec(home: Path) -> TokenAuthSpec:
    return write_keys(home, "k.jwks", jwk_with("ES256"), jwk_with("RS256"))


def es256_header(**members: Any) -> dict[str, Any]:
    return {"alg": "ES256", "kid": signing_key("ES256")[1]["kid"], **members}


# ---- Only TokenRejected leaves verify(): login.py turns that, and nothing else, into a clean ERR 1045 ----


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", [10**400, -(10**400)], ids=["plus_1e400", "minus_1e400"])
async def test_huge_integer_dates_are_a_clean_rejection(
    claim: str, value: int, spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock
) -> None:
    # A 400-digit integer parses as JSON but overflowed math.isfinite(): OverflowError escaped verify(), so the
    # login died without an ERR packet or a login log line.
    claims = claims_for("tom", clock.now) | {claim: value}
    assert (await rejection(verifier, resign("ES256", es256_header(), claims), spec)).reason == "malformed"


async def test_symlink_loop_in_conf_is_a_clean_rejection(home: Path, verifier: TokenVerifier, clock: FakeClock) -> None:
    # Path.resolve(strict=True) raises RuntimeError (not OSError) for a loop on Python 3.11.
    (home / "conf" / "loop-a").symlink_to("loop-b")
    (home / "conf" / "loop-b").symlink_to("loop-a")
    token = mint("ES256", claims_for("tom", clock.now))
    found = await rejection(verifier, token, TokenAuthSpec("loop-a"))
    assert found.reason == "key_file_unreadable" and "conf/loop-a" in found.message


async def test_an_unexpected_error_is_still_a_rejection(
    spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(_spec: TokenAuthSpec) -> Any:
        raise RuntimeError("a bug somewhere below the verifier")

    monkeypatch.setattr(verifier.key_store, "get_keys", broken)
    found = await rejection(verifier, mint("ES256", claims_for("tom", clock.now)), spec)
    assert found.reason == "internal_error" and "bug" not in found.message  # details go to the log only


# ---- One token, one spelling: canonical base64url and UTF-8 JSON only ----


def _bump_last_char(part: str) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return part[:-1] + alphabet[alphabet.index(part[-1]) + 1]


def _with_spare_bits(value: dict[str, Any]) -> dict[str, Any]:
    """`value` padded so its base64url form ends in a character with unused bits."""
    for filler in ("", "x", "xx"):
        padded = {**value, "pad": filler}
        if len(json.dumps(padded).encode()) % 3:
            return padded
    raise AssertionError("unreachable")


@pytest.mark.parametrize("part", [0, 1, 2], ids=["header", "payload", "signature"])
async def test_non_canonical_base64url_is_refused(
    part: int, spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock
) -> None:
    # The last character of a part whose length is not a multiple of 4 carries unused bits; setting one gave a
    # second spelling of the same bytes. For the signature that was a second token that verified (and got its
    # own verified-token cache entry); ES256 signatures (64 bytes, 86 characters) always have such bits.
    token = resign("ES256", _with_spare_bits(es256_header()), _with_spare_bits(claims_for("tom", clock.now)))
    parts = token.split(".")
    assert len(parts[part]) % 4 != 0
    parts[part] = _bump_last_char(parts[part])
    assert (await rejection(verifier, ".".join(parts), spec)).reason == "malformed"
    assert await verifier.verify(token, "tom", spec)


@pytest.mark.parametrize(
    "payload",
    [
        json.dumps({"sub": "tom", "exp": 2_000_000_000}).encode("utf-16"),
        json.dumps({"sub": "tom", "exp": 2_000_000_000}).encode("utf-32-le"),
        b"\xef\xbb\xbf" + json.dumps({"sub": "tom", "exp": 2_000_000_000}).encode(),  # UTF-8 BOM
        b'{"sub": "tom", "exp": 2000000000, "name": "\xed\xa0\x80"}',  # a UTF-8-encoded lone surrogate
    ],
    ids=["utf-16", "utf-32", "bom", "surrogate"],
)
async def test_payload_must_be_utf8_json(
    payload: bytes, spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock
) -> None:
    # RFC 7515/7519: the JOSE header and claims are UTF-8. json.loads(bytes) also guessed UTF-16/32 and let
    # surrogates through; now only strict UTF-8 is read, so every JWT library sees the same claims.
    token = resign("ES256", es256_header(), payload)  # type: ignore[arg-type]
    assert (await rejection(verifier, token, spec)).reason == "malformed"


# ---- Header parameters that change what the token means ----


@pytest.mark.parametrize("b64_value", [False, True])
async def test_b64_header_parameter_is_refused(
    b64_value: bool, spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock
) -> None:
    # RFC 7797 unencoded payloads: `b64` outside `crit` is a malformed token; a verifier that honours it would read
    # a different payload from the same bytes. (`crit` containing b64 is refused by test_crit_is_refused.)
    token = resign("ES256", es256_header(b64=b64_value), claims_for("tom", clock.now))
    assert (await rejection(verifier, token, spec)).reason == "malformed"


@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt", "logout+jwt", "secevent+jwt", "dpop+jwt", "JWE", 1])
async def test_tokens_typed_as_something_else_are_refused(
    typ: Any, spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock
) -> None:
    # RFC 8725 §3.11: an access token (RFC 9068 at+jwt), logout token or event token from the same identity
    # provider says what it is; none of them is a login token, whatever its sub. Without required_audience
    # nothing else tells them apart.
    token = resign("ES256", es256_header(typ=typ), claims_for("tom", clock.now))
    assert (await rejection(verifier, token, spec)).reason == "wrong_token_type"


@pytest.mark.parametrize("typ", ["JWT", "jwt", "application/jwt", "JOSE", None])
async def test_ordinary_typ_values_are_accepted(
    typ: Any, spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock
) -> None:
    header = es256_header(typ=typ) if typ is not None else es256_header()
    assert await verifier.verify(resign("ES256", header, claims_for("tom", clock.now)), "tom", spec)


# ---- Keys: a published private key is not a verification key ----


@pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi", "oth"])
def test_jwk_with_private_members_is_refused(member: str) -> None:
    with pytest.raises(KeyParseError, match="private"):
        parse_jwk(jwk_with("RS256", **{member: "AQAB"}))


async def test_jwks_publishing_a_private_key_does_not_verify_tokens(
    home: Path, verifier: TokenVerifier, clock: FakeClock
) -> None:
    # Anyone who can read the JWKS (it is public) can sign with that key: the key is compromised, not usable.
    private, public = generate_signing_key("ES256")
    d = b64(private.private_numbers().private_value.to_bytes(32, "big"))  # type: ignore[union-attr]
    spec = write_keys(home, "leaky.jwks", {**public, "d": d})
    token = mint_token(private, "ES256", public["kid"], claims_for("tom", clock.now))
    assert (await rejection(verifier, token, spec)).reason == "key_file_unreadable"
    with pytest.raises(KeyParseError, match="private"):
        parse_key_document(json.dumps({**public, "d": d}).encode(), "conf/one.jwk", 10)


# ---- Lock-ins: exact principal comparison, no Unicode folding ----


@pytest.mark.parametrize(
    ("sub", "user"),
    [
        ("\uff54\uff4f\uff4d", "tom"),  # fullwidth ｔｏｍ
        ("tom", "\uff54\uff4f\uff4d"),
        ("tom\u200b", "tom"),  # zero-width space
        ("tom\x00", "tom"),
        ("to\u0301m", "tóm"),  # combining acute vs precomposed
        ("\u0130", "i"),  # dotted capital I
        ("tom\ufeff", "tom"),
    ],
)
async def test_principal_is_compared_without_unicode_folding(
    sub: str, user: str, spec: TokenAuthSpec, verifier: TokenVerifier, clock: FakeClock
) -> None:
    token = mint("ES256", claims_for(sub, clock.now))
    assert (await rejection(verifier, token, spec, user=user)).reason == "principal_mismatch"


# ---- Lock-ins: JWKS fetch bounded against a trickling or compressed response ----


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_http_server(handler: Handler) -> AsyncIterator[str]:
    async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(wrapped, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/jwks"
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1.0)


async def _trickle(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # Every single read finishes well inside the timeout; the whole response never does.
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
    await writer.drain()
    for _ in range(100):
        writer.write(b" ")
        await writer.drain()
        await asyncio.sleep(0.1)


async def _gzip_bomb(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    body = gzip.compress(b'{"keys": [' + b" " * (10 * 1024 * 1024) + b"]}")
    head = f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    writer.write(head.encode() + body)
    await writer.drain()


@pytest.mark.parametrize(
    ("handler", "reason"),
    [(_trickle, "key_server_unreachable"), (_gzip_bomb, "key_set_invalid")],
    ids=["trickle", "gzip"],
)
async def test_jwks_fetch_is_bounded(
    handler: Handler, reason: str, make_verifier: Callable[..., TokenVerifier], clock: FakeClock
) -> None:
    verifier = make_verifier(fetch_timeout_seconds=0.5)
    async with raw_http_server(handler) as url:
        started = time.monotonic()
        found = await rejection(verifier, mint("ES256", claims_for("tom", clock.now)), TokenAuthSpec(url))
        assert time.monotonic() - started < 1.5
        assert found.reason == reason


# ---- Key files: what is checked is what is read ----


async def test_symlink_swapped_in_after_the_path_check_is_not_followed(
    home: Path, verifier: TokenVerifier, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The path was resolved (and checked to be inside conf/), then stat'ed and opened by name: a symlink put in its
    # place in between was followed to keys outside conf/. The file is now opened with O_NOFOLLOW and checked
    # with fstat on the open descriptor. (The same change stops a FIFO swapped in from blocking the event loop.)
    (home / "outside.jwks").write_text(json.dumps(jwks(jwk_with("ES256"))))
    swapped = home / "conf" / "k.jwks"
    swapped.symlink_to(home / "outside.jwks")
    monkeypatch.setattr(key_files, "resolve_inside_conf", lambda _conf, _name: swapped)  # as at check time
    found = await rejection(verifier, mint("ES256", claims_for("tom", clock.now)), TokenAuthSpec("k.jwks"))
    assert found.reason == "key_file_unreadable" and "cannot be read" in found.message
