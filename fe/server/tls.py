"""TLS material: the server certificate (configured, or a generated self-signed ECDSA P-256 one) and the RSA key
caching_sha2_password uses to receive a password over a plain connection."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import ssl
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from fe.config import Settings

log = logging.getLogger("fe.tls")

CERT_FILE = "server-cert.pem"
KEY_FILE = "server-key.pem"
RSA_KEY_FILE = "rsa-private-key.pem"


@dataclass(frozen=True)
class TlsMaterial:
    context: ssl.SSLContext
    cert_path: Path
    rsa_private_key: rsa.RSAPrivateKey
    rsa_public_pem: bytes

    def decrypt_password(self, ciphertext: bytes) -> bytes:
        """caching_sha2_password's RSA exchange (RSA-OAEP with SHA-1, as the clients use)."""
        return self.rsa_private_key.decrypt(
            ciphertext, padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
        )


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def write_self_signed_certificate(
    cert_path: Path, key_path: Path, common_name: str = "fe self-signed server certificate"
) -> None:
    """An ECDSA P-256 key (mode 0600) and a self-signed certificate for localhost / 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    _write_private(
        key_path,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _load_or_create_rsa_key(path: Path) -> rsa.RSAPrivateKey:
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{path} is not an RSA private key")
        return key
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_private(
        path,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    return key


def make_private_dir(path: Path) -> None:
    """Create `path` with mode 0700, or tighten an existing one that others may read (with a warning): meta/ holds
    the catalog's password hashes and the private keys."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if not mode & 0o077:
        return
    try:
        os.chmod(path, 0o700)
    except OSError as exc:
        log.warning("%s is open to other users (mode %04o) and stays so: %s", path, mode, exc)
    else:
        log.warning("%s was open to other users (mode %04o); it is now 0700", path, mode)


def prepare_tls(settings: Settings) -> TlsMaterial:
    """Load (or on first start create) the certificate, key and RSA key; build the server SSL context. Makes sure
    meta/ and meta/tls/ are private (0700) on every start."""
    make_private_dir(settings.meta_dir)
    tls_dir = settings.meta_dir / "tls"
    make_private_dir(tls_dir)
    if settings.ssl_cert:
        cert_path, key_path = settings.resolve(settings.ssl_cert), settings.resolve(settings.ssl_key)
    else:
        cert_path, key_path = tls_dir / CERT_FILE, tls_dir / KEY_FILE
        if not (cert_path.exists() and key_path.exists()):
            write_self_signed_certificate(cert_path, key_path)
            log.info("generated a self-signed ECDSA P-256 certificate in %s", cert_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    # MySQL clients never resume TLS sessions: issuing TLS 1.3 tickets would cost a write and crypto per login.
    context.num_tickets = 0
    context.load_cert_chain(cert_path, key_path)
    rsa_key = _load_or_create_rsa_key(tls_dir / RSA_KEY_FILE)
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return TlsMaterial(context, cert_path, rsa_key, public_pem)
