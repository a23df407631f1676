"""The crypto floor: what one token login must cost the server in public-key crypto alone, from `openssl speed`.

A TLS 1.3 full handshake with an ECDSA P-256 certificate and an X25519 key share (what the benchmark's clients, like
real MySQL clients on OpenSSL 3, offer) costs the server
  - one ephemeral X25519 key generation, a fixed-base scalar multiplication that `openssl speed` does not time on
    its own; one Ed25519 signature (`openssl speed ed25519`) stands in for it: OpenSSL computes an X25519 public key
    with the same edwards25519 fixed-base multiplication (plus one field inversion), and a signature is that
    multiplication plus hashing (two SHA-512 of a few bytes) and scalar arithmetic,
  - one X25519 shared-secret derivation (`openssl speed ecdhx25519`),
  - one ECDSA P-256 signature (CertificateVerify);
symmetric crypto and HKDF are microseconds and left out. A token login adds one signature check of the token:
ES256 = one ECDSA P-256 verify, RS256 = one RSA-2048 verify. A cached token (reused) adds nothing.

For scale, the same run also measures the server side of one such handshake done exactly as fe does it (fe's
server context, Python's ssl over memory BIOs, in process, no sockets), and what a C server pays per full
handshake beyond the arithmetic: the CPU time of `openssl s_server` (same certificate type, TLS 1.3, the benchmark
client's TLS context, so the same X25519 key share) per handshake, read from its /proc counters while a client
connects, handshakes and closes in a loop.
"""

from __future__ import annotations

import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from fe.server.tls import write_self_signed_certificate
from scripts.bench import procstats
from scripts.bench.mariadb import free_loopback_port
from scripts.bench.mysqlwire import client_tls_context

SPEED_COMMAND = ["openssl", "speed", "-mr", "-seconds", "1", "ecdsap256", "ecdhx25519", "ed25519", "rsa2048"]

# Machine-readable summary lines (OpenSSL 3): +F2 = RSA (bits, sign/s, verify/s), +F4 = ECDSA (bits, sign/s,
# verify/s), +F5 = ECDH (bits, op/s; X25519 is 253 bits), +F6 = EdDSA (bits, name, sign/s, verify/s).
_RSA_LINE = re.compile(r"^\+F2:\d+:(\d+):([\d.]+):([\d.]+)", re.MULTILINE)
_ECDSA_LINE = re.compile(r"^\+F4:\d+:(\d+):([\d.]+):([\d.]+)", re.MULTILINE)
_ECDH_LINE = re.compile(r"^\+F5:\d+:(\d+):([\d.]+)", re.MULTILINE)
_EDDSA_LINE = re.compile(r"^\+F6:\d+:\d+:(\w+):([\d.]+):([\d.]+)", re.MULTILINE)
X25519_BITS = 253


@dataclass(frozen=True)
class OpensslSpeed:
    ecdsa_p256_sign_per_s: float
    ecdsa_p256_verify_per_s: float
    x25519_derive_per_s: float
    ed25519_sign_per_s: float  # stands in for an X25519 key generation
    rsa2048_sign_per_s: float
    rsa2048_verify_per_s: float
    openssl_version: str = ""


@dataclass(frozen=True)
class CryptoFloor:
    speed: OpensslSpeed
    s_server_handshake_ms: float | None = None  # measured: openssl s_server's CPU per full TLS 1.3 handshake
    python_handshake_ms: float | None = None  # measured: fe's own TLS context, server side, in memory

    @property
    def tls_handshake_ms(self) -> float:
        """X25519 key generation (≈ Ed25519 sign) + X25519 derivation + ECDSA P-256 sign (CertificateVerify)."""
        s = self.speed
        return 1000 * (1 / s.ed25519_sign_per_s + 1 / s.x25519_derive_per_s + 1 / s.ecdsa_p256_sign_per_s)

    @property
    def es256_verify_ms(self) -> float:
        return 1000 / self.speed.ecdsa_p256_verify_per_s

    @property
    def rs256_verify_ms(self) -> float:
        return 1000 / self.speed.rsa2048_verify_per_s

    def token_login_ms(self, alg: str) -> float:
        """The floor for one token login whose signature is checked (not served from the cache)."""
        return self.tls_handshake_ms + (self.rs256_verify_ms if alg.startswith("RS") else self.es256_verify_ms)


def parse_speed_output(text: str) -> OpensslSpeed:
    ecdsa = {int(bits): (float(sign), float(verify)) for bits, sign, verify in _ECDSA_LINE.findall(text)}
    rsa = {int(bits): (float(sign), float(verify)) for bits, sign, verify in _RSA_LINE.findall(text)}
    ecdh = {int(bits): float(ops) for bits, ops in _ECDH_LINE.findall(text)}
    eddsa = {name: (float(sign), float(verify)) for name, sign, verify in _EDDSA_LINE.findall(text)}
    if 256 not in ecdsa or 2048 not in rsa or X25519_BITS not in ecdh or "Ed25519" not in eddsa:
        raise ValueError(f"could not find ecdsap256, rsa2048, ecdhx25519 and ed25519 results in:\n{text[-2000:]}")
    return OpensslSpeed(
        ecdsa_p256_sign_per_s=ecdsa[256][0],
        ecdsa_p256_verify_per_s=ecdsa[256][1],
        x25519_derive_per_s=ecdh[X25519_BITS],
        ed25519_sign_per_s=eddsa["Ed25519"][0],
        rsa2048_sign_per_s=rsa[2048][0],
        rsa2048_verify_per_s=rsa[2048][1],
    )


def measure() -> CryptoFloor:
    """Run `openssl speed` (about 6 s of one core) and turn it into the floor."""
    if shutil.which("openssl") is None:
        raise RuntimeError("the openssl command is not installed (Debian package: openssl)")
    completed = subprocess.run(SPEED_COMMAND, capture_output=True, text=True, timeout=120, check=True)
    version = subprocess.run(["openssl", "version"], capture_output=True, text=True, timeout=10).stdout.strip()
    speed = parse_speed_output(completed.stdout)
    return CryptoFloor(replace(speed, openssl_version=version))


def measure_python_handshake(handshakes: int = 1000) -> float:
    """CPU time (ms) of the server side of one full TLS 1.3 handshake done the way fe does it: fe's own server
    context (`prepare_tls`: ECDSA P-256 certificate, no tickets) through Python's ssl over memory BIOs, against the
    benchmark client's context (X25519 key share), both in this process with no sockets: only the server's
    `wrap_bio` and `do_handshake` calls are timed (thread CPU time). No kernel, no event loop, no MySQL: what TLS
    alone costs fe, warm caches included."""
    from fe.config import load_settings
    from fe.server.tls import prepare_tls

    client_context = client_tls_context()
    with tempfile.TemporaryDirectory(prefix="fe-bench-tls-") as home:
        server_context = prepare_tls(load_settings(Path(home), environ={})).context
    spent = 0.0
    for _ in range(handshakes):
        client_in, client_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        client = client_context.wrap_bio(client_in, client_out)
        server_in, server_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        started = time.thread_time()
        server = server_context.wrap_bio(server_in, server_out, server_side=True)
        spent += time.thread_time() - started
        server_done = client_done = False
        while not (server_done and client_done):
            if not client_done:
                try:
                    client.do_handshake()
                    client_done = True
                except ssl.SSLWantReadError:
                    pass
            server_in.write(client_out.read())
            started = time.thread_time()
            if not server_done:
                try:
                    server.do_handshake()
                    server_done = True
                except ssl.SSLWantReadError:
                    pass
            spent += time.thread_time() - started
            client_in.write(server_out.read())
    return 1000 * spent / handshakes


def measure_s_server_handshake(seconds: float = 2.0, max_handshakes: int = 20_000) -> float | None:
    """openssl s_server's CPU time (user + system) per full TLS 1.3 handshake, in ms; None if it cannot run.

    The client is the benchmark's own TLS context, and the server is left at OpenSSL's default groups, so the key
    exchange is the one the login storms use (X25519)."""
    if shutil.which("openssl") is None:
        return None
    with tempfile.TemporaryDirectory(prefix="bench-s_server-") as directory:
        cert, key = Path(directory) / "cert.pem", Path(directory) / "key.pem"
        write_self_signed_certificate(cert, key, "bench s_server")
        port = free_loopback_port()
        command = [
            "openssl",
            "s_server",
            "-accept",
            f"127.0.0.1:{port}",
            "-cert",
            str(cert),
            "-key",
            str(key),
            "-tls1_3",
            "-quiet",
            "-naccept",
            str(max_handshakes + 200),
        ]
        server = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=procstats.die_with_parent,
        )
        try:
            context = client_tls_context()
            if not _handshake_until_up(port, context):
                return None
            for _ in range(50):  # warm-up
                _handshake(port, context)
            before = procstats.sample(server.pid).cpu_seconds
            count = 0
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and count < max_handshakes:
                _handshake(port, context)
                count += 1
            used = procstats.sample(server.pid).cpu_seconds - before
            return 1000 * used / count if count else None
        except OSError:
            return None
        finally:
            server.kill()
            server.wait(10)


def _handshake(port: int, context: ssl.SSLContext) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with context.wrap_socket(sock):
            pass


def _handshake_until_up(port: int, context: ssl.SSLContext, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _handshake(port, context)
            return True
        except (OSError, ssl.SSLError):
            time.sleep(0.05)
    return False
