"""Single sign-on end to end with a real OpenID provider (oidc-provider-mock): people who were never created log in
through a security integration that finds its keys by discovery, with their groups from the ID token's `groups`
claim becoming roles; permitted_groups admits one and refuses another."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT_PASSWORD, root_execute
from tests.e2e.test_openid_provider import CLIENT_ID, id_token_for
from tests.support.clients import connector_pure, pymysql_client
from tests.support.processes import free_port
from tests.support.server import FeProcess, running_fe


@pytest.fixture(scope="module")
def provider_with_groups() -> Iterator[dict[str, str]]:
    port = free_port()
    users = [{"sub": "grace", "groups": ["engineers", "dba"]}, {"sub": "mallory", "groups": ["visitors"]}]
    command = [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", str(port)]
    for user in users:
        command += ["--user-claims", json.dumps(user)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                yield httpx.get(f"http://127.0.0.1:{port}/.well-known/openid-configuration", timeout=2).json()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the OpenID provider did not start") from None
                time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module")
def fe_sso(provider_with_groups: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[FeProcess]:
    home = tmp_path_factory.mktemp("fe-sso-e2e")
    issuer = provider_with_groups["issuer"]
    with running_fe(home, env={"FE_ROOT_PASSWORD": ROOT_PASSWORD, "FE_DISCOVERY_ALLOW_HTTP": "true"}) as server:
        root_execute(
            server,
            'CREATE GROUP PROVIDER idp_groups PROPERTIES ("type" = "jwt", "jwt_claim" = "groups")',
            f'CREATE SECURITY INTEGRATION idp PROPERTIES ("type" = "authentication_openid_connect", '
            f'"required_issuer" = "{issuer}", "required_audience" = "{CLIENT_ID}", '
            '"group_provider" = "idp_groups", "permitted_groups" = "engineers")',
            'ADMIN SET FRONTEND CONFIG ("authentication_chain" = "native,idp")',
            "CREATE ROLE engineering",
            "GRANT engineering TO EXTERNAL GROUP 'engineers'",
        )
        yield server


def test_a_person_never_created_logs_in_with_a_real_providers_token(
    fe_sso: FeProcess, provider_with_groups: dict[str, str], tmp_path: Path
) -> None:
    token_file = tmp_path / "grace.token"
    token_file.write_text(id_token_for(provider_with_groups, "grace"))
    outcome = connector_pure(
        fe_sso.host, fe_sso.port, "grace", tls=True, openid_token_file=str(token_file),
        statements=("SELECT CURRENT_USER(), @@security_integration", "SHOW GRANTS"),
    )  # fmt: skip
    assert outcome.ok, outcome.message
    assert outcome.rows[0] == [["grace@127.0.0.1", "idp"]]
    assert "engineering" in json.dumps(outcome.rows[1])
    # The same token as the password, from a client without the plugin.
    again = pymysql_client(
        fe_sso.host, fe_sso.port, "grace", id_token_for(provider_with_groups, "grace"),
        statements=("SELECT CURRENT_USER()",),
    )  # fmt: skip
    assert again.ok and again.rows == [[["grace@127.0.0.1"]]]


def test_someone_in_none_of_the_permitted_groups_is_refused(
    fe_sso: FeProcess, provider_with_groups: dict[str, str]
) -> None:
    outcome = pymysql_client(fe_sso.host, fe_sso.port, "mallory", id_token_for(provider_with_groups, "mallory"))
    assert outcome.errno == 5206 and "Group Access Denied" in outcome.message
