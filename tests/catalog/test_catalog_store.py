"""The catalog file: first start, reopening, migrations, refusing unusable files, roles and grants."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from fe.auth.passwords import verify_password
from fe.catalog import (
    CACHING_SHA2,
    Catalog,
    CatalogBusyError,
    CatalogError,
    Credentials,
    ProtectedObjectError,
    RoleExistsError,
    RoleNotFoundError,
    RoleNotGrantedError,
    UserExistsError,
    UserNotFoundError,
    store,
)
from fe.catalog.migrations import SCHEMA_VERSION, migrate

PASSWORD = Credentials(CACHING_SHA2, "", "CACHING_SHA2_PASSWORD")
JWT = Credentials("authentication_jwt", '{"jwks_url": "jwks.json", "principal_field": "sub"}', "AUTHENTICATION_JWT")


def test_first_start_creates_root_with_the_given_password(catalog: Catalog) -> None:
    root = catalog.get_account("root", "%")
    assert root is not None
    assert root.plugin == "caching_sha2_password"
    assert root.plugin_display == ""  # no plugin named: SHOW AUTHENTICATION shows NULL, as StarRocks does
    assert verify_password(b"secret", root.auth_string)
    assert root.roles == frozenset({"root"})
    assert root.default_roles == ("root",)
    assert root.is_user_admin


def test_first_start_with_empty_root_password(catalog_path: Path) -> None:
    with Catalog.open(catalog_path) as catalog:
        root = catalog.get_account("root", "%")
        assert root is not None and root.auth_string == "" and not root.has_password


def test_catalog_file_is_in_wal_mode_and_private(catalog: Catalog, catalog_path: Path) -> None:
    conn = sqlite3.connect(catalog_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
    assert catalog_path.stat().st_mode & 0o077 == 0
    assert not list(catalog_path.parent.glob("*.tmp"))


def test_reopen_keeps_users_and_leaves_root_password_alone(catalog_path: Path) -> None:
    with Catalog.open(catalog_path, root_password="first") as catalog:
        catalog.create_role("analyst")
        catalog.create_user("tom", "%", JWT, default_roles=["analyst"])
    with Catalog.open(catalog_path, root_password="second") as catalog:
        root = catalog.get_account("root", "%")
        assert root is not None and verify_password(b"first", root.auth_string)
        tom = catalog.get_account("tom", "%")
        assert tom is not None
        assert (tom.plugin, tom.plugin_display, tom.auth_string) == (JWT.plugin, JWT.plugin_display, JWT.auth_string)
        assert tom.roles == frozenset({"analyst"}) and tom.default_roles == ("analyst",)


def test_migrates_a_version_1_catalog(catalog_path: Path) -> None:
    catalog_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(catalog_path, isolation_level=None)
    migrate(conn, target=1)
    insert = "INSERT INTO users (name, host, plugin, auth_string) VALUES (?, '%', ?, '')"
    conn.execute(insert, ("root", "caching_sha2_password"))
    conn.execute(insert, ("old", "mysql_native_password"))
    conn.execute("INSERT INTO role_grants VALUES ('root', '%', 'root')")
    conn.close()

    with Catalog.open(catalog_path) as catalog:
        old = catalog.get_account("old", "%")
        assert old is not None and old.plugin_display == "MYSQL_NATIVE_PASSWORD"
        assert old.default_roles == ()
        catalog.set_default_roles("root", "%", ["root"])
        root = catalog.get_account("root", "%")
        assert root is not None and root.default_roles == ("root",)
    conn = sqlite3.connect(catalog_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_newer_schema_is_refused(catalog: Catalog, catalog_path: Path) -> None:
    catalog.close()
    conn = sqlite3.connect(catalog_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(CatalogError, match="newer"):
        Catalog.open(catalog_path)


def test_a_file_that_is_not_a_database_is_refused(catalog_path: Path) -> None:
    catalog_path.parent.mkdir(parents=True)
    catalog_path.write_bytes(b"this is not a database, just some text\n" * 200)
    with pytest.raises(CatalogError, match="unreadable or corrupt"):
        Catalog.open(catalog_path)
    assert catalog_path.read_bytes().startswith(b"this is not")


def test_an_empty_file_is_refused_not_started_empty(catalog_path: Path) -> None:
    catalog_path.parent.mkdir(parents=True)
    catalog_path.write_bytes(b"")
    with pytest.raises(CatalogError, match="not an fe user catalog"):
        Catalog.open(catalog_path)


def test_another_applications_database_is_refused(catalog_path: Path) -> None:
    catalog_path.parent.mkdir(parents=True)
    conn = sqlite3.connect(catalog_path)
    conn.execute("CREATE TABLE notes (text TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(CatalogError, match="not an fe user catalog"):
        Catalog.open(catalog_path)


def test_damaged_pages_are_refused(catalog_path: Path) -> None:
    with Catalog.open(catalog_path) as catalog:
        for number in range(300):
            catalog.create_user(f"user{number}", "%", Credentials(CACHING_SHA2, "x" * 200, "CACHING_SHA2_PASSWORD"))
    conn = sqlite3.connect(catalog_path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    data = bytearray(catalog_path.read_bytes())
    assert len(data) > 6 * page_size
    for offset in range(2 * page_size, 6 * page_size, 7):
        data[offset] = 0xA5
    catalog_path.write_bytes(bytes(data))
    with pytest.raises(CatalogError, match="corrupt"):
        Catalog.open(catalog_path)


def test_unreadable_location_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "meta"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(CatalogError, match="cannot create"):
        Catalog.open(blocker / "catalog.db")


def test_missing_root_is_refused(catalog: Catalog, catalog_path: Path) -> None:
    catalog.close()
    conn = sqlite3.connect(catalog_path)
    conn.execute("DELETE FROM users WHERE name = 'root'")
    conn.commit()
    conn.close()
    with pytest.raises(CatalogError, match="no root user"):
        Catalog.open(catalog_path)


# ------------------------------------------------------------------------- users


def test_create_alter_drop_user(catalog: Catalog) -> None:
    assert catalog.create_user("tom", "%", PASSWORD)
    with pytest.raises(UserExistsError):
        catalog.create_user("tom", "%", PASSWORD)
    assert not catalog.create_user("tom", "%", JWT, if_not_exists=True)
    tom = catalog.get_account("tom", "%")
    assert tom is not None and tom.plugin == CACHING_SHA2 and tom.token_spec is None

    assert catalog.alter_credentials("tom", "%", JWT)
    tom = catalog.get_account("tom", "%")
    assert tom is not None and tom.is_token_user
    assert tom.token_spec is not None and tom.token_spec.jwks_url == "jwks.json"
    assert tom.token_spec is tom.token_spec  # parsed once

    with pytest.raises(UserNotFoundError):
        catalog.alter_credentials("nobody", "%", JWT)
    assert not catalog.alter_credentials("nobody", "%", JWT, if_exists=True)

    assert catalog.drop_user("tom", "%")
    assert catalog.get_account("tom", "%") is None
    with pytest.raises(UserNotFoundError):
        catalog.drop_user("tom", "%")
    assert not catalog.drop_user("tom", "%", if_exists=True)


def test_root_is_protected(catalog: Catalog) -> None:
    with pytest.raises(ProtectedObjectError):
        catalog.drop_user("root", "%")
    with pytest.raises(ProtectedObjectError):
        catalog.create_user("root", "10.0.0.1", PASSWORD)
    with pytest.raises(ProtectedObjectError):
        catalog.revoke_roles("root", "%", ["root"])


def test_list_accounts_in_name_host_order(catalog: Catalog) -> None:
    catalog.create_user("bob", "10.0.0.1", PASSWORD)
    catalog.create_user("bob", "%", PASSWORD)
    catalog.create_user("alice", "%", JWT)
    assert [(a.name, a.host) for a in catalog.list_accounts()] == [
        ("alice", "%"),
        ("bob", "%"),
        ("bob", "10.0.0.1"),
        ("root", "%"),
    ]


# ------------------------------------------------------------------------- roles


def test_roles_grants_and_default_roles(catalog: Catalog) -> None:
    assert {name for name, builtin in catalog.list_roles() if builtin} == {"root", "user_admin", "public"}
    assert catalog.create_role("analyst")
    with pytest.raises(RoleExistsError):
        catalog.create_role("analyst")
    assert not catalog.create_role("analyst", if_not_exists=True)

    catalog.create_user("tom", "%", PASSWORD)
    with pytest.raises(RoleNotFoundError):
        catalog.grant_roles("tom", "%", ["missing"])
    with pytest.raises(UserNotFoundError):
        catalog.grant_roles("nobody", "%", ["analyst"])
    assert catalog.grant_roles("tom", "%", ["analyst", "user_admin"]) == ()
    assert catalog.grant_roles("tom", "%", ["analyst"]) == ("analyst",)
    with pytest.raises(RoleNotGrantedError):
        catalog.set_default_roles("tom", "%", ["public"])
    catalog.set_default_roles("tom", "%", ["user_admin", "analyst"])
    tom = catalog.get_account("tom", "%")
    assert tom is not None
    assert tom.roles == frozenset({"analyst", "user_admin"}) and tom.default_roles == ("user_admin", "analyst")
    assert tom.is_user_admin

    assert catalog.revoke_roles("tom", "%", ["user_admin", "public"]) == ("public",)
    tom = catalog.get_account("tom", "%")
    assert tom is not None and tom.roles == frozenset({"analyst"}) and tom.default_roles == ("analyst",)
    assert not tom.is_user_admin

    assert catalog.drop_role("analyst")
    tom = catalog.get_account("tom", "%")
    assert tom is not None and tom.roles == frozenset() and tom.default_roles == ()
    with pytest.raises(RoleNotFoundError):
        catalog.drop_role("analyst")
    assert not catalog.drop_role("analyst", if_exists=True)


@pytest.mark.parametrize("role", ["root", "user_admin", "public"])
def test_builtin_roles_cannot_be_dropped(catalog: Catalog, role: str) -> None:
    with pytest.raises(ProtectedObjectError):
        catalog.drop_role(role)


def test_dropping_a_user_removes_its_grants(catalog: Catalog, catalog_path: Path) -> None:
    catalog.create_user("tom", "%", PASSWORD, default_roles=["user_admin"])
    catalog.drop_user("tom", "%")
    catalog.create_user("tom", "%", PASSWORD)
    tom = catalog.get_account("tom", "%")
    assert tom is not None and tom.roles == frozenset() and tom.default_roles == ()


# ------------------------------------------------------------------------- failures at run time


def test_a_write_blocked_past_the_busy_timeout_is_an_operation_error(
    catalog_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "BUSY_TIMEOUT_MS", 50)
    with Catalog.open(catalog_path) as catalog:
        blocker = sqlite3.connect(catalog_path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(CatalogBusyError):
                catalog.create_user("tom", "%", PASSWORD)
            assert catalog.get_account("root", "%") is not None  # readers are not blocked
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert catalog.create_user("tom", "%", PASSWORD)
