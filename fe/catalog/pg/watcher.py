"""Following the PostgreSQL catalog's changes from one node: a thread that LISTENs on the catalog's channel and
reads the change counter every `poll_seconds` as a backstop, on its own connection (not the pool's).

It reports through callbacks, all called on its thread:
- `on_change()`: the catalog may have changed (the counter moved, or the connection was made again, when
  anything may have happened meanwhile): caches must start over;
- `on_connected()`: connected, the first time or again after `on_lost` (called before the `on_change` that
  follows it);
- `on_lost(reason, first)`: the connection broke or cannot be made (`first`: the outage's first report); it
  retries every `retry_seconds`;
- `on_notification()`: one notification arrived (for metrics).
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from fe.catalog.pg.schema import CHANNEL

log = logging.getLogger("fe.catalog")

Connection = psycopg.Connection[Any]


class ChangeWatcher:
    def __init__(
        self,
        connect: Callable[[], Connection],
        *,
        on_change: Callable[[], None],
        on_connected: Callable[[], None],
        on_lost: Callable[[str, bool], None],
        on_notification: Callable[[], None] | None = None,
        poll_seconds: float = 1.0,
        retry_seconds: float = 0.5,
    ) -> None:
        self._connect = connect
        self._on_change = on_change
        self._on_connected = on_connected
        self._on_lost = on_lost
        self._on_notification = on_notification
        self._poll_seconds = poll_seconds
        self._retry_seconds = retry_seconds
        self._stop = threading.Event()
        # stop() writes a byte here to end the wait for notifications at once.
        self._wake_read, self._wake_write = os.pipe()
        self._connected = threading.Event()
        self._lost = False
        self._seen: int | None = None  # the change counter as last seen; guarded by _seen_lock
        self._seen_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="fe-catalog-watch", daemon=True)
        self.notifications = 0
        self.polls = 0

    def start(self) -> None:
        self._thread.start()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def saw(self, version: int) -> None:
        """This node committed a write that left the counter at `version` (and dropped its caches itself): the
        notifications up to it bring nothing new."""
        with self._seen_lock:
            if self._seen is not None and version > self._seen:
                self._seen = version

    def stop(self, timeout: float = 5.0) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        os.write(self._wake_write, b"x")
        if self._thread.is_alive():
            self._thread.join(timeout)
        if not self._thread.is_alive():
            os.close(self._wake_read)
            os.close(self._wake_write)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with self._connect() as conn:
                    self._follow(conn)
            except (psycopg.Error, OSError) as exc:
                if not self._stop.is_set():
                    self._report_lost(exc)
            except Exception:  # a bug must not end the thread: the node would stop seeing changes
                log.exception("the catalog change watcher failed; starting it again")
                self._report_lost(RuntimeError("the change watcher failed"))
            self._stop.wait(self._retry_seconds)

    def _follow(self, conn: Connection) -> None:
        # Notifications that arrive while a query runs reach this handler; the others, the wait below.
        conn.add_notify_handler(lambda notify: self._notified(notify.payload))
        # LISTEN before reading the counter: a change committed in between is then either in the count or notified.
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
        counter = _read_counter(conn)  # (notifications that arrive meanwhile take the lock: not held here)
        with self._seen_lock:
            self._seen = counter if self._seen is None else max(self._seen, counter)
        self._lost = False
        self._on_connected()
        self._connected.set()
        self._on_change()
        while not self._stop.is_set():
            deadline = time.monotonic() + self._poll_seconds
            while not self._stop.is_set() and (left := deadline - time.monotonic()) > 0:
                self._wait(conn, left)
            if not self._stop.is_set():
                self.polls += 1
                self._observe(_read_counter(conn))

    def _wait(self, conn: Connection, timeout: float) -> None:
        """Wait up to `timeout` for notifications (or stop()), and take in those that came."""
        pgconn = conn.pgconn
        readable, _, _ = select.select([pgconn.socket, self._wake_read], [], [], timeout)
        if pgconn.socket in readable:
            pgconn.consume_input()  # raises when the connection broke
            while (notify := pgconn.notifies()) is not None:
                self._notified(notify.extra.decode("utf-8", "replace"))

    def _notified(self, payload: str) -> None:
        self.notifications += 1
        if self._on_notification is not None:
            try:
                self._on_notification()
            except Exception:
                log.exception("the catalog notification callback failed")
        try:
            version = int(payload)
        except ValueError:
            self._on_change()
            return
        self._observe(version)

    def _observe(self, version: int) -> None:
        # on_change under the lock: a writer's saw() returns only once a change it raced with has been reported.
        with self._seen_lock:
            if self._seen is None or version > self._seen:
                self._seen = version
                self._on_change()

    def _report_lost(self, exc: BaseException) -> None:
        self._connected.clear()
        first = not self._lost
        self._lost = True
        with self._seen_lock:
            self._seen = None
        self._on_lost(_first_line(exc), first)


def _read_counter(conn: Connection) -> int:
    row = conn.execute("SELECT version FROM fe_change_counter WHERE id = 1").fetchone()
    return int(row[0]) if row is not None else 0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
