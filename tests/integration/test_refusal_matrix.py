"""Strangers learn nothing from a refusal: until a credential verified, every packet fe sends is the same for an
unknown user, a mysql_native_password user, a caching_sha2_password user and a token user — for each way a
client may start (its plugin), each credential it may present, over TLS and plain TCP."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fe.auth.devtools import generate_signing_key, mint_token
from tests.conftest import ROOT_PASSWORD, root_execute
from tests.support.scripted_client import CLEAR, NATIVE, OIDC, SHA2, Transcript, scripted_login
from tests.support.server import FeProcess, running_fe

USERS = {"ghost": None, "nat": "Nat-pw-1", "sha": "Sha-pw-1", "tok": None}  # ghost is no account
ISSUER = "https://idp.example"


@dataclass
class Lab:
    server: FeProcess
    good_token_for_someone_else: bytes
    garbage_token: bytes


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    home: Path = tmp_path_factory.mktemp("fe-refusals")
    (home / "conf").mkdir()
    key, jwk = generate_signing_key("ES256")
    (home / "conf" / "idp.jwks").write_text(json.dumps({"keys": [jwk]}))
    spec = {"jwks_url": "idp.jwks", "required_issuer": ISSUER, "required_audience": "fe"}
    with running_fe(home, env={"FE_ROOT_PASSWORD": ROOT_PASSWORD}) as server:
        root_execute(
            server,
            "CREATE USER nat IDENTIFIED WITH mysql_native_password BY 'Nat-pw-1'",
            "CREATE USER sha IDENTIFIED BY 'Sha-pw-1'",
            f"CREATE USER tok IDENTIFIED WITH authentication_jwt AS '{json.dumps(spec)}'",
        )
        claims = {"iss": ISSUER, "aud": "fe", "sub": "somebody", "exp": int(time.time()) + 600}
        token = mint_token(key, "ES256", jwk["kid"], claims).encode()
        yield Lab(server, token, b"eyJhbGciOiJFUzI1NiJ9.garbage.garbage")


CREDENTIALS = ["none", "wrong_password", "garbage_token", "good_token_for_someone_else"]
PLUGINS = [SHA2, NATIVE, CLEAR, OIDC]


def _credential(lab: Lab, kind: str) -> bytes:
    return {
        "none": b"",
        "wrong_password": b"wrong-password",
        "garbage_token": lab.garbage_token,
        "good_token_for_someone_else": lab.good_token_for_someone_else,
    }[kind]


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "plain"])
@pytest.mark.parametrize("plugin", PLUGINS)
@pytest.mark.parametrize("credential", CREDENTIALS)
def test_every_kind_of_account_gets_the_same_refusal(lab: Lab, credential: str, plugin: str, tls: bool) -> None:
    secret = _credential(lab, credential)
    transcripts: dict[str, Transcript] = {
        user: scripted_login(lab.server.host, lab.server.port, user, secret, plugin, tls) for user in USERS
    }
    reference = transcripts["ghost"].normalized("ghost")
    assert reference[-1][:1] in (b"\xff", b"c"), f"a stranger was let in: {reference}"
    for user, transcript in transcripts.items():
        packets = transcript.normalized(user)
        if user == "tok" and credential == "good_token_for_someone_else" and tls:
            # Its signature verified against tok's own keys: up to that point the same, then the holder is told why.
            assert packets[:-1] == reference[:-1]
            assert b"does not match user" in packets[-1]
            continue
        assert packets == reference, f"{user} differs from an unknown user: {packets} != {reference}"


def test_the_good_credential_still_logs_in(lab: Lab) -> None:
    for user in ("nat", "sha"):
        password = USERS[user]
        assert password is not None
        for plugin in (SHA2, NATIVE, CLEAR):
            transcript = scripted_login(lab.server.host, lab.server.port, user, password.encode(), plugin, True)
            assert transcript.final[:1] == b"\x00", (user, plugin, transcript.packets)
