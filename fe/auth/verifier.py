"""Token verification for token users: a compact JWS checked against the user's own keys and claims rules.

Order: size → shape → header/payload JSON → algorithm policy → key (cached; fetched only on a first use,
a refresh or a rate-limited unknown-kid refetch; with discovery, only once `iss` is one of required_issuer) →
signature (one OpenSSL call) → claims (exp, nbf, iat, iss, aud, principal). Keys named in the token header
(`jwk`, `jku`, `x5u`, `x5c`) are never used or fetched.

A token that passed once is remembered (see token_cache.py); a repeat costs a SHA-256, a dict lookup, the
exp check and a check that the key which verified it is still in the user's current key set.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from fe.auth.errors import TokenRejected, shorten
from fe.auth.json_pointer import MISSING, resolve
from fe.auth.jwk import KeySet, VerificationKey
from fe.auth.jwks_http import DEFAULT_KEY_FETCH, KeyFetchOptions
from fe.auth.jws import CompactToken, parse_compact, verify_signature
from fe.auth.keys import KeyStore
from fe.auth.token_cache import CachedVerification, VerifiedTokenCache, estimate_size
from fe.auth.token_spec import SUPPORTED_ALGORITHMS, TokenAuthSpec

__all__ = ["KeyFetchOptions", "TokenRejected", "TokenVerifier"]

log = logging.getLogger("fe.auth.verifier")

MAX_NUMERIC_DATE = 253402300799  # 9999-12-31T23:59:59Z; anything later is not a real expiry
_SUPPORTED = frozenset(SUPPORTED_ALGORITHMS)
_WHITESPACE = b" \t\r\n"
# Header `typ` values an ID token may carry (compared case-insensitively); absent is fine too. Explicitly typed
# other tokens from the same provider (RFC 9068 "at+jwt", "logout+jwt", "secevent+jwt", ...) are not logins.
_LOGIN_TOKEN_TYPES = frozenset({"jwt", "application/jwt", "jose", "application/jose"})


class TokenVerifier:
    def __init__(
        self,
        conf_dir: Path,
        *,
        key_fetch: KeyFetchOptions = DEFAULT_KEY_FETCH,
        leeway_seconds: float = 60,
        max_token_bytes: int = 16 * 1024,
        cache_entries: int = 10_000,
        cache_bytes: int = 64 * 1024 * 1024,
        clock: Callable[[], float] = time.time,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        """`conf_dir` holds the key files; `leeway_seconds` is the clock skew allowed for exp, nbf and iat;
        the verified-token cache keeps at most `cache_entries` tokens and `cache_bytes` (estimated) of claims."""
        self._clock = clock
        self._leeway = leeway_seconds
        self._max_bytes = max_token_bytes
        self.key_store = KeyStore(conf_dir, key_fetch, clock=clock, http_client=http_client)
        self._cache = VerifiedTokenCache(cache_entries, cache_bytes)
        self._accepted = 0
        self._rejected: Counter[str] = Counter()
        self._cache_hits = 0

    @property
    def stats(self) -> dict[str, Any]:
        """A snapshot of counters: outcomes by reason, verified-token cache use, and JWKS fetches per URL."""
        return {
            "accepted": self._accepted,
            "rejected": dict(self._rejected),
            "token_cache_hits": self._cache_hits,
            "token_cache_size": len(self._cache),
            "token_cache_bytes": self._cache.bytes,
            **self.key_store.stats(),
        }

    async def verify(self, token: str | bytes, user_name: str, spec: TokenAuthSpec) -> dict[str, Any]:
        """The token's claims if it is a valid login for `user_name` under `spec`; otherwise TokenRejected.

        Nothing else is raised (bar cancellation): an unexpected error is logged and becomes "internal_error".
        """
        try:
            claims = await self._verify(token, user_name, spec)
        except TokenRejected as exc:
            self._rejected[exc.reason] += 1
            log.debug("token for %r rejected: %s (%s)", user_name, exc.reason, exc.message)
            raise
        except Exception:
            # Fail closed, and as a rejection: the login exchange turns TokenRejected (only) into ERR 1045.
            log.exception("verifying a token for %r failed unexpectedly", user_name)
            self._rejected["internal_error"] += 1
            raise TokenRejected("internal_error", "the token could not be verified (internal error)") from None
        self._accepted += 1
        return claims

    async def aclose(self) -> None:
        await self.key_store.aclose()

    async def _verify(self, token: str | bytes, user_name: str, spec: TokenAuthSpec) -> dict[str, Any]:
        raw = self._token_bytes(token)
        now = self._clock()
        cache_key = (hashlib.sha256(raw).digest(), user_name, spec)
        cached = self._cache.get(cache_key)
        if cached is not None:
            if now >= cached.exp + self._leeway:
                self._cache.discard(cache_key)
                raise TokenRejected("expired", f"token expired at {_iso(cached.exp)}", signature_verified=True)
            keys = await self.key_store.get_keys(spec, cached.claims.get("iss"))
            if cached.key in keys.members:
                self._cache_hits += 1
                return dict(cached.claims)
            self._cache.discard(cache_key)  # the key that verified it is gone: verify afresh

        parsed = parse_compact(raw)
        alg = self._check_algorithm(parsed, spec)
        key = await self._find_key(parsed, alg, spec)
        if not verify_signature(key, alg, parsed.signing_input, parsed.signature):
            raise TokenRejected("bad_signature", f"signature does not verify with {key.describe()}")
        try:
            exp = self._check_claims(parsed.claims, user_name, spec, now)
        except TokenRejected as exc:
            exc.signature_verified = True  # the token is genuinely from the account's issuer: its holder may know why
            raise
        size = estimate_size(parsed.payload, user_name)
        self._cache.put(cache_key, CachedVerification(parsed.claims, exp, key, size))
        return dict(parsed.claims)

    def _token_bytes(self, token: str | bytes) -> bytes:
        if len(token) > self._max_bytes:
            raise TokenRejected("too_large", f"token of {len(token)} bytes exceeds the {self._max_bytes}-byte limit")
        if isinstance(token, str):
            try:
                raw = token.encode("ascii")
            except UnicodeEncodeError:
                raise TokenRejected("malformed", "token contains non-ASCII characters") from None
        else:
            raw = bytes(token)
        raw = raw.strip(_WHITESPACE)  # token files usually end with a newline
        if not raw:
            raise TokenRejected("malformed", "token is empty")
        return raw

    def _check_algorithm(self, parsed: CompactToken, spec: TokenAuthSpec) -> str:
        alg = parsed.alg
        if alg not in _SUPPORTED:
            if alg.lower() == "none":
                raise TokenRejected("alg_not_allowed", "unsigned tokens (alg none) are not accepted")
            raise TokenRejected("alg_not_allowed", f"algorithm {shorten(alg, 40)} is not accepted")
        if spec.allowed_algorithms is not None and alg not in spec.allowed_algorithms:
            raise TokenRejected("alg_not_allowed", f"algorithm {alg} is not in this user's allowed_algorithms")
        if "crit" in parsed.header:
            crit = shorten(parsed.header["crit"])
            raise TokenRejected("crit_unsupported", f"critical header extensions {crit} are not supported")
        if "b64" in parsed.header:
            # RFC 7797: b64 is only valid listed in crit (refused above); a verifier that honoured a bare b64=false
            # would read a different payload from the same bytes.
            raise TokenRejected("malformed", "the 'b64' header parameter (RFC 7797) is not supported")
        typ = parsed.header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in _LOGIN_TOKEN_TYPES):
            # RFC 8725 §3.11: an access token (at+jwt), logout token, event token... says what it is.
            raise TokenRejected("wrong_token_type", f"token type {shorten(typ, 40)} is not an ID token")
        return alg

    async def _find_key(self, parsed: CompactToken, alg: str, spec: TokenAuthSpec) -> VerificationKey:
        kid = parsed.kid
        issuer = parsed.claims.get("iss")  # picks the keys only for discovery, which checks it first
        keys = await self.key_store.get_keys(spec, issuer)
        key = _select_key(keys, alg, kid)
        if key is None:
            refreshed = await self.key_store.refetch_for_unknown_kid(spec, issuer, kid)
            if refreshed is not None:
                key = _select_key(refreshed, alg, kid)
        if key is None:
            raise TokenRejected("unknown_kid", f"unknown key id {shorten(kid)} (not in {keys.source})")
        return key

    def _check_claims(self, claims: dict[str, Any], user_name: str, spec: TokenAuthSpec, now: float) -> float:
        leeway = self._leeway
        exp = claims.get("exp")
        if exp is None:
            raise TokenRejected("exp_missing", "token has no 'exp' (expiry) claim")
        exp = _numeric_date(claims, "exp")
        if now >= exp + leeway:
            raise TokenRejected("expired", f"token expired at {_iso(exp)}")
        if "nbf" in claims:
            nbf = _numeric_date(claims, "nbf")
            if now + leeway < nbf:
                raise TokenRejected("not_yet_valid", f"token is not valid before {_iso(nbf)}")
        if "iat" in claims:
            iat = _numeric_date(claims, "iat")
            if iat > now + leeway:
                raise TokenRejected("issued_in_future", f"token issued in the future ({_iso(iat)})")
        if spec.required_issuer is not None:
            _check_issuer(claims.get("iss"), spec.required_issuer)
        if spec.required_audience is not None:
            _check_audience(claims.get("aud"), spec.required_audience)
        _check_principal(claims, spec, user_name)
        return exp


def _select_key(keys: KeySet, alg: str, kid: str | None) -> VerificationKey | None:
    """The one key for this token, None if the kid is unknown; TokenRejected on a type clash or ambiguity."""
    if kid is not None:
        named = keys.by_kid.get(kid)
        if named is not None:
            fitting = [k for k in named if alg in k.algorithms]
            if not fitting:
                raise TokenRejected("alg_key_mismatch", f"algorithm {alg} does not fit {named[0].describe()}")
            if len(fitting) > 1:
                raise TokenRejected("ambiguous_key", f"{keys.source} has {len(fitting)} keys with kid {shorten(kid)}")
            return fitting[0]
        # A kid we do not know may still match a key published without one (a PEM file); never a kid-ed key.
        pool = keys.without_kid
    else:
        pool = keys.keys
    fitting = [k for k in pool if alg in k.algorithms]
    if len(fitting) == 1:
        return fitting[0]
    if len(fitting) > 1:
        raise TokenRejected(
            "ambiguous_key", f"token has no kid and {len(fitting)} keys in {keys.source} fit algorithm {alg}"
        )
    if kid is not None:
        return None
    raise TokenRejected("alg_key_mismatch", f"no key in {keys.source} fits algorithm {alg}")


def _numeric_date(claims: dict[str, Any], name: str) -> float:
    value = claims[name]
    if type(value) not in (int, float):
        raise TokenRejected("malformed", f"claim '{name}' must be a number of seconds, not {shorten(value, 40)}")
    # abs() before isfinite(): math.isfinite() raises OverflowError for an int beyond float range (10**400).
    if abs(value) > MAX_NUMERIC_DATE or not math.isfinite(value):
        raise TokenRejected("malformed", f"claim '{name}' is out of range: {shorten(value, 40)}")
    return float(value)


def _check_issuer(iss: object, required: tuple[str, ...]) -> None:
    if iss is None:
        raise TokenRejected("wrong_issuer", "token has no 'iss' claim; required_issuer is set")
    if not isinstance(iss, str):
        raise TokenRejected("wrong_issuer", f"'iss' must be a single string, not {shorten(iss)}")
    if iss not in required:
        raise TokenRejected("wrong_issuer", f"issuer {shorten(iss)} is not one of required_issuer")


def _check_audience(aud: object, required: tuple[str, ...]) -> None:
    if aud is None:
        raise TokenRejected("wrong_audience", "token has no 'aud' claim; required_audience is set")
    if isinstance(aud, str):
        audiences: list[Any] = [aud]
    elif isinstance(aud, list) and all(isinstance(a, str) for a in aud):
        audiences = aud
    else:
        raise TokenRejected("wrong_audience", f"'aud' must be a string or an array of strings, not {shorten(aud)}")
    if not any(a in required for a in audiences):
        raise TokenRejected("wrong_audience", f"audience {shorten(aud)} does not include any of required_audience")


def _check_principal(claims: dict[str, Any], spec: TokenAuthSpec, user_name: str) -> None:
    field = spec.principal_field
    pointer = spec.principal_pointer
    value = claims.get(field) if pointer is None else resolve(claims, pointer)
    if value is None or value is MISSING or value == "":
        what = f"'{field}' claim" if pointer is None else f"claim at {field!r}"
        raise TokenRejected("principal_missing", f"token has no {what} to match the user name")
    if not isinstance(value, str):
        raise TokenRejected("principal_mismatch", f"claim '{field}' must be a string, not {shorten(value)}")
    if value != user_name:
        raise TokenRejected("principal_mismatch", f"token {field} {shorten(value)} does not match user {user_name!r}")


def _iso(timestamp: float) -> str:
    try:
        return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"{timestamp!r}"
