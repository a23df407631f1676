"""Group providers: what a provider is (validated PROPERTIES, as CREATE GROUP PROVIDER stores them) and the groups
it gives a user at login.

    file  "group_file_url" = "groups.txt"   a file under conf/, lines `group:user1,user2`, re-read when it changes
    unix  (no other property)               the groups the fe host's operating system gives the user name
    jwt   "jwt_claim" = "groups"            a claim of the verified token (a dot path, or a JSON Pointer "/a/b"):
                                            an array of strings, or one string of space- or comma-separated names

Every provider also takes "comment". `GroupResolver.resolve_groups` is synchronous and thread-safe; a file or
unix lookup may block (disk, NSS), so async callers run it in a thread. A provider that fails gives no groups and
logs why; it never raises.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fe.auth.conf_files import UnusableFile, read_if_changed, resolve_inside_conf
from fe.auth.json_pointer import MISSING, PointerError, is_pointer, parse_pointer, resolve
from fe.auth.token_spec import (
    InvalidAuthString,
    check_conf_file,
    property_values,
    validate_string,
)

log = logging.getLogger("fe.auth.groups")

FILE, UNIX, JWT = "file", "unix", "jwt"
PROVIDER_TYPES = (FILE, UNIX, JWT)
_KEYS = {
    FILE: ("type", "group_file_url", "comment"),
    UNIX: ("type", "comment"),
    JWT: ("type", "jwt_claim", "comment"),
}
_REQUIRED = {FILE: ("group_file_url",), UNIX: (), JWT: ("jwt_claim",)}

MAX_GROUP_FILE_BYTES = 8 * 1024 * 1024
# One provider gives a user at most this many groups, each at most MAX_GROUP_NAME characters; more is ignored.
MAX_GROUPS = 1024
MAX_GROUP_NAME = 256
MAX_COMMENT = 1024
_SEPARATORS = re.compile(r"[\s,]+")


class InvalidProviderProperties(ValueError):
    """CREATE GROUP PROVIDER's PROPERTIES are not acceptable; the message names the problem."""


@dataclass(frozen=True)
class GroupProvider:
    name: str
    type: str  # one of PROVIDER_TYPES
    # The normalised PROPERTIES, "type" first, as SHOW CREATE GROUP PROVIDER shows them.
    properties: tuple[tuple[str, str], ...]
    group_file: str | None = None  # file: the path under conf/
    jwt_claim: tuple[str, ...] | None = None  # jwt: the path to the claim, one step per object key

    @property
    def comment(self) -> str:
        return dict(self.properties).get("comment", "")


def parse_group_provider(
    name: str, properties: Sequence[tuple[str, str]], conf_dir: Path
) -> tuple[GroupProvider, list[str]]:
    """Validate CREATE GROUP PROVIDER's PROPERTIES; return the provider and warnings (a group file that does not
    exist yet). Raises InvalidProviderProperties naming the problem."""
    try:
        values = property_values(properties, PROVIDER_TYPES, "group provider")
    except InvalidAuthString as exc:
        raise InvalidProviderProperties(str(exc)) from None
    kind = values["type"]
    unknown = [key for key in values if key not in _KEYS[kind]]
    if unknown:
        raise InvalidProviderProperties(
            f"unknown property '{unknown[0]}' for a {kind} group provider; allowed: {', '.join(_KEYS[kind])}"
        )
    for key in _REQUIRED[kind]:
        if key not in values:
            raise InvalidProviderProperties(f"missing required property: {key}")  # StarRocks' text
    warnings: list[str] = []
    try:
        if "comment" in values:
            values["comment"] = _comment(values["comment"])
        for key in _REQUIRED[kind]:
            values[key] = validate_string(key, values[key])
        if kind == FILE:
            warnings = check_conf_file(
                values["group_file_url"], conf_dir, "group_file_url", "group file", "it gives no groups until then"
            )
    except InvalidAuthString as exc:
        raise InvalidProviderProperties(str(exc)) from None
    if kind == JWT:
        parse_claim_path(values["jwt_claim"])
    ordered = tuple((key, values[key]) for key in _KEYS[kind] if key in values)
    return provider_from_properties(name, ordered), warnings


def provider_from_properties(name: str, properties: Sequence[tuple[str, str]]) -> GroupProvider:
    """The provider from properties parse_group_provider already normalised (as the catalog stores them)."""
    values = dict(properties)
    kind = values["type"]
    return GroupProvider(
        name=name,
        type=kind,
        properties=tuple(properties),
        group_file=values.get("group_file_url") if kind == FILE else None,
        jwt_claim=parse_claim_path(values["jwt_claim"]) if kind == JWT else None,
    )


def parse_claim_path(text: str) -> tuple[str, ...]:
    """`jwt_claim`: a JSON Pointer ("/realm_access/roles") or a dot path ("realm_access.roles", StarRocks' form)."""
    if is_pointer(text):
        try:
            return parse_pointer(text)
        except PointerError as exc:
            raise InvalidProviderProperties(f"'jwt_claim' {text!r} is not a valid JSON Pointer: {exc}") from None
    steps = tuple(text.split("."))
    if any(not step.strip() for step in steps):
        raise InvalidProviderProperties(f"'jwt_claim' {text!r} has an empty step; use a.b.c or a JSON Pointer /a/b")
    return tuple(step.strip() for step in steps)


def _comment(value: str) -> str:
    if len(value) > MAX_COMMENT or any(ord(ch) < 0x20 for ch in value):
        raise InvalidProviderProperties("'comment' is too long or contains control characters")
    return value


# --------------------------------------------------------------------- resolving groups at login


def claim_groups(claims: Mapping[str, Any] | None, path: tuple[str, ...]) -> frozenset[str]:
    """The groups a verified token's claim names: an array of strings, or one string of space- or comma-separated
    names. Anything else gives none."""
    if claims is None:
        return frozenset()
    value = resolve(claims, path)
    if value is MISSING or value is None:
        return frozenset()
    if isinstance(value, str):
        names: Iterable[object] = _SEPARATORS.split(value)
    elif isinstance(value, list):
        names = value
    else:
        raise _ProviderFailed(f"the claim is {type(value).__name__}, not an array or a string of group names")
    return _bounded(name for name in names if isinstance(name, str))


def unix_groups(user_name: str) -> frozenset[str]:
    """The groups the operating system gives `user_name`: its primary group and every group listing it."""
    try:
        entry = pwd.getpwnam(user_name)
    except (KeyError, ValueError):  # no such user; or a name the C library cannot take (a NUL in it)
        return frozenset()
    names = set()
    for gid in os.getgrouplist(user_name, entry.pw_gid):
        try:
            names.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            continue  # a gid without a name: nothing an administrator could grant a role to
    return _bounded(names)


def parse_group_file(text: str, source: str = "group file") -> tuple[dict[str, frozenset[str]], list[str]]:
    """`group:user1,user2` lines (blank lines and `#` comments skipped) → user → groups, and the problems found."""
    members: dict[str, set[str]] = {}
    problems = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        group, colon, users = stripped.partition(":")
        group = group.strip()
        if not colon or not group:
            problems.append(f"{source} line {number}: expected 'group:user1,user2'")
            continue
        for user in users.split(","):
            user = user.strip()
            if user:
                members.setdefault(user, set()).add(group)
    return {user: _bounded(groups) for user, groups in members.items()}, problems


def _bounded(names: Iterable[str]) -> frozenset[str]:
    kept = []
    for name in names:
        name = name.strip()
        if name and len(name) <= MAX_GROUP_NAME:
            kept.append(name)
            if len(kept) == MAX_GROUPS:
                break
    return frozenset(kept)


def _predicate(exc: Exception) -> str:
    """A problem as it follows "group file conf/x": a shared reader's "not a regular file" reads "is not …"."""
    return f"is {exc}" if isinstance(exc, UnusableFile) else str(exc)


class _ProviderFailed(Exception):
    pass


@dataclass
class _FileState:
    lock: threading.Lock = field(default_factory=threading.Lock)
    fingerprint: tuple[str, int, int, int, int] | None = None
    members: dict[str, frozenset[str]] = field(default_factory=dict)
    error: str | None = None


class GroupResolver:
    """Resolves the groups of a login from the providers it is given. One per process: it remembers each group
    file's contents until the file changes (a resolve + open + fstat per use, a re-read only on a new inode, size
    or mtime) and each unix answer for `unix_cache_seconds`."""

    def __init__(
        self,
        conf_dir: Path,
        *,
        max_file_bytes: int = MAX_GROUP_FILE_BYTES,
        unix_cache_seconds: float = 5.0,
        unix_lookup: Callable[[str], frozenset[str]] = unix_groups,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._conf_dir = conf_dir
        self._max_file_bytes = max_file_bytes
        self._unix_cache_seconds = unix_cache_seconds
        self._unix_lookup = unix_lookup
        self._clock = clock
        self._lock = threading.Lock()
        self._files: dict[str, _FileState] = {}
        self._unix: dict[str, tuple[float, frozenset[str]]] = {}
        self._failures: dict[str, str] = {}  # provider → the last failure logged, so a lasting one logs once
        self.file_reads = 0

    def resolve_groups(
        self, providers: Iterable[GroupProvider], user_name: str, claims: Mapping[str, Any] | None
    ) -> frozenset[str]:
        """The union of the groups every provider gives `user_name`; `claims` are the verified token's (None for a
        login without a token, which gets no groups from jwt providers)."""
        groups: set[str] = set()
        for provider in providers:
            groups |= self.groups_from(provider, user_name, claims)
        return frozenset(groups)

    def groups_from(self, provider: GroupProvider, user_name: str, claims: Mapping[str, Any] | None) -> frozenset[str]:
        try:
            if provider.type == JWT:
                assert provider.jwt_claim is not None
                groups = claim_groups(claims, provider.jwt_claim)
            elif provider.type == FILE:
                assert provider.group_file is not None
                groups = self._file_members(provider.group_file).get(user_name, frozenset())
            elif provider.type == UNIX:
                groups = self._unix_groups(user_name)
            else:
                raise _ProviderFailed(f"unknown group provider type {provider.type!r}")
        except _ProviderFailed as exc:
            self._failed(provider, str(exc))
            return frozenset()
        except Exception as exc:  # a provider never takes a login down with it
            self._failed(provider, f"{type(exc).__name__}: {exc}")
            return frozenset()
        with self._lock:
            self._failures.pop(provider.name, None)
        return groups

    def _failed(self, provider: GroupProvider, why: str) -> None:
        with self._lock:
            first = self._failures.get(provider.name) != why
            self._failures[provider.name] = why
        if first:
            log.warning("group provider %s (%s) gives no groups: %s", provider.name, provider.type, why)

    def _unix_groups(self, user_name: str) -> frozenset[str]:
        now = self._clock()
        with self._lock:
            cached = self._unix.get(user_name)
        if cached is not None and now - cached[0] < self._unix_cache_seconds:
            return cached[1]
        groups = self._unix_lookup(user_name)
        with self._lock:
            if len(self._unix) >= 10_000:
                self._unix.clear()
            self._unix[user_name] = (now, groups)
        return groups

    def _file_members(self, name: str) -> dict[str, frozenset[str]]:
        with self._lock:
            state = self._files.setdefault(name, _FileState())
        with state.lock:
            self._refresh(name, state)
            if state.error is not None:
                raise _ProviderFailed(f"group file conf/{name} {state.error}")
            return state.members

    def _refresh(self, name: str, state: _FileState) -> None:
        try:
            path = resolve_inside_conf(self._conf_dir, name, "group_file_url")
            fingerprint, data = read_if_changed(path, state.fingerprint, self._max_file_bytes)
            if data is None:
                return
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                raise _ProviderFailed("is not UTF-8 text") from None
            members, problems = parse_group_file(text, f"group file conf/{name}")
        except (_ProviderFailed, UnusableFile) as exc:
            state.fingerprint, state.members, state.error = None, {}, _predicate(exc)
        except FileNotFoundError:
            state.fingerprint, state.members, state.error = None, {}, "does not exist"
        except OSError as exc:
            state.fingerprint, state.members, state.error = None, {}, f"cannot be read ({exc.strerror or exc})"
        except RuntimeError:  # Path.resolve(strict=True) on a symlink loop, before Python 3.13
            state.fingerprint, state.members, state.error = None, {}, "cannot be read (symlink loop)"
        else:
            self.file_reads += 1
            for problem in problems:
                log.warning("%s; line skipped", problem)
            log.info("group file conf/%s: %d user(s) in groups", name, len(members))
            state.fingerprint, state.members, state.error = fingerprint, members, None
