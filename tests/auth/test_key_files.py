"""Local key files under conf/: JWKS, single JWK, PEM keys and certificates; re-reads; escapes; failures."""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from fe.auth.token_spec import TokenAuthSpec
from fe.auth.verifier import TokenRejected, TokenVerifier
from tests.auth.jose_helpers import FakeClock, claims_for, jwk_with, jwks, mint, signing_key


def pem_public(name: str) -> bytes:
    return (
        signing_key(name)[0]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def pem_certificate(name: str) -> bytes:
    private = signing_key(name)[0]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp signing")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(private, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


async def reason_of(verifier: TokenVerifier, token: str, spec: TokenAuthSpec) -> TokenRejected:
    with pytest.raises(TokenRejected) as info:
        await verifier.verify(token, "tom", spec)
    return info.value


async def test_single_jwk_file(home: Path, verifier: TokenVerifier, clock: FakeClock) -> None:
    (home / "conf" / "one.jwk").write_text(json.dumps(jwk_with("EdDSA")))
    assert await verifier.verify(mint("EdDSA", claims_for("tom", clock.now)), "tom", TokenAuthSpec("one.jwk"))


async def test_pem_public_key_without_kid_accepts_any_kid(
    home: Path, verifier: TokenVerifier, clock: FakeClock
) -> None:
    (home / "conf" / "idp.pem").write_bytes(pem_public("RS256"))
    spec = TokenAuthSpec("idp.pem")
    assert await verifier.verify(mint("RS256", claims_for("tom", clock.now)), "tom", spec)  # token has a kid
    assert await verifier.verify(mint("RS256", claims_for("tom", clock.now), kid=None, alg="PS512"), "tom", spec)
    assert (await reason_of(verifier, mint("ES256", claims_for("tom", clock.now)), spec)).reason == "unknown_kid"


async def test_pem_with_several_certificates_and_keys(home: Path, verifier: TokenVerifier, clock: FakeClock) -> None:
    content = pem_certificate("ES256") + pem_public("ES384") + pem_certificate("RS256")
    (home / "conf" / "chain.pem").write_bytes(content)
    spec = TokenAuthSpec("chain.pem")
    for name in ("ES256", "ES384", "RS256"):
        assert await verifier.verify(mint(name, claims_for("tom", clock.now), kid=None), "tom", spec)


async def test_pem_private_key_blocks_are_not_used(home: Path, verifier: TokenVerifier, clock: FakeClock) -> None:
    private_pem = signing_key("ES256")[0].private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (home / "conf" / "private.pem").write_bytes(private_pem)
    rejection = await reason_of(verifier, mint("ES256", claims_for("tom", clock.now)), TokenAuthSpec("private.pem"))
    assert rejection.reason == "key_file_unreadable"
    assert "conf/private.pem" in rejection.message and "PRIVATE KEY" in rejection.message


async def test_weak_rsa_key_is_refused(home: Path, verifier: TokenVerifier, clock: FakeClock) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = weak.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (home / "conf" / "weak.pem").write_bytes(pem)
    rejection = await reason_of(verifier, mint("RS256", claims_for("tom", clock.now)), TokenAuthSpec("weak.pem"))
    assert rejection.reason == "key_file_unreadable" and "1024 bits is too small" in rejection.message


async def test_unsupported_curve_is_refused(home: Path, verifier: TokenVerifier, clock: FakeClock) -> None:
    key = ec.generate_private_key(ec.SECP256K1()).public_key()
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (home / "conf" / "k1.pem").write_bytes(pem)
    rejection = await reason_of(verifier, mint("ES256", claims_for("tom", clock.now)), TokenAuthSpec("k1.pem"))
    assert rejection.reason == "key_file_unreadable" and "secp256k1" in rejection.message


@pytest.mark.parametrize(
    "content",
    [b"", b"garbage", b"{not json", b"[1,2]", b'{"hello": 1}', b'{"kty": "oct", "k": "AA"}', b"\xff\xfe\x00",
     b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", b'{"keys": []}'],
)  # fmt: skip
async def test_garbage_files(content: bytes, home: Path, verifier: TokenVerifier, clock: FakeClock) -> None:
    (home / "conf" / "bad.jwks").write_bytes(content)
    rejection = await reason_of(verifier, mint("ES256", claims_for("tom", clock.now)), TokenAuthSpec("bad.jwks"))
    assert rejection.reason == "key_file_unreadable"
    assert rejection.message.startswith("key file conf/bad.jwks: ")


async def test_oversized_file(home: Path, make_verifier, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    verifier = make_verifier(max_response_bytes=1000)
    (home / "conf" / "big.jwks").write_text(json.dumps(jwks(jwk_with("ES256"))) + " " * 1000)
    rejection = await reason_of(verifier, mint("ES256", claims_for("tom", clock.now)), TokenAuthSpec("big.jwks"))
    assert rejection.reason == "key_file_unreadable" and "limit" in rejection.message


async def test_directory_and_unreadable_file(home: Path, verifier: TokenVerifier, clock: FakeClock) -> None:
    (home / "conf" / "dir.jwks").mkdir()
    rejection = await reason_of(verifier, mint("ES256", claims_for("tom", clock.now)), TokenAuthSpec("dir.jwks"))
    assert rejection.reason == "key_file_unreadable" and "not a regular file" in rejection.message
    if os.geteuid() != 0:  # root reads anything
        locked = home / "conf" / "locked.jwks"
        locked.write_text(json.dumps(jwks(jwk_with("ES256"))))
        locked.chmod(0)
        rejection = await reason_of(verifier, mint("ES256", claims_for("tom", clock.now)), TokenAuthSpec("locked.jwks"))
        assert rejection.reason == "key_file_unreadable" and "cannot be read" in rejection.message


async def test_file_changes_are_picked_up_at_most_once_a_second(
    home: Path, verifier: TokenVerifier, clock: FakeClock
) -> None:
    path = home / "conf" / "live.jwks"
    spec = TokenAuthSpec("live.jwks")
    path.write_text(json.dumps(jwks(jwk_with("ES256"))))
    assert await verifier.verify(mint("ES256", claims_for("tom", clock.now)), "tom", spec)

    path.write_text(json.dumps(jwks(jwk_with("ES256"), jwk_with("ES256-b"))))
    new_token = mint("ES256-b", claims_for("tom", clock.now))
    assert (await reason_of(verifier, new_token, spec)).reason == "unknown_kid"  # not looked at yet
    clock.advance(1.0)
    assert await verifier.verify(new_token, "tom", spec)
    assert verifier.stats["key_file_reads"] == {"live.jwks": 2}

    # Unchanged file: stat only, no re-read.
    for _ in range(5):
        clock.advance(1.0)
        assert await verifier.verify(mint("ES256", claims_for("tom", clock.now)), "tom", spec)
    assert verifier.stats["key_file_reads"] == {"live.jwks": 2}

    # Broken file: fails closed; fixed file: works again.
    path.write_text("{")
    clock.advance(1.0)
    assert (await reason_of(verifier, mint("ES256", claims_for("tom", clock.now)), spec)).reason == (
        "key_file_unreadable"
    )
    path.write_text(json.dumps(jwks(jwk_with("ES256"))))
    clock.advance(1.0)
    assert await verifier.verify(mint("ES256", claims_for("tom", clock.now, jti="z")), "tom", spec)


async def test_deleted_file_fails_closed(home: Path, verifier: TokenVerifier, clock: FakeClock) -> None:
    path = home / "conf" / "gone.jwks"
    path.write_text(json.dumps(jwks(jwk_with("ES256"))))
    token = mint("ES256", claims_for("tom", clock.now))
    assert await verifier.verify(token, "tom", TokenAuthSpec("gone.jwks"))
    path.unlink()
    clock.advance(1.0)
    rejection = await reason_of(verifier, token, TokenAuthSpec("gone.jwks"))  # also on a verified-token cache hit
    assert rejection.reason == "key_file_unreadable" and "does not exist" in rejection.message


async def test_symlink_escaping_conf_is_refused_at_use_time(
    home: Path, verifier: TokenVerifier, clock: FakeClock
) -> None:
    inside = home / "conf" / "real.jwks"
    inside.write_text(json.dumps(jwks(jwk_with("ES256"))))
    outside = home / "outside.jwks"
    outside.write_text(json.dumps(jwks(jwk_with("ES256"))))
    link = home / "conf" / "link.jwks"
    link.symlink_to(inside)
    spec = TokenAuthSpec("link.jwks")
    assert await verifier.verify(mint("ES256", claims_for("tom", clock.now)), "tom", spec)

    link.unlink()
    link.symlink_to(outside)  # swapped after CREATE USER validated it
    clock.advance(1.0)
    rejection = await reason_of(verifier, mint("ES256", claims_for("tom", clock.now, jti="2")), spec)
    assert rejection.reason == "key_file_unreadable" and "outside conf/" in rejection.message

    link.unlink()
    link.symlink_to(inside)
    clock.advance(1.0)
    assert await verifier.verify(mint("ES256", claims_for("tom", clock.now, jti="3")), "tom", spec)


async def test_subdirectory_inside_conf_is_fine(home: Path, verifier: TokenVerifier, clock: FakeClock) -> None:
    (home / "conf" / "keys").mkdir()
    (home / "conf" / "keys" / "idp.jwks").write_text(json.dumps(jwks(jwk_with("ES256"))))
    assert await verifier.verify(mint("ES256", claims_for("tom", clock.now)), "tom", TokenAuthSpec("keys/idp.jwks"))
