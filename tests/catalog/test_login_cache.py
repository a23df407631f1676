"""Login lookups are cached, and the cache never outlives a change: made here, or by another process."""

from __future__ import annotations

from pathlib import Path

from fe.auth.passwords import hash_password
from fe.catalog import Catalog, Credentials


def password(pw: str) -> Credentials:
    return Credentials("caching_sha2_password", hash_password(pw), "CACHING_SHA2_PASSWORD")


def test_changes_from_another_connection_are_seen_at_once(tmp_path: Path) -> None:
    path = tmp_path / "catalog.db"
    with Catalog.open(path) as serving, Catalog.open(path) as other_worker:
        assert serving.find_login_account("bob", "10.0.0.1") is None
        other_worker.create_user("bob", "%", password("one"))
        first = serving.find_login_account("bob", "10.0.0.1")
        assert first is not None
        assert serving.find_login_account("bob", "10.0.0.1") is first  # cached until something changes
        other_worker.create_user("bob", "10.0.0.1", password("two"))
        exact = serving.find_login_account("bob", "10.0.0.1")
        assert exact is not None and exact.host == "10.0.0.1"
        other_worker.drop_user("bob", "10.0.0.1")
        other_worker.drop_user("bob", "%")
        assert serving.find_login_account("bob", "10.0.0.1") is None


def test_own_writes_clear_the_cache(tmp_path: Path) -> None:
    with Catalog.open(tmp_path / "catalog.db") as catalog:
        catalog.create_user("amy", "%", password("one"))
        before = catalog.find_login_account("amy", "127.0.0.1")
        catalog.alter_credentials("amy", "%", password("two"))
        after = catalog.find_login_account("amy", "127.0.0.1")
        assert before is not None and after is not None and before.auth_string != after.auth_string


def test_a_change_marker_read_by_the_caller_keys_the_cache_too(tmp_path: Path) -> None:
    """The login path reads change_marker() once and hands its data_version on: another worker's change still
    shows at once, and an unchanged catalog still hits the cache."""
    path = tmp_path / "catalog.db"
    with Catalog.open(path) as serving, Catalog.open(path) as other_worker:

        def lookup() -> object:
            return serving.find_login_account("cy", "10.0.0.1", data_version=serving.change_marker()[0])

        assert lookup() is None
        other_worker.create_user("cy", "%", password("one"))
        first = lookup()
        assert first is not None and lookup() is first
        other_worker.drop_user("cy", "%")
        assert lookup() is None

        statements: list[str] = []
        serving._conn.set_trace_callback(statements.append)
        lookup()
        serving.find_login_account("cy", "10.0.0.1")
        # The marker's read, then the lookup without one of its own; then a lookup that reads it itself.
        assert [s for s in statements if "data_version" in s] == ["PRAGMA data_version"] * 2
