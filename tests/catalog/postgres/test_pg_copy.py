"""`fe catalog copy --from meta/catalog.db --to postgresql://…`: every table across in one transaction, the same
accounts on the other side; a target that holds a catalog refused unless --force; the source never written."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from fe.catalog import CACHING_SHA2, Catalog, Credentials
from fe.catalog.copy import TABLES, CopyRefused, copy_catalog
from fe.catalog.migrations import migrate
from fe.catalog.pg import PostgresCatalog, PostgresLocation
from fe.cli import main
from tests.support.postgres_server import TEST_DATABASE, PostgresServer

REPO_ROOT = Path(__file__).resolve().parents[3]
JWT = Credentials("authentication_jwt", '{"jwks_url": "jwks.json", "principal_field": "sub"}', "AUTHENTICATION_JWT")


def _populated(path: Path) -> Catalog:
    catalog = Catalog.open(path, root_password="root-pw")
    for role in ("analyst", "auditor", "Ops-Team"):
        catalog.create_role(role)
    catalog.grant_roles_to_role("auditor", ["analyst"])
    catalog.grant_roles_to_role("Ops-Team", ["auditor", "user_admin"])
    catalog.create_user("tom", "%", JWT, default_roles=["analyst"])
    catalog.create_user("ann", "10.0.0.%", Credentials(CACHING_SHA2, "$argon2id$x", "CACHING_SHA2_PASSWORD"))
    catalog.create_user("ann", "10.0.0.5", Credentials("mysql_native_password", "*ABC", "MYSQL_NATIVE_PASSWORD"))
    catalog.create_user("dom", "[db.example.com]", JWT, default_roles=["Ops-Team", "auditor"])
    catalog.create_user("émile", "%", Credentials(CACHING_SHA2, "", ""))
    return catalog


def _snapshot(catalog: Catalog | PostgresCatalog) -> object:
    accounts = [(account, account.created_at, account.effective_roles) for account in catalog.list_accounts()]
    logins = [catalog.get_account(account.name, account.host) for account in catalog.list_accounts()]
    roles = sorted(catalog.list_roles())
    inheritance = {role: catalog.roles_of_role(role) for role, _builtin in roles}
    return accounts, [(a, a.effective_roles) for a in logins if a is not None], roles, inheritance


def test_round_trip_through_the_command(
    tmp_path: Path, location: PostgresLocation, postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "meta" / "catalog.db"
    with _populated(source) as sqlite_catalog:
        expected = _snapshot(sqlite_catalog)
        assert sqlite_catalog.find_login_account("dom", "10.1.1.1") is None  # the domain is not resolved
    digest = hashlib.sha256(source.read_bytes()).hexdigest()

    monkeypatch.setenv("FE_CATALOG_PASSWORD", postgres.test_password)
    assert main(["catalog", "copy", "--from", str(source), "--to", _url(location)]) == 0

    assert hashlib.sha256(source.read_bytes()).hexdigest() == digest  # the source is only read
    with PostgresCatalog.open(location, root_password="ignored") as copied:
        assert _snapshot(copied) == expected
        ops = copied.find_login_account("dom", "10.1.1.1")
        assert ops is None
        ann = copied.find_login_account("ann", "10.0.0.5")
        assert ann is not None and ann.auth_string == "*ABC"
        # The copy is a working catalog: writes go on from it.
        copied.create_user("new", "%", JWT)
        copied.drop_role("auditor")
        tom = copied.get_account("tom", "%")
        assert tom is not None and tom.effective_roles == frozenset({"analyst"})


def test_a_target_holding_a_catalog_is_refused_unless_forced(
    tmp_path: Path, location: PostgresLocation, postgres: PostgresServer, pg_schema: str
) -> None:
    source = tmp_path / "catalog.db"
    _populated(source).close()
    with PostgresCatalog.open(location, root_password="fresh"):
        pass  # a first start made root and the built-in roles only: still empty enough to copy into
    assert copy_catalog(source, location)["users"] == 6
    with pytest.raises(CopyRefused, match=r"already holds a catalog \(5 user\(s\) besides root, 3 role\(s\)"):
        copy_catalog(source, location)
    with PostgresCatalog.open(location) as running:
        running.create_user("only_in_postgres", "%", JWT)
        copy_catalog(source, location, force=True)
        # A node running on the target sees the replacement like any other change.
        assert running.get_account("only_in_postgres", "%") is None
    counts = postgres.execute(
        "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM role_inheritance)",
        dbname=TEST_DATABASE,
        schema=pg_schema,
    )
    assert counts == [(6, 3)]


def test_an_older_source_is_migrated_in_memory_and_bad_sources_are_refused(
    tmp_path: Path, location: PostgresLocation
) -> None:
    old = tmp_path / "v1.db"
    conn = sqlite3.connect(old, isolation_level=None)
    migrate(conn, target=1)
    conn.execute(
        "INSERT INTO users (name, host, plugin, auth_string) VALUES ('root', '%', 'caching_sha2_password', '')"
    )
    conn.execute("INSERT INTO users (name, host, plugin, auth_string) VALUES ('old', '%', 'mysql_native_password', '')")
    conn.execute("INSERT INTO role_grants VALUES ('root', '%', 'root')")
    conn.close()
    before = old.read_bytes()
    assert copy_catalog(old, location)["users"] == 2
    assert old.read_bytes() == before
    with PostgresCatalog.open(location) as copied:
        migrated = copied.get_account("old", "%")
        assert migrated is not None and migrated.plugin_display == "MYSQL_NATIVE_PASSWORD"

    with pytest.raises(CopyRefused, match="does not exist"):
        copy_catalog(tmp_path / "missing.db", location)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE notes (text TEXT)").connection.close()
    with pytest.raises(CopyRefused, match="not an fe user catalog"):
        copy_catalog(other, location)


def test_a_table_the_copy_does_not_know_is_refused_not_dropped(tmp_path: Path, location: PostgresLocation) -> None:
    source = tmp_path / "catalog.db"
    _populated(source).close()
    conn = sqlite3.connect(source)
    conn.execute("CREATE TABLE added_later (x TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(CopyRefused, match="tables this fe cannot copy: added_later"):
        copy_catalog(source, location)


def test_every_sqlite_table_is_copied(tmp_path: Path) -> None:
    """The copy's table list follows the SQLite schema: a table added there must be added to fe/catalog/copy.py
    (and to the PostgreSQL schema) too."""
    with Catalog.open(tmp_path / "catalog.db"):
        pass
    conn = sqlite3.connect(tmp_path / "catalog.db")
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    columns = {table: [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')] for table in tables}
    conn.close()
    assert {table.name for table in TABLES} == tables
    for table in TABLES:
        assert sorted(table.columns) == sorted(columns[table.name]), table.name


def test_the_command_keeps_the_password_to_itself(tmp_path: Path, postgres: PostgresServer) -> None:
    source = tmp_path / "catalog.db"
    _populated(source).close()
    secret = "not-the-password-0451"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "FE_CATALOG_PASSWORD": secret}
    result = subprocess.run(
        [sys.executable, "-m", "fe.cli", "catalog", "copy", "--from", str(source), "--to", postgres.url()],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "password authentication failed" in result.stderr and "nothing was copied" in result.stderr
    assert secret not in result.stderr + result.stdout
    in_url = postgres.url().replace("fe_test@", f"fe_test:{secret}@")
    result = subprocess.run(
        [sys.executable, "-m", "fe.cli", "catalog", "copy", "--from", str(source), "--to", in_url + "?bogus=1"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and secret not in result.stderr + result.stdout


def _url(location: PostgresLocation) -> str:
    params = location.params
    options = params.get("options", "").replace("=", "%3D")
    return f"postgresql://{params['user']}@{params['host']}:{params['port']}/{params['dbname']}?options={options}"
