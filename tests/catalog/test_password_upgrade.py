"""replace_password_hash: the login side's upgrade of a legacy verifier, as a compare-and-swap that never
overwrites a password changed meanwhile, durable, and callable from worker threads."""

from __future__ import annotations

import threading
from pathlib import Path

from fe.auth.passwords import hash_password, needs_rehash, verify_password
from fe.catalog import Catalog, Credentials
from tests.auth.test_password_storage import legacy_pbkdf2


def legacy_user(catalog: Catalog, name: str, password: bytes) -> str:
    old = legacy_pbkdf2(password)
    catalog.create_user(name, "%", Credentials("caching_sha2_password", old, ""))
    return old


def test_replaces_only_the_verifier_it_was_given(catalog: Catalog, catalog_path: Path) -> None:
    old = legacy_user(catalog, "amy", b"amy-pw")
    account = catalog.find_login_account("amy", "10.0.0.1")
    assert account is not None and needs_rehash(account.auth_string)
    new = hash_password("amy-pw")
    assert catalog.replace_password_hash("amy", "%", old, new)
    # The login cache follows at once, and another process sees it on disk.
    upgraded = catalog.find_login_account("amy", "10.0.0.1")
    assert upgraded is not None and upgraded.auth_string == new and not needs_rehash(new)
    with Catalog.open(catalog_path) as other:
        stored = other.get_account("amy", "%")
        assert stored is not None and stored.auth_string == new and verify_password(b"amy-pw", stored.auth_string)
    # A second attempt with the stale verifier changes nothing.
    assert not catalog.replace_password_hash("amy", "%", old, hash_password("amy-pw"))
    assert catalog.get_account("amy", "%").auth_string == new  # type: ignore[union-attr]


def test_a_password_changed_meanwhile_is_kept(catalog: Catalog) -> None:
    old = legacy_user(catalog, "bob", b"bob-pw")
    changed = hash_password("changed-by-admin")
    catalog.alter_credentials("bob", "%", Credentials("caching_sha2_password", changed, ""))
    assert not catalog.replace_password_hash("bob", "%", old, hash_password("bob-pw"))
    assert catalog.get_account("bob", "%").auth_string == changed  # type: ignore[union-attr]


def test_unknown_users_and_other_plugins_are_left_alone(catalog: Catalog) -> None:
    assert not catalog.replace_password_hash("ghost", "%", "x", hash_password("x"))
    native = "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"
    catalog.create_user("nat", "%", Credentials("mysql_native_password", native, ""))
    assert not catalog.replace_password_hash("nat", "%", native, hash_password("password"))
    assert catalog.get_account("nat", "%").auth_string == native  # type: ignore[union-attr]


def test_concurrent_upgrades_from_worker_threads_swap_once(catalog: Catalog) -> None:
    old = legacy_user(catalog, "cy", b"cy-pw")
    candidates = [hash_password("cy-pw") for _ in range(8)]
    results: list[bool] = []
    barrier = threading.Barrier(len(candidates))

    def upgrade(new: str) -> None:
        barrier.wait()
        results.append(catalog.replace_password_hash("cy", "%", old, new))

    threads = [threading.Thread(target=upgrade, args=(new,)) for new in candidates]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    stored = catalog.get_account("cy", "%")
    assert stored is not None and stored.auth_string in candidates
