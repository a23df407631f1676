"""CREATE / DROP / SHOW [CREATE] GROUP PROVIDER through the executor, and a token user's fe-only
"group_provider" key: StarRocks' forms and texts, validation errors that store nothing, SHOW column by column,
drops refused while an integration or a user still names the provider, and who may run them."""

from __future__ import annotations

import json

import pytest

from fe.catalog import Catalog
from fe.config import Settings
from fe.sql import Executor, OkResult, Session
from tests.sql.conftest import columns, error, rows, run, session_for

FILE = 'CREATE GROUP PROVIDER fp PROPERTIES ("type" = "file", "group_file_url" = "groups.txt")'
UNIX = 'CREATE GROUP PROVIDER unix_group_provider PROPERTIES ("type" = "unix")'
JWT = 'CREATE GROUP PROVIDER jp PROPERTIES ("type" = "jwt", "jwt_claim" = "realm_access.roles", "comment" = "kc")'
TOKEN_USER = """CREATE USER tom IDENTIFIED WITH authentication_jwt AS '{{"jwks_url": "https://idp/k",
  "required_audience": "fe", "group_provider": {providers}}}'"""


def names(catalog: Catalog) -> list[str]:
    return [provider.name for provider in catalog.list_group_providers()]


async def test_starrocks_example_unix(executor: Executor, root: Session) -> None:
    await run(executor, root, 'create group provider unix_group_provider properties("type" = "unix")')  # StarRocks
    assert await columns(executor, root, "SHOW CREATE GROUP PROVIDER unix_group_provider") == [
        "Group Provider",
        "Create Group Provider",
    ]
    assert await rows(executor, root, "show create group provider unix_group_provider") == [
        ["unix_group_provider", 'CREATE GROUP PROVIDER `unix_group_provider` PROPERTIES (\n"type" = "unix"\n)']
    ]
    await run(executor, root, "drop group provider unix_group_provider")
    assert await rows(executor, root, "SHOW GROUP PROVIDERS") == []


async def test_each_type_and_show(executor: Executor, root: Session, settings: Settings) -> None:
    (settings.conf_dir / "groups.txt").write_text("dba:tom\n")
    await run(executor, root, FILE, UNIX, JWT)
    assert await columns(executor, root, "SHOW GROUP PROVIDERS") == ["Name", "Type", "Comment"]
    assert await rows(executor, root, "SHOW GROUP PROVIDERS") == [
        ["fp", "file", ""],
        ["jp", "jwt", "kc"],
        ["unix_group_provider", "unix", ""],
    ]
    assert await rows(executor, root, "SHOW CREATE GROUP PROVIDER fp") == [
        ["fp", 'CREATE GROUP PROVIDER `fp` PROPERTIES (\n"type" = "file", "group_file_url" = "groups.txt"\n)']
    ]
    (row,) = await rows(executor, root, "SHOW CREATE GROUP PROVIDER jp")
    assert row[1].endswith('"type" = "jwt", "jwt_claim" = "realm_access.roles", "comment" = "kc"\n)')


async def test_missing_group_file_warns(executor: Executor, root: Session, catalog: Catalog) -> None:
    assert await executor.execute(root, FILE) == OkResult(warnings=1)
    assert await rows(executor, root, "SHOW WARNINGS") == [
        ["Warning", 1210, "group file conf/groups.txt does not exist yet; it gives no groups until then"]
    ]
    assert names(catalog) == ["fp"]


async def test_if_not_exists_and_duplicates(executor: Executor, root: Session) -> None:
    await run(executor, root, UNIX)
    assert await executor.execute(root, UNIX.replace("PROVIDER", "PROVIDER IF NOT EXISTS")) == OkResult(warnings=1)
    assert await rows(executor, root, "SHOW WARNINGS") == [
        ["Note", 1396, "Group Provider 'unix_group_provider' already exists"]
    ]
    failure = await error(executor, root, UNIX)
    assert (failure.code, failure.message) == (
        1396,
        "Operation CREATE GROUP PROVIDER failed for 'unix_group_provider': Group Provider 'unix_group_provider' "
        "already exists",
    )


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ('"group_file_url" = "g.txt"', "missing required property: type"),
        ('"type" = "foo"', "unsupported group provider type 'foo'"),
        ('"type" = "ldap", "ldap_conn_url" = "ldap://x"', "unsupported group provider type 'ldap'"),
        ('"type" = "file"', "missing required property: group_file_url"),
        ('"type" = "jwt"', "missing required property: jwt_claim"),
        ('"type" = "unix", "jwt_claim" = "g"', "unknown property 'jwt_claim' for a unix group provider"),
        ('"type" = "file", "group_file_url" = "../g.txt"', "'group_file_url' '../g.txt' escapes conf/"),
        ('"type" = "file", "group_file_url" = "/etc/group"', "must be a path relative to conf/"),
        ('"type" = "file", "group_file_url" = "http://x/g"', "'group_file_url' 'http://x/g': only a file under"),
        ('"type" = "jwt", "jwt_claim" = ".groups"', "has an empty step"),
        ('"type" = "jwt", "jwt_claim" = "/a~"', "is not a valid JSON Pointer"),
        ('"type" = "jwt", "jwt_claim" = ""', "'jwt_claim' must not be empty"),
    ],
)
async def test_bad_properties_store_nothing(
    executor: Executor, root: Session, catalog: Catalog, properties: str, message: str
) -> None:
    failure = await error(executor, root, f"CREATE GROUP PROVIDER p PROPERTIES ({properties})")
    assert (failure.code, failure.sqlstate) == (1210, "HY000")
    assert failure.message.startswith("Incorrect arguments to CREATE GROUP PROVIDER: ") and message in failure.message
    assert names(catalog) == []


async def test_bad_name(executor: Executor, root: Session) -> None:
    failure = await error(executor, root, UNIX.replace("unix_group_provider", "`a.b`"))
    assert failure.code == 1210 and "invalid group provider name 'a.b'" in failure.message


async def test_missing_providers(executor: Executor, root: Session) -> None:
    for sql, operation in [
        ("DROP GROUP PROVIDER nope", "DROP GROUP PROVIDER"),
        ("SHOW CREATE GROUP PROVIDER nope", "SHOW CREATE GROUP PROVIDER"),
    ]:
        failure = await error(executor, root, sql)
        assert (failure.code, failure.message) == (
            1396,
            f"Operation {operation} failed for 'nope': Group Provider 'nope' not found",
        )
    assert await executor.execute(root, "DROP GROUP PROVIDER IF EXISTS nope") == OkResult(warnings=1)
    assert await rows(executor, root, "SHOW WARNINGS") == [["Note", 1396, "Group Provider 'nope' not found"]]


async def test_drop_refused_while_used(executor: Executor, root: Session, catalog: Catalog) -> None:
    await run(
        executor,
        root,
        JWT,
        'CREATE SECURITY INTEGRATION corp PROPERTIES ("type" = "authentication_jwt", "jwks_url" = "https://idp/k", '
        '"required_audience" = "fe", "group_provider" = "jp")',
    )
    failure = await error(executor, root, "DROP GROUP PROVIDER jp")
    assert (failure.code, failure.message) == (
        1396,
        "Operation DROP GROUP PROVIDER failed for 'jp': Group Provider 'jp' is used by security integration 'corp'; "
        "change or drop that first",
    )
    await run(executor, root, 'ALTER SECURITY INTEGRATION corp SET ("group_provider" = "")')
    await run(executor, root, TOKEN_USER.format(providers='"jp"'))
    failure = await error(executor, root, "DROP GROUP PROVIDER jp")
    assert "Group Provider 'jp' is used by user 'tom'@'%'" in failure.message
    await run(executor, root, "DROP USER tom", "DROP GROUP PROVIDER jp")
    assert names(catalog) == []


@pytest.mark.parametrize("providers", ['"jp, unix_group_provider"', '["jp", "unix_group_provider"]'])
async def test_token_user_with_group_providers(
    executor: Executor, root: Session, catalog: Catalog, providers: str
) -> None:
    await run(executor, root, JWT, UNIX, TOKEN_USER.format(providers=providers))
    tom = catalog.get_account("tom", "%")
    assert tom is not None and tom.token_spec is not None
    assert tom.token_spec.group_providers == ("jp", "unix_group_provider")
    (row,) = await rows(executor, root, "SHOW AUTHENTICATION FOR tom")
    assert json.loads(row[3])["group_provider"] == ["jp", "unix_group_provider"]
    assert [p.name for p in catalog.group_providers(tom.token_spec.group_providers)] == ["jp", "unix_group_provider"]


@pytest.mark.parametrize(
    ("providers", "message"),
    [
        ('"nope"', "Group Provider 'nope' not found"),
        ("7", "'group_provider' must be a string or an array of strings, not a number"),
        ('""', "'group_provider' must not be empty"),
    ],
)
async def test_token_user_with_bad_group_providers_is_not_created(
    executor: Executor, root: Session, catalog: Catalog, providers: str, message: str
) -> None:
    failure = await error(executor, root, TOKEN_USER.format(providers=providers))
    assert failure.code == 1210 and failure.message.startswith("Incorrect arguments to CREATE USER: ")
    assert message in failure.message
    assert catalog.get_account("tom", "%") is None


async def test_alter_user_checks_providers_too(executor: Executor, root: Session, catalog: Catalog) -> None:
    await run(executor, root, TOKEN_USER.format(providers="[]").replace(', "group_provider": []', ""))
    alter = TOKEN_USER.format(providers='"nope"').replace("CREATE USER", "ALTER USER")
    failure = await error(executor, root, alter)
    assert failure.code == 1210 and "Incorrect arguments to ALTER USER: Group Provider 'nope' not found" in (
        failure.message
    )
    tom = catalog.get_account("tom", "%")
    assert tom is not None and tom.token_spec is not None and tom.token_spec.group_providers is None


@pytest.mark.parametrize(
    "sql",
    [UNIX.replace("unix_group_provider", "p2"), "DROP GROUP PROVIDER unix_group_provider", "SHOW GROUP PROVIDERS",
     "SHOW CREATE GROUP PROVIDER unix_group_provider", "DROP GROUP PROVIDER IF EXISTS nope"],
)  # fmt: skip
async def test_only_user_admins(executor: Executor, root: Session, catalog: Catalog, sql: str) -> None:
    await run(executor, root, UNIX, "CREATE USER bob", "CREATE USER ua DEFAULT ROLE user_admin")
    failure = await error(executor, session_for("bob"), sql)
    assert (failure.code, failure.sqlstate) == (1227, "42000")
    assert names(catalog) == ["unix_group_provider"]
    await executor.execute(session_for("ua"), sql)
