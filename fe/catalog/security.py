"""What a login through the authentication chain reads from the catalog — the chain, the security integrations,
the group providers, the roles granted to external groups and the role-to-role grants — as one immutable
snapshot, loaded in one read transaction and kept until the catalog changes (fe/catalog/store.py), so such a login
costs no SQL beyond the change marker's read.

Also the SQL of the statements that change them, each run inside the caller's write transaction: checks and
writes see the same state, so two sessions (or two worker processes) cannot slip a dangling reference between a
check and a write.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from fe.auth.groups import GroupProvider, provider_from_properties
from fe.auth.token_spec import TOKEN_PLUGINS
from fe.catalog.errors import (
    GroupProviderInUseError,
    GroupProviderNotFoundError,
    IntegrationInUseError,
    IntegrationNotFoundError,
)
from fe.catalog.identity import format_identity
from fe.catalog.integration import NATIVE, SecurityIntegration, integration_from_properties

log = logging.getLogger("fe.catalog")

CHAIN_KEY = "authentication_chain"
DEFAULT_CHAIN = (NATIVE,)


@dataclass(frozen=True)
class SecuritySnapshot:
    # The chain logins walk: the stored one (ADMIN SET FRONTEND CONFIG), else the configured default.
    chain: tuple[str, ...]
    stored_chain: tuple[str, ...] | None
    integrations: Mapping[str, SecurityIntegration]
    group_providers: Mapping[str, GroupProvider]
    # External group → the roles granted to it directly.
    group_roles: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # Role → every role it holds through role-to-role grants (transitively; the role itself not included).
    role_inheritance: Mapping[str, frozenset[str]] = field(default_factory=dict)
    _inherited: dict[frozenset[str], frozenset[str]] = field(default_factory=dict, compare=False, repr=False)

    def roles_of_external_groups(self, groups: Iterable[str], *, inherited: bool = False) -> dict[str, frozenset[str]]:
        """Group → roles granted to it (and with `inherited`, every role those hold in turn); groups with no role
        granted are left out."""
        found = {}
        for group in groups:
            roles = self.group_roles.get(group)
            if roles:
                found[group] = self.with_inherited(roles) if inherited else roles
        return found

    def with_inherited(self, roles: Iterable[str]) -> frozenset[str]:
        """`roles` and every role they hold through role-to-role grants."""
        direct = frozenset(roles)
        known = self._inherited.get(direct)
        if known is None:
            known = direct.union(*(self.role_inheritance.get(role, frozenset()) for role in direct))
            if len(self._inherited) < 4096:
                self._inherited[direct] = known  # the same few role sets come back at every login
        return known


def parse_chain(text: str) -> tuple[str, ...]:
    """`native,corp` → ("native", "corp"): entries trimmed, `native` in any case written `native`."""
    entries = tuple(entry.strip() for entry in text.split(","))
    return tuple(NATIVE if entry.lower() == NATIVE else entry for entry in entries)


def chain_problem(chain: Sequence[str]) -> str | None:
    """What is wrong with a chain's shape (StarRocks' rule: `native` in it, no name twice), or None."""
    if NATIVE not in chain or len(set(chain)) != len(chain) or "" in chain:
        return (
            "'authentication_chain' configuration invalid, 'native' must be in the list, and cannot have "
            f"duplicates, current value: {','.join(chain)}"
        )
    return None


def load_snapshot(conn: sqlite3.Connection, default_chain: tuple[str, ...]) -> SecuritySnapshot:
    integrations = {}
    for name, text in conn.execute("SELECT name, properties FROM security_integrations ORDER BY name"):
        try:
            integrations[name] = integration_from_properties(name, _pairs(text))
        except Exception as exc:  # a damaged row must not stop every other login
            log.error("security integration %r in the catalog is unusable and is skipped: %s", name, exc)
    providers = {}
    for name, text in conn.execute("SELECT name, properties FROM group_providers ORDER BY name"):
        try:
            providers[name] = provider_from_properties(name, _pairs(text))
        except Exception as exc:
            log.error("group provider %r in the catalog is unusable and is skipped: %s", name, exc)
    stored = stored_chain(conn)
    group_roles: dict[str, set[str]] = {}
    for group, role in conn.execute("SELECT group_name, role FROM external_group_grants"):
        group_roles.setdefault(group, set()).add(role)
    return SecuritySnapshot(
        chain=stored if stored is not None else default_chain,
        stored_chain=stored,
        integrations=MappingProxyType(integrations),
        group_providers=MappingProxyType(providers),
        group_roles=MappingProxyType({group: frozenset(roles) for group, roles in group_roles.items()}),
        role_inheritance=MappingProxyType(_closure(conn.execute("SELECT role, granted_role FROM role_inheritance"))),
    )


def _closure(edges: Iterable[tuple[str, str]]) -> dict[str, frozenset[str]]:
    holds: dict[str, set[str]] = {}
    for role, granted in edges:
        holds.setdefault(role, set()).add(granted)
    closed: dict[str, frozenset[str]] = {}
    for start in holds:
        seen: set[str] = set()
        pending = list(holds[start])
        while pending:
            role = pending.pop()
            if role not in seen:
                seen.add(role)
                pending.extend(holds.get(role, ()))
        closed[start] = frozenset(seen)
    return closed


def _pairs(text: str) -> list[tuple[str, str]]:
    doc = json.loads(text)
    return [(str(key), str(value)) for key, value in doc.items()]


def properties_json(properties: Sequence[tuple[str, str]]) -> str:
    return json.dumps(dict(properties), separators=(",", ":"))


# --------------------------------------------------------------------- inside a write transaction


def stored_chain(conn: sqlite3.Connection) -> tuple[str, ...] | None:
    row = conn.execute("SELECT value FROM frontend_config WHERE key = ?", (CHAIN_KEY,)).fetchone()
    return None if row is None else parse_chain(row[0])


def integration_properties(conn: sqlite3.Connection, name: str) -> list[tuple[str, str]] | None:
    row = conn.execute("SELECT properties FROM security_integrations WHERE name = ?", (name,)).fetchone()
    return None if row is None else _pairs(row[0])


def provider_properties(conn: sqlite3.Connection, name: str) -> list[tuple[str, str]] | None:
    row = conn.execute("SELECT properties FROM group_providers WHERE name = ?", (name,)).fetchone()
    return None if row is None else _pairs(row[0])


def require_group_providers(conn: sqlite3.Connection, names: Iterable[str]) -> None:
    for name in names:
        if conn.execute("SELECT 1 FROM group_providers WHERE name = ?", (name,)).fetchone() is None:
            raise GroupProviderNotFoundError(name)


def require_integrations(conn: sqlite3.Connection, chain: Iterable[str]) -> None:
    for name in chain:
        if name != NATIVE and integration_properties(conn, name) is None:
            raise IntegrationNotFoundError(name, in_chain=True)


def refuse_if_in_chain(conn: sqlite3.Connection, name: str, default_chain: tuple[str, ...]) -> None:
    stored = stored_chain(conn)
    chain = stored if stored is not None else default_chain
    if name in chain:
        remaining = ",".join(entry for entry in chain if entry != name)
        raise IntegrationInUseError(name, ",".join(chain), remaining, from_settings=stored is None)


def refuse_if_provider_used(conn: sqlite3.Connection, name: str) -> None:
    for integration, text in conn.execute("SELECT name, properties FROM security_integrations ORDER BY name"):
        listed = dict(_pairs(text)).get("group_provider", "")
        if name in listed.split(","):
            raise GroupProviderInUseError(name, f"security integration '{integration}'")
    placeholders = ", ".join("?" for _ in TOKEN_PLUGINS)
    rows = conn.execute(
        f"SELECT name, host, auth_string FROM users WHERE plugin IN ({placeholders}) ORDER BY name, host",
        TOKEN_PLUGINS,
    )
    for user_name, host, auth_string in rows:
        if name in token_user_providers(auth_string):
            raise GroupProviderInUseError(name, f"user {format_identity(user_name, host)}")


def token_user_providers(auth_string: str) -> tuple[str, ...]:
    """The group providers a token user's stored JSON names."""
    try:
        listed = json.loads(auth_string).get("group_provider")
    except (ValueError, AttributeError):
        return ()
    return tuple(listed) if isinstance(listed, list) else ()
