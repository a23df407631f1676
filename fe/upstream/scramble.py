"""What the client side of the password plugins computes from a password and the server's nonce."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def _xor(left: bytes, right: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(left, right, strict=True))


def native(password: bytes, nonce: bytes) -> bytes:
    """mysql_native_password: SHA1(pw) XOR SHA1(nonce ‖ SHA1(SHA1(pw))); empty for an empty password."""
    if not password:
        return b""
    stage1 = hashlib.sha1(password).digest()
    return _xor(stage1, hashlib.sha1(nonce + hashlib.sha1(stage1).digest()).digest())


def caching_sha2(password: bytes, nonce: bytes) -> bytes:
    """caching_sha2_password: SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) ‖ nonce); empty for an empty password."""
    if not password:
        return b""
    stage1 = hashlib.sha256(password).digest()
    return _xor(stage1, hashlib.sha256(hashlib.sha256(stage1).digest() + nonce).digest())


def rsa_encrypted_password(password: bytes, nonce: bytes, public_key_pem: bytes) -> bytes:
    """caching_sha2_password's full authentication without TLS: the NUL-terminated password XORed with the nonce
    (repeated), encrypted with the server's RSA public key (OAEP with SHA-1, as the server decrypts it)."""
    try:
        key = serialization.load_pem_public_key(public_key_pem)
    except ValueError as exc:
        raise ValueError(f"the server's public key is not a PEM RSA key: {exc}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the server's public key is not an RSA key")
    plain = password + b"\x00"
    mixed = bytes(b ^ nonce[i % len(nonce)] for i, b in enumerate(plain))
    return key.encrypt(mixed, padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None))
