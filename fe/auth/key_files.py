"""Key files under `<home>/conf`: a JWKS, a single JWK, or PEM public keys / certificates.

The path is resolved inside conf/ again at use time (a symlink may have changed since CREATE USER). A file is
looked at, at most once per second: one realpath + open + fstat, and a re-read only when the resolved path,
inode, size or mtime changed. A missing, unreadable or unusable file fails closed; the last good keys are not kept,
so an operator who empties or breaks the file has switched those logins off.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fe.auth.conf_files import UnusableFile, read_if_changed, resolve_inside_conf
from fe.auth.errors import TokenRejected
from fe.auth.jwk import KeyParseError, KeySet, parse_key_document

log = logging.getLogger("fe.auth.keys")

RECHECK_SECONDS = 1.0


@dataclass
class LocalKeyStats:
    reads: Counter[str] = field(default_factory=Counter)
    stats: Counter[str] = field(default_factory=Counter)


@dataclass
class _FileState:
    checked_at: float = float("-inf")
    fingerprint: tuple[str, int, int, int, int] | None = None
    keys: KeySet | None = None
    error: str | None = None


class LocalKeySource:
    def __init__(
        self, conf_dir: Path, *, max_bytes: int, max_keys: int, clock: Callable[[], float] = time.time
    ) -> None:
        self._conf_dir = conf_dir
        self._max_bytes = max_bytes
        self._max_keys = max_keys
        self._clock = clock
        self._states: dict[str, _FileState] = {}
        self.stats = LocalKeyStats()

    def get_keys(self, name: str) -> KeySet:
        """Keys from conf/<name>; TokenRejected("key_file_unreadable") naming the file if there are none."""
        state = self._states.get(name)
        if state is None:
            state = self._states[name] = _FileState()
        now = self._clock()
        if now - state.checked_at >= RECHECK_SECONDS:
            state.checked_at = now
            self._refresh(name, state)
        if state.keys is None:
            raise TokenRejected("key_file_unreadable", f"key file conf/{name}: {state.error}")
        return state.keys

    def _refresh(self, name: str, state: _FileState) -> None:
        self.stats.stats[name] += 1
        try:
            path = resolve_inside_conf(self._conf_dir, name)
            fingerprint, data = read_if_changed(path, state.fingerprint, self._max_bytes)
            if data is None:
                return
            self.stats.reads[name] += 1
            keys, skipped = parse_key_document(data, f"conf/{name}", self._max_keys)
        except (UnusableFile, KeyParseError) as exc:
            self._fail(name, state, str(exc))
        except FileNotFoundError:
            self._fail(name, state, "does not exist")
        except OSError as exc:
            self._fail(name, state, f"cannot be read ({exc.strerror or type(exc).__name__})")
        except RuntimeError:  # Path.resolve(strict=True) on a symlink loop, before Python 3.13
            self._fail(name, state, "cannot be read (symlink loop)")
        else:
            for message in skipped:
                log.warning("key file conf/%s: %s", name, message)
            log.info("key file conf/%s: %d usable key(s) loaded", name, len(keys.keys))
            state.keys, state.error, state.fingerprint = keys, None, fingerprint

    def _fail(self, name: str, state: _FileState, why: str) -> None:
        if state.error != why:
            log.warning("key file conf/%s %s; token logins using it fail", name, why)
        # A broken file is looked at again on the next check (at most once a second), whatever its fingerprint.
        state.keys, state.error, state.fingerprint = None, why, None
