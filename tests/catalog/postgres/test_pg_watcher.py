"""The change watcher on its own, with a stand-in connection: notifications that psycopg hands over in the middle of
the watcher's own query (reading the counter as it connects) are taken in, not waited on forever."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

from fe.catalog.pg.watcher import ChangeWatcher


class _Cursor:
    def __init__(self, row: tuple[int, ...] | None) -> None:
        self._row = row

    def fetchone(self) -> tuple[int, ...] | None:
        return self._row


class _Connection:
    """Delivers a notification to the registered handlers during every query, as psycopg does when one arrives
    while a query's results are read; then the watcher's wait fails, as a broken connection would."""

    def __init__(self) -> None:
        self.handlers: list[Any] = []
        self.pgconn = SimpleNamespace(socket=-1)

    def __enter__(self) -> _Connection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def add_notify_handler(self, handler: Any) -> None:
        self.handlers.append(handler)

    def execute(self, query: object, params: object = None) -> _Cursor:
        for handler in self.handlers:
            handler(SimpleNamespace(payload="7", channel="fe_catalog", pid=1))
        return _Cursor((7,))


def test_a_notification_during_the_watchers_own_query_is_taken_in() -> None:
    changes: list[int] = []
    connected = threading.Event()
    watcher = ChangeWatcher(
        _Connection,  # type: ignore[arg-type]
        on_change=lambda: changes.append(1),
        on_connected=connected.set,
        on_lost=lambda reason, first: None,
        poll_seconds=3600,
    )
    watcher._wait = lambda conn, timeout: watcher._stop.wait(timeout)  # type: ignore[method-assign]
    watcher.start()
    try:
        assert connected.wait(5), "the watcher hung while reading the counter"
        assert watcher.notifications >= 2 and changes
    finally:
        watcher.stop()
