"""The persisted user catalog: one SQLite file in WAL mode, shared by all worker processes.

Durability: every write is a short `BEGIN IMMEDIATE` transaction committed with `synchronous=FULL`, so a
statement that returned OK survives `kill -9`. Other processes' commits are visible to the next read, since
every read queries the file (a lookup by name is a primary-key probe: a few microseconds).

Security integrations, group providers, external group grants and the authentication chain are read by logins
from one cached snapshot (fe/catalog/security.py), dropped on any change like the login lookups.

Threads: reads (logins, on the event loop) and writes (worker threads) use two connections, each behind its own
lock. A write may wait up to the busy timeout for another process's write lock; it waits holding only the write
connection, so reads never queue behind it (WAL readers do not wait for writers). Every method is safe to call
from any thread.

First start builds the file under a temporary name and links it into place only once it holds the schema and
root, so a crash during creation never leaves a half-made catalog that a later start would take for real.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from pathlib import Path

from fe.auth.groups import GroupProvider
from fe.auth.passwords import hash_password
from fe.auth.token_spec import TOKEN_PLUGINS
from fe.catalog import identity
from fe.catalog.account import (
    BUILTIN_ROLES,
    CACHING_SHA2,
    ROOT_HOST,
    ROOT_ROLE,
    ROOT_USER,
    Account,
    Credentials,
)
from fe.catalog.errors import (
    CatalogBusyError,
    CatalogError,
    GroupProviderExistsError,
    GroupProviderNotFoundError,
    IntegrationExistsError,
    IntegrationNotFoundError,
    InvalidChainError,
    ProtectedObjectError,
    RoleCycleError,
    RoleExistsError,
    RoleNotFoundError,
    RoleNotGrantedError,
    UserExistsError,
    UserNotFoundError,
)
from fe.catalog.integration import NATIVE, SecurityIntegration
from fe.catalog.migrations import APPLICATION_ID, SCHEMA_VERSION, migrate, schema_version
from fe.catalog.security import (
    CHAIN_KEY,
    DEFAULT_CHAIN,
    SecuritySnapshot,
    chain_problem,
    integration_properties,
    load_snapshot,
    properties_json,
    provider_properties,
    refuse_if_in_chain,
    refuse_if_provider_used,
    require_group_providers,
    require_integrations,
    token_user_providers,
)

BUSY_TIMEOUT_MS = 5000

_USER_COLUMNS = "name, host, plugin, auth_string, plugin_display, created_at"


_LOGIN_CACHE_SIZE = 10_000


class Catalog:
    def __init__(self, conn: sqlite3.Connection, writer: sqlite3.Connection, path: Path) -> None:
        self._conn = conn  # reads
        self._lock = threading.Lock()
        self._writer = writer
        self._write_lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self.path = path
        # Logins look the same few accounts up again and again: remember each answer (parsed token settings
        # included) until the catalog changes, here (cleared on commit) or in another process (data_version).
        self._login_cache: dict[tuple[str, str], Account | None] = {}
        self._login_cache_version: tuple[int, int] = (-1, -1)
        self._writes = 0
        # Domain identities ('name'@['domain']) match the addresses their domain resolves to; resolving is the
        # server's job (fe.server.domains), never done here.
        self._domain_addresses: Callable[[str], Collection[str]] = lambda _domain: ()
        self._domain_version: Callable[[], int] = lambda: 0
        # The chain logins walk while the catalog stores none (the authentication_chain setting).
        self._default_chain: tuple[str, ...] = DEFAULT_CHAIN
        self._security: SecuritySnapshot | None = None
        self._security_version = -1

    # ----------------------------------------------------------------- opening and closing

    @classmethod
    def open(cls, path: Path, *, root_password: str = "") -> Catalog:
        """Open the catalog, creating it (with root) on first start; raise CatalogError if it is unusable.

        `root_password` is used only when the file is created; later starts leave root's password alone.
        """
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not path.exists():
                _create_catalog_file(path, root_password)
        except sqlite3.Error as exc:
            raise CatalogError(f"cannot create the user catalog {path}: {exc}") from exc
        except OSError as exc:
            raise CatalogError(f"cannot create the user catalog {path}: {exc.strerror or exc}") from exc
        conn = _connect(path)
        try:
            _check_and_prepare(conn, path)
            writer = _connect(path)
        except BaseException:
            conn.close()
            raise
        try:
            _configure(writer)
        except sqlite3.Error as exc:
            writer.close()
            conn.close()
            raise CatalogError(f"cannot open the user catalog {path}: {exc}") from exc
        return cls(conn, writer, path)

    def close(self) -> None:
        with self._write_lock:
            self._writer.close()
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ----------------------------------------------------------------- reads

    def find_login_account(self, name: str, client_ip: str, data_version: int | None = None) -> Account | None:
        """The identity a login by `name` from `client_ip` uses: exact address, then pattern, then '%'.

        `data_version` is the first member of a `change_marker()` the caller has just read (spares a second read).
        """
        key = (name, client_ip)
        if data_version is None:
            data_version = self._data_version()
        version = (data_version, self._domain_version())
        with self._cache_lock:
            if version != self._login_cache_version:
                self._login_cache.clear()
                self._login_cache_version = version
            elif key in self._login_cache:
                return self._login_cache[key]
            writes = self._writes
        account = self._find_login_account(name, identity.normalize_client_ip(client_ip))
        with self._cache_lock:
            # Kept only if nothing changed meanwhile (a write here, or a newer version seen by another lookup).
            if self._login_cache_version == version and self._writes == writes:
                if len(self._login_cache) >= _LOGIN_CACHE_SIZE:
                    self._login_cache.clear()
                self._login_cache[key] = account
        return account

    def _find_login_account(self, name: str, client: str) -> Account | None:
        with self._read() as conn:
            rows = conn.execute(f"SELECT {_USER_COLUMNS} FROM users WHERE name = ?", (name,)).fetchall()
            ranked = []
            for row in rows:
                rank = identity.match_rank(row[1], client, self._domain_addresses)
                if rank is not None:
                    ranked.append((rank, row[1], row))
            if not ranked:
                return None
            ranked.sort()
            return self._account_from_row(conn, ranked[0][2])

    def set_domain_resolver(self, addresses: Callable[[str], Collection[str]], version: Callable[[], int]) -> None:
        """Where login matching finds a domain's addresses; `version` changes whenever any of them change."""
        with self._cache_lock:
            self._domain_addresses = addresses
            self._domain_version = version
            self._login_cache.clear()

    def change_marker(self) -> tuple[int, int]:
        """Changes whenever the catalog does, here or in another process (for caches kept outside it)."""
        return self._data_version(), self._writes

    def _data_version(self) -> int:
        # The read connection's data_version moves on every commit by any other connection: other processes'
        # and this catalog's own write connection's alike.
        with self._lock, _operational_errors():
            return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def domain_hosts(self) -> set[str]:
        """The domains of all domain identities ('name'@['domain'])."""
        with self._read() as conn:
            rows = conn.execute("SELECT DISTINCT host FROM users WHERE host LIKE '[%]'").fetchall()
        return {identity.domain_of(host) for (host,) in rows if identity.is_domain(host)}

    def get_account(self, name: str, host: str) -> Account | None:
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {_USER_COLUMNS} FROM users WHERE name = ? AND host = ?", (name, host)
            ).fetchone()
            return None if row is None else self._account_from_row(conn, row)

    def list_accounts(self) -> list[Account]:
        with self._read() as conn:
            rows = conn.execute(f"SELECT {_USER_COLUMNS} FROM users ORDER BY name, host").fetchall()
            grants: dict[tuple[str, str], set[str]] = {}
            for user_name, user_host, role in conn.execute("SELECT user_name, user_host, role FROM role_grants"):
                grants.setdefault((user_name, user_host), set()).add(role)
            defaults: dict[tuple[str, str], list[str]] = {}
            for user_name, user_host, role in conn.execute(
                "SELECT user_name, user_host, role FROM default_roles ORDER BY position"
            ):
                defaults.setdefault((user_name, user_host), []).append(role)
        return [_account(row, grants.get((row[0], row[1]), set()), defaults.get((row[0], row[1]), [])) for row in rows]

    def list_roles(self) -> list[tuple[str, bool]]:
        """(role, is built-in), by name."""
        with self._read() as conn:
            return [(name, bool(builtin)) for name, builtin in conn.execute("SELECT name, builtin FROM roles")]

    def roles_with_inherited(self, roles: Iterable[str]) -> frozenset[str]:
        """`roles` and every role they hold in turn through role-to-role grants (what a holder of them holds)."""
        with self._read() as conn:
            held = set(roles)
            for role in list(held):
                held |= self._roles_of_role(conn, role, direct=False)
        return frozenset(held)

    # ----------------------------------------------------------------- the authentication chain's reads

    def security_snapshot(self, data_version: int | None = None) -> SecuritySnapshot:
        """The chain, integrations, group providers and external group grants, as one consistent view; cached
        until the catalog changes. `data_version`: as for find_login_account (spares the marker's second read)."""
        if data_version is None:
            data_version = self._data_version()
        with self._cache_lock:
            snapshot = self._security
            if snapshot is not None and self._security_version == data_version:
                return snapshot
            writes, default_chain = self._writes, self._default_chain
        with self._read() as conn:
            snapshot = load_snapshot(conn, default_chain)
        with self._cache_lock:
            if self._writes == writes and self._default_chain == default_chain:
                self._security, self._security_version = snapshot, data_version
        return snapshot

    def set_default_authentication_chain(self, chain: Sequence[str]) -> None:
        """The chain used while the catalog stores none (the authentication_chain setting of fe.conf)."""
        with self._cache_lock:
            self._default_chain = tuple(chain)
            self._security = None

    @property
    def default_authentication_chain(self) -> tuple[str, ...]:
        return self._default_chain

    def authentication_chain(self, data_version: int | None = None) -> tuple[str, ...]:
        """`native` and integration names, in the order logins try them (names are not checked for existence
        when the chain comes from fe.conf: skip those get_integration does not know)."""
        return self.security_snapshot(data_version).chain

    def list_integrations(self, data_version: int | None = None) -> tuple[SecurityIntegration, ...]:
        return tuple(self.security_snapshot(data_version).integrations.values())

    def get_integration(self, name: str, data_version: int | None = None) -> SecurityIntegration | None:
        return self.security_snapshot(data_version).integrations.get(name)

    def list_group_providers(self, data_version: int | None = None) -> tuple[GroupProvider, ...]:
        return tuple(self.security_snapshot(data_version).group_providers.values())

    def get_group_provider(self, name: str, data_version: int | None = None) -> GroupProvider | None:
        return self.security_snapshot(data_version).group_providers.get(name)

    def group_providers(self, names: Iterable[str], data_version: int | None = None) -> tuple[GroupProvider, ...]:
        """The providers of these names, in that order; a name no provider has (any longer) is left out."""
        known = self.security_snapshot(data_version).group_providers
        return tuple(known[name] for name in names if name in known)

    def roles_of_external_groups(
        self, groups: Iterable[str], *, inherited: bool = False, data_version: int | None = None
    ) -> dict[str, frozenset[str]]:
        """Group → the roles granted to it (with `inherited`, and every role those hold); groups without any are
        left out."""
        return self.security_snapshot(data_version).roles_of_external_groups(groups, inherited=inherited)

    # ----------------------------------------------------------------- security integrations

    def create_security_integration(self, integration: SecurityIntegration, *, if_not_exists: bool = False) -> bool:
        """Store a validated integration. False (nothing changes) if the name exists and `if_not_exists`."""
        if integration.name.lower() == NATIVE:
            raise ProtectedObjectError(
                f"'{integration.name}' is a reserved name: 'native' stands for the catalog's own users in "
                "authentication_chain"
            )
        with self._write() as conn:
            if integration_properties(conn, integration.name) is not None:
                if if_not_exists:
                    return False
                raise IntegrationExistsError(integration.name)
            require_group_providers(conn, integration.group_providers)
            conn.execute(
                "INSERT INTO security_integrations (name, type, properties) VALUES (?, ?, ?)",
                (integration.name, integration.type, properties_json(integration.properties)),
            )
            return True

    def alter_security_integration(
        self, name: str, rewrite: Callable[[list[tuple[str, str]]], SecurityIntegration]
    ) -> SecurityIntegration:
        """Replace an integration by `rewrite(its current properties)`, run inside the write transaction (two
        ALTERs at once both take effect); whatever `rewrite` raises leaves it unchanged."""
        with self._write() as conn:
            current = integration_properties(conn, name)
            if current is None:
                raise IntegrationNotFoundError(name)
            updated = rewrite(current)
            require_group_providers(conn, updated.group_providers)
            conn.execute(
                "UPDATE security_integrations SET properties = ? WHERE name = ?",
                (properties_json(updated.properties), name),
            )
            return updated

    def drop_security_integration(self, name: str, *, if_exists: bool = False) -> bool:
        """Drop an integration; refused while the authentication chain names it."""
        with self._write() as conn:
            if integration_properties(conn, name) is None:
                if if_exists:
                    return False
                raise IntegrationNotFoundError(name)
            refuse_if_in_chain(conn, name, self._default_chain)
            conn.execute("DELETE FROM security_integrations WHERE name = ?", (name,))
            return True

    def set_authentication_chain(self, chain: Sequence[str]) -> None:
        """Persist the chain: `native` once, and integrations that exist, each once."""
        problem = chain_problem(chain)
        if problem is not None:
            raise InvalidChainError(problem)
        with self._write() as conn:
            require_integrations(conn, chain)
            conn.execute(
                """
                INSERT INTO frontend_config (key, value) VALUES (?, ?)
                ON CONFLICT (key) DO UPDATE
                SET value = excluded.value, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
                """,
                (CHAIN_KEY, ",".join(chain)),
            )

    # ----------------------------------------------------------------- group providers

    def create_group_provider(self, provider: GroupProvider, *, if_not_exists: bool = False) -> bool:
        with self._write() as conn:
            if provider_properties(conn, provider.name) is not None:
                if if_not_exists:
                    return False
                raise GroupProviderExistsError(provider.name)
            conn.execute(
                "INSERT INTO group_providers (name, type, properties) VALUES (?, ?, ?)",
                (provider.name, provider.type, properties_json(provider.properties)),
            )
            return True

    def drop_group_provider(self, name: str, *, if_exists: bool = False) -> bool:
        """Drop a provider; refused while an integration or a token user names it."""
        with self._write() as conn:
            if provider_properties(conn, name) is None:
                if if_exists:
                    return False
                raise GroupProviderNotFoundError(name)
            refuse_if_provider_used(conn, name)
            conn.execute("DELETE FROM group_providers WHERE name = ?", (name,))
            return True

    # ----------------------------------------------------------------- roles of external groups

    def grant_roles_to_external_group(self, group: str, roles: Sequence[str]) -> tuple[str, ...]:
        """GRANT roles TO EXTERNAL GROUP group; returns those it already held."""
        with self._write() as conn:
            _require_roles(conn, roles)
            held = _external_group_roles(conn, group)
            conn.executemany(
                "INSERT INTO external_group_grants (group_name, role) VALUES (?, ?)",
                [(group, role) for role in dict.fromkeys(roles) if role not in held],
            )
            return tuple(role for role in roles if role in held)

    def revoke_roles_from_external_group(self, group: str, roles: Sequence[str]) -> tuple[str, ...]:
        """REVOKE roles FROM EXTERNAL GROUP group; returns those it did not hold."""
        with self._write() as conn:
            _require_roles(conn, roles)
            held = _external_group_roles(conn, group)
            conn.executemany(
                "DELETE FROM external_group_grants WHERE group_name = ? AND role = ?", [(group, r) for r in roles]
            )
            return tuple(role for role in roles if role not in held)

    # ----------------------------------------------------------------- users

    def create_user(
        self,
        name: str,
        host: str,
        credentials: Credentials,
        *,
        default_roles: Sequence[str] = (),
        if_not_exists: bool = False,
    ) -> bool:
        """Create the identity, granting `default_roles` and making them its default roles.

        Returns False (and changes nothing) if it exists and `if_not_exists`; raises UserExistsError otherwise.
        """
        if name == ROOT_USER:
            raise ProtectedObjectError("the user name 'root' is reserved for the built-in root user")
        with self._write() as conn:
            if _user_exists(conn, name, host):
                if if_not_exists:
                    return False
                raise UserExistsError(name, host)
            _require_roles(conn, default_roles)
            _require_credentials_providers(conn, credentials)
            conn.execute(
                "INSERT INTO users (name, host, plugin, auth_string, plugin_display) VALUES (?, ?, ?, ?, ?)",
                (name, host, credentials.plugin, credentials.auth_string, credentials.plugin_display),
            )
            _insert_grants(conn, name, host, default_roles)
            _replace_default_roles(conn, name, host, default_roles)
            return True

    def alter_credentials(self, name: str, host: str, credentials: Credentials, *, if_exists: bool = False) -> bool:
        """Replace how the identity logs in (password ↔ token both ways). False if absent and `if_exists`."""
        with self._write() as conn:
            _require_credentials_providers(conn, credentials)
            cursor = conn.execute(
                "UPDATE users SET plugin = ?, auth_string = ?, plugin_display = ? WHERE name = ? AND host = ?",
                (credentials.plugin, credentials.auth_string, credentials.plugin_display, name, host),
            )
            if cursor.rowcount == 0:
                if if_exists:
                    return False
                raise UserNotFoundError(name, host)
            return True

    def set_default_roles(self, name: str, host: str, roles: Sequence[str]) -> None:
        """Roles activated at login; each must exist and be granted already. An empty list means none."""
        with self._write() as conn:
            if not _user_exists(conn, name, host):
                raise UserNotFoundError(name, host)
            _require_roles(conn, roles)
            granted = _granted_roles(conn, name, host)
            for role in roles:
                if role not in granted:
                    raise RoleNotGrantedError(role, name, host)
            _replace_default_roles(conn, name, host, roles)

    def replace_password_hash(self, name: str, host: str, old: str, new: str) -> bool:
        """Replace a caching_sha2 identity's stored verifier with `new`, only if it is still `old`.

        For upgrading a verifier after a successful login (see fe.auth.passwords.needs_rehash): a password changed
        in the meantime, here or by another process, is kept. Returns whether it replaced; durable like any write.
        """
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE users SET auth_string = ? WHERE name = ? AND host = ? AND plugin = ? AND auth_string = ?",
                (new, name, host, CACHING_SHA2, old),
            )
            return cursor.rowcount == 1

    def drop_user(self, name: str, host: str, *, if_exists: bool = False) -> bool:
        if name == ROOT_USER and host == ROOT_HOST:
            raise ProtectedObjectError("the root user cannot be dropped")
        with self._write() as conn:
            cursor = conn.execute("DELETE FROM users WHERE name = ? AND host = ?", (name, host))
            if cursor.rowcount == 0:
                if if_exists:
                    return False
                raise UserNotFoundError(name, host)
            return True

    # ----------------------------------------------------------------- roles and grants

    def create_role(self, role: str, *, if_not_exists: bool = False) -> bool:
        # 'ROOT' or 'User_Admin' next to the built-in roles would read like them in every SHOW GRANTS.
        if role.lower() in BUILTIN_ROLES and role not in BUILTIN_ROLES:
            raise ProtectedObjectError(
                f"the role name '{role}' is reserved: it differs from a built-in role only in case"
            )
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM roles WHERE name = ?", (role,)).fetchone():
                if if_not_exists:
                    return False
                raise RoleExistsError(role)
            conn.execute("INSERT INTO roles (name) VALUES (?)", (role,))
            return True

    def drop_role(self, role: str, *, if_exists: bool = False) -> bool:
        """Drop a role; users who held it lose it (and it stops being one of their default roles)."""
        if role in BUILTIN_ROLES:
            raise ProtectedObjectError(f"the built-in role '{role}' cannot be dropped")
        with self._write() as conn:
            cursor = conn.execute("DELETE FROM roles WHERE name = ?", (role,))
            if cursor.rowcount == 0:
                if if_exists:
                    return False
                raise RoleNotFoundError(role)
            return True

    def grant_roles(self, name: str, host: str, roles: Sequence[str]) -> tuple[str, ...]:
        """Grant roles; returns those the identity already held (nothing changes for them)."""
        with self._write() as conn:
            if not _user_exists(conn, name, host):
                raise UserNotFoundError(name, host)
            _require_roles(conn, roles)
            held = _granted_roles(conn, name, host)
            _insert_grants(conn, name, host, [role for role in roles if role not in held])
            return tuple(role for role in roles if role in held)

    def grant_roles_to_role(self, role: str, roles: Sequence[str]) -> tuple[str, ...]:
        """GRANT roles TO ROLE role; returns those it already held directly. A grant that closes a cycle fails."""
        with self._write() as conn:
            _require_roles(conn, [role, *roles])
            held = self._roles_of_role(conn, role, direct=True)
            for granted in roles:
                if granted == role or role in self._roles_of_role(conn, granted, direct=False):
                    raise RoleCycleError(role, granted)
            conn.executemany(
                "INSERT INTO role_inheritance (role, granted_role) VALUES (?, ?)",
                [(role, granted) for granted in dict.fromkeys(roles) if granted not in held],
            )
            return tuple(granted for granted in roles if granted in held)

    def revoke_roles_from_role(self, role: str, roles: Sequence[str]) -> tuple[str, ...]:
        """REVOKE roles FROM ROLE role; returns those it did not hold directly."""
        with self._write() as conn:
            _require_roles(conn, [role, *roles])
            held = self._roles_of_role(conn, role, direct=True)
            conn.executemany(
                "DELETE FROM role_inheritance WHERE role = ? AND granted_role = ?", [(role, r) for r in roles]
            )
            return tuple(granted for granted in roles if granted not in held)

    def roles_of_role(self, role: str) -> tuple[str, ...] | None:
        """The roles granted to `role` directly, by name; None if there is no such role."""
        with self._read() as conn:
            if not conn.execute("SELECT 1 FROM roles WHERE name = ?", (role,)).fetchone():
                return None
            return tuple(sorted(self._roles_of_role(conn, role, direct=True)))

    @staticmethod
    def _roles_of_role(conn: sqlite3.Connection, role: str, *, direct: bool) -> set[str]:
        if direct:
            rows = conn.execute("SELECT granted_role FROM role_inheritance WHERE role = ?", (role,))
        else:
            rows = conn.execute(_ROLES_HELD_BY_ROLE, (role,))
        return {granted for (granted,) in rows}

    def revoke_roles(self, name: str, host: str, roles: Sequence[str]) -> tuple[str, ...]:
        """Revoke roles (and drop them from the default roles); returns those that were not granted."""
        if name == ROOT_USER and host == ROOT_HOST and ROOT_ROLE in roles:
            raise ProtectedObjectError("the role 'root' cannot be revoked from the root user")
        with self._write() as conn:
            if not _user_exists(conn, name, host):
                raise UserNotFoundError(name, host)
            _require_roles(conn, roles)
            held = _granted_roles(conn, name, host)
            conn.executemany(
                "DELETE FROM role_grants WHERE user_name = ? AND user_host = ? AND role = ?",
                [(name, host, role) for role in roles],
            )
            return tuple(role for role in roles if role not in held)

    # ----------------------------------------------------------------- transactions

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One snapshot for several queries (WAL readers never wait for writers)."""
        with self._lock, _operational_errors():
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: takes the write lock up front (waiting up to the busy timeout), commits durably.

        Blocks its thread while another connection holds the lock: never call it on the event loop.
        """
        with self._write_lock, _operational_errors():
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield self._writer
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
            self._writer.execute("COMMIT")
            with self._cache_lock:
                self._writes += 1
                self._login_cache.clear()
                self._security = None

    def _account_from_row(self, conn: sqlite3.Connection, row: Sequence[str]) -> Account:
        name, host = row[0], row[1]
        defaults = [
            role
            for (role,) in conn.execute(
                "SELECT role FROM default_roles WHERE user_name = ? AND user_host = ? ORDER BY position",
                (name, host),
            )
        ]
        effective = [role for (role,) in conn.execute(_EFFECTIVE_ROLES, (name, host))]
        return _account(row, _granted_roles(conn, name, host), defaults, effective)


# --------------------------------------------------------------------- helpers


def _account(
    row: Sequence[str], roles: Iterable[str], default_roles: Iterable[str], effective_roles: Iterable[str] = ()
) -> Account:
    name, host, plugin, auth_string, plugin_display, created_at = row
    direct = frozenset(roles)
    return Account(
        name=name,
        host=host,
        plugin=plugin,
        auth_string=auth_string,
        plugin_display=plugin_display,
        roles=direct,
        default_roles=tuple(default_roles),
        created_at=created_at,
        effective_roles=direct | frozenset(effective_roles),
    )


_EFFECTIVE_ROLES = """
    WITH RECURSIVE held(role) AS (
        SELECT role FROM role_grants WHERE user_name = ? AND user_host = ?
        UNION
        SELECT inheritance.granted_role FROM role_inheritance AS inheritance JOIN held ON inheritance.role = held.role
    )
    SELECT role FROM held
"""

_ROLES_HELD_BY_ROLE = """
    WITH RECURSIVE held(role) AS (
        SELECT granted_role FROM role_inheritance WHERE role = ?
        UNION
        SELECT inheritance.granted_role FROM role_inheritance AS inheritance JOIN held ON inheritance.role = held.role
    )
    SELECT role FROM held
"""


def _user_exists(conn: sqlite3.Connection, name: str, host: str) -> bool:
    return conn.execute("SELECT 1 FROM users WHERE name = ? AND host = ?", (name, host)).fetchone() is not None


def _granted_roles(conn: sqlite3.Connection, name: str, host: str) -> set[str]:
    rows = conn.execute("SELECT role FROM role_grants WHERE user_name = ? AND user_host = ?", (name, host))
    return {role for (role,) in rows}


def _require_roles(conn: sqlite3.Connection, roles: Iterable[str]) -> None:
    for role in roles:
        if conn.execute("SELECT 1 FROM roles WHERE name = ?", (role,)).fetchone() is None:
            raise RoleNotFoundError(role)


def _require_credentials_providers(conn: sqlite3.Connection, credentials: Credentials) -> None:
    if credentials.plugin in TOKEN_PLUGINS:
        require_group_providers(conn, token_user_providers(credentials.auth_string))


def _external_group_roles(conn: sqlite3.Connection, group: str) -> set[str]:
    return {role for (role,) in conn.execute("SELECT role FROM external_group_grants WHERE group_name = ?", (group,))}


def _insert_grants(conn: sqlite3.Connection, name: str, host: str, roles: Iterable[str]) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO role_grants (user_name, user_host, role) VALUES (?, ?, ?)",
        [(name, host, role) for role in roles],
    )


def _replace_default_roles(conn: sqlite3.Connection, name: str, host: str, roles: Sequence[str]) -> None:
    conn.execute("DELETE FROM default_roles WHERE user_name = ? AND user_host = ?", (name, host))
    conn.executemany(
        "INSERT INTO default_roles (user_name, user_host, role, position) VALUES (?, ?, ?, ?)",
        [(name, host, role, position) for position, role in enumerate(dict.fromkeys(roles))],
    )


@contextlib.contextmanager
def _operational_errors() -> Iterator[None]:
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise CatalogBusyError(f"the user catalog is unavailable: {exc}") from exc


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise CatalogError(f"cannot open the user catalog {path}: {exc}") from exc
    return conn


def _configure(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = FULL")


def _check_and_prepare(conn: sqlite3.Connection, path: Path) -> None:
    advice = "restore it from a backup, or move it away to start with a new catalog"
    try:
        _configure(conn)
        problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise CatalogError(f"the user catalog {path} is corrupt ({'; '.join(problems[:3])}); {advice}")
        application_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = schema_version(conn)
        if application_id != APPLICATION_ID or version == 0:
            raise CatalogError(f"{path} is not an fe user catalog; {advice}")
        if version > SCHEMA_VERSION:
            raise CatalogError(
                f"the user catalog {path} has schema version {version}, newer than this fe understands "
                f"({SCHEMA_VERSION}); run a newer fe"
            )
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise CatalogError(f"cannot put the user catalog {path} in WAL mode (got {mode})")
        migrate(conn)
        root = conn.execute("SELECT 1 FROM users WHERE name = ? AND host = ?", (ROOT_USER, ROOT_HOST)).fetchone()
        if root is None:
            raise CatalogError(f"the user catalog {path} has no root user; {advice}")
    except CatalogError:
        raise
    except sqlite3.DatabaseError as exc:
        raise CatalogError(f"the user catalog {path} is unreadable or corrupt ({exc}); {advice}") from exc


def _create_catalog_file(path: Path, root_password: str) -> None:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        conn = sqlite3.connect(temporary, isolation_level=None)
        try:
            _configure(conn)
            migrate(conn)
            root = Credentials(CACHING_SHA2, hash_password(root_password), "")  # shown as NULL, as in StarRocks
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO users (name, host, plugin, auth_string, plugin_display) VALUES (?, ?, ?, ?, ?)",
                (ROOT_USER, ROOT_HOST, root.plugin, root.auth_string, root.plugin_display),
            )
            _insert_grants(conn, ROOT_USER, ROOT_HOST, [ROOT_ROLE])
            _replace_default_roles(conn, ROOT_USER, ROOT_HOST, [ROOT_ROLE])
            conn.execute("COMMIT")
        finally:
            conn.close()
        os.chmod(temporary, 0o600)
        _fsync(temporary)
        # link, not rename: if another worker created the catalog meanwhile, keep theirs.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
        _fsync(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
