"""CREATE / ALTER USER with issue 10's token-user options: http:// key URLs (a warning, or ERR 1210 under
require_https_key_urls), JSON-Pointer principal fields, and the per-user token_as_password switch."""

from __future__ import annotations

import dataclasses
import json

import pytest

from fe.catalog import Catalog
from fe.config import Settings
from fe.sql import Executor, OkResult, Session
from tests.sql.conftest import error, rows

HTTP_SPEC = '{"jwks_url": "http://127.0.0.1:8080/jwks", "required_audience": "fe"}'
HTTPS_SPEC = '{"jwks_url": "https://idp.example/jwks", "required_audience": "fe"}'


def create(name: str, spec: str, plugin: str = "authentication_jwt") -> str:
    return f"CREATE USER {name} IDENTIFIED WITH {plugin} AS '{spec}'"


async def test_plain_http_key_url_warns(executor: Executor, root: Session, catalog: Catalog) -> None:
    assert await executor.execute(root, create("tom", HTTP_SPEC)) == OkResult(warnings=1)
    ((level, code, message),) = await rows(executor, root, "SHOW WARNINGS")
    assert (level, code) == ("Warning", 1210)
    assert "plain http://" in message and "replaced in flight" in message
    assert catalog.get_account("tom", "%") is not None
    assert await executor.execute(root, create("ann", HTTPS_SPEC)) == OkResult()
    assert await executor.execute(root, f"ALTER USER ann IDENTIFIED WITH authentication_jwt AS '{HTTP_SPEC}'") == (
        OkResult(warnings=1)
    )


@pytest.fixture
def strict(catalog: Catalog, settings: Settings) -> Executor:
    return Executor(catalog, dataclasses.replace(settings, require_https_key_urls=True))


async def test_require_https_refuses_http_and_stores_nothing(strict: Executor, root: Session, catalog: Catalog) -> None:
    failure = await error(strict, root, create("tom", HTTP_SPEC))
    assert (failure.code, failure.sqlstate) == (1210, "HY000")
    assert failure.message.startswith("Incorrect arguments to CREATE USER: ")
    assert "plain http://" in failure.message and "require_https_key_urls" in failure.message
    assert catalog.get_account("tom", "%") is None

    assert await strict.execute(root, create("tom", HTTPS_SPEC)) == OkResult()
    failure = await error(strict, root, f"ALTER USER tom IDENTIFIED WITH authentication_jwt AS '{HTTP_SPEC}'")
    assert failure.code == 1210 and "plain http://" in failure.message
    tom = catalog.get_account("tom", "%")
    assert tom is not None and tom.token_spec is not None and tom.token_spec.jwks_url == "https://idp.example/jwks"


async def test_pointer_principal_is_stored_as_written(executor: Executor, root: Session, catalog: Catalog) -> None:
    spec = '{"jwks_url": "https://idp.example/jwks", "required_audience": "fe", "principal_field": "/realm/~0u~1n"}'
    assert await executor.execute(root, create("tom", spec, "authentication_openid_connect")) == OkResult()
    ((_identity, _password, _plugin, stored),) = await rows(executor, root, "SHOW AUTHENTICATION FOR tom")
    assert json.loads(stored)["principal_field"] == "/realm/~0u~1n"
    tom = catalog.get_account("tom", "%")
    assert tom is not None and tom.token_spec is not None
    assert tom.token_spec.principal_pointer == ("realm", "~u/n")


@pytest.mark.parametrize(("pointer", "problem"), [("/realm/~2", "'~2'"), ("/realm~", "'~'"), ("/~x", "'~x'")])
async def test_malformed_pointer_is_refused_and_nothing_stored(
    executor: Executor, root: Session, catalog: Catalog, pointer: str, problem: str
) -> None:
    spec = json.dumps({"jwks_url": "https://idp.example/jwks", "principal_field": pointer})
    failure = await error(executor, root, create("tom", spec))
    assert (failure.code, failure.sqlstate) == (1210, "HY000")
    assert f"'principal_field' '{pointer}' is not a valid JSON Pointer: bad escape {problem}" in failure.message
    assert catalog.get_account("tom", "%") is None


async def test_token_as_password_off_is_stored(executor: Executor, root: Session, catalog: Catalog) -> None:
    spec = '{"jwks_url": "https://idp.example/jwks", "required_audience": "fe", "token_as_password": false}'
    assert await executor.execute(root, create("tom", spec)) == OkResult()
    ((_identity, _password, _plugin, stored),) = await rows(executor, root, "SHOW AUTHENTICATION FOR tom")
    assert json.loads(stored)["token_as_password"] is False
    assert await executor.execute(root, create("ann", HTTPS_SPEC)) == OkResult()
    ((_identity, _password, _plugin, stored),) = await rows(executor, root, "SHOW AUTHENTICATION FOR ann")
    assert "token_as_password" not in json.loads(stored)


@pytest.mark.parametrize(("value", "kind"), [('"false"', "a string"), ("0", "a number"), ("null", "null")])
async def test_token_as_password_must_be_a_boolean(
    executor: Executor, root: Session, catalog: Catalog, value: str, kind: str
) -> None:
    spec = f'{{"jwks_url": "https://idp.example/jwks", "token_as_password": {value}}}'
    failure = await error(executor, root, create("tom", spec))
    assert failure.code == 1210 and f"'token_as_password' must be true or false, not {kind}" in failure.message
    assert catalog.get_account("tom", "%") is None
