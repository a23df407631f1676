"""The PostgreSQL catalog against a real PostgreSQL: the SQLite catalog's own API tests run on it unchanged, then
what only PostgreSQL has (first start, migrations under a lock, refusing unusable databases, errors, passwords)."""

from __future__ import annotations

import inspect
import threading
from pathlib import Path

import psycopg
import pytest

from fe.auth.passwords import verify_password
from fe.catalog import CACHING_SHA2, CatalogBusyError, CatalogError, Credentials
from fe.catalog.backends import CatalogBackend, catalog_password, open_catalog_from_settings
from fe.catalog.pg import (
    CatalogUnavailableError,
    LocationError,
    PostgresCatalog,
    PostgresLocation,
    parse_location,
    store,
)
from fe.catalog.pg.schema import SCHEMA_VERSION
from fe.catalog.store import Catalog
from fe.config import Settings

# The backend-independent tests of the SQLite catalog, collected here again with `catalog` a PostgreSQL one.
from tests.catalog.test_catalog_store import (  # noqa: F401
    test_builtin_roles_cannot_be_dropped,
    test_create_alter_drop_user,
    test_dropping_a_user_removes_its_grants,
    test_first_start_creates_root_with_the_given_password,
    test_list_accounts_in_name_host_order,
    test_roles_grants_and_default_roles,
    test_root_is_protected,
)
from tests.catalog.test_identity_matching import (  # noqa: F401
    test_most_specific_identity_wins,
    test_no_matching_identity,
    tom_everywhere,
)
from tests.catalog.test_password_upgrade import (  # noqa: F401
    test_a_password_changed_meanwhile_is_kept,
    test_concurrent_upgrades_from_worker_threads_swap_once,
    test_unknown_users_and_other_plugins_are_left_alone,
)
from tests.support.postgres_server import TEST_DATABASE, PostgresServer

PASSWORD = Credentials(CACHING_SHA2, "", "CACHING_SHA2_PASSWORD")


# ------------------------------------------------------------------------- first start and later starts


def test_first_start_builds_the_schema_with_root(
    catalog: PostgresCatalog, postgres: PostgresServer, pg_schema: str
) -> None:
    assert postgres.execute(
        "SELECT application, version FROM fe_schema_version", dbname=TEST_DATABASE, schema=pg_schema
    ) == [("fe catalog", SCHEMA_VERSION)]
    rows = postgres.execute(f"SELECT tablename FROM pg_tables WHERE schemaname = '{pg_schema}'", dbname=TEST_DATABASE)
    tables = {row[0] for row in rows}
    assert {"users", "roles", "role_grants", "default_roles", "role_inheritance", "fe_change_counter"} <= tables


def test_reopen_keeps_users_and_leaves_root_password_alone(location: PostgresLocation) -> None:
    with PostgresCatalog.open(location, root_password="first") as catalog:
        catalog.create_role("analyst")
        catalog.create_user("tom", "%", PASSWORD, default_roles=["analyst"])
    with PostgresCatalog.open(location, root_password="second") as catalog:
        root = catalog.get_account("root", "%")
        assert root is not None and verify_password(b"first", root.auth_string)
        tom = catalog.get_account("tom", "%")
        assert tom is not None and tom.roles == frozenset({"analyst"}) and tom.default_roles == ("analyst",)


def test_nodes_starting_together_create_the_catalog_once(location: PostgresLocation) -> None:
    opened: list[PostgresCatalog] = []
    failures: list[BaseException] = []
    barrier = threading.Barrier(4)

    def start(index: int) -> None:
        barrier.wait()
        try:
            opened.append(PostgresCatalog.open(location, root_password=f"pw{index}"))
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=start, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert failures == [] and len(opened) == 4
        roots = [catalog.get_account("root", "%") for catalog in opened]
        assert len({root.auth_string for root in roots if root is not None}) == 1
        assert sorted(opened[0].list_roles()) == [("public", True), ("root", True), ("user_admin", True)]
    finally:
        for catalog in opened:
            catalog.close()


def test_newer_schema_is_refused(
    catalog: PostgresCatalog, location: PostgresLocation, postgres: PostgresServer, pg_schema: str
) -> None:
    catalog.close()
    version = SCHEMA_VERSION + 1
    postgres.execute(f"UPDATE fe_schema_version SET version = {version}", dbname=TEST_DATABASE, schema=pg_schema)
    with pytest.raises(CatalogError, match="newer"):
        PostgresCatalog.open(location)


def test_another_applications_database_is_refused(
    location: PostgresLocation, postgres: PostgresServer, pg_schema: str
) -> None:
    postgres.execute(
        "CREATE TABLE users (id int)", "ALTER TABLE users OWNER TO fe_test", dbname=TEST_DATABASE, schema=pg_schema
    )
    with pytest.raises(CatalogError, match="not an fe catalog"):
        PostgresCatalog.open(location)


def test_missing_root_is_refused(
    catalog: PostgresCatalog, location: PostgresLocation, postgres: PostgresServer, pg_schema: str
) -> None:
    catalog.close()
    postgres.execute("DELETE FROM users WHERE name = 'root'", dbname=TEST_DATABASE, schema=pg_schema)
    with pytest.raises(CatalogError, match="no root user"):
        PostgresCatalog.open(location)


def test_unreachable_or_refused_server_stops_the_start_without_the_password(postgres: PostgresServer) -> None:
    secret = "Sup3r-secret-pw"
    wrong = parse_location(postgres.url(), password=secret)
    with pytest.raises(CatalogError) as refused:
        PostgresCatalog.open(wrong)
    assert "password authentication failed" in str(refused.value) and secret not in str(refused.value)
    nowhere = parse_location("postgresql://fe@127.0.0.1:1/fe?connect_timeout=2", password=secret)
    with pytest.raises(CatalogError, match=r"cannot open the user catalog postgresql://fe@127\.0\.0\.1:1/fe") as down:
        PostgresCatalog.open(nowhere)
    assert secret not in str(down.value)


# ------------------------------------------------------------------------- run-time errors


def test_a_write_blocked_past_the_lock_timeout_is_busy(
    location: PostgresLocation, postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "WRITE_TIMEOUT_SECONDS", 0.3)
    with PostgresCatalog.open(location) as catalog:
        with psycopg.connect(**location.connect_kwargs()) as blocker:
            blocker.execute("SELECT version FROM fe_change_counter FOR UPDATE")  # a writer that does not finish
            with pytest.raises(CatalogBusyError, match="the catalog is busy") as busy:
                catalog.create_user("tom", "%", PASSWORD)
            assert not isinstance(busy.value, CatalogUnavailableError)
            assert catalog.get_account("root", "%") is not None  # readers are not blocked
            blocker.rollback()
        assert catalog.create_user("tom", "%", PASSWORD)


def test_own_writes_and_lookups_share_the_cache(catalog: PostgresCatalog) -> None:
    catalog.create_user("amy", "%", PASSWORD)
    first = catalog.find_login_account("amy", "10.0.0.1")
    assert first is not None and catalog.find_login_account("amy", "10.0.0.1") is first
    marker = catalog.change_marker()
    catalog.alter_credentials("amy", "%", Credentials(CACHING_SHA2, "x", "CACHING_SHA2_PASSWORD"))
    assert catalog.change_marker() != marker
    after = catalog.find_login_account("amy", "10.0.0.1")
    assert after is not None and after.auth_string == "x"


def test_effective_roles_follow_role_to_role_grants(catalog: PostgresCatalog) -> None:
    for role in ("a", "b", "c"):
        catalog.create_role(role)
    catalog.grant_roles_to_role("b", ["a"])
    catalog.grant_roles_to_role("c", ["b", "user_admin"])
    catalog.create_user("ed", "%", PASSWORD, default_roles=["c"])
    ed = catalog.find_login_account("ed", "10.1.1.1")
    assert ed is not None and ed.effective_roles == frozenset({"a", "b", "c", "user_admin"}) and ed.is_user_admin
    assert catalog.roles_with_inherited(["b", "zzz"]) == frozenset({"a", "b", "zzz"})
    assert catalog.roles_of_role("c") == ("b", "user_admin") and catalog.roles_of_role("nope") is None
    listed = {account.name: account for account in catalog.list_accounts()}
    assert listed["ed"].effective_roles == frozenset({"c"})  # as the SQLite catalog lists them: direct only
    assert catalog.revoke_roles_from_role("c", ["b", "a"]) == ("a",)


# ------------------------------------------------------------------------- where the catalog is, and its password


def test_location_parsing_keeps_the_password_out_of_sight() -> None:
    location = parse_location("postgresql://fe:url-secret@db.example.com:6432/fecat?sslmode=require")
    assert location.describe() == "postgresql://fe@db.example.com:6432/fecat"
    assert "url-secret" not in repr(location) and location.password == "url-secret"
    assert location.connect_kwargs()["password"] == "url-secret"
    assert location.connect_kwargs()["sslmode"] == "require"
    assert location.connect_kwargs()["connect_timeout"] == 5  # fe's defaults, unless the URL sets them
    assert parse_location("postgresql://fe:url-secret@h/db", password="env").password == "env"
    assert location.mask("FATAL: url-secret is wrong") == "FATAL: *** is wrong"
    with pytest.raises(LocationError, match="names no database"):
        parse_location("postgresql://fe@h")
    with pytest.raises(LocationError) as bad:
        parse_location("postgresql://fe:hunter2@h/db?bogus=1")
    assert "hunter2" not in str(bad.value)


def test_catalog_password_from_the_environment_or_a_file(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert catalog_password(settings, {}) is None
    assert catalog_password(settings, {"FE_CATALOG_PASSWORD": "from-env"}) == "from-env"
    secret = tmp_path / "conf" / "catalog.password"
    secret.parent.mkdir()
    secret.write_text("from-file\nignored\n")
    secret.chmod(0o600)
    from_file = Settings(home=tmp_path, catalog_password_file="conf/catalog.password")
    assert catalog_password(from_file, {}) == "from-file"
    with pytest.raises(CatalogError, match="set only one"):
        catalog_password(Settings(home=tmp_path, catalog_password_file=str(secret)), {"FE_CATALOG_PASSWORD": "x"})
    with pytest.raises(CatalogError, match="cannot read catalog_password_file"):
        catalog_password(Settings(home=tmp_path, catalog_password_file="conf/missing"), {})


def test_settings_choose_the_backend(
    tmp_path: Path, postgres: PostgresServer, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(home=tmp_path, root_password="rootpw")
    embedded = open_catalog_from_settings(settings)
    try:
        assert isinstance(embedded, Catalog) and (tmp_path / "meta" / "catalog.db").exists()
    finally:
        embedded.close()
    settings = Settings(home=tmp_path, root_password="rootpw", catalog=postgres.url(schema=pg_schema))
    monkeypatch.setenv("FE_CATALOG_PASSWORD", postgres.test_password)
    notified: list[int] = []
    shared = open_catalog_from_settings(settings, on_notification=lambda: notified.append(1))
    try:
        assert isinstance(shared, PostgresCatalog)
        root = shared.get_account("root", "%")
        assert root is not None and verify_password(b"rootpw", root.auth_string)
    finally:
        shared.close()
    with pytest.raises(CatalogError, match="postgresql://"):
        open_catalog_from_settings(Settings(home=tmp_path, catalog="mysql://nope"))


def test_both_catalogs_have_the_same_public_methods() -> None:
    """A method added to the SQLite catalog must be added to the PostgreSQL one (and to CatalogBackend): the server
    calls either the same way."""

    def public(cls: type) -> dict[str, inspect.Signature | str]:
        found: dict[str, inspect.Signature | str] = {}
        for name, member in vars(cls).items():
            if name.startswith("_") or name == "open":
                continue
            found[name] = "property" if isinstance(member, property) else inspect.signature(member)
        return found

    sqlite_methods, postgres_methods = public(Catalog), public(PostgresCatalog)
    missing = sorted(set(sqlite_methods) - set(postgres_methods))
    assert missing == [], f"PostgresCatalog lacks {missing}"
    differing = [name for name in sqlite_methods if sqlite_methods[name] != postgres_methods[name]]
    assert differing == [], f"signatures differ: {differing}"
    backend = {name for name in vars(CatalogBackend) if not name.startswith("_")}
    assert set(sqlite_methods) - backend <= {"path"}, "CatalogBackend lacks some"
