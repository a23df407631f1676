"""Every byte of a password counts at login: over TLS (caching_sha2_password's full authentication, where the
client sends the cleartext), `pw` followed by NUL bytes is not `pw`, and a long password's SHA-256 is not the
password. Real clients cannot send NULs in a password, so the raw client sends them."""

from __future__ import annotations

import hashlib

from tests.conftest import ROOT_PASSWORD
from tests.support.rawclient import RawClient, error_of, sha2_scramble
from tests.support.server import FeProcess
from tests.support.sessions import Session

LONG_PASSWORD = "a-long-passphrase-" * 6  # 108 bytes, longer than an HMAC-SHA256 block


def tls_login(server: FeProcess, user: str, password: bytes) -> bytes:
    """caching_sha2_password over TLS with arbitrary password bytes; the final OK or ERR payload."""
    client = RawClient(server.host, server.port)
    try:
        client.read_greeting()
        client.start_tls()
        client.send_packet(client.handshake_response(user, sha2_scramble(password, client.nonce), tls=True))
        while True:
            reply = client.read_packet()
            if reply == b"\x01\x03":  # fast path accepted; the OK follows
                continue
            if reply == b"\x01\x04":  # full authentication: the cleartext, NUL-terminated
                client.send_packet(password + b"\x00")
                continue
            if reply[:1] == b"\xfe" and len(reply) > 1:
                _, _, data = reply[1:].partition(b"\x00")
                client.nonce = data.rstrip(b"\x00")
                client.send_packet(sha2_scramble(password, client.nonce))
                continue
            return reply
    finally:
        client.close()


def test_nul_bytes_and_digests_are_not_the_password(fe_server: FeProcess) -> None:
    with Session(fe_server, "root", ROOT_PASSWORD) as root:
        root.run("CREATE USER IF NOT EXISTS nul_user IDENTIFIED BY 'pw'")
        root.run(f"CREATE USER IF NOT EXISTS long_user IDENTIFIED BY '{LONG_PASSWORD}'")
    try:
        for password in (b"pw\x00", b"pw\x00\x00", b"pw\x00\x00\x00\x00"):
            code, message = error_of(tls_login(fe_server, "nul_user", password))
            assert code == 1045, (password, message)
        assert tls_login(fe_server, "nul_user", b"pw")[:1] == b"\x00"
        # Once more after a successful login (the fast path now knows `pw`): still refused.
        assert error_of(tls_login(fe_server, "nul_user", b"pw\x00\x00"))[0] == 1045

        digest = hashlib.sha256(LONG_PASSWORD.encode()).digest()
        assert error_of(tls_login(fe_server, "long_user", digest))[0] == 1045
        assert tls_login(fe_server, "long_user", LONG_PASSWORD.encode())[:1] == b"\x00"
    finally:
        with Session(fe_server, "root", ROOT_PASSWORD) as root:
            root.run("DROP USER IF EXISTS nul_user")
            root.run("DROP USER IF EXISTS long_user")
