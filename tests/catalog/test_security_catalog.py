"""The catalog's security integrations, group providers, external group grants and authentication chain: stored
durably, kept consistent inside write transactions, migrated into an older catalog, and read by logins from a
snapshot that costs no SQL beyond the change marker until something changes (here or in another process)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from fe.auth.groups import GroupProvider, parse_group_provider
from fe.auth.passwords import hash_password
from fe.auth.token_spec import TokenAuthSpec
from fe.catalog import (
    CACHING_SHA2,
    Catalog,
    Credentials,
    GroupProviderExistsError,
    GroupProviderInUseError,
    GroupProviderNotFoundError,
    IntegrationExistsError,
    IntegrationInUseError,
    IntegrationNotFoundError,
    InvalidChainError,
    ProtectedObjectError,
    RoleNotFoundError,
    SecurityIntegration,
)
from fe.catalog.integration import parse_integration_properties
from fe.catalog.migrations import SCHEMA_VERSION, migrate

CORP = (
    ("type", "authentication_jwt"),
    ("jwks_url", "https://idp.example/certs"),
    ("required_issuer", "https://idp.example"),
    ("required_audience", "fe"),
)


def integration(name: str = "corp", *extra: tuple[str, str], conf: Path = Path("/nonexistent")) -> SecurityIntegration:
    made, _warnings = parse_integration_properties(name, [*CORP, *extra], conf)
    return made


def provider(name: str = "jp", claim: str = "groups") -> GroupProvider:
    made, _warnings = parse_group_provider(name, [("type", "jwt"), ("jwt_claim", claim)], Path("/nonexistent"))
    return made


def token_user(*providers: str) -> Credentials:
    spec = TokenAuthSpec("https://idp.example/certs", group_providers=providers or None)
    return Credentials("authentication_jwt", spec.to_json(), "AUTHENTICATION_JWT")


def test_integrations_are_stored_and_read_back(catalog: Catalog, catalog_path: Path) -> None:
    catalog.create_group_provider(provider())
    created = integration("corp", ("group_provider", "jp"), ("permitted_groups", "dba,ops"), ("comment", "the IdP"))
    assert catalog.create_security_integration(created)
    assert not catalog.create_security_integration(created, if_not_exists=True)
    with pytest.raises(IntegrationExistsError, match="security integration 'corp' already exists"):
        catalog.create_security_integration(created)
    with Catalog.open(catalog_path) as reopened:
        read = reopened.get_integration("corp")
    assert read == created
    assert read is not None and read.spec == TokenAuthSpec(
        "https://idp.example/certs",
        required_issuer=("https://idp.example",),
        required_audience=("fe",),
        group_providers=("jp",),
    )
    assert read.group_providers == ("jp",) and read.permitted_groups == ("dba", "ops")
    assert read.permits({"ops", "x"}) and not read.permits({"x"})
    assert catalog.list_integrations() == (created,)
    assert catalog.get_integration("nope") is None


def test_native_is_reserved_and_providers_must_exist(catalog: Catalog) -> None:
    for name in ("native", "NATIVE"):
        with pytest.raises(ProtectedObjectError, match="reserved"):
            catalog.create_security_integration(integration(name))
    with pytest.raises(GroupProviderNotFoundError, match="Group Provider 'jp' not found"):
        catalog.create_security_integration(integration("corp", ("group_provider", "jp")))
    assert catalog.list_integrations() == ()


def test_alter_runs_inside_the_write_and_keeps_references_whole(catalog: Catalog) -> None:
    catalog.create_security_integration(integration())

    def add_comment(current: list[tuple[str, str]]) -> SecurityIntegration:
        assert current == list(CORP)
        return integration("corp", ("comment", "new"))

    assert catalog.alter_security_integration("corp", add_comment).comment == "new"
    with pytest.raises(GroupProviderNotFoundError):
        catalog.alter_security_integration("corp", lambda current: integration("corp", ("group_provider", "gone")))

    def fail(current: list[tuple[str, str]]) -> SecurityIntegration:
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        catalog.alter_security_integration("corp", fail)
    read = catalog.get_integration("corp")
    assert read is not None and read.comment == "new" and read.group_providers == ()
    with pytest.raises(IntegrationNotFoundError, match="security integration 'nope' not found"):
        catalog.alter_security_integration("nope", add_comment)


def test_the_chain_names_only_existing_integrations_and_keeps_them(catalog: Catalog) -> None:
    assert catalog.authentication_chain() == ("native",)
    with pytest.raises(IntegrationNotFoundError, match="'authentication_chain' names security integration 'corp'"):
        catalog.set_authentication_chain(("native", "corp"))
    catalog.create_security_integration(integration())
    for bad in (("corp",), ("native", "corp", "corp"), ("native", "native"), ("native", "")):
        with pytest.raises(InvalidChainError, match="'native' must be in the list, and cannot have duplicates"):
            catalog.set_authentication_chain(bad)
    catalog.set_authentication_chain(("corp", "native"))
    assert catalog.authentication_chain() == ("corp", "native")
    with pytest.raises(IntegrationInUseError, match=r"is in authentication_chain \(corp,native\); take it out first"):
        catalog.drop_security_integration("corp")
    catalog.set_authentication_chain(("native",))
    assert catalog.drop_security_integration("corp")
    assert not catalog.drop_security_integration("corp", if_exists=True)
    with pytest.raises(IntegrationNotFoundError):
        catalog.drop_security_integration("corp")


def test_the_default_chain_is_used_until_one_is_stored_and_protects_its_integrations(catalog: Catalog) -> None:
    catalog.create_security_integration(integration())
    catalog.set_default_authentication_chain(("native", "corp"))
    assert catalog.authentication_chain() == ("native", "corp")
    with pytest.raises(IntegrationInUseError, match=r"fe\.conf's authentication_chain"):
        catalog.drop_security_integration("corp")
    catalog.set_authentication_chain(("native",))
    assert catalog.authentication_chain() == ("native",)  # the stored one wins
    assert catalog.drop_security_integration("corp")


def test_group_providers_cannot_be_dropped_while_in_use(catalog: Catalog) -> None:
    catalog.create_group_provider(provider("jp"))
    assert not catalog.create_group_provider(provider("jp"), if_not_exists=True)
    with pytest.raises(GroupProviderExistsError, match="Group Provider 'jp' already exists"):
        catalog.create_group_provider(provider("jp"))
    catalog.create_security_integration(integration("corp", ("group_provider", "jp")))
    with pytest.raises(GroupProviderInUseError, match="used by security integration 'corp'"):
        catalog.drop_group_provider("jp")
    catalog.alter_security_integration("corp", lambda current: integration("corp"))
    catalog.create_user("tom", "%", token_user("jp"))
    with pytest.raises(GroupProviderInUseError, match=r"used by user 'tom'@'%'"):
        catalog.drop_group_provider("jp")
    catalog.alter_credentials("tom", "%", token_user())
    assert catalog.drop_group_provider("jp")
    assert not catalog.drop_group_provider("jp", if_exists=True)
    with pytest.raises(GroupProviderNotFoundError):
        catalog.drop_group_provider("jp")


def test_token_users_name_only_existing_providers(catalog: Catalog) -> None:
    with pytest.raises(GroupProviderNotFoundError):
        catalog.create_user("tom", "%", token_user("jp"))
    assert catalog.get_account("tom", "%") is None
    catalog.create_user("tom", "%", token_user())
    with pytest.raises(GroupProviderNotFoundError):
        catalog.alter_credentials("tom", "%", token_user("jp"))
    catalog.create_group_provider(provider("jp"))
    catalog.alter_credentials("tom", "%", token_user("jp"))
    account = catalog.get_account("tom", "%")
    assert account is not None and account.token_spec is not None and account.token_spec.group_providers == ("jp",)


def test_external_group_grants_with_inherited_roles(catalog: Catalog) -> None:
    for role in ("reader", "analyst"):
        catalog.create_role(role)
    catalog.grant_roles_to_role("analyst", ["reader"])
    assert catalog.grant_roles_to_external_group("dba", ["analyst", "user_admin"]) == ()
    assert catalog.grant_roles_to_external_group("dba", ["analyst"]) == ("analyst",)
    with pytest.raises(RoleNotFoundError):
        catalog.grant_roles_to_external_group("dba", ["nope"])
    assert catalog.roles_of_external_groups(["dba", "ops"]) == {"dba": {"analyst", "user_admin"}}
    assert catalog.roles_of_external_groups(["dba"], inherited=True) == {"dba": {"analyst", "reader", "user_admin"}}
    assert catalog.revoke_roles_from_external_group("dba", ["user_admin", "reader"]) == ("reader",)
    catalog.drop_role("analyst")  # the grant goes with the role
    assert catalog.roles_of_external_groups(["dba"]) == {}


def test_a_login_through_the_chain_costs_no_sql_beyond_the_marker(catalog: Catalog) -> None:
    catalog.create_group_provider(provider())
    catalog.create_security_integration(integration("corp", ("group_provider", "jp")))
    catalog.set_authentication_chain(("native", "corp"))
    catalog.grant_roles_to_external_group("dba", ["user_admin"])
    statements: list[str] = []
    catalog._conn.set_trace_callback(statements.append)

    def login() -> None:
        version = catalog.change_marker()[0]
        for name in catalog.authentication_chain(data_version=version):
            found = catalog.get_integration(name, data_version=version)
            if found is not None:
                catalog.group_providers(found.group_providers, data_version=version)
        catalog.roles_of_external_groups(["dba"], inherited=True, data_version=version)

    login()  # loads the snapshot
    statements.clear()
    for _ in range(3):
        login()
    assert statements == ["PRAGMA data_version"] * 3


def test_changes_by_another_process_are_seen_at_the_next_read(catalog_path: Path) -> None:
    with Catalog.open(catalog_path) as serving, Catalog.open(catalog_path) as other:
        assert serving.authentication_chain() == ("native",)
        first = serving.security_snapshot()
        assert serving.security_snapshot() is first
        other.create_security_integration(integration())
        other.set_authentication_chain(("native", "corp"))
        assert serving.authentication_chain() == ("native", "corp")
        other.alter_security_integration("corp", lambda current: integration("corp", ("comment", "c")))
        read = serving.get_integration("corp")
        assert read is not None and read.comment == "c"
        other.grant_roles_to_external_group("dba", ["public"])
        assert serving.roles_of_external_groups(["dba"]) == {"dba": {"public"}}


def test_an_unusable_stored_integration_is_skipped_not_fatal(catalog: Catalog, catalog_path: Path) -> None:
    catalog.create_security_integration(integration("good"))
    with sqlite3.connect(catalog_path) as conn:
        conn.execute("INSERT INTO security_integrations (name, type, properties) VALUES ('bad', 'x', 'not json')")
    assert [i.name for i in catalog.list_integrations()] == ["good"]


def test_migrates_a_version_3_catalog(catalog_path: Path) -> None:
    catalog_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(catalog_path, isolation_level=None)
    migrate(conn, target=3)
    conn.execute(
        "INSERT INTO users (name, host, plugin, auth_string, plugin_display) VALUES (?, ?, ?, ?, ?)",
        ("root", "%", CACHING_SHA2, hash_password("pw"), ""),
    )
    conn.execute("INSERT INTO role_grants (user_name, user_host, role) VALUES ('root', '%', 'root')")
    conn.close()
    with Catalog.open(catalog_path) as upgraded:
        assert upgraded.get_account("root", "%") is not None
        assert upgraded.authentication_chain() == ("native",) and upgraded.list_integrations() == ()
        upgraded.create_security_integration(integration())
        upgraded.grant_roles_to_external_group("dba", ["public"])
    conn = sqlite3.connect(catalog_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"security_integrations", "group_providers", "external_group_grants", "frontend_config"} <= tables
    conn.close()
