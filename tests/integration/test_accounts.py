"""Issue 3 through real client connections: token users' CREATE / ALTER / DROP USER, roles and grants, the SHOW
statements against StarRocks' documented output, malformed JSON and paths, privilege refusals, identity matching,
and accounts seen at once by every worker of `fe serve --workers 2`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import mysql.connector
import pytest

from fe.auth.devtools import generate_signing_key, mint_token
from tests.conftest import ROOT_PASSWORD
from tests.support.clients import ALL_CLIENTS, Outcome, connector_pure, pymysql_client
from tests.support.server import FeProcess, running_fe
from tests.support.sessions import Session

ISSUER = "https://issuer.local"
AUDIENCE = "fe"
LOCAL_SPEC = json.dumps({"jwks_url": "local.jwks", "required_issuer": ISSUER, "required_audience": AUDIENCE})

# StarRocks' documented result columns.
AUTHENTICATION_COLUMNS = ["UserIdentity", "Password", "AuthPlugin", "UserForAuthPlugin"]
GRANTS_COLUMNS = ["UserIdentity", "Catalog", "Grants"]
USERS_COLUMNS = ["User"]

# The StarRocks documentation's own examples, verbatim (CREATE USER example 12; the JWT and OIDC pages).
DOC_CREATE_USER_JWT = """CREATE USER tom IDENTIFIED WITH authentication_jwt AS
'{
  "jwks_url": "http://localhost:38080/realms/master/protocol/jwt/certs",
  "principal_field": "preferred_username",
  "required_issuer": "http://localhost:38080/realms/master",
  "required_audience": "starrocks"
}';"""
DOC_JWT_PAGE = """CREATE USER tom IDENTIFIED WITH authentication_jwt AS
'{
  "jwks_url": "http://localhost:38080/realms/master/protocol/jwt/certs",
  "principal_field": "preferred_username",
  "required_issuer": "http://localhost:38080/realms/master",
  "required_audience": "12345"
}';"""
DOC_OIDC_PAGE = """CREATE USER tom IDENTIFIED WITH authentication_openid_connect AS
'{
  "jwks_url": "http://localhost:38080/realms/master/protocol/openid-connect/certs",
  "principal_field": "preferred_username",
  "required_issuer": "http://localhost:38080/realms/master",
  "required_audience": "12345"
}';"""
DOC_TOKEN_EXAMPLES = {
    "create_user_example_12": (DOC_CREATE_USER_JWT, "AUTHENTICATION_JWT", "jwt/certs", "starrocks"),
    "jwt_page": (DOC_JWT_PAGE, "AUTHENTICATION_JWT", "jwt/certs", "12345"),
    "oidc_page": (DOC_OIDC_PAGE, "AUTHENTICATION_OPENID_CONNECT", "openid-connect/certs", "12345"),
}
DOC_CLIENTS = ["pymysql", "connector_pure", "mariadb_cli"]


@dataclass
class Setup:
    server: FeProcess
    home: Path
    tokens_dir: Path
    key: object
    kid: str

    def admin(self) -> Session:
        return Session(self.server, "root", ROOT_PASSWORD)

    def token(self, sub: str) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 600}
        return mint_token(self.key, "ES256", self.kid, claims)

    def token_login(self, user: str, sub: str | None = None) -> Outcome:
        """A token login with Connector/Python's pure client (`openid_token_file=`), then SELECT CURRENT_USER()."""
        path = self.tokens_dir / f"{user}-{time.monotonic_ns()}.token"
        path.write_text(self.token(sub or user))
        return connector_pure(
            self.server.host,
            self.server.port,
            user,
            "",
            openid_token_file=str(path),
            statements=("SELECT CURRENT_USER()",),
        )

    def password_login(self, user: str, password: str) -> Outcome:
        return pymysql_client(self.server.host, self.server.port, user, password, statements=("SELECT CURRENT_USER()",))


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    home = tmp_path_factory.mktemp("fe-accounts-home")
    (home / "conf").mkdir()
    key, jwk = generate_signing_key("ES256")
    (home / "conf" / "local.jwks").write_text(json.dumps({"keys": [jwk]}))
    tokens_dir = tmp_path_factory.mktemp("tokens")
    with running_fe(home, env={"FE_ROOT_PASSWORD": ROOT_PASSWORD}) as server:
        yield Setup(server, home, tokens_dir, key, jwk["kid"])


@pytest.fixture
def admin(setup: Setup) -> Iterator[Session]:
    with setup.admin() as session:
        yield session


def users(session: Session) -> set[str]:
    return {row[0] for row in session.rows("SHOW USERS")}


def all_authentication(session: Session) -> list[tuple]:
    return session.rows("SHOW ALL AUTHENTICATION")


# ------------------------------------------------------------------------- the documentation's examples


@pytest.mark.parametrize("client", DOC_CLIENTS)
@pytest.mark.parametrize("example", sorted(DOC_TOKEN_EXAMPLES))
def test_doc_token_examples_verbatim(setup: Setup, admin: Session, client: str, example: str) -> None:
    statement, plugin, certs_path, audience = DOC_TOKEN_EXAMPLES[example]
    admin.run("DROP USER IF EXISTS tom")
    outcome = ALL_CLIENTS[client](
        setup.server.host,
        setup.server.port,
        "root",
        ROOT_PASSWORD,
        # The mariadb CLI treats `;` as its delimiter; the other clients send the text exactly as documented.
        statements=(
            statement.removesuffix(";") if client == "mariadb_cli" else statement,
            "SHOW AUTHENTICATION FOR tom",
        ),
    )
    try:
        assert outcome.ok, outcome.message
        identity, password, shown_plugin, spec_text = outcome.rows[-1][0]
        assert (identity, password, shown_plugin) == ("'tom'@'%'", "No", plugin)
        assert json.loads(str(spec_text)) == {
            "jwks_url": f"http://localhost:38080/realms/master/protocol/{certs_path}",
            "principal_field": "preferred_username",
            "required_issuer": ["http://localhost:38080/realms/master"],
            "required_audience": [audience],
        }
    finally:
        admin.run("DROP USER IF EXISTS tom")


DOC_PASSWORD_EXAMPLES = [
    # CREATE USER examples 1, 2, 3 (both forms) and 7: (statement, identity, Password, AuthPlugin).
    # AuthPlugin is NULL where the statement names no plugin, as StarRocks documents it.
    ("CREATE USER 'jack' IDENTIFIED BY '123456';", "'jack'@'%'", "Yes", None),
    (
        "CREATE USER jack@'172.10.1.10' IDENTIFIED WITH mysql_native_password BY '123456';",
        "'jack'@'172.10.1.10'",
        "Yes",
        "MYSQL_NATIVE_PASSWORD",
    ),
    (
        "CREATE USER jack@'172.10.1.10' IDENTIFIED BY PASSWORD '*6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9';",
        "'jack'@'172.10.1.10'",
        "Yes",
        None,
    ),
    (
        "CREATE USER jack@'172.10.1.10' IDENTIFIED WITH mysql_native_password AS "
        "'*6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9';",
        "'jack'@'172.10.1.10'",
        "Yes",
        "MYSQL_NATIVE_PASSWORD",
    ),
    (
        "CREATE USER 'jack'@'192.168.%' DEFAULT ROLE db_admin, user_admin;",
        "'jack'@'192.168.%'",
        "No",
        None,
    ),
]


@pytest.mark.parametrize("client", DOC_CLIENTS)
def test_doc_password_examples_verbatim(setup: Setup, admin: Session, client: str) -> None:
    admin.run("CREATE ROLE IF NOT EXISTS db_admin")
    run = ALL_CLIENTS[client]

    def execute(*statements: str) -> Outcome:
        if client == "mariadb_cli":
            statements = tuple(statement.removesuffix(";") for statement in statements)
        outcome = run(setup.server.host, setup.server.port, "root", ROOT_PASSWORD, statements=statements)
        assert outcome.ok, (statements, outcome.message)
        return outcome

    try:
        for statement, identity, has_password, plugin in DOC_PASSWORD_EXAMPLES:
            name_host = identity.replace("'", "").split("@")
            outcome = execute(statement, f"SHOW AUTHENTICATION FOR {identity}")
            row = [None if value in (None, "NULL") else str(value) for value in outcome.rows[-1][0]]
            assert row == [identity, has_password, plugin, None], statement
            admin.run(f"DROP USER '{name_host[0]}'@'{name_host[1]}'")
        # Example 7's default roles are granted and shown.
        execute("CREATE USER 'jack'@'192.168.%' DEFAULT ROLE db_admin, user_admin;")
        assert admin.rows("SHOW GRANTS FOR 'jack'@'192.168.%'") == [
            ("'jack'@'192.168.%'", None, "GRANT 'db_admin', 'user_admin' TO 'jack'@'192.168.%'")
        ]
        # ALTER USER examples 1 and 2, and a login with each resulting password.
        execute("CREATE USER 'jack' IDENTIFIED BY 'other'")
        for statement in (
            "ALTER USER 'jack' IDENTIFIED BY '123456';",
            "ALTER USER 'jack' IDENTIFIED WITH mysql_native_password BY '123456';",
            "ALTER USER 'jack' IDENTIFIED BY PASSWORD '*6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9';",
            "ALTER USER 'jack' IDENTIFIED WITH mysql_native_password AS '*6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9';",
        ):
            execute(statement)
            assert setup.password_login("jack", "123456").rows == [[["jack@%"]]], statement
        # DROP USER's example, for the identity it names.
        execute("CREATE USER 'jack'@'192.%'")
        execute("DROP USER 'jack'@'192.%'")
        assert "'jack'@'192.%'" not in users(admin)
    finally:
        for identity in ("'jack'@'%'", "'jack'@'172.10.1.10'", "'jack'@'192.168.%'", "'jack'@'192.%'"):
            admin.run(f"DROP USER IF EXISTS {identity}")


# "Manage user privileges" and "Native authentication" pages, verbatim: roles granted to and revoked from users.
DOC_ROLE_STATEMENTS = (
    "CREATE ROLE example_role;",
    "CREATE USER jack@'172.10.1.10' IDENTIFIED BY '12345' DEFAULT ROLE 'example_role';",
    "REVOKE example_role FROM USER jack@'172.10.1.10';",
    "GRANT example_role TO USER jack@'172.10.1.10';",
    "GRANT db_admin, user_admin, cluster_admin TO USER user_platform;",
    "ALTER USER user_platform DEFAULT ROLE db_admin, user_admin;",
    "SHOW GRANTS FOR jack@'172.10.1.10';",
    "SHOW GRANTS;",
)


@pytest.mark.parametrize("client", DOC_CLIENTS)
def test_doc_role_examples_verbatim(setup: Setup, admin: Session, client: str) -> None:
    # StarRocks has db_admin and cluster_admin built in; fe has only root, user_admin and public.
    admin.run("CREATE ROLE IF NOT EXISTS db_admin")
    admin.run("CREATE ROLE IF NOT EXISTS cluster_admin")
    admin.run("CREATE USER user_platform")
    statements = DOC_ROLE_STATEMENTS
    if client == "mariadb_cli":
        statements = tuple(statement.removesuffix(";") for statement in statements)
    try:
        outcome = ALL_CLIENTS[client](
            setup.server.host, setup.server.port, "root", ROOT_PASSWORD, statements=statements
        )
        assert outcome.ok, outcome.message
        jack_grants, root_grants = outcome.rows[-2], outcome.rows[-1]
        assert [[None if v in (None, "NULL") else v for v in row] for row in jack_grants] == [
            ["'jack'@'172.10.1.10'", None, "GRANT 'example_role' TO 'jack'@'172.10.1.10'"]
        ]
        assert [[None if v in (None, "NULL") else v for v in row] for row in root_grants] == [
            ["'root'@'%'", None, "GRANT 'root' TO 'root'@'%'"]
        ]
        assert admin.rows("SHOW GRANTS FOR user_platform") == [
            ("'user_platform'@'%'", None, "GRANT 'cluster_admin', 'db_admin', 'user_admin' TO 'user_platform'@'%'")
        ]
        # DROP ROLE's example, then the documented caution: system-defined roles cannot be dropped.
        done = ALL_CLIENTS[client](
            setup.server.host,
            setup.server.port,
            "root",
            ROOT_PASSWORD,
            statements=("DROP ROLE example_role" + ("" if client == "mariadb_cli" else ";"),),
        )
        assert done.ok, done.message
        assert admin.rows("SHOW GRANTS FOR jack@'172.10.1.10'") == []
        assert "example_role" not in {row[0] for row in admin.rows("SHOW ROLES")}
    finally:
        admin.run("DROP USER IF EXISTS jack@'172.10.1.10'")
        admin.run("DROP USER IF EXISTS user_platform")
        admin.run("DROP ROLE IF EXISTS example_role")


def test_show_outputs_match_the_documented_columns(setup: Setup, admin: Session) -> None:
    """SHOW AUTHENTICATION example 3 verbatim, and every SHOW column by column."""
    admin.run("CREATE ROLE IF NOT EXISTS testrole")
    admin.run(f"CREATE USER showme IDENTIFIED WITH authentication_jwt AS '{LOCAL_SPEC}' DEFAULT ROLE testrole")
    admin.run("CREATE USER showpw IDENTIFIED BY 'Show-pw-1'")
    try:
        reply = admin.run("SHOW AUTHENTICATION FOR root;")
        assert reply.columns == AUTHENTICATION_COLUMNS
        assert reply.rows == [("'root'@'%'", "Yes", None, None)]  # StarRocks' documented row for root
        assert admin.run("SHOW AUTHENTICATION").rows == reply.rows

        normalised = json.dumps(
            {
                "jwks_url": "local.jwks",
                "principal_field": "sub",
                "required_issuer": [ISSUER],
                "required_audience": [AUDIENCE],
            },
            separators=(", ", ": "),
        )
        token_row = ("'showme'@'%'", "No", "AUTHENTICATION_JWT", normalised)
        password_row = ("'showpw'@'%'", "Yes", None, None)
        assert admin.run("SHOW AUTHENTICATION FOR showme").rows == [token_row]
        everyone = admin.run("SHOW ALL AUTHENTICATION")
        assert everyone.columns == AUTHENTICATION_COLUMNS
        assert token_row in everyone.rows and password_row in everyone.rows and reply.rows[0] in everyone.rows

        listed = admin.run("SHOW USERS")
        assert listed.columns == USERS_COLUMNS
        assert {("'root'@'%'",), ("'showme'@'%'",), ("'showpw'@'%'",)} <= set(listed.rows)
        assert [row[0] for row in everyone.rows] == [row[0] for row in listed.rows]

        current = admin.run("SHOW USER")
        assert (current.columns, current.rows) == (USERS_COLUMNS, [("'root'@'%'",)])

        # StarRocks' SHOW GRANTS example: role grants are one row, Catalog NULL.
        admin.run("GRANT testrole TO root")
        grants = admin.run("SHOW GRANTS")
        assert grants.columns == GRANTS_COLUMNS
        assert grants.rows == [("'root'@'%'", None, "GRANT 'root', 'testrole' TO 'root'@'%'")]
        admin.run("REVOKE testrole FROM root")
        assert admin.rows("SHOW GRANTS FOR root") == [("'root'@'%'", None, "GRANT 'root' TO 'root'@'%'")]
        assert admin.run("SHOW GRANTS FOR showme").rows == [("'showme'@'%'", None, "GRANT 'testrole' TO 'showme'@'%'")]
        empty = admin.run("SHOW GRANTS FOR showpw")
        assert (empty.columns, empty.rows) == (GRANTS_COLUMNS, [])
    finally:
        admin.run("DROP USER IF EXISTS showme")
        admin.run("DROP USER IF EXISTS showpw")


def test_show_authentication_through_the_mariadb_cli(setup: Setup, admin: Session) -> None:
    admin.run(f"CREATE USER climan IDENTIFIED WITH AUTHENTICATION_OPENID_CONNECT AS '{LOCAL_SPEC}'")
    try:
        outcome = ALL_CLIENTS["mariadb_cli"](
            setup.server.host,
            setup.server.port,
            "root",
            ROOT_PASSWORD,
            statements=("SHOW AUTHENTICATION FOR climan", "SHOW GRANTS FOR root", "SHOW USER"),
        )
        assert outcome.ok, outcome.message
        (identity, password, plugin, spec_text), *_ = outcome.rows[0]
        assert (identity, password, plugin) == ("'climan'@'%'", "No", "AUTHENTICATION_OPENID_CONNECT")
        assert json.loads(spec_text)["required_issuer"] == [ISSUER]
        assert outcome.rows[1] == [["'root'@'%'", "NULL", "GRANT 'root' TO 'root'@'%'"]]
        assert outcome.rows[2] == [["'root'@'%'"]]
    finally:
        admin.run("DROP USER IF EXISTS climan")


# ------------------------------------------------------------------------- statement forms


PLUGIN_FORMS = [
    ("authentication_jwt", "AUTHENTICATION_JWT"),
    ("AUTHENTICATION_JWT", "AUTHENTICATION_JWT"),
    ("Authentication_Jwt", "AUTHENTICATION_JWT"),
    ("'authentication_jwt'", "AUTHENTICATION_JWT"),
    ('"authentication_jwt"', "AUTHENTICATION_JWT"),
    ("`authentication_jwt`", "AUTHENTICATION_JWT"),
    ("authentication_openid_connect", "AUTHENTICATION_OPENID_CONNECT"),
    ("AUTHENTICATION_OPENID_CONNECT", "AUTHENTICATION_OPENID_CONNECT"),
    ("'Authentication_OpenID_Connect'", "AUTHENTICATION_OPENID_CONNECT"),
]


@pytest.mark.parametrize("keyword", ["AS", "BY"])
@pytest.mark.parametrize(("plugin", "shown"), PLUGIN_FORMS, ids=[form for form, _ in PLUGIN_FORMS])
def test_token_plugin_name_forms_create_a_working_token_user(
    setup: Setup, admin: Session, plugin: str, shown: str, keyword: str
) -> None:
    admin.run(f"CREATE USER formed IDENTIFIED WITH {plugin} {keyword} '{LOCAL_SPEC}'")
    try:
        (row,) = admin.rows("SHOW AUTHENTICATION FOR formed")
        assert row[:3] == ("'formed'@'%'", "No", shown)
        login = setup.token_login("formed")
        assert login.ok, login.message
        assert login.rows == [[["formed@%"]]]
        # A token user has no password: one sent is refused.
        assert setup.password_login("formed", "anything").errno == 1045
    finally:
        admin.run("DROP USER IF EXISTS formed")


def test_if_not_exists_and_if_exists(setup: Setup, admin: Session) -> None:
    admin.run(f"CREATE USER twice IDENTIFIED WITH authentication_jwt AS '{LOCAL_SPEC}'")
    try:
        before = all_authentication(admin)
        errno, message = admin.error("CREATE USER twice IDENTIFIED BY 'x'")
        assert errno == 1396 and "already exists" in message and "'twice'@'%'" in message
        reply = admin.run("CREATE USER IF NOT EXISTS twice IDENTIFIED BY 'x'")
        assert reply.warnings == 1
        assert admin.rows("SHOW WARNINGS") == [("Note", 3163, "Authorization ID 'twice'@'%' already exists.")]
        assert all_authentication(admin) == before  # IF NOT EXISTS changed nothing

        errno, message = admin.error("ALTER USER nobody IDENTIFIED BY 'x'")
        assert errno == 1396 and "cannot find user 'nobody'@'%'" in message
        assert admin.run("ALTER USER IF EXISTS nobody IDENTIFIED BY 'x'").warnings == 1
        assert admin.rows("SHOW WARNINGS") == [("Note", 3162, "Authorization ID 'nobody'@'%' does not exist.")]
        assert (
            admin.run(
                f"ALTER USER IF EXISTS twice IDENTIFIED WITH authentication_openid_connect AS '{LOCAL_SPEC}'"
            ).warnings
            == 0
        )
        assert admin.rows("SHOW AUTHENTICATION FOR twice")[0][2] == "AUTHENTICATION_OPENID_CONNECT"

        errno, message = admin.error("DROP USER nobody")
        assert errno == 1396 and "cannot find user 'nobody'@'%'" in message
        assert admin.run("DROP USER IF EXISTS nobody").warnings == 1
        assert admin.rows("SHOW WARNINGS") == [("Note", 3162, "Authorization ID 'nobody'@'%' does not exist.")]
        assert admin.run("DROP USER IF EXISTS twice").warnings == 0
        assert "'twice'@'%'" not in users(admin)
        assert setup.token_login("twice").errno == 1045
    finally:
        admin.run("DROP USER IF EXISTS twice")


def test_alter_user_from_password_to_token_and_back(setup: Setup, admin: Session) -> None:
    admin.run("CREATE USER switcher IDENTIFIED BY 'Switch-pw-1'")
    try:
        assert setup.password_login("switcher", "Switch-pw-1").rows == [[["switcher@%"]]]
        assert setup.token_login("switcher").errno == 1045

        admin.run(f"ALTER USER switcher IDENTIFIED WITH authentication_jwt AS '{LOCAL_SPEC}'")
        assert admin.rows("SHOW AUTHENTICATION FOR switcher")[0][1:3] == ("No", "AUTHENTICATION_JWT")
        login = setup.token_login("switcher")
        assert login.ok, login.message
        assert login.rows == [[["switcher@%"]]]
        assert setup.password_login("switcher", "Switch-pw-1").errno == 1045
        # The principal must name this user: a token for someone else is refused.
        assert setup.token_login("switcher", sub="somebody").errno == 1045

        admin.run("ALTER USER switcher IDENTIFIED WITH mysql_native_password BY 'Switch-pw-2'")
        assert admin.rows("SHOW AUTHENTICATION FOR switcher") == [
            ("'switcher'@'%'", "Yes", "MYSQL_NATIVE_PASSWORD", None)
        ]
        assert setup.password_login("switcher", "Switch-pw-2").rows == [[["switcher@%"]]]
        assert setup.password_login("switcher", "Switch-pw-1").errno == 1045
        assert setup.token_login("switcher").errno == 1045
    finally:
        admin.run("DROP USER IF EXISTS switcher")


def test_default_roles_grant_and_revoke(setup: Setup, admin: Session) -> None:
    admin.run("CREATE ROLE IF NOT EXISTS analyst")
    admin.run("CREATE ROLE IF NOT EXISTS auditor")
    admin.run(f"CREATE USER roley IDENTIFIED WITH authentication_jwt AS '{LOCAL_SPEC}' DEFAULT ROLE analyst")
    try:
        assert admin.rows("SHOW GRANTS FOR roley") == [("'roley'@'%'", None, "GRANT 'analyst' TO 'roley'@'%'")]
        admin.run("GRANT auditor TO roley")
        assert admin.rows("SHOW GRANTS FOR roley") == [
            ("'roley'@'%'", None, "GRANT 'analyst', 'auditor' TO 'roley'@'%'")
        ]
        admin.run("ALTER USER roley DEFAULT ROLE auditor")
        admin.run("ALTER USER roley DEFAULT ROLE analyst, auditor")
        admin.run("ALTER USER roley DEFAULT ROLE NONE")
        admin.run("ALTER USER roley DEFAULT ROLE ALL")
        errno, _ = admin.error("ALTER USER roley DEFAULT ROLE user_admin")  # not granted to roley
        assert errno == 3530
        errno, _ = admin.error("ALTER USER roley DEFAULT ROLE no_such_role")
        assert errno == 3523
        errno, _ = admin.error("GRANT no_such_role TO roley")
        assert errno == 3523
        errno, _ = admin.error("GRANT analyst TO nobody")
        assert errno == 3523
        errno, _ = admin.error("CREATE USER other_roley DEFAULT ROLE no_such_role")
        assert errno == 3523
        assert "'other_roley'@'%'" not in users(admin)

        admin.run("REVOKE analyst FROM roley")
        assert admin.rows("SHOW GRANTS FOR roley") == [("'roley'@'%'", None, "GRANT 'auditor' TO 'roley'@'%'")]
        assert admin.run("REVOKE analyst FROM roley").warnings == 1  # no longer granted: a note, not an error
        # Dropping a role takes it from its holders.
        admin.run("DROP ROLE auditor")
        assert admin.rows("SHOW GRANTS FOR roley") == []
        errno, _ = admin.error("DROP ROLE auditor")
        assert errno == 1396
        assert admin.run("DROP ROLE IF EXISTS auditor").warnings == 1
        errno, _ = admin.error("CREATE ROLE analyst")
        assert errno == 1396
        assert admin.run("CREATE ROLE IF NOT EXISTS analyst").warnings == 1
        for builtin in ("root", "user_admin", "public"):
            errno, message = admin.error(f"DROP ROLE {builtin}")
            assert errno == 1396 and "built-in" in message, builtin
        roles = {row[0]: row[1] for row in admin.rows("SHOW ROLES")}
        assert {"root": "true", "user_admin": "true", "public": "true", "analyst": "false"}.items() <= roles.items()
    finally:
        admin.run("DROP USER IF EXISTS roley")
        admin.run("DROP ROLE IF EXISTS analyst")
        admin.run("DROP ROLE IF EXISTS auditor")


def test_root_cannot_be_dropped_and_a_dropped_user_cannot_log_in(setup: Setup, admin: Session) -> None:
    for statement in ("DROP USER root", "DROP USER IF EXISTS root", "DROP USER 'root'@'%'"):
        errno, message = admin.error(statement)
        assert errno == 1396 and "root user cannot be dropped" in message, statement
    errno, _ = admin.error("REVOKE root FROM root")
    assert errno == 1210
    assert setup.password_login("root", ROOT_PASSWORD).ok

    admin.run("CREATE USER leaving IDENTIFIED BY 'Leave-pw-1' DEFAULT ROLE user_admin")
    try:
        with Session(setup.server, "leaving", "Leave-pw-1") as session:
            assert session.rows("SELECT CURRENT_USER()") == [("leaving@%",)]
            session.run("CREATE USER left_behind")
            admin.run("DROP USER leaving")
            assert setup.password_login("leaving", "Leave-pw-1").errno == 1045
            # The open session holds nothing any more: no grants, no user_admin.
            assert session.rows("SHOW GRANTS") == []
            assert session.error("DROP USER left_behind")[0] == 1227
    finally:
        admin.run("DROP USER IF EXISTS leaving")
        admin.run("DROP USER IF EXISTS left_behind")


# ------------------------------------------------------------------------- malformed JSON and bad paths


def _outside_file_link(setup: Setup) -> str:
    outside = setup.home / "outside.jwks"
    outside.write_text("{}")
    link = setup.home / "conf" / "escape.jwks"
    if not link.is_symlink():
        link.symlink_to(outside)
    return "escape.jwks"


def _directory(setup: Setup) -> str:
    (setup.home / "conf" / "keysdir").mkdir(exist_ok=True)
    return "keysdir"


BAD_SPECS: list[tuple[str, str | Callable[[Setup], str], str]] = [
    # (case id, the AS text or a function building it, the problem the ERR must name)
    ("not_json", "{jwks_url: local.jwks}", "not valid JSON"),
    ("plain_text", "local.jwks", "not valid JSON"),
    ("empty", "", "empty"),
    ("array", '["local.jwks"]', "must be a JSON object, not an array"),
    ("string", '"local.jwks"', "must be a JSON object, not a string"),
    ("null", "null", "must be a JSON object, not null"),
    ("unknown_key", '{"jwks_url": "local.jwks", "issuer": "x"}', "unknown key 'issuer'"),
    ("missing_jwks_url", '{"principal_field": "sub"}', "'jwks_url' is required"),
    ("duplicate_key", '{"jwks_url": "local.jwks", "jwks_url": "other.jwks"}', "appears more than once"),
    ("jwks_url_number", '{"jwks_url": 42}', "'jwks_url' must be a string, not a number"),
    ("jwks_url_empty", '{"jwks_url": ""}', "'jwks_url' must not be empty"),
    ("jwks_url_blank", '{"jwks_url": "   "}', "'jwks_url' must not be empty"),
    ("principal_empty", '{"jwks_url": "local.jwks", "principal_field": ""}', "'principal_field' must not be empty"),
    ("principal_array", '{"jwks_url": "local.jwks", "principal_field": ["sub"]}', "'principal_field' must be a string"),
    ("issuer_number", '{"jwks_url": "local.jwks", "required_issuer": 1}', "'required_issuer' must be a string"),
    ("issuer_empty", '{"jwks_url": "local.jwks", "required_issuer": ""}', "'required_issuer' must not be empty"),
    ("issuer_empty_entry", '{"jwks_url": "local.jwks", "required_issuer": "a,,b"}', "'required_issuer' must not be"),
    ("audience_empty_array", '{"jwks_url": "local.jwks", "required_audience": []}', "'required_audience' must not be"),
    ("audience_not_strings", '{"jwks_url": "local.jwks", "required_audience": [1]}', "'required_audience' must be"),
    ("audience_object", '{"jwks_url": "local.jwks", "required_audience": {}}', "'required_audience' must be"),
    ("absolute_path", '{"jwks_url": "/etc/passwd"}', "not an absolute path"),
    ("home_path", '{"jwks_url": "~/keys.jwks"}', "not an absolute path"),
    ("dotdot", '{"jwks_url": "../meta/catalog.db"}', "escapes conf/"),
    ("inner_dotdot", '{"jwks_url": "sub/../../outside.jwks"}', "escapes conf/"),
    ("symlink_out", lambda s: json.dumps({"jwks_url": _outside_file_link(s)}), "escapes conf/ (through a link)"),
    ("directory", lambda s: json.dumps({"jwks_url": _directory(s)}), "is not a regular file"),
    ("file_scheme", '{"jwks_url": "file:///etc/passwd"}', "only http:// and https://"),
    ("url_without_host", '{"jwks_url": "https:///certs"}', "has no host"),
    ("url_with_credentials", '{"jwks_url": "https://u:p@idp.example/certs"}', "must not carry credentials"),
]


@pytest.mark.parametrize(("case", "spec", "problem"), BAD_SPECS, ids=[case for case, _, _ in BAD_SPECS])
def test_bad_json_and_paths_are_refused_and_nothing_stored(
    setup: Setup, admin: Session, case: str, spec: str | Callable[[Setup], str], problem: str
) -> None:
    text = spec(setup) if callable(spec) else spec
    quoted = text.replace("\\", "\\\\").replace("'", "\\'")
    admin.run("CREATE USER IF NOT EXISTS keeper IDENTIFIED BY 'Keep-pw-1'")
    before = all_authentication(admin)
    for statement in (
        f"CREATE USER badjson IDENTIFIED WITH authentication_jwt AS '{quoted}'",
        f"CREATE USER IF NOT EXISTS badjson IDENTIFIED WITH authentication_openid_connect BY '{quoted}'",
        f"ALTER USER keeper IDENTIFIED WITH authentication_jwt AS '{quoted}'",
    ):
        errno, message = admin.error(statement)
        assert errno == 1210, (statement, message)
        operation = " ".join(statement.split()[:2])
        assert message.startswith(f"Incorrect arguments to {operation}: "), message
        assert problem in message, message
        assert admin.rows("SHOW ERRORS") == [("Error", 1210, message)]
    assert all_authentication(admin) == before
    assert setup.password_login("keeper", "Keep-pw-1").ok  # the ALTERs left keeper's password alone


def test_missing_local_key_file_is_accepted_with_a_warning(setup: Setup, admin: Session) -> None:
    spec = json.dumps({"jwks_url": "later/keys.jwks", "required_issuer": ISSUER, "required_audience": AUDIENCE})
    try:
        reply = admin.run(f"CREATE USER early IDENTIFIED WITH authentication_jwt AS '{spec}'")
        assert reply.warnings == 1
        warnings = admin.run("SHOW WARNINGS")
        assert warnings.columns == ["Level", "Code", "Message"]
        ((level, _code, message),) = warnings.rows
        assert level == "Warning" and "conf/later/keys.jwks does not exist" in message
        assert "'early'@'%'" in users(admin)
        # Until the file exists, logins fail; once it does, they work (the key file is read at login).
        assert setup.token_login("early").errno == 1045
        (setup.home / "conf" / "later").mkdir()
        (setup.home / "conf" / "later" / "keys.jwks").write_text((setup.home / "conf" / "local.jwks").read_text())
        # Key files are looked at again at most once a second.
        deadline = time.monotonic() + 5
        while not (login := setup.token_login("early")).ok and time.monotonic() < deadline:
            time.sleep(0.2)
        assert login.ok, login.message
        # The same warning through the mariadb CLI, which shows it after the statement (--show-warnings).
        outcome = ALL_CLIENTS["mariadb_cli"](
            setup.server.host,
            setup.server.port,
            "root",
            ROOT_PASSWORD,
            statements=(
                'ALTER USER early IDENTIFIED WITH authentication_jwt AS \'{"jwks_url": "gone.jwks", '
                '"required_audience": "fe"}\'',
            ),
            extra_args=("--show-warnings",),
        )
        assert outcome.ok, outcome.message
        ((shown,),) = outcome.rows[0]
        assert shown.startswith("Warning (Code 1210): key file conf/gone.jwks does not exist"), shown
        assert json.loads(admin.rows("SHOW AUTHENTICATION FOR early")[0][3])["jwks_url"] == "gone.jwks"
    finally:
        admin.run("DROP USER IF EXISTS early")


# ------------------------------------------------------------------------- who may do it


REFUSED_FOR_NON_ADMINS = [
    "CREATE USER intruder",
    "CREATE USER IF NOT EXISTS victim",
    DOC_CREATE_USER_JWT,
    "ALTER USER victim IDENTIFIED BY 'x'",
    f"ALTER USER victim IDENTIFIED WITH authentication_jwt AS '{LOCAL_SPEC}'",
    "ALTER USER IF EXISTS victim IDENTIFIED BY 'x'",
    "ALTER USER victim DEFAULT ROLE NONE",
    "ALTER USER plain IDENTIFIED BY 'x'",
    "DROP USER victim",
    "DROP USER IF EXISTS victim",
    "CREATE ROLE newrole",
    "DROP ROLE victim_role",
    "DROP ROLE IF EXISTS victim_role",
    "GRANT victim_role TO victim",
    "GRANT user_admin TO plain",
    "REVOKE victim_role FROM victim",
    "SHOW GRANTS FOR victim",
    "SHOW AUTHENTICATION FOR victim",
    "SHOW ALL AUTHENTICATION",
    "SHOW USERS",
]


@pytest.fixture
def plain_and_victim(admin: Session) -> Iterator[None]:
    admin.run("CREATE USER plain IDENTIFIED BY 'Plain-pw-1'")
    admin.run("CREATE ROLE victim_role")
    admin.run("CREATE USER victim IDENTIFIED BY 'Victim-pw-1' DEFAULT ROLE victim_role")
    yield
    for statement in ("DROP USER IF EXISTS plain", "DROP USER IF EXISTS victim", "DROP USER IF EXISTS intruder"):
        admin.run(statement)
    admin.run("DROP ROLE IF EXISTS victim_role")
    admin.run("DROP ROLE IF EXISTS newrole")


def test_non_admins_are_refused_with_1227(setup: Setup, admin: Session, plain_and_victim: None) -> None:
    before = (all_authentication(admin), admin.rows("SHOW ROLES"), admin.rows("SHOW GRANTS FOR victim"))
    connection = mysql.connector.connect(
        host=setup.server.host,
        port=setup.server.port,
        user="plain",
        password="Plain-pw-1",
        use_pure=True,
        ssl_verify_cert=False,
        connection_timeout=10,
    )
    try:
        cursor = connection.cursor()
        for statement in REFUSED_FOR_NON_ADMINS:
            with pytest.raises(mysql.connector.Error) as refused:
                cursor.execute(statement)
                cursor.fetchall()
            assert (refused.value.errno, refused.value.sqlstate) == (1227, "42000"), statement
            assert "Access denied" in str(refused.value.msg), statement
        # What anyone may see about themselves.
        cursor.execute("SHOW GRANTS")
        assert cursor.fetchall() == []
        cursor.execute("SHOW GRANTS FOR plain")
        assert cursor.fetchall() == []
        cursor.execute("SHOW AUTHENTICATION")
        assert cursor.fetchall() == [("'plain'@'%'", "Yes", None, None)]
        cursor.execute("SHOW USER")
        assert cursor.fetchall() == [("'plain'@'%'",)]
    finally:
        connection.close()
    assert (all_authentication(admin), admin.rows("SHOW ROLES"), admin.rows("SHOW GRANTS FOR victim")) == before
    # A non-admin who holds some other role sees that role in their own grants.
    admin.run("GRANT victim_role TO plain")
    with Session(setup.server, "plain", "Plain-pw-1") as plain:
        assert plain.rows("SHOW GRANTS") == [("'plain'@'%'", None, "GRANT 'victim_role' TO 'plain'@'%'")]
        assert plain.error("CREATE USER intruder")[0] == 1227


def test_a_token_user_without_roles_is_refused_too(setup: Setup, admin: Session) -> None:
    admin.run(f"CREATE USER tokenpleb IDENTIFIED WITH authentication_jwt AS '{LOCAL_SPEC}'")
    try:
        path = setup.tokens_dir / "tokenpleb.token"
        path.write_text(setup.token("tokenpleb"))
        outcome = connector_pure(
            setup.server.host,
            setup.server.port,
            "tokenpleb",
            openid_token_file=str(path),
            statements=("SHOW GRANTS", "CREATE USER intruder"),
        )
        assert outcome.errno == 1227
        assert "'intruder'@'%'" not in users(admin)
    finally:
        admin.run("DROP USER IF EXISTS tokenpleb")


def test_user_admin_members_manage_accounts(setup: Setup, admin: Session) -> None:
    admin.run("CREATE USER deputy@'127.0.0.1' IDENTIFIED BY 'Deputy-pw-1' DEFAULT ROLE user_admin")
    try:
        with Session(setup.server, "deputy", "Deputy-pw-1") as deputy:
            assert deputy.rows("SELECT CURRENT_USER()") == [("deputy@127.0.0.1",)]
            deputy.run(DOC_OIDC_PAGE)
            deputy.run("CREATE ROLE deputies")
            deputy.run("GRANT deputies TO tom")
            deputy.run("ALTER USER tom DEFAULT ROLE deputies")
            assert deputy.rows("SHOW GRANTS FOR tom") == [("'tom'@'%'", None, "GRANT 'deputies' TO 'tom'@'%'")]
            deputy.run(f"ALTER USER tom IDENTIFIED WITH authentication_jwt AS '{LOCAL_SPEC}'")
            assert setup.token_login("tom").ok
            deputy.run("REVOKE deputies FROM tom")
            assert {"'root'@'%'", "'tom'@'%'"} <= users(deputy)
            assert len(deputy.rows("SHOW ALL AUTHENTICATION")) >= 3
            deputy.run("DROP USER tom")
            deputy.run("DROP ROLE deputies")
            # Root itself stays root's business.
            for statement in ("ALTER USER root IDENTIFIED BY 'x'", "GRANT root TO deputy@'127.0.0.1'"):
                errno, message = deputy.error(statement)
                assert errno == 1227 and "only root may" in message, statement
            # Revoking user_admin takes effect at once, in the open session.
            admin.run("REVOKE user_admin FROM deputy@'127.0.0.1'")
            assert deputy.error("CREATE USER late")[0] == 1227
    finally:
        admin.run("DROP USER IF EXISTS tom")
        admin.run("DROP ROLE IF EXISTS deputies")
        admin.run("DROP USER IF EXISTS deputy@'127.0.0.1'")


# ------------------------------------------------------------------------- identities


def test_login_picks_the_most_specific_identity(setup: Setup, admin: Session) -> None:
    identities = {
        "'picky'@'%'": "Any-pw-1",
        "'picky'@'127.%'": "Short-pw-1",
        "'picky'@'127.0.0.%'": "Pattern-pw-1",
        "'picky'@'127.0.0.1'": "Exact-pw-1",
        "'picky'@'10.%'": "Elsewhere-pw-1",
    }
    for identity, password in identities.items():
        admin.run(f"CREATE USER {identity} IDENTIFIED BY '{password}'")
    try:
        # Most specific first: exact IP, then the longer pattern, then the shorter, then %. A login from 127.0.0.1
        # only ever checks the password of the identity it matched.
        for identity, current in [
            ("'picky'@'127.0.0.1'", "picky@127.0.0.1"),
            ("'picky'@'127.0.0.%'", "picky@127.0.0.%"),
            ("'picky'@'127.%'", "picky@127.%"),
            ("'picky'@'%'", "picky@%"),
        ]:
            for other, password in identities.items():
                login = setup.password_login("picky", password)
                if other == identity:
                    assert login.rows == [[[current]]], (identity, login.message)
                else:
                    assert login.errno == 1045, (identity, other)
            admin.run(f"DROP USER {identity}")
        assert setup.password_login("picky", identities["'picky'@'10.%'"]).errno == 1045
    finally:
        for identity in identities:
            admin.run(f"DROP USER IF EXISTS {identity}")


def test_token_user_identity_with_exact_ip(setup: Setup, admin: Session) -> None:
    admin.run("CREATE USER 'dual'@'%' IDENTIFIED BY 'Dual-pw-1'")
    admin.run(f"CREATE USER 'dual'@'127.0.0.1' IDENTIFIED WITH authentication_jwt AS '{LOCAL_SPEC}'")
    try:
        login = setup.token_login("dual")
        assert login.ok, login.message
        assert login.rows == [[["dual@127.0.0.1"]]]
        assert setup.password_login("dual", "Dual-pw-1").errno == 1045
        admin.run("DROP USER 'dual'@'127.0.0.1'")
        assert setup.password_login("dual", "Dual-pw-1").rows == [[["dual@%"]]]
    finally:
        admin.run("DROP USER IF EXISTS 'dual'@'127.0.0.1'")
        admin.run("DROP USER IF EXISTS 'dual'@'%'")


VALID_NAMES = ["a", "x" * 64, "x" * 127, "under_score", "a1/b.c-d", "n/" + "y" * 63, "MiXeD"]
INVALID_NAMES = ["", "has space", "a@b", "x" * 128, "-leading", "a/b/c", "n/" + "y" * 64, "semi;colon", "tab\tname"]


def test_user_names_follow_starrocks_rule(setup: Setup, admin: Session) -> None:
    before = all_authentication(admin)
    for name in INVALID_NAMES:
        errno, message = admin.error(f"CREATE USER '{name}' IDENTIFIED WITH authentication_jwt AS '{LOCAL_SPEC}'")
        assert errno == 1210 and "invalid user name" in message, name
    for host in ("bad host", "a'b", "x" * 256):
        quoted_host = host.replace("'", "''")
        errno, message = admin.error(f"CREATE USER 'okname'@'{quoted_host}'")
        assert errno == 1210 and "invalid host" in message, host
    assert all_authentication(admin) == before
    for name in VALID_NAMES:
        admin.run(f"CREATE USER '{name}' IDENTIFIED BY 'Valid-pw-1'")
        try:
            assert f"'{name}'@'%'" in users(admin)
            assert setup.password_login(name, "Valid-pw-1").rows == [[[f"{name}@%"]]]
        finally:
            admin.run(f"DROP USER IF EXISTS '{name}'")
    # Names are case-sensitive: MiXeD and mixed are different users.
    admin.run("CREATE USER MiXeD IDENTIFIED BY 'Upper-pw-1'")
    try:
        assert setup.password_login("mixed", "Upper-pw-1").errno == 1045
    finally:
        admin.run("DROP USER IF EXISTS MiXeD")


# ------------------------------------------------------------------------- several workers


def test_accounts_are_shared_by_all_workers(tmp_path: Path) -> None:
    """`fe serve --workers 2`: a user created through one connection logs in at once through new connections that
    land on either worker (SO_REUSEPORT); worker i hands out connection ids i+1, i+1+n, …"""
    workers = running_fe(tmp_path, extra_args=["--workers", "2"], env={"FE_ROOT_PASSWORD": ROOT_PASSWORD})
    with workers as server, Session(server, "root", ROOT_PASSWORD) as root:
        root.run("CREATE USER shared IDENTIFIED BY 'Shared-pw-1'")
        ids: list[int] = []
        for attempt in range(40):
            with Session(server, "shared", "Shared-pw-1", tls=attempt % 2 == 0) as session:
                ((current, connection_id),) = session.rows("SELECT CURRENT_USER(), CONNECTION_ID()")
                assert current == "shared@%"
                ids.append(int(connection_id))
        assert len(set(ids)) == len(ids)
        assert {connection_id % 2 for connection_id in ids} == {0, 1}, ids
        # A drop through one worker is seen at once by the other.
        root.run("DROP USER shared")
        for _ in range(8):
            assert pymysql_client(server.host, server.port, "shared", "Shared-pw-1").errno == 1045
