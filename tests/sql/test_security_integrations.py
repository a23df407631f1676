"""CREATE / ALTER / DROP / SHOW [CREATE] SECURITY INTEGRATION through the executor: StarRocks' forms and texts,
every validation error (and that nothing is stored), SHOW output column by column, and who may run them."""

from __future__ import annotations

import json

import pytest

from fe.catalog import Catalog
from fe.config import Settings
from fe.sql import Executor, OkResult, Session
from tests.sql.conftest import columns, error, rows, run, session_for

CORP = (
    'CREATE SECURITY INTEGRATION corp PROPERTIES ("type" = "authentication_jwt", '
    '"jwks_url" = "https://idp.example/certs", "principal_field" = "preferred_username", '
    '"required_issuer" = "https://idp.example", "required_audience" = "fe", "comment" = "the IdP")'
)
# StarRocks' own test (test/sql/test_security_integration), with its key file present.
STARROCKS_EXAMPLE = (
    'create security integration oidc properties("type"="authentication_jwt", "jwks_url"="jwks.json", '
    '"principal_field"="sub")'
)


@pytest.fixture(autouse=True)
def key_file(settings: Settings) -> None:
    (settings.conf_dir / "jwks.json").write_text('{"keys": []}')


def stored(catalog: Catalog) -> list[str]:
    return [integration.name for integration in catalog.list_integrations()]


async def test_starrocks_example_and_show_create(executor: Executor, root: Session) -> None:
    result = await executor.execute(root, STARROCKS_EXAMPLE)
    assert result == OkResult(warnings=1)  # no required_audience: allowed, with a warning
    (warning,) = await rows(executor, root, "SHOW WARNINGS")
    assert warning[0] == "Warning" and "'required_audience' is not set" in warning[2]
    assert await columns(executor, root, "SHOW CREATE SECURITY INTEGRATION oidc") == [
        "Security Integration",
        "Create Security Integration",
    ]
    assert await rows(executor, root, "show create security integration oidc") == [
        [
            "oidc",
            "CREATE SECURITY INTEGRATION `oidc` PROPERTIES (\n"
            '"type" = "authentication_jwt", "jwks_url" = "jwks.json", "principal_field" = "sub"\n)',
        ]
    ]
    await run(executor, root, 'alter security integration oidc set ("principal_field"="preferred_name")')
    (row,) = await rows(executor, root, "SHOW CREATE SECURITY INTEGRATION oidc")
    assert '"principal_field" = "preferred_name"' in row[1]
    await run(executor, root, "drop security integration oidc")
    assert await rows(executor, root, "SHOW SECURITY INTEGRATIONS") == []


async def test_every_property(executor: Executor, root: Session, catalog: Catalog) -> None:
    await run(
        executor,
        root,
        'CREATE GROUP PROVIDER jp PROPERTIES ("type" = "jwt", "jwt_claim" = "groups")',
        'CREATE GROUP PROVIDER up PROPERTIES ("type" = "unix")',
        'CREATE SECURITY INTEGRATION IF NOT EXISTS corp PROPERTIES ("type" = "AUTHENTICATION_OPENID_CONNECT", '
        '"jwks_url" = "https://idp.example/certs", "principal_field" = "/realm_access/username", '
        '"required_issuer" = "https://a.example, https://b.example", "required_audience" = "fe,fe2", '
        '"allowed_algorithms" = "RS256,ES256", "token_as_password" = "FALSE", "group_provider" = "jp, up", '
        '"permitted_groups" = "dba, ops", "comment" = "it\'s \\"ours\\"")',
    )
    corp = catalog.get_integration("corp")
    assert corp is not None and corp.type == "authentication_openid_connect"
    assert corp.spec.principal_pointer == ("realm_access", "username")
    assert corp.spec.required_issuer == ("https://a.example", "https://b.example")
    assert corp.spec.required_audience == ("fe", "fe2") and corp.spec.allowed_algorithms == ("RS256", "ES256")
    assert corp.spec.token_as_password is False
    assert corp.group_providers == ("jp", "up") and corp.permitted_groups == ("dba", "ops")
    (row,) = await rows(executor, root, "SHOW CREATE SECURITY INTEGRATION corp")
    assert row[1] == (
        "CREATE SECURITY INTEGRATION `corp` PROPERTIES (\n"
        '"type" = "authentication_openid_connect", "jwks_url" = "https://idp.example/certs", '
        '"principal_field" = "/realm_access/username", "required_issuer" = "https://a.example,https://b.example", '
        '"required_audience" = "fe,fe2", "allowed_algorithms" = "RS256,ES256", "token_as_password" = "false", '
        '"group_provider" = "jp,up", "permitted_groups" = "dba,ops", "comment" = "it\'s \\"ours\\""\n)'
    )
    assert await columns(executor, root, "SHOW SECURITY INTEGRATIONS") == ["Name", "Type", "Comment"]
    await run(executor, root, STARROCKS_EXAMPLE)
    assert await rows(executor, root, "SHOW SECURITY INTEGRATIONS") == [
        ["corp", "authentication_openid_connect", 'it\'s "ours"'],
        ["oidc", "authentication_jwt", ""],
    ]


async def test_discovery_needs_no_jwks_url(executor: Executor, root: Session, catalog: Catalog) -> None:
    await run(
        executor,
        root,
        'CREATE SECURITY INTEGRATION disc PROPERTIES ("type" = "authentication_openid_connect", '
        '"required_issuer" = "https://idp.example", "required_audience" = "fe")',
    )
    disc = catalog.get_integration("disc")
    assert disc is not None and disc.spec.discovers_keys and disc.spec.jwks_url == ""


@pytest.mark.parametrize("issuer", ["corp", "http://idp.example", "https://user:pw@idp.example", "https://idp/?q=1"])
async def test_discovery_issuers_must_be_https_urls(
    executor: Executor, root: Session, catalog: Catalog, issuer: str
) -> None:
    failure = await error(
        executor,
        root,
        'CREATE SECURITY INTEGRATION disc PROPERTIES ("type" = "authentication_jwt", '
        f'"required_issuer" = "{issuer}", "required_audience" = "fe")',
    )
    assert failure.code == 1210 and "issuer" in failure.message
    assert "disc" not in stored(catalog)


async def test_if_not_exists_and_duplicates(executor: Executor, root: Session, catalog: Catalog) -> None:
    await run(executor, root, CORP)
    assert await executor.execute(root, CORP.replace("INTEGRATION corp", "INTEGRATION IF NOT EXISTS corp")) == (
        OkResult(warnings=1)
    )
    assert await rows(executor, root, "SHOW WARNINGS") == [["Note", 1396, "security integration 'corp' already exists"]]
    failure = await error(executor, root, CORP)
    assert (failure.code, failure.sqlstate) == (1396, "HY000")
    assert failure.message == (
        "Operation CREATE SECURITY INTEGRATION failed for 'corp': security integration 'corp' already exists"
    )
    assert stored(catalog) == ["corp"]


BAD_PROPERTIES = [
    ('"jwks_url" = "jwks.json"', "missing required property: type"),
    ('"type" = "ldap"', "unsupported security integration type 'ldap'"),
    ('"type" = "authentication_jwt"', "missing required property: jwks_url (or required_issuer"),
    ('"type" = "authentication_jwt", "jwks_url" = "jwks.json", "foo" = "1"', "unknown property 'foo'; allowed: type"),
    ('"type" = "authentication_jwt", "jwks_url" = "jwks.json", "type" = "authentication_jwt"', "appears more than"),
    ('"type" = "authentication_jwt", "jwks_url" = ""', "'jwks_url' must not be empty"),
    ('"type" = "authentication_jwt", "jwks_url" = "../jwks.json"', "'jwks_url' '../jwks.json' escapes conf/"),
    ('"type" = "authentication_jwt", "jwks_url" = "/etc/jwks.json"', "must be a path relative to conf/"),
    ('"type" = "authentication_jwt", "jwks_url" = "ftp://idp/jwks"', "only http:// and https:// URLs or a file"),
    ('"type" = "authentication_jwt", "jwks_url" = "https:///jwks"', "'jwks_url' 'https:///jwks' has no host"),
    ('"type" = "authentication_jwt", "jwks_url" = "https://u:p@idp/jwks"', "must not carry credentials"),
    ('"type" = "authentication_jwt", "jwks_url" = "https://idp:99999/jwks"', "has a bad port"),
    (
        '"type" = "authentication_jwt", "jwks_url" = "jwks.json", "principal_field" = "/a~2b"',
        "'principal_field' '/a~2b' is not a valid JSON Pointer",
    ),
    ('"type" = "authentication_jwt", "jwks_url" = "jwks.json", "required_issuer" = "a,,b"', "must not be empty or"),
    ('"type" = "authentication_jwt", "jwks_url" = "jwks.json", "allowed_algorithms" = "HS256"', "unsupported algo"),
    ('"type" = "authentication_jwt", "jwks_url" = "jwks.json", "token_as_password" = "yes"', "must be true or false"),
    ('"type" = "authentication_jwt", "jwks_url" = "jwks.json", "group_provider" = "nope"', "Group Provider 'nope' not"),
    ('"type" = "authentication_jwt", "jwks_url" = "jwks.json", "permitted_groups" = ""', "'permitted_groups' must not"),
]


@pytest.mark.parametrize(("properties", "message"), BAD_PROPERTIES)
async def test_bad_properties_name_the_problem_and_store_nothing(
    executor: Executor, root: Session, catalog: Catalog, properties: str, message: str
) -> None:
    failure = await error(executor, root, f"CREATE SECURITY INTEGRATION corp PROPERTIES ({properties})")
    assert (failure.code, failure.sqlstate) == (1210, "HY000")
    assert failure.message.startswith("Incorrect arguments to CREATE SECURITY INTEGRATION: ")
    assert message in failure.message
    assert stored(catalog) == []


async def test_http_key_urls_warn_or_are_refused(executor: Executor, root: Session, settings: Settings) -> None:
    plain = CORP.replace("https://idp.example/certs", "http://idp.example/certs")
    assert await executor.execute(root, plain) == OkResult(warnings=1)
    strict = Executor(executor._catalog, Settings(home=settings.home, require_https_key_urls=True))
    failure = await error(strict, root, plain.replace("INTEGRATION corp", "INTEGRATION corp2"))
    assert failure.code == 1210 and "require_https_key_urls = true" in failure.message


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("native", "'native' is a reserved name"),
        ("NATIVE", "'NATIVE' is a reserved name"),
        ("`a-b`", "invalid security integration name 'a-b'"),
        ("`" + "x" * 65 + "`", "invalid security integration name"),
    ],
)
async def test_reserved_and_bad_names(
    executor: Executor, root: Session, catalog: Catalog, name: str, message: str
) -> None:
    failure = await error(executor, root, CORP.replace("INTEGRATION corp", f"INTEGRATION {name}"))
    assert failure.code == 1210 and message in failure.message
    assert stored(catalog) == []


async def test_alter(executor: Executor, root: Session, catalog: Catalog) -> None:
    await run(executor, root, CORP, 'CREATE GROUP PROVIDER jp PROPERTIES ("type" = "jwt", "jwt_claim" = "groups")')
    await run(
        executor,
        root,
        'ALTER SECURITY INTEGRATION corp SET ("group_provider" = "jp", "permitted_groups" = "dba", '
        '"jwks_url" = "jwks.json")',
    )
    corp = catalog.get_integration("corp")
    assert corp is not None and corp.group_providers == ("jp",) and corp.spec.jwks_url == "jwks.json"
    assert corp.comment == "the IdP"  # untouched properties stay
    # An empty value takes an optional property away.
    await run(executor, root, 'ALTER SECURITY INTEGRATION corp SET ("permitted_groups" = "", "comment" = "")')
    corp = catalog.get_integration("corp")
    assert corp is not None and corp.permitted_groups is None and corp.comment == ""
    assert dict(corp.properties)["comment"] == ""


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ('"type" = "authentication_openid_connect"', "'type' property cannot be changed"),
        ('"foo" = "1"', "unknown property 'foo'"),
        ('"jwks_url" = "../x"', "escapes conf/"),
        ('"jwks_url" = "", "required_issuer" = ""', "missing required property: jwks_url"),
        ('"group_provider" = "nope"', "Group Provider 'nope' not found"),
        ('"comment" = "a", "comment" = "b"', "property 'comment' appears more than once"),
    ],
)
async def test_alter_is_validated_and_changes_nothing_on_error(
    executor: Executor, root: Session, catalog: Catalog, changes: str, message: str
) -> None:
    await run(executor, root, CORP)
    before = catalog.get_integration("corp")
    failure = await error(executor, root, f"ALTER SECURITY INTEGRATION corp SET ({changes})")
    assert failure.code == 1210 and failure.message.startswith("Incorrect arguments to ALTER SECURITY INTEGRATION: ")
    assert message in failure.message
    assert catalog.get_integration("corp") == before


async def test_missing_integrations(executor: Executor, root: Session) -> None:
    for sql, operation in [
        ('ALTER SECURITY INTEGRATION nope SET ("comment" = "x")', "ALTER SECURITY INTEGRATION"),
        ("DROP SECURITY INTEGRATION nope", "DROP SECURITY INTEGRATION"),
        ("SHOW CREATE SECURITY INTEGRATION nope", "SHOW CREATE SECURITY INTEGRATION"),
    ]:
        failure = await error(executor, root, sql)
        assert (failure.code, failure.message) == (
            1396,
            f"Operation {operation} failed for 'nope': security integration 'nope' not found",
        )
    assert await executor.execute(root, "DROP SECURITY INTEGRATION IF EXISTS nope") == OkResult(warnings=1)
    assert await rows(executor, root, "SHOW WARNINGS") == [["Note", 1396, "security integration 'nope' not found"]]


async def test_drop_refused_while_in_the_chain(executor: Executor, root: Session, catalog: Catalog) -> None:
    await run(executor, root, CORP, 'ADMIN SET FRONTEND CONFIG ("authentication_chain" = "native,corp")')
    failure = await error(executor, root, "DROP SECURITY INTEGRATION corp")
    assert failure.code == 1396
    assert failure.message == (
        "Operation DROP SECURITY INTEGRATION failed for 'corp': security integration 'corp' is in "
        'authentication_chain (native,corp); take it out first: ADMIN SET FRONTEND CONFIG ("authentication_chain" '
        '= "native")'
    )
    assert stored(catalog) == ["corp"]
    await run(executor, root, 'ADMIN SET FRONTEND CONFIG ("authentication_chain" = "native")')
    await run(executor, root, "DROP SECURITY INTEGRATION corp")
    assert stored(catalog) == []


async def test_drop_refused_while_fe_conf_chain_names_it(catalog: Catalog, settings: Settings, root: Session) -> None:
    executor = Executor(catalog, Settings(home=settings.home, authentication_chain="native,corp"))
    await run(executor, root, CORP)
    failure = await error(executor, root, "DROP SECURITY INTEGRATION corp")
    assert failure.code == 1396 and "is in fe.conf's authentication_chain (native,corp)" in failure.message


STATEMENTS = [
    CORP.replace("corp", "other", 1),
    'ALTER SECURITY INTEGRATION corp SET ("comment" = "x")',
    "DROP SECURITY INTEGRATION corp",
    "DROP SECURITY INTEGRATION IF EXISTS nope",
    "SHOW SECURITY INTEGRATIONS",
    "SHOW CREATE SECURITY INTEGRATION corp",
]


@pytest.mark.parametrize("sql", STATEMENTS)
async def test_only_user_admins(executor: Executor, root: Session, catalog: Catalog, sql: str) -> None:
    await run(executor, root, CORP, "CREATE USER bob", "CREATE USER ua", "GRANT user_admin TO ua")
    before = catalog.list_integrations()
    failure = await error(executor, session_for("bob"), sql)
    assert (failure.code, failure.sqlstate) == (1227, "42000")
    assert "GRANT/user_admin privilege" in failure.message
    assert catalog.list_integrations() == before
    await executor.execute(session_for("ua"), sql)  # a user_admin member may


async def test_a_group_that_holds_user_admin_is_enough(executor: Executor, root: Session) -> None:
    await run(executor, root, "CREATE ROLE ops", "GRANT user_admin TO ROLE ops", "GRANT ops TO EXTERNAL GROUP 'dba'")
    member = session_for("tom", "10.0.0.9", "10.0.0.9")
    member.groups = frozenset({"dba"})
    await run(executor, member, CORP)
    outsider = session_for("ann", "10.0.0.9", "10.0.0.9")
    outsider.groups = frozenset({"staff"})
    assert (await error(executor, outsider, "SHOW SECURITY INTEGRATIONS")).code == 1227


async def test_stored_json_is_the_normalised_properties(catalog: Catalog, executor: Executor, root: Session) -> None:
    await run(executor, root, CORP)
    with catalog._read() as conn:
        (text,) = conn.execute("SELECT properties FROM security_integrations WHERE name = 'corp'").fetchone()
    assert json.loads(text)["required_issuer"] == "https://idp.example"
