"""`fe token keygen` / `fe token mint` and the plain helpers behind them."""

from __future__ import annotations

import argparse
import json
import stat
from pathlib import Path

import jwt
import pytest

from fe.auth import devtools
from fe.auth.token_spec import parse_token_auth_string
from fe.auth.verifier import TokenRejected, TokenVerifier


def run(home: Path, *argv: str) -> int:
    parser = argparse.ArgumentParser()
    devtools.add_arguments(parser)
    return devtools.run(parser.parse_args(list(argv)), home)


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "ES384", "ES512", "EdDSA"])
def test_generate_and_mint_interoperate_with_pyjwt(alg: str) -> None:
    private, jwk = devtools.generate_signing_key(alg)
    assert jwk["alg"] == alg and jwk["use"] == "sig" and jwk["kid"]
    token = devtools.mint_token(private, alg, jwk["kid"], {"sub": "tom"})
    assert jwt.get_unverified_header(token)["kid"] == jwk["kid"]
    public = jwt.PyJWK(jwk)
    assert jwt.decode(token, public.key, algorithms=[alg]) == {"sub": "tom"}


def test_kid_is_the_rfc7638_thumbprint() -> None:
    # RFC 7638 §3.1 example key and its thumbprint
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3"
        "oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZ"
        "Hzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-k"
        "EgU8awapJzKnqDKgw"
    )
    from cryptography.hazmat.primitives.asymmetric import rsa

    numbers = rsa.RSAPublicNumbers(65537, int.from_bytes(jwt.utils.base64url_decode(n), "big"))

    class _Holder:
        def public_key(self) -> rsa.RSAPublicKey:
            return numbers.public_key()

    jwk = devtools.public_jwk(_Holder())  # type: ignore[arg-type]
    assert jwk["kid"] == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_unsupported_alg() -> None:
    with pytest.raises(ValueError, match="unsupported algorithm"):
        devtools.generate_signing_key("HS256")


async def test_keygen_then_mint_then_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path
    assert run(home, "keygen") == 0
    key_file = home / "meta" / "dev-signing-key.pem"
    jwks_file = home / "conf" / "dev.jwks"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "BEGIN PRIVATE KEY" in key_file.read_text()
    public = json.loads(jwks_file.read_text())
    assert [k["alg"] for k in public["keys"]] == ["ES256"] and "d" not in public["keys"][0]
    assert "CREATE USER" in capsys.readouterr().out

    token_file = home / "tom.jwt"
    assert (
        run(home, "mint", "--user", "tom", "--issuer", "https://dev", "--audience", "fe", "--ttl", "600",
            "--out", str(token_file))
        == 0
    )  # fmt: skip
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600

    spec, _ = parse_token_auth_string(
        '{"jwks_url": "dev.jwks", "required_issuer": "https://dev", "required_audience": "fe"}', home / "conf"
    )
    verifier = TokenVerifier(home / "conf")
    try:
        claims = await verifier.verify(token_file.read_bytes(), "tom", spec)
        assert claims["sub"] == "tom" and claims["exp"] - claims["iat"] == 600
        with pytest.raises(TokenRejected):
            await verifier.verify(token_file.read_bytes(), "root", spec)
    finally:
        await verifier.aclose()


async def test_rs256_keygen_and_mint_to_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, "keygen", "--alg", "RS256", "--name", "local") == 0
    capsys.readouterr()
    assert (
        run(tmp_path, "mint", "--user", "ann", "--principal-field", "email", "--audience", "a", "--audience", "b") == 0
    )
    token = capsys.readouterr().out.strip()
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["email"] == "ann" and claims["aud"] == ["a", "b"] and "sub" not in claims
    spec, _ = parse_token_auth_string('{"jwks_url": "local.jwks", "principal_field": "email"}', tmp_path / "conf")
    verifier = TokenVerifier(tmp_path / "conf")
    try:
        assert (await verifier.verify(token, "ann", spec))["email"] == "ann"
    finally:
        await verifier.aclose()


def test_keygen_does_not_overwrite_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, "keygen") == 0
    first = (tmp_path / "meta" / "dev-signing-key.pem").read_bytes()
    assert run(tmp_path, "keygen") == 1
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "meta" / "dev-signing-key.pem").read_bytes() == first
    assert run(tmp_path, "keygen", "--force") == 0
    assert (tmp_path / "meta" / "dev-signing-key.pem").read_bytes() != first


@pytest.mark.parametrize("name", ["../evil", "a/b", "", ".hidden"])
def test_keygen_name_must_be_a_plain_file_name(tmp_path: Path, name: str) -> None:
    assert run(tmp_path, "keygen", "--name", name) == 1
    assert not (tmp_path / "meta" / "dev-signing-key.pem").exists()


def test_mint_without_a_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, "mint", "--user", "tom") == 1
    assert "dev-signing-key.pem" in capsys.readouterr().err


def test_mint_with_explicit_kid_and_bad_ttl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(tmp_path, "keygen")
    capsys.readouterr()
    assert run(tmp_path, "mint", "--user", "tom", "--kid", "custom") == 0
    assert jwt.get_unverified_header(capsys.readouterr().out.strip())["kid"] == "custom"
    assert run(tmp_path, "mint", "--user", "tom", "--ttl", "0") == 1
