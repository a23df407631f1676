"""Developer helpers behind `fe token`: a local signing key and test tokens, to try token logins in two minutes.

    fe token keygen                     # <home>/meta/dev-signing-key.pem (0600) + <home>/conf/dev.jwks
    fe token mint --user tom --out tom.jwt
    CREATE USER tom IDENTIFIED WITH authentication_jwt AS '{"jwks_url": "dev.jwks"}';

Not for production: a real deployment points jwks_url at its identity provider.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from fe.auth import b64url
from fe.auth.jwk import EC_CURVES, RSA_ALGORITHMS
from fe.auth.token_spec import SUPPORTED_ALGORITHMS

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey

SIGNING_KEY_FILE = "dev-signing-key.pem"
_EC_CURVE_BY_ALG = {alg: (crv, curve) for crv, (curve, _size, alg) in EC_CURVES.items()}
_JWKS_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def generate_signing_key(alg: str = "ES256") -> tuple[PrivateKey, dict[str, Any]]:
    """A new private key for `alg` and its public JWK (with kid = RFC 7638 thumbprint, alg and use)."""
    private_key: PrivateKey
    if alg in RSA_ALGORITHMS:
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif alg in _EC_CURVE_BY_ALG:
        private_key = ec.generate_private_key(_EC_CURVE_BY_ALG[alg][1]())
    elif alg == "EdDSA":
        private_key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"unsupported algorithm {alg!r}; choose one of {', '.join(SUPPORTED_ALGORITHMS)}")
    return private_key, public_jwk(private_key, alg)


def public_jwk(private_key: PrivateKey, alg: str | None = None) -> dict[str, Any]:
    """The public half as a JWK, with kid = its RFC 7638 thumbprint; `alg` (if given) and use=sig."""
    public = private_key.public_key()
    members: dict[str, Any]
    if isinstance(public, rsa.RSAPublicKey):
        rsa_numbers = public.public_numbers()
        members = {"e": _b64_uint(rsa_numbers.e), "kty": "RSA", "n": _b64_uint(rsa_numbers.n)}
    elif isinstance(public, ec.EllipticCurvePublicKey):
        crv = next(name for name, (curve, _s, _a) in EC_CURVES.items() if curve.name == public.curve.name)
        size = EC_CURVES[crv][1]
        point = public.public_numbers()
        members = {"crv": crv, "kty": "EC", "x": _b64_uint(point.x, size), "y": _b64_uint(point.y, size)}
    else:
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        crv = "Ed25519" if isinstance(public, ed25519.Ed25519PublicKey) else "Ed448"
        members = {"crv": crv, "kty": "OKP", "x": b64url.encode(raw)}
    thumbprint = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest()
    jwk = {**members, "kid": b64url.encode(thumbprint), "use": "sig"}
    if alg is not None:
        jwk["alg"] = alg
    return jwk


def default_alg(private_key: PrivateKey) -> str:
    if isinstance(private_key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return next(alg for alg, (_crv, curve) in _EC_CURVE_BY_ALG.items() if curve.name == private_key.curve.name)
    return "EdDSA"


def mint_token(private_key: PrivateKey, alg: str, kid: str | None, claims: dict[str, Any]) -> str:
    """A compact JWS over `claims`, signed with `private_key`; `kid` goes into the header when given."""
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(claims, private_key, algorithm=alg, headers=headers)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="token_command", required=True, metavar="{keygen,mint}")

    keygen = commands.add_parser("keygen", help=f"create meta/{SIGNING_KEY_FILE} and its public JWKS in conf/")
    keygen.add_argument("--alg", choices=["ES256", "RS256"], default="ES256", help="signing algorithm (default ES256)")
    keygen.add_argument("--name", default="dev", help="the JWKS is written to conf/<name>.jwks (default: dev)")
    keygen.add_argument("--force", action="store_true", help="replace an existing signing key")

    mint = commands.add_parser("mint", help=f"mint a token signed with meta/{SIGNING_KEY_FILE}")
    mint.add_argument("--user", required=True, help="the login name, put into the principal claim")
    mint.add_argument("--issuer", help="the 'iss' claim")
    mint.add_argument("--audience", action="append", help="the 'aud' claim (repeat for several)")
    mint.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    mint.add_argument("--kid", help="key id for the header (default: the key's thumbprint, as keygen wrote it)")
    mint.add_argument("--principal-field", default="sub", help="claim holding the user name (default: sub)")
    mint.add_argument("--key", type=Path, help=f"signing key PEM (default: <home>/meta/{SIGNING_KEY_FILE})")
    mint.add_argument("--out", type=Path, help="write the token to this file (mode 0600) instead of stdout")
    for command in (keygen, mint):
        # Also after the subcommand (`fe token mint --home X`); SUPPRESS keeps a value given before it.
        command.add_argument("--home", type=Path, default=argparse.SUPPRESS, help="directory holding conf/ and meta/")


def run(args: argparse.Namespace, home: Path) -> int:
    try:
        if args.token_command == "keygen":
            return _keygen(args, home)
        return _mint(args, home)
    except (OSError, ValueError) as exc:
        print(f"fe token {args.token_command}: {exc}", file=sys.stderr)
        return 1


def _keygen(args: argparse.Namespace, home: Path) -> int:
    if not _JWKS_NAME.fullmatch(args.name):
        raise ValueError(f"--name {args.name!r} must be a plain file name (letters, digits, '_', '.', '-')")
    key_path = home / "meta" / SIGNING_KEY_FILE
    jwks_path = home / "conf" / f"{args.name}.jwks"
    if key_path.exists() and not args.force:
        raise ValueError(f"{key_path} already exists; use --force to replace it")
    private_key, jwk = generate_signing_key(args.alg)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # meta/ is private
    write_private_file(key_path, pem)
    jwks_path.parent.mkdir(parents=True, exist_ok=True)
    jwks_path.write_text(json.dumps({"keys": [jwk]}, indent=2) + "\n", encoding="utf-8")
    print(f"signing key: {key_path} ({args.alg}, kid {jwk['kid']})")
    print(f"public JWKS: {jwks_path}")
    # The README's quickstart, step by step.
    spec = f'{{"jwks_url": "{args.name}.jwks", "required_issuer": "fe-dev", "required_audience": "fe"}}'
    home_option = "" if home == Path.cwd().resolve() else f" --home {shlex.quote(str(home))}"
    print("next, as root in any MySQL client:")
    print(f"  CREATE USER tom IDENTIFIED WITH authentication_jwt AS '{spec}';")
    print("then a token for tom:")
    print(f"  python3 -m fe token mint --user tom --issuer fe-dev --audience fe --out tom.token{home_option}")
    return 0


def _mint(args: argparse.Namespace, home: Path) -> int:
    key_path = args.key if args.key is not None else home / "meta" / SIGNING_KEY_FILE
    private_key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(private_key, PrivateKey):
        raise ValueError(f"{key_path} holds a {type(private_key).__name__}, not a signing key")
    if args.ttl <= 0:
        raise ValueError("--ttl must be positive")
    alg = default_alg(private_key)
    kid = args.kid if args.kid is not None else public_jwk(private_key)["kid"]
    now = int(time.time())
    claims: dict[str, Any] = {args.principal_field: args.user, "iat": now, "exp": now + args.ttl}
    if args.issuer:
        claims["iss"] = args.issuer
    if args.audience:
        claims["aud"] = args.audience[0] if len(args.audience) == 1 else args.audience
    token = mint_token(private_key, alg, kid, claims)
    if args.out is None:
        print(token)
    else:
        write_private_file(args.out, token.encode("ascii"))
        print(f"token for {args.user!r} written to {args.out} (expires in {args.ttl}s)", file=sys.stderr)
    return 0


def write_private_file(path: Path, data: bytes) -> None:
    """Write `data` to a file only its owner can read, replacing any previous file."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _b64_uint(value: int, size: int | None = None) -> str:
    """RFC 7518 §2 Base64urlUInt: big-endian, minimal length unless a fixed `size` is given (EC coordinates)."""
    length = size if size is not None else max(1, (value.bit_length() + 7) // 8)
    return b64url.encode(value.to_bytes(length, "big"))
