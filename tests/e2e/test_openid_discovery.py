"""End to end with a real OpenID provider process (PyPI's oidc-provider-mock) and OpenID Connect Discovery: a user
created with only required_issuer and required_audience logs in with the provider's ID token; fe finds the keys
from the provider's /.well-known/openid-configuration. The provider serves plain http on 127.0.0.1 and names
itself `http://127.0.0.1:<port>` (no trailing slash), so this fe runs with discovery_allow_http = true."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT_PASSWORD, root_execute
from tests.e2e.test_openid_provider import CLIENT_ID, id_token_for, provider
from tests.support.clients import connector_pure, pymysql_client
from tests.support.server import FeProcess, running_fe

__all__ = ["provider"]  # the provider fixture, shared with test_openid_provider.py


@pytest.fixture(scope="module")
def fe_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FeProcess]:
    home = tmp_path_factory.mktemp("fe-discovery-e2e")
    with running_fe(home, env={"FE_ROOT_PASSWORD": ROOT_PASSWORD, "FE_DISCOVERY_ALLOW_HTTP": "true"}) as server:
        yield server


def test_a_user_with_only_issuer_and_audience_logs_in_with_a_real_providers_token(
    fe_lab: FeProcess, provider: dict[str, str], tmp_path: Path
) -> None:
    issuer = provider["issuer"]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", issuer)
    spec = {"required_issuer": issuer, "required_audience": CLIENT_ID}
    create = f"CREATE USER alice IDENTIFIED WITH authentication_openid_connect AS '{json.dumps(spec)}'"
    warnings = root_execute(fe_lab, create, "SHOW WARNINGS")
    assert [w[2] for w in warnings] == [  # accepted, over http only because of discovery_allow_http
        f"'required_issuer' {issuer!r} uses plain http://: its discovery document and keys are fetched without TLS "
        "and can be replaced in flight; accepted only because discovery_allow_http = true (for tests and labs)"
    ]

    token_file = tmp_path / "id_token"
    token_file.write_text(id_token_for(provider, "alice"))
    outcome = connector_pure(
        fe_lab.host,
        fe_lab.port,
        "alice",
        tls=True,
        openid_token_file=str(token_file),
        statements=("SELECT CURRENT_USER()",),
    )
    assert outcome.ok, outcome.message
    assert outcome.rows == [[["alice@%"]]]
    fe_lab.wait_for_log(rf"discovery document of {re.escape(issuer)}: jwks_uri {re.escape(provider['jwks_uri'])}")

    outcome = pymysql_client(
        fe_lab.host, fe_lab.port, "alice", id_token_for(provider, "alice"), statements=("SELECT CURRENT_USER()",)
    )
    assert outcome.ok, outcome.message
    assert len(re.findall(r"discovery document of .*: jwks_uri", fe_lab.log)) == 1  # fetched once, then cached

    # The provider's token for someone else does not open alice's account (the signature verified: told why).
    outcome = pymysql_client(fe_lab.host, fe_lab.port, "alice", id_token_for(provider, "mallory"))
    assert outcome.errno == 1045 and "does not match user 'alice'" in outcome.message
