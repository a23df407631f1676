"""Two fe nodes on one PostgreSQL catalog (two PostgresCatalog instances, as two hosts would have): a change made
through one reaches the other's login lookups within a second, by notification or, when one is missed, by the
periodic check; while PostgreSQL is down, cached lookups go on and writes are refused clearly; when it is back,
both catch up on their own."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import psycopg
import pytest

from fe.catalog import CACHING_SHA2, Account, CatalogBusyError, Credentials
from fe.catalog.pg import CatalogUnavailableError, PostgresCatalog, PostgresLocation
from tests.support.postgres_server import TEST_DATABASE, PostgresServer

PASSWORD = Credentials(CACHING_SHA2, "", "CACHING_SHA2_PASSWORD")
WITHIN = 1.0  # the promise: a change reaches the other node's logins within one second


@pytest.fixture
def node_a(catalog: PostgresCatalog) -> PostgresCatalog:
    return catalog


@pytest.fixture
def notifications() -> list[float]:
    return []


@pytest.fixture
def node_b(
    location: PostgresLocation, catalog: PostgresCatalog, notifications: list[float]
) -> Iterator[PostgresCatalog]:
    with PostgresCatalog.open(location, on_notification=lambda: notifications.append(time.monotonic())) as opened:
        yield opened


def login(node: PostgresCatalog, name: str, client: str = "10.0.0.7") -> Account | None:
    """As fe/auth/login.py looks an account up: the marker first, then the lookup keyed by it."""
    return node.find_login_account(name, client, data_version=node.change_marker()[0])


def settle(*nodes: PostgresCatalog) -> None:
    """Wait until the nodes have taken in every change made so far (each drops a node's cache): what they look up
    afterwards stays cached until the next change."""
    for node in nodes:
        with psycopg.connect(**node.location.connect_kwargs()) as conn:
            row = conn.execute("SELECT version FROM fe_change_counter").fetchone()
        assert row is not None
        counter = row[0]
        seconds_until(lambda node=node, counter=counter: node._watcher._seen == counter)  # type: ignore[misc]


def seconds_until(condition: Callable[[], bool], limit: float = 5.0) -> float:
    started = time.monotonic()
    while not condition():
        elapsed = time.monotonic() - started
        assert elapsed < limit, "the condition never came true"
        time.sleep(0.005)
    return time.monotonic() - started


def test_a_user_created_on_one_node_logs_in_on_the_other_within_a_second(
    node_a: PostgresCatalog, node_b: PostgresCatalog, notifications: list[float]
) -> None:
    assert login(node_b, "tom") is None  # cached as unknown on B
    node_a.create_user("tom", "%", PASSWORD)
    assert seconds_until(lambda: login(node_b, "tom") is not None) < WITHIN
    assert notifications, "B learnt of it by notification"

    cached = login(node_b, "tom")
    assert cached is not None and login(node_b, "tom") is cached  # and caches it again until the next change

    node_a.drop_user("tom", "%")
    assert seconds_until(lambda: login(node_b, "tom") is None) < WITHIN


def test_grants_and_password_changes_reach_the_other_node(node_a: PostgresCatalog, node_b: PostgresCatalog) -> None:
    node_a.create_role("ops")
    node_a.create_user("amy", "10.0.0.%", PASSWORD)
    assert seconds_until(lambda: (amy := login(node_b, "amy")) is not None and amy.host == "10.0.0.%") < WITHIN
    node_a.grant_roles("amy", "10.0.0.%", ["ops"])
    node_a.grant_roles_to_role("ops", ["user_admin"])
    assert seconds_until(lambda: (amy := login(node_b, "amy")) is not None and amy.is_user_admin) < WITHIN
    node_a.create_user("amy", "10.0.0.7", Credentials(CACHING_SHA2, "new", "CACHING_SHA2_PASSWORD"))
    assert seconds_until(lambda: (amy := login(node_b, "amy")) is not None and amy.host == "10.0.0.7") < WITHIN


def test_a_missed_notification_is_made_up_for_by_the_periodic_check(
    node_a: PostgresCatalog, node_b: PostgresCatalog, postgres: PostgresServer, pg_schema: str
) -> None:
    assert login(node_b, "ghost") is None
    # A change that sends no notification: triggers off for this session, the counter moved by hand.
    postgres.execute(
        "SET session_replication_role = replica",
        "INSERT INTO users (name, host, plugin, auth_string, plugin_display) "
        "VALUES ('ghost', '%', 'caching_sha2_password', '', '')",
        "UPDATE fe_change_counter SET version = version + 1",
        dbname=TEST_DATABASE,
        schema=pg_schema,
    )
    # The watcher reads the counter every second: seen within that, plus the time to read it.
    assert seconds_until(lambda: login(node_b, "ghost") is not None) < WITHIN + 0.5


def test_while_postgres_is_down_cached_logins_go_on_and_writes_are_refused_then_both_catch_up(
    node_a: PostgresCatalog, node_b: PostgresCatalog, postgres: PostgresServer
) -> None:
    node_a.create_user("kim", "%", PASSWORD)
    node_a.create_role("later")
    assert seconds_until(lambda: login(node_b, "kim") is not None) < WITHIN
    settle(node_a, node_b)
    assert login(node_a, "kim") is not None and login(node_b, "kim") is not None

    postgres.stop()  # pg_ctl stop -m fast
    try:
        seconds_until(lambda: not node_a.available and not node_b.available)
        for node in (node_a, node_b):
            kim = login(node, "kim")
            assert kim is not None and kim.name == "kim"  # from the cache
            assert login(node, "never_seen") is None  # unknown, and quickly
        started = time.monotonic()
        with pytest.raises(CatalogUnavailableError, match="the catalog is unavailable") as refused:
            node_a.create_user("lee", "%", PASSWORD)
        assert time.monotonic() - started < 0.1  # refused at once, not after a timeout
        assert isinstance(refused.value, CatalogBusyError)  # the SQL layer's ERR for a catalog that cannot write
        with pytest.raises(CatalogUnavailableError):
            node_b.list_accounts()
        assert node_b.domain_hosts() == set()  # the last ones read: logins keep matching domains
        with pytest.raises(CatalogUnavailableError):
            node_a.ping()
    finally:
        postgres.start()

    # Back without reopening anything: writes work again, and changes flow between the nodes.
    recovery = seconds_until(lambda: node_a.available and node_b.available)
    assert recovery < 3.0
    node_a.create_user("lee", "%", PASSWORD)
    assert seconds_until(lambda: login(node_b, "lee") is not None) < WITHIN
    node_b.drop_user("kim", "%")
    assert seconds_until(lambda: login(node_a, "kim") is None) < WITHIN
    node_a.ping()


def test_a_change_made_while_a_node_was_cut_off_is_seen_when_it_reconnects(
    node_a: PostgresCatalog, location: PostgresLocation, postgres: PostgresServer
) -> None:
    cut_off = PostgresLocation({**location.params, "application_name": "fe_node_c"}, location.password)
    with PostgresCatalog.open(cut_off) as node_c:
        node_a.create_user("zoe", "%", PASSWORD)
        assert seconds_until(lambda: login(node_c, "zoe") is not None) < WITHIN
        settle(node_c)
        assert login(node_c, "zoe") is not None
        # C's connections are cut (as by a network fault); A writes before C is back.
        postgres.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'fe_node_c'")
        seconds_until(lambda: not node_c.available)
        node_a.drop_user("zoe", "%")
        assert login(node_c, "zoe") is not None  # C cannot know yet: it answers from its cache
        assert seconds_until(lambda: node_c.available) < 3.0
        assert seconds_until(lambda: login(node_c, "zoe") is None) < WITHIN
