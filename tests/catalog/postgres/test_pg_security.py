"""Security integrations, group providers, external group grants and the authentication chain in the PostgreSQL
catalog: the SQLite catalog's tests of them run here unchanged; then what differs (another node's changes, a
database migrated from version 3, the snapshot while PostgreSQL is down)."""

from __future__ import annotations

import time

import pytest
from psycopg import sql

from fe.auth.passwords import hash_password
from fe.catalog import CACHING_SHA2, CatalogBusyError
from fe.catalog.pg import PostgresCatalog, PostgresLocation
from fe.catalog.pg import schema as pg_schema_module
from fe.catalog.security import SecuritySnapshot

# The backend-independent tests, collected here again with `catalog` a PostgreSQL one.
from tests.catalog.test_security_catalog import (  # noqa: F401
    integration,
    provider,
    test_alter_runs_inside_the_write_and_keeps_references_whole,
    test_external_group_grants_with_inherited_roles,
    test_group_providers_cannot_be_dropped_while_in_use,
    test_native_is_reserved_and_providers_must_exist,
    test_the_chain_names_only_existing_integrations_and_keeps_them,
    test_the_default_chain_is_used_until_one_is_stored_and_protects_its_integrations,
    test_token_users_name_only_existing_providers,
)
from tests.support.postgres_server import TEST_DATABASE, PostgresServer


def test_stored_integrations_read_back_from_another_node_within_a_second(
    catalog: PostgresCatalog, location: PostgresLocation
) -> None:
    with PostgresCatalog.open(location) as other:
        assert other.authentication_chain() == ("native",)
        first = other.security_snapshot()
        assert other.security_snapshot(other.change_marker()[0]) is first  # cached until something changes
        catalog.create_group_provider(provider())
        created = integration("corp", ("group_provider", "jp"), ("permitted_groups", "dba,ops"))
        catalog.create_security_integration(created)
        catalog.set_authentication_chain(("native", "corp"))
        catalog.grant_roles_to_external_group("dba", ["public"])

        def seen() -> bool:
            version = other.change_marker()[0]
            return other.authentication_chain(version) == ("native", "corp") and other.roles_of_external_groups(
                ["dba"], data_version=version
            ) == {"dba": {"public"}}

        started = time.monotonic()
        while not seen():
            assert time.monotonic() - started < 1.0
            time.sleep(0.005)
        assert other.get_integration("corp") == created
        assert [p.name for p in other.group_providers(["jp", "gone"])] == ["jp"]


def test_an_unusable_stored_integration_is_skipped_not_fatal(
    catalog: PostgresCatalog, postgres: PostgresServer, pg_schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    catalog.create_security_integration(integration("good"))
    before = catalog.change_marker()
    postgres.execute(
        "INSERT INTO security_integrations (name, type, properties) VALUES ('bad', 'x', 'not json')",
        dbname=TEST_DATABASE,
        schema=pg_schema,
    )
    deadline = time.monotonic() + 1
    while catalog.change_marker() == before:  # a change made by hand is notified like fe's own
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert [i.name for i in catalog.list_integrations()] == ["good"]
    assert "security integration 'bad' in the catalog is unusable and is skipped" in caplog.text


def test_migrates_a_version_3_catalog(location: PostgresLocation) -> None:
    import psycopg

    with psycopg.connect(**location.connect_kwargs(), autocommit=True) as conn:
        with conn.transaction():
            pg_schema_module.create_schema(conn, target=3)
            conn.execute(
                "INSERT INTO users (name, host, plugin, auth_string, plugin_display) VALUES (%s, %s, %s, %s, %s)",
                ("root", "%", CACHING_SHA2, hash_password("pw"), ""),
            )
            conn.execute("INSERT INTO role_grants (user_name, user_host, role) VALUES ('root', '%', 'root')")
        assert conn.execute("SELECT version FROM fe_schema_version").fetchone() == (3,)
    with PostgresCatalog.open(location) as upgraded:
        assert upgraded.get_account("root", "%") is not None
        assert upgraded.authentication_chain() == ("native",) and upgraded.list_integrations() == ()
        upgraded.create_security_integration(integration())
        upgraded.grant_roles_to_external_group("dba", ["public"])
    with psycopg.connect(**location.connect_kwargs(), autocommit=True) as conn:
        assert conn.execute("SELECT version FROM fe_schema_version").fetchone() == (pg_schema_module.SCHEMA_VERSION,)
        count = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("external_group_grants")))
        assert count.fetchone() == (1,)


def test_the_snapshot_stays_at_hand_while_postgres_is_down(
    catalog: PostgresCatalog, location: PostgresLocation, postgres: PostgresServer
) -> None:
    with PostgresCatalog.open(location) as other:
        assert isinstance(other.security_snapshot(), SecuritySnapshot)  # read once: kept current from now on
        catalog.create_security_integration(integration())
        catalog.set_authentication_chain(("native", "corp"))
        deadline = time.monotonic() + 2
        while other.authentication_chain() != ("native", "corp"):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        catalog.grant_roles_to_external_group("dba", ["public"])  # and a change just before the outage
        # Its notification arrives, and the node reads the snapshot again in the background, unasked.
        deadline = time.monotonic() + 5
        while not (
            other._security is not None
            and other._security_version == other.change_marker()[0]
            and "dba" in other._security.group_roles
        ):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        postgres.stop()
        try:
            while other.available:
                time.sleep(0.01)
            version = other.change_marker()[0]
            assert other.authentication_chain(version) == ("native", "corp")
            assert other.roles_of_external_groups(["dba"], data_version=version) == {"dba": {"public"}}
            with pytest.raises(CatalogBusyError):
                other.create_group_provider(provider("later"))
        finally:
            postgres.start()
