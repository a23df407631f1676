"""ADMIN SET FRONTEND CONFIG ("authentication_chain" = ...) and ADMIN SHOW FRONTEND CONFIG [LIKE ...]: StarRocks'
columns and texts, the chain stored in the catalog (fe.conf's default until then), what is refused, and who may."""

from __future__ import annotations

import pytest

from fe.catalog import Catalog
from fe.config import Settings
from fe.sql import Executor, Session
from tests.sql.conftest import columns, error, rows, run, session_for

CORP = (
    'CREATE SECURITY INTEGRATION {name} PROPERTIES ("type" = "authentication_jwt", '
    '"jwks_url" = "https://idp.example/certs", "required_audience" = "fe")'
)
SET_CHAIN = 'ADMIN SET FRONTEND CONFIG ("authentication_chain" = "{chain}")'
SHOW_CHAIN = "ADMIN SHOW FRONTEND CONFIG LIKE 'authentication_chain'"


async def test_set_and_show_the_chain(executor: Executor, root: Session, catalog: Catalog) -> None:
    assert await columns(executor, root, SHOW_CHAIN) == ["Key", "AliasNames", "Value", "Type", "IsMutable", "Comment"]
    ((key, aliases, value, kind, mutable, _comment),) = await rows(executor, root, SHOW_CHAIN)
    assert (key, aliases, value, kind, mutable) == ("authentication_chain", "[]", "[native]", "String[]", "true")
    await run(executor, root, CORP.format(name="corp"), CORP.format(name="b2b"))
    await run(executor, root, SET_CHAIN.format(chain="native, corp ,b2b"))
    assert catalog.authentication_chain() == ("native", "corp", "b2b")
    (row,) = await rows(executor, root, "admin show frontend config like '%chain%'")
    assert row[2] == "[native, corp, b2b]"
    await run(executor, root, SET_CHAIN.format(chain="corp,NATIVE"))  # native first is not required, only present
    assert catalog.authentication_chain() == ("corp", "native")


@pytest.mark.parametrize(
    ("chain", "message"),
    [
        ("corp", "'native' must be in the list, and cannot have duplicates, current value: corp"),
        (
            "native,corp,corp",
            "'authentication_chain' configuration invalid, 'native' must be in the list, and "
            "cannot have duplicates, current value: native,corp,corp",
        ),
        ("native,", "cannot have duplicates, current value: native,"),
        ("native,nope", "'authentication_chain' names security integration 'nope' not found"),
    ],
)
async def test_bad_chains_are_refused_and_nothing_changes(
    executor: Executor, root: Session, catalog: Catalog, chain: str, message: str
) -> None:
    await run(executor, root, CORP.format(name="corp"), SET_CHAIN.format(chain="native,corp"))
    failure = await error(executor, root, SET_CHAIN.format(chain=chain))
    assert (failure.code, failure.sqlstate) == (1210, "HY000")
    assert (
        failure.message.startswith("Incorrect arguments to ADMIN SET FRONTEND CONFIG: ") and message in failure.message
    )
    assert catalog.authentication_chain() == ("native", "corp")


async def test_other_settings_cannot_be_set(executor: Executor, root: Session) -> None:
    failure = await error(executor, root, 'ADMIN SET FRONTEND CONFIG ("max_connections" = "10")')
    assert failure.message == (
        "Incorrect arguments to ADMIN SET FRONTEND CONFIG: Config 'max_connections' does not exist or is not mutable"
    )
    failure = await error(executor, root, 'ADMIN SET FRONTEND CONFIG ("authentication_chain" = "native", "x" = "1")')
    assert "Config 'x' does not exist" in failure.message


async def test_fe_conf_chain_until_one_is_stored(catalog: Catalog, settings: Settings, root: Session) -> None:
    executor = Executor(catalog, Settings(home=settings.home, authentication_chain="native,corp"))
    assert catalog.authentication_chain() == ("native", "corp")
    ((_key, _aliases, value, *_rest),) = await rows(executor, root, SHOW_CHAIN)
    assert value == "[native, corp]"
    await run(executor, root, CORP.format(name="corp"), SET_CHAIN.format(chain="native"))
    assert catalog.authentication_chain() == ("native",)


async def test_show_lists_every_setting_without_secrets(catalog: Catalog, settings: Settings, root: Session) -> None:
    configured = Settings(
        home=settings.home, root_password="Sup3r-secret", jwks_https_proxy="http://user:pw@proxy.internal:3128"
    )
    executor = Executor(catalog, configured)
    shown = {row[0]: row for row in await rows(executor, root, "ADMIN SHOW FRONTEND CONFIG")}
    assert shown["max_connections"][1:] == ["[]", "4096", "int", "false", ""]
    assert shown["require_secure_transport"][2:4] == ["false", "boolean"]
    assert shown["handshake_timeout_seconds"][2:4] == ["10.0", "double"]
    assert shown["root_password"][2] == "******"
    assert shown["jwks_https_proxy"][2] == "http://******@proxy.internal:3128"
    assert "Sup3r-secret" not in str(shown) and "user:pw" not in str(shown)
    assert list(shown) == sorted(shown)
    assert [row[0] for row in await rows(executor, root, "ADMIN SHOW FRONTEND CONFIG LIKE 'JWKS_HTTP%'")] == [
        "jwks_http_proxy",
        "jwks_https_proxy",
    ]


@pytest.mark.parametrize("sql", [SET_CHAIN.format(chain="native"), SHOW_CHAIN, "ADMIN SHOW FRONTEND CONFIG"])
async def test_only_user_admins(executor: Executor, root: Session, catalog: Catalog, sql: str) -> None:
    await run(executor, root, "CREATE USER bob", "CREATE USER ua DEFAULT ROLE user_admin")
    failure = await error(executor, session_for("bob"), sql)
    assert (failure.code, failure.sqlstate) == (1227, "42000")
    await executor.execute(session_for("ua"), sql)


async def test_admin_needs_set_or_show(executor: Executor, root: Session) -> None:
    failure = await error(executor, root, "ADMIN CHECK TABLET (1)")
    assert failure.code == 1064
