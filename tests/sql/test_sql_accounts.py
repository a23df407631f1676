"""Account statements through the executor: every form, every error, privileges, SHOW outputs column by column."""

from __future__ import annotations

import json

import pytest

from fe.auth.passwords import native_hash, verify_password
from fe.catalog import Catalog
from fe.config import Settings
from fe.sql import Executor, OkResult, Session
from tests.sql.conftest import columns, error, rows, run, session_for

# The StarRocks documentation's own examples, verbatim.
DOC_OIDC_EXAMPLE = """CREATE USER tom IDENTIFIED WITH authentication_openid_connect AS
'{
  "jwks_url": "http://localhost:38080/realms/master/protocol/openid-connect/certs",
  "principal_field": "preferred_username",
  "required_issuer": "http://localhost:38080/realms/master",
  "required_audience": "12345"
}';"""
DOC_JWT_EXAMPLE = """CREATE USER tom IDENTIFIED WITH authentication_jwt AS
'{
  "jwks_url": "http://localhost:38080/realms/master/protocol/jwt/certs",
  "principal_field": "preferred_username",
  "required_issuer": "http://localhost:38080/realms/master",
  "required_audience": "starrocks"
}';"""
DOC_LOCAL_FILE_EXAMPLE = (
    """CREATE USER tom IDENTIFIED WITH authentication_openid_connect AS '{"jwks_url": "jwks.json", """
    """"principal_field": "sub"}'"""
)
DOC_NATIVE_EXAMPLE = "CREATE USER jack@'172.10.1.10' IDENTIFIED BY '12345' DEFAULT ROLE 'example_role';"
DOC_PLAIN_EXAMPLE = "CREATE USER 'jack' IDENTIFIED BY '123456';"

AUTH_COLUMNS = ["UserIdentity", "Password", "AuthPlugin", "UserForAuthPlugin"]


async def test_doc_example_oidc(executor: Executor, root: Session, catalog: Catalog) -> None:
    result = await executor.execute(root, DOC_OIDC_EXAMPLE)
    # The documentation's key set is fetched over plain http://: stored, with a warning (issue 10).
    assert result == OkResult(warnings=1)
    (warning,) = await rows(executor, root, "SHOW WARNINGS")
    assert warning[0] == "Warning" and "http://" in str(warning[2])
    assert await columns(executor, root, "SHOW AUTHENTICATION FOR tom") == AUTH_COLUMNS
    (row,) = await rows(executor, root, "SHOW AUTHENTICATION FOR tom")
    assert row[:3] == ["'tom'@'%'", "No", "AUTHENTICATION_OPENID_CONNECT"]
    assert json.loads(row[3]) == {
        "jwks_url": "http://localhost:38080/realms/master/protocol/openid-connect/certs",
        "principal_field": "preferred_username",
        "required_issuer": ["http://localhost:38080/realms/master"],
        "required_audience": ["12345"],
    }
    tom = catalog.get_account("tom", "%")
    assert tom is not None and tom.plugin == "authentication_openid_connect"
    assert tom.token_spec is not None and tom.token_spec.required_audience == ("12345",)


async def test_doc_example_jwt(executor: Executor, root: Session) -> None:
    await run(executor, root, DOC_JWT_EXAMPLE)
    (row,) = await rows(executor, root, "SHOW AUTHENTICATION FOR 'tom'@'%'")
    assert row[1:3] == ["No", "AUTHENTICATION_JWT"]
    assert json.loads(row[3])["required_audience"] == ["starrocks"]


async def test_doc_example_local_key_file_warns_until_it_exists(
    executor: Executor, root: Session, settings: Settings
) -> None:
    # The documentation's example sets no audience: that is accepted, with a warning of its own.
    result = await executor.execute(root, DOC_LOCAL_FILE_EXAMPLE)
    assert result == OkResult(warnings=2)
    missing_file, no_audience = await rows(executor, root, "SHOW WARNINGS")
    assert missing_file[0] == "Warning" and "conf/jwks.json does not exist yet" in missing_file[2]
    assert no_audience[0] == "Warning" and "'required_audience' is not set" in no_audience[2]
    (settings.conf_dir / "jwks.json").write_text('{"keys": []}')
    result = await executor.execute(root, DOC_LOCAL_FILE_EXAMPLE.replace("CREATE USER tom", "CREATE USER ann"))
    assert result == OkResult(warnings=1)


async def test_doc_examples_password_users(executor: Executor, root: Session, catalog: Catalog) -> None:
    await run(executor, root, DOC_PLAIN_EXAMPLE, "CREATE ROLE example_role", DOC_NATIVE_EXAMPLE)
    jack = catalog.get_account("jack", "172.10.1.10")
    assert jack is not None and verify_password(b"12345", jack.auth_string)
    assert jack.roles == frozenset({"example_role"}) and jack.default_roles == ("example_role",)
    assert await rows(executor, root, "SHOW GRANTS FOR jack@'172.10.1.10'") == [
        ["'jack'@'172.10.1.10'", None, "GRANT 'example_role' TO 'jack'@'172.10.1.10'"]
    ]


@pytest.mark.parametrize(
    "plugin_text", ["authentication_jwt", "AUTHENTICATION_JWT", "'authentication_jwt'", '"Authentication_Jwt"']
)
@pytest.mark.parametrize("keyword", ["AS", "BY"])
async def test_token_plugin_name_forms(
    executor: Executor, root: Session, catalog: Catalog, plugin_text: str, keyword: str
) -> None:
    await run(
        executor, root, f"""CREATE USER tom IDENTIFIED WITH {plugin_text} {keyword} '{{"jwks_url": "https://idp/k"}}'"""
    )
    tom = catalog.get_account("tom", "%")
    assert tom is not None and tom.plugin == "authentication_jwt"
    assert tom.plugin_display == "AUTHENTICATION_JWT"
    assert json.loads(tom.auth_string) == {"jwks_url": "https://idp/k", "principal_field": "sub"}


@pytest.mark.parametrize(
    ("user_text", "name", "host"),
    [
        ("tom", "tom", "%"),
        ("'tom'", "tom", "%"),
        ('"tom"', "tom", "%"),
        ("`tom`", "tom", "%"),
        ("tom@'10.0.0.1'", "tom", "10.0.0.1"),
        ("'tom'@'10.0.%'", "tom", "10.0.%"),
        ('"tom"@"%"', "tom", "%"),
        ("`tom`@`LOCALHOST`", "tom", "localhost"),
        ("tom@localhost", "tom", "localhost"),
        ("tom@%", "tom", "%"),
        ("'ab/c.d-e'", "ab/c.d-e", "%"),
        ("user", "user", "%"),
    ],
)
async def test_user_identity_forms(
    executor: Executor, root: Session, catalog: Catalog, user_text: str, name: str, host: str
) -> None:
    await run(executor, root, f"CREATE USER {user_text} IDENTIFIED BY 'pw'")
    assert catalog.get_account(name, host) is not None
    await run(executor, root, f"DROP USER {user_text}")
    assert catalog.get_account(name, host) is None


async def test_password_forms(executor: Executor, root: Session, catalog: Catalog) -> None:
    hashed = native_hash("native")
    await run(
        executor,
        root,
        "CREATE USER a IDENTIFIED BY 'pa'",
        "CREATE USER b IDENTIFIED WITH caching_sha2_password BY 'pb'",
        "CREATE USER c IDENTIFIED WITH mysql_native_password BY 'native'",
        f"CREATE USER d IDENTIFIED BY PASSWORD '{hashed}'",
        f"CREATE USER e IDENTIFIED WITH mysql_native_password AS '{hashed.lower()}'",
        "CREATE USER f",
    )
    a, b, c, d, e, f = (catalog.get_account(name, "%") for name in "abcdef")
    assert a is not None and a.plugin == "caching_sha2_password" and verify_password(b"pa", a.auth_string)
    assert b is not None and b.plugin == "caching_sha2_password" and verify_password(b"pb", b.auth_string)
    for native in (c, d, e):
        assert native is not None and native.plugin == "mysql_native_password" and native.auth_string == hashed
    assert f is not None and f.auth_string == "" and f.plugin == "caching_sha2_password"
    assert await rows(executor, root, "SHOW AUTHENTICATION FOR c") == [
        ["'c'@'%'", "Yes", "MYSQL_NATIVE_PASSWORD", None]
    ]
    # No plugin named: NULL, as StarRocks shows its native password; a named plugin is shown as named.
    assert await rows(executor, root, "SHOW AUTHENTICATION FOR f") == [["'f'@'%'", "No", None, None]]
    assert await rows(executor, root, "SHOW AUTHENTICATION FOR a") == [["'a'@'%'", "Yes", None, None]]
    assert await rows(executor, root, "SHOW AUTHENTICATION FOR b") == [
        ["'b'@'%'", "Yes", "CACHING_SHA2_PASSWORD", None]
    ]
    assert await rows(executor, root, "SHOW AUTHENTICATION FOR d") == [["'d'@'%'", "Yes", None, None]]


async def test_show_all_authentication_and_users(executor: Executor, root: Session) -> None:
    await run(executor, root, "CREATE USER ann@'10.0.0.%' IDENTIFIED BY 'x'", DOC_JWT_EXAMPLE)
    table = await rows(executor, root, "SHOW ALL AUTHENTICATION")
    assert [row[:3] for row in table] == [
        ["'ann'@'10.0.0.%'", "Yes", None],
        ["'root'@'%'", "Yes", None],
        ["'tom'@'%'", "No", "AUTHENTICATION_JWT"],
    ]
    assert table[0][3] is None and table[1][3] is None and table[2][3].startswith('{"jwks_url"')
    assert await columns(executor, root, "SHOW USERS") == ["User"]
    assert await rows(executor, root, "SHOW USERS") == [["'ann'@'10.0.0.%'"], ["'root'@'%'"], ["'tom'@'%'"]]
    assert await rows(executor, root, "SHOW USER") == [["'root'@'%'"]]
    assert await rows(executor, root, "SHOW AUTHENTICATION") == [["'root'@'%'", "Yes", None, None]]


async def test_if_not_exists_and_if_exists_give_notes(executor: Executor, root: Session) -> None:
    await run(executor, root, "CREATE USER tom")
    assert await executor.execute(root, "CREATE USER IF NOT EXISTS tom IDENTIFIED BY 'other'") == OkResult(warnings=1)
    assert await rows(executor, root, "SHOW WARNINGS") == [["Note", 3163, "Authorization ID 'tom'@'%' already exists."]]
    assert await executor.execute(root, "DROP USER IF EXISTS nobody") == OkResult(warnings=1)
    assert await rows(executor, root, "SHOW WARNINGS") == [
        ["Note", 3162, "Authorization ID 'nobody'@'%' does not exist."]
    ]
    assert await executor.execute(root, "ALTER USER IF EXISTS nobody IDENTIFIED BY 'x'") == OkResult(warnings=1)


async def test_operation_failed_errors(executor: Executor, root: Session) -> None:
    await run(executor, root, "CREATE USER tom")
    cases = {
        "CREATE USER tom": "Operation CREATE USER failed for 'tom'@'%': user 'tom'@'%' already exists",
        "DROP USER ghost@'1.2.3.4'": (
            "Operation DROP USER failed for 'ghost'@'1.2.3.4': cannot find user 'ghost'@'1.2.3.4'"
        ),
        "ALTER USER ghost IDENTIFIED BY 'x'": (
            "Operation ALTER USER failed for 'ghost'@'%': cannot find user 'ghost'@'%'"
        ),
        "DROP USER root": "Operation DROP USER failed for 'root'@'%': the root user cannot be dropped",
        "CREATE USER root@'10.0.0.1'": (
            "Operation CREATE USER failed for 'root'@'10.0.0.1': the user name 'root' is reserved for the built-in "
            "root user"
        ),
    }
    for sql, message in cases.items():
        failure = await error(executor, root, sql)
        assert (failure.code, failure.sqlstate, failure.message) == (1396, "HY000", message)


@pytest.mark.parametrize(
    ("auth_json", "reason"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"principal_field": "sub"}', "'jwks_url' is required"),
        ('{"jwks_url": "https://idp/k", "colour": "red"}', "unknown key 'colour'"),
        ('{"jwks_url": 5}', "'jwks_url' must be a string"),
        ('{"jwks_url": ""}', "'jwks_url' must not be empty"),
        ('{"jwks_url": "/etc/passwd"}', "not an absolute path"),
        ('{"jwks_url": "../secret.json"}', "escapes conf/"),
        ('{"jwks_url": "ftp://idp/keys"}', "only http:// and https://"),
        ('{"jwks_url": "https://idp/k", "required_audience": []}', "'required_audience' must not be empty"),
        ('{"jwks_url": "https://idp/k", "required_issuer": 3}', "'required_issuer' must be a string or an array"),
        ("", "authentication string is empty"),
    ],
)
async def test_invalid_token_json_is_refused_and_nothing_stored(
    executor: Executor, root: Session, catalog: Catalog, auth_json: str, reason: str
) -> None:
    failure = await error(executor, root, f"CREATE USER tom IDENTIFIED WITH authentication_jwt AS '{auth_json}'")
    assert (failure.code, failure.sqlstate) == (1210, "HY000")
    assert failure.message.startswith("Incorrect arguments to CREATE USER: ")
    assert reason in failure.message
    assert catalog.get_account("tom", "%") is None


async def test_other_invalid_arguments(executor: Executor, root: Session) -> None:
    cases = {
        "CREATE USER 'has space'": "invalid user name 'has space'",
        "CREATE USER 'a@b'": "invalid user name 'a@b'",
        f"CREATE USER '{'x' * 130}'": "invalid user name",
        "CREATE USER tom@'bad host!'": "invalid host 'bad host!'",
        "CREATE USER tom IDENTIFIED WITH authentication_jwt": "needs AS '<json>'",
        "CREATE USER tom IDENTIFIED WITH caching_sha2_password AS 'x'": "is not supported",
        'CREATE USER tom PROPERTIES ("max_user_connections" = "10")': "PROPERTIES (max_user_connections)",
        "CREATE ROLE 'bad-role'": "invalid role name 'bad-role'",
    }
    for sql, reason in cases.items():
        failure = await error(executor, root, sql)
        assert (failure.code, failure.sqlstate) == (1210, "HY000"), sql
        assert reason in failure.message, (sql, failure.message)
    failure = await error(executor, root, "CREATE USER tom IDENTIFIED WITH authentication_ldap_simple AS 'uid=x'")
    assert (failure.code, failure.message) == (1524, "Plugin 'authentication_ldap_simple' is not loaded")
    failure = await error(executor, root, "CREATE USER tom IDENTIFIED BY PASSWORD 'not-a-hash'")
    assert (failure.code, failure.message) == (1372, "Password hash should be a 41-digit hexadecimal number")


async def test_alter_user_switches_between_password_and_token(
    executor: Executor, root: Session, catalog: Catalog
) -> None:
    await run(executor, root, "CREATE USER tom IDENTIFIED BY 'pw'")
    await run(
        executor,
        root,
        """ALTER USER tom IDENTIFIED WITH authentication_openid_connect AS '{"jwks_url": "https://i/k"}'""",
    )
    tom = catalog.get_account("tom", "%")
    assert tom is not None and tom.plugin == "authentication_openid_connect" and tom.token_spec is not None
    await run(executor, root, "ALTER USER tom IDENTIFIED WITH mysql_native_password BY 'back'")
    tom = catalog.get_account("tom", "%")
    assert tom is not None and tom.auth_string == native_hash("back") and tom.token_spec is None
    failure = await error(executor, root, "ALTER USER tom IDENTIFIED WITH authentication_jwt AS '{}'")
    assert failure.code == 1210
    tom_after = catalog.get_account("tom", "%")
    assert tom_after is not None and tom_after.auth_string == native_hash("back")


async def test_roles_grants_and_default_roles(executor: Executor, root: Session, catalog: Catalog) -> None:
    await run(executor, root, "CREATE ROLE analyst, auditor", "CREATE USER tom DEFAULT ROLE analyst")
    await run(executor, root, "GRANT auditor, 'user_admin' TO USER tom")
    assert await rows(executor, root, "SHOW GRANTS FOR tom") == [
        ["'tom'@'%'", None, "GRANT 'analyst', 'auditor', 'user_admin' TO 'tom'@'%'"]
    ]
    assert await columns(executor, root, "SHOW GRANTS FOR tom") == ["UserIdentity", "Catalog", "Grants"]
    await run(executor, root, "ALTER USER tom DEFAULT ROLE auditor, user_admin")
    tom = catalog.get_account("tom", "%")
    assert tom is not None and tom.default_roles == ("auditor", "user_admin")
    await run(executor, root, "ALTER USER tom DEFAULT ROLE ALL")
    assert catalog.get_account("tom", "%").default_roles == ("analyst", "auditor", "user_admin")  # type: ignore[union-attr]
    await run(executor, root, "ALTER USER tom DEFAULT ROLE NONE")
    assert catalog.get_account("tom", "%").default_roles == ()  # type: ignore[union-attr]

    failure = await error(executor, root, "ALTER USER tom DEFAULT ROLE public")
    assert (failure.code, failure.message) == (3530, "`public`@`%` is not granted to 'tom'@'%'")
    failure = await error(executor, root, "GRANT ghost_role TO tom")
    assert failure.code == 3523 and "ghost_role" in failure.message
    failure = await error(executor, root, "GRANT analyst TO ghost")
    assert (failure.code, failure.message) == (
        3523,
        "Unknown authorization ID `ghost`@`%`: cannot find user 'ghost'@'%'",
    )

    await run(executor, root, "REVOKE auditor, user_admin FROM tom")
    assert await executor.execute(root, "REVOKE auditor FROM USER tom") == OkResult(warnings=1)
    assert await rows(executor, root, "SHOW GRANTS FOR tom") == [["'tom'@'%'", None, "GRANT 'analyst' TO 'tom'@'%'"]]

    failure = await error(executor, root, "CREATE ROLE analyst")
    assert (failure.code, failure.message) == (
        1396,
        "Operation CREATE ROLE failed for 'analyst': role 'analyst' already exists",
    )
    assert await executor.execute(root, "CREATE ROLE IF NOT EXISTS analyst") == OkResult(warnings=1)
    await run(executor, root, "DROP ROLE analyst")
    assert await rows(executor, root, "SHOW GRANTS FOR tom") == []
    assert await executor.execute(root, "DROP ROLE IF EXISTS analyst") == OkResult(warnings=1)
    for builtin in ("root", "user_admin", "public"):
        failure = await error(executor, root, f"DROP ROLE {builtin}")
        assert failure.code == 1396 and "cannot be dropped" in failure.message
    assert [row[0] for row in await rows(executor, root, "SHOW ROLES")] == ["auditor", "public", "root", "user_admin"]


async def test_root_cannot_lose_its_role(executor: Executor, root: Session) -> None:
    failure = await error(executor, root, "REVOKE root FROM root")
    assert failure.code == 1210 and "cannot be revoked" in failure.message


async def test_set_password(executor: Executor, root: Session, catalog: Catalog) -> None:
    await run(
        executor,
        root,
        "CREATE USER tom IDENTIFIED BY 'old'",
        "CREATE USER nat IDENTIFIED WITH mysql_native_password BY 'a'",
    )
    tom_session = session_for("tom")
    await run(executor, tom_session, "SET PASSWORD = 'new'")
    assert verify_password(b"new", catalog.get_account("tom", "%").auth_string)  # type: ignore[union-attr]
    await run(executor, tom_session, "SET PASSWORD FOR tom = PASSWORD('newer')")
    assert verify_password(b"newer", catalog.get_account("tom", "%").auth_string)  # type: ignore[union-attr]
    await run(executor, tom_session, "SET PASSWORD FOR CURRENT_USER() = 'newest'")
    assert verify_password(b"newest", catalog.get_account("tom", "%").auth_string)  # type: ignore[union-attr]

    await run(executor, root, "SET PASSWORD FOR nat = 'b'")
    assert catalog.get_account("nat", "%").auth_string == native_hash("b")  # type: ignore[union-attr]
    failure = await error(executor, root, "SET PASSWORD FOR ghost = 'x'")
    assert (failure.code, failure.sqlstate) == (1133, "42000")

    await run(executor, root, DOC_JWT_EXAMPLE.replace("tom", "jay", 1))
    failure = await error(executor, session_for("jay"), "SET PASSWORD = 'x'")
    assert failure.code == 1699 and "'jay'@'%'" in failure.message

    await run(executor, root, "SET PASSWORD = 'rootnew'")
    assert verify_password(b"rootnew", catalog.get_account("root", "%").auth_string)  # type: ignore[union-attr]


async def test_non_admins_are_refused(executor: Executor, root: Session) -> None:
    await run(executor, root, "CREATE USER plain IDENTIFIED BY 'x'", "CREATE USER other", "CREATE ROLE analyst")
    plain = session_for("plain")
    refused = [
        "CREATE USER x",
        "CREATE USER IF NOT EXISTS other",
        DOC_JWT_EXAMPLE,
        "ALTER USER other IDENTIFIED BY 'x'",
        "ALTER USER plain IDENTIFIED BY 'x'",
        "ALTER USER other DEFAULT ROLE NONE",
        "DROP USER other",
        "DROP USER IF EXISTS other",
        "CREATE ROLE r2",
        "DROP ROLE analyst",
        "GRANT analyst TO plain",
        "GRANT user_admin TO plain",
        "REVOKE analyst FROM other",
        "SET PASSWORD FOR other = 'x'",
        "SHOW GRANTS FOR other",
        "SHOW GRANTS FOR root",
        "SHOW AUTHENTICATION FOR other",
        "SHOW ALL AUTHENTICATION",
        "SHOW USERS",
        "SHOW ROLES",
    ]
    for sql in refused:
        failure = await error(executor, plain, sql)
        assert (failure.code, failure.sqlstate) == (1227, "42000"), sql
        assert failure.message == (
            "Access denied; you need (at least one of) the GRANT/user_admin privilege(s) for this operation"
        )
    # What anyone may do about themselves:
    assert await rows(executor, plain, "SHOW GRANTS") == []
    assert await rows(executor, plain, "SHOW GRANTS FOR plain") == []
    assert await rows(executor, plain, "SHOW AUTHENTICATION") == [["'plain'@'%'", "Yes", None, None]]
    assert await rows(executor, plain, "SHOW USER") == [["'plain'@'%'"]]
    await run(executor, plain, "SET PASSWORD = 'mine'")


async def test_user_admin_members_may_manage_users_but_not_root(
    executor: Executor, root: Session, catalog: Catalog
) -> None:
    await run(executor, root, "CREATE USER admin@'10.0.0.%' IDENTIFIED BY 'x' DEFAULT ROLE user_admin")
    admin = session_for("admin", "10.0.0.%")
    await run(executor, admin, DOC_OIDC_EXAMPLE, "CREATE ROLE r1", "GRANT r1 TO tom", "SHOW ALL AUTHENTICATION")
    await run(executor, admin, "ALTER USER tom IDENTIFIED BY 'pw'", "DROP USER tom")
    for sql in ("SET PASSWORD FOR root = 'x'", "ALTER USER root IDENTIFIED BY 'x'", "GRANT root TO admin@'10.0.0.%'"):
        failure = await error(executor, admin, sql)
        assert failure.code == 1227 and "only root may" in failure.message, sql
    # Privileges follow the catalog at once: after REVOKE the same session is refused.
    await run(executor, root, "REVOKE user_admin FROM admin@'10.0.0.%'")
    assert (await error(executor, admin, "CREATE USER y")).code == 1227


async def test_a_dropped_users_session_loses_everything(executor: Executor, root: Session) -> None:
    await run(executor, root, "CREATE USER gone DEFAULT ROLE user_admin")
    gone = session_for("gone")
    await run(executor, gone, "CREATE USER made_by_gone")
    await run(executor, root, "DROP USER gone")
    assert (await error(executor, gone, "CREATE USER again")).code == 1227
    assert await rows(executor, gone, "SHOW GRANTS") == []
    assert (await error(executor, gone, "SET PASSWORD = 'x'")).code == 1133
