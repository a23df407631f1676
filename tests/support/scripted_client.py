"""A raw-socket client that logs in the way a real client would — starting with a chosen plugin, answering every
AuthSwitchRequest and AuthMoreData as libmysqlclient, PyMySQL or the OpenID Connect plugin do — and records every
packet the server sent, so two logins can be compared byte for byte."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from fe.mysql.codec import lenenc_bytes
from tests.support.rawclient import RawClient, sha2_scramble

SHA2 = "caching_sha2_password"
NATIVE = "mysql_native_password"
CLEAR = "mysql_clear_password"
OIDC = "authentication_openid_connect_client"


def native_scramble(password: bytes, nonce: bytes) -> bytes:
    if not password:
        return b""
    stage1 = hashlib.sha1(password).digest()
    mix = hashlib.sha1(nonce + hashlib.sha1(stage1).digest()).digest()
    return bytes(a ^ b for a, b in zip(stage1, mix, strict=True))


def _rsa_encrypt(password: bytes, nonce: bytes, pem: bytes) -> bytes:
    key = serialization.load_pem_public_key(pem)
    assert isinstance(key, rsa.RSAPublicKey)
    plain = password + b"\x00"
    scrambled = bytes(b ^ nonce[i % len(nonce)] for i, b in enumerate(plain))
    return key.encrypt(scrambled, padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None))


@dataclass
class Transcript:
    """What the server sent, nonces blanked; the last entry is its final OK or ERR (or "closed")."""

    packets: list[bytes] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def final(self) -> bytes:
        return self.packets[-1]

    def normalized(self, user: str) -> list[bytes]:
        """The packets with the user's name (as an ERR quotes it) replaced, so different names can be compared."""
        quoted = f"'{user}'@".encode()
        return [packet.replace(quoted, b"'<user>'@") for packet in self.packets]


def scripted_login(host: str, port: int, user: str, password: bytes, plugin: str, tls: bool) -> Transcript:
    client = RawClient(host, port)
    transcript = Transcript()
    started = time.perf_counter()
    try:
        client.read_greeting()
        nonce = client.nonce
        if tls:
            client.start_tls()
        client.send_packet(client.handshake_response(user, _first_auth(plugin, password, nonce), plugin, tls=tls))
        current = plugin
        for _ in range(8):
            try:
                reply = client.read_packet()
            except (ConnectionError, OSError):
                transcript.packets.append(b"closed")
                break
            if reply[:1] == b"\xfe" and len(reply) > 1:  # AuthSwitchRequest
                name, _, data = reply[1:].partition(b"\x00")
                nonce = data.rstrip(b"\x00") or nonce
                current = name.decode()
                transcript.packets.append(b"\xfe" + name + b"\x00<nonce>")
                client.send_packet(_switch_answer(current, password, nonce))
            elif reply == b"\x01\x04":  # caching_sha2: perform full authentication
                transcript.packets.append(reply)
                client.send_packet(password + b"\x00" if tls else b"\x02")
            elif reply[:1] == b"\x01" and b"PUBLIC KEY" in reply:
                transcript.packets.append(reply)
                try:
                    client.send_packet(_rsa_encrypt(password, nonce, reply[1:]))
                except ValueError:  # too long for RSA-OAEP (a token): a real client gives up here too
                    transcript.packets.append(b"client gave up")
                    break
            else:
                transcript.packets.append(reply)
                if reply[:1] != b"\x01":  # OK or ERR: the end
                    break
    finally:
        transcript.seconds = time.perf_counter() - started
        client.close()
    return transcript


def _first_auth(plugin: str, password: bytes, nonce: bytes) -> bytes:
    return _switch_answer(plugin, password, nonce)


def _switch_answer(plugin: str, password: bytes, nonce: bytes) -> bytes:
    if plugin == SHA2:
        return sha2_scramble(password, nonce) if password else b""
    if plugin == NATIVE:
        return native_scramble(password, nonce)
    if plugin == CLEAR:
        return password + b"\x00"
    if plugin == OIDC:
        return b"\x01" + lenenc_bytes(password) if password else b""
    raise ValueError(plugin)
