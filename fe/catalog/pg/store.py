"""The user catalog in PostgreSQL, shared by fe nodes on several hosts: the same public methods and meaning as the
SQLite catalog (fe/catalog/store.py), so the SQL statements and the login code use either unchanged.

Durability: every write is one transaction, committed before the method returns (PostgreSQL's default
synchronous_commit = on, which each connection turns back on if the server's default turned it off). Writes are
serialised by a row lock on the change counter taken first, as SQLite's BEGIN IMMEDIATE does, so each write's
checks and changes see every write committed before it, on any node.

Other nodes' changes: a ChangeWatcher thread LISTENs for the notifications the tables' triggers send and reads the
change counter every second; each change moves `change_marker()`, and the login cache starts over.

PostgreSQL unreachable: the watcher notices (its connection breaks) and the catalog is "unavailable" until it
connects again. Meanwhile writes and reads raise CatalogUnavailableError at once (a CatalogBusyError: SQL answers
it with an ERR), and logins are answered from the login cache as it stood: accounts looked up before go on,
a name never looked up is unknown. Once the watcher is back it makes a new connection pool and moves the marker:
caches start over from what PostgreSQL holds now, with no restart.

Threads: every method is safe from any thread. Writes block their thread (run them off the event loop, as the SQL
executor does). Login lookups run on the event loop: a cache hit does no I/O; a miss queries PostgreSQL on a
small thread pool and waits at most `lookup_timeout` for it, so a silent network never stalls the loop for long.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from fe.auth.groups import GroupProvider
from fe.auth.passwords import hash_password
from fe.auth.token_spec import TOKEN_PLUGINS
from fe.catalog import identity
from fe.catalog.account import BUILTIN_ROLES, CACHING_SHA2, ROOT_HOST, ROOT_ROLE, ROOT_USER, Account, Credentials
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
from fe.catalog.pg.errors import CatalogUnavailableError
from fe.catalog.pg.location import PostgresLocation
from fe.catalog.pg.schema import migrate
from fe.catalog.pg.security import as_sqlite
from fe.catalog.pg.watcher import ChangeWatcher
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

log = logging.getLogger("fe.catalog")

Connection = psycopg.Connection[Any]

POOL_MAX_SIZE = 8  # the SQL executor's 4 threads, login lookups, password upgrades, readiness checks
# How long a statement waits for a pooled connection, and for another writer's lock (lock_timeout): SQLite's
# busy timeout.
WRITE_TIMEOUT_SECONDS = 5.0
LOOKUP_TIMEOUT_SECONDS = 1.0
_LOGIN_CACHE_SIZE = 10_000
_UNCACHED_WARNING_SECONDS = 10.0

_ACCOUNT_COLUMNS = """
    u.name, u.host, u.plugin, u.auth_string, u.plugin_display, u.created_at,
    ARRAY(SELECT g.role FROM role_grants AS g WHERE g.user_name = u.name AND g.user_host = u.host),
    ARRAY(SELECT d.role FROM default_roles AS d WHERE d.user_name = u.name AND d.user_host = u.host
          ORDER BY d.position)
"""
# One round trip for an account: its row, direct and default roles, and every role those hold in turn.
_ACCOUNT_QUERY = f"""
    SELECT {_ACCOUNT_COLUMNS},
        ARRAY(WITH RECURSIVE held(role) AS (
                  SELECT g.role FROM role_grants AS g WHERE g.user_name = u.name AND g.user_host = u.host
                  UNION
                  SELECT i.granted_role FROM role_inheritance AS i JOIN held ON i.role = held.role
              )
              SELECT held.role FROM held)
    FROM users AS u
"""
_ACCOUNTS_BY_NAME = _ACCOUNT_QUERY + " WHERE u.name = %s"
_ACCOUNT_BY_IDENTITY = _ACCOUNT_QUERY + " WHERE u.name = %s AND u.host = %s"
_ALL_ACCOUNTS = f"SELECT {_ACCOUNT_COLUMNS} FROM users AS u ORDER BY u.name, u.host"

_ROLES_HELD_BY_ROLES = """
    WITH RECURSIVE held(role) AS (
        SELECT granted_role FROM role_inheritance WHERE role = ANY(%s)
        UNION
        SELECT inheritance.granted_role FROM role_inheritance AS inheritance JOIN held ON inheritance.role = held.role
    )
    SELECT role FROM held
"""


class PostgresCatalog:
    def __init__(
        self,
        location: PostgresLocation,
        *,
        on_notification: Callable[[], None] | None = None,
        poll_seconds: float = 1.0,
        pool_max_size: int = POOL_MAX_SIZE,
        lookup_timeout: float = LOOKUP_TIMEOUT_SECONDS,
    ) -> None:
        """Use `open()`: it checks and migrates the database first."""
        self.location = location
        self._pool_max_size = pool_max_size
        self._lookup_timeout = lookup_timeout
        self._pool: ConnectionPool[Connection] | None = self._new_pool()
        self._pool_lock = threading.Lock()
        self._lookups = ThreadPoolExecutor(max_workers=2, thread_name_prefix="fe-catalog-lookup")
        self._cache_lock = threading.Lock()
        # Logins look the same few accounts up again and again: remember each answer until the catalog changes,
        # here (cleared on commit) or on another node (the watcher moves the generation).
        self._login_cache: dict[tuple[str, str], Account | None] = {}
        self._login_cache_version: tuple[int, int] = (-1, -1)
        self._generation = 0
        self._writes = 0
        self._available = False
        self._unavailable_reason = "not connected yet"
        self._was_lost = False
        self._last_uncached_warning = 0.0
        self._domain_hosts: set[str] = set()
        # The chain logins walk while the catalog stores none (the authentication_chain setting).
        self._default_chain: tuple[str, ...] = DEFAULT_CHAIN
        self._security: SecuritySnapshot | None = None
        self._security_version = -1
        self._domain_addresses: Callable[[str], Collection[str]] = lambda _domain: ()
        self._domain_version: Callable[[], int] = lambda: 0
        self._watcher = ChangeWatcher(
            self._connect,
            on_change=self._changed,
            on_connected=self._connected,
            on_lost=self._lost,
            on_notification=on_notification,
            poll_seconds=poll_seconds,
        )

    # ----------------------------------------------------------------- opening and closing

    @classmethod
    def open(
        cls,
        location: PostgresLocation,
        *,
        root_password: str = "",
        on_notification: Callable[[], None] | None = None,
        poll_seconds: float = 1.0,
        pool_max_size: int = POOL_MAX_SIZE,
        lookup_timeout: float = LOOKUP_TIMEOUT_SECONDS,
    ) -> PostgresCatalog:
        """Connect, create the catalog (with root) in an empty database or migrate an older one, and start following
        changes; raise CatalogError if PostgreSQL cannot be reached or the database is unusable.

        `root_password` is used only when the catalog is created; later starts leave root's password alone.
        """
        where = location.describe()
        try:
            with psycopg.connect(**location.connect_kwargs(), autocommit=True) as conn:
                migrate(conn, root=lambda: Credentials(CACHING_SHA2, hash_password(root_password), ""))
                _check_ready(conn)
        except CatalogError as exc:
            raise CatalogError(f"the user catalog {where}: {exc}") from None
        except psycopg.Error as exc:
            raise CatalogError(f"cannot open the user catalog {where}: {location.mask(_first_line(exc))}") from None
        catalog = cls(
            location,
            on_notification=on_notification,
            poll_seconds=poll_seconds,
            pool_max_size=pool_max_size,
            lookup_timeout=lookup_timeout,
        )
        catalog._start()
        return catalog

    def _start(self) -> None:
        pool = self._pool
        assert pool is not None
        pool.open(wait=False)
        self._watcher.start()
        if not self._watcher.wait_connected(float(self.location.connect_kwargs()["connect_timeout"]) + 1.0):
            reason = self._unavailable_reason
            self.close()
            raise CatalogError(f"cannot open the user catalog {self.location.describe()}: {reason}")

    def close(self) -> None:
        self._watcher.stop()
        self._lookups.shutdown(wait=False, cancel_futures=True)
        with self._pool_lock:
            pool, self._pool = self._pool, None
            self._available = False
            self._unavailable_reason = "the catalog is closed"
        if pool is not None:
            pool.close()

    def __enter__(self) -> PostgresCatalog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def available(self) -> bool:
        """Whether PostgreSQL answers, as this node last saw it (no I/O)."""
        return self._available

    def ping(self) -> None:
        """One round trip to PostgreSQL; raises CatalogUnavailableError when it does not answer (for /readyz)."""
        with self._read() as conn:
            conn.execute("SELECT 1")

    # ----------------------------------------------------------------- the watcher's callbacks

    def _connect(self) -> Connection:
        return psycopg.connect(**self.location.connect_kwargs(), autocommit=True)

    def _changed(self) -> None:
        with self._cache_lock:
            self._generation += 1
            self._login_cache.clear()
            refresh = self._security_version >= 0
        if refresh:
            with contextlib.suppress(RuntimeError):  # closed meanwhile
                self._lookups.submit(self._refresh_security)

    def _refresh_security(self) -> None:
        with contextlib.suppress(CatalogBusyError):
            self.security_snapshot()

    def _lost(self, reason: str, first: bool) -> None:
        reason = self.location.mask(reason)
        with self._pool_lock:
            was_available = self._available
            self._available = False
            self._was_lost = True
            self._unavailable_reason = f"{self.location.describe()}: {reason}"
            pool, self._pool = self._pool, None
        if pool is not None:
            threading.Thread(target=pool.close, name="fe-catalog-pool-close", daemon=True).start()
        if first and was_available:
            log.warning(
                "the user catalog %s does not answer (%s): logins of accounts this node has looked up go on from "
                "its cache; account statements are refused until it is back",
                self.location.describe(), reason,
            )  # fmt: skip

    def _connected(self) -> None:
        with self._pool_lock:
            if self._pool is None:  # closed when the connection was lost: connections it held are dead
                self._pool = self._new_pool()
                self._pool.open(wait=False)
            self._available = True
            was_lost, self._was_lost = self._was_lost, False
        if was_lost:
            log.info("the user catalog %s answers again; caches start over", self.location.describe())

    def _new_pool(self) -> ConnectionPool[Connection]:
        return ConnectionPool(
            "",
            kwargs={**self.location.connect_kwargs(), "autocommit": True},
            min_size=1,
            max_size=self._pool_max_size,
            open=False,
            name="fe-catalog",
            timeout=WRITE_TIMEOUT_SECONDS,
            configure=_configure,
            check=ConnectionPool.check_connection,
        )

    # ----------------------------------------------------------------- reads

    def find_login_account(self, name: str, client_ip: str, data_version: int | None = None) -> Account | None:
        """The identity a login by `name` from `client_ip` uses: exact address, then domain, then pattern, then '%'.

        `data_version` is the first member of a `change_marker()` the caller has just read. While PostgreSQL is
        unreachable, answers come from the cache; a lookup it does not hold answers None (unknown).
        """
        key = (name, client_ip)
        if data_version is None:
            data_version = self._generation
        version = (data_version, self._domain_version())
        with self._cache_lock:
            if version != self._login_cache_version:
                self._login_cache.clear()
                self._login_cache_version = version
            elif key in self._login_cache:
                return self._login_cache[key]
            writes = self._writes
        if not self._available:
            self._warn_uncached(name)
            return None
        client = identity.normalize_client_ip(client_ip)
        try:
            account = self._lookups.submit(self._find_login_account, name, client).result(self._lookup_timeout)
        except (CatalogBusyError, FutureTimeout, RuntimeError):  # RuntimeError: closed meanwhile
            self._warn_uncached(name)
            return None
        with self._cache_lock:
            # Kept only if nothing changed meanwhile (a write here, or a newer version seen by another lookup).
            if self._login_cache_version == version and self._writes == writes:
                if len(self._login_cache) >= _LOGIN_CACHE_SIZE:
                    self._login_cache.clear()
                self._login_cache[key] = account
        return account

    def _find_login_account(self, name: str, client: str) -> Account | None:
        with self._read(timeout=self._lookup_timeout) as conn:
            rows = conn.execute(_ACCOUNTS_BY_NAME, (name,)).fetchall()
        ranked = []
        for row in rows:
            rank = identity.match_rank(row[1], client, self._domain_addresses)
            if rank is not None:
                ranked.append((rank, row[1], row))
        if not ranked:
            return None
        ranked.sort()
        return _account(ranked[0][2])

    def _warn_uncached(self, name: str) -> None:
        now = time.monotonic()
        if now - self._last_uncached_warning >= _UNCACHED_WARNING_SECONDS:
            self._last_uncached_warning = now
            log.warning(
                "the user catalog does not answer (%s): a login as a name this node has not looked up before "
                "(%r) is answered as an unknown user",
                self._unavailable_reason, name,
            )  # fmt: skip

    def set_domain_resolver(self, addresses: Callable[[str], Collection[str]], version: Callable[[], int]) -> None:
        """Where login matching finds a domain's addresses; `version` changes whenever any of them change."""
        with self._cache_lock:
            self._domain_addresses = addresses
            self._domain_version = version
            self._login_cache.clear()

    def change_marker(self) -> tuple[int, int]:
        """Changes whenever the catalog does, here or on another node (for caches kept outside it). No I/O."""
        return self._generation, self._writes

    def domain_hosts(self) -> set[str]:
        """The domains of all domain identities ('name'@['domain']); while PostgreSQL is unreachable, the last
        ones read (the domain resolver keeps refreshing their addresses)."""
        try:
            with self._read() as conn:
                rows = conn.execute("SELECT DISTINCT host FROM users WHERE host LIKE '[%]'").fetchall()
        except CatalogBusyError:
            return set(self._domain_hosts)
        self._domain_hosts = {identity.domain_of(host) for (host,) in rows if identity.is_domain(host)}
        return set(self._domain_hosts)

    def get_account(self, name: str, host: str) -> Account | None:
        with self._read() as conn:
            row = conn.execute(_ACCOUNT_BY_IDENTITY, (name, host)).fetchone()
        return None if row is None else _account(row)

    def list_accounts(self) -> list[Account]:
        with self._read() as conn:
            rows = conn.execute(_ALL_ACCOUNTS).fetchall()
        return [_account(row) for row in rows]

    def list_roles(self) -> list[tuple[str, bool]]:
        """(role, is built-in), by name."""
        with self._read() as conn:
            rows = conn.execute("SELECT name, builtin FROM roles ORDER BY name").fetchall()
        return [(name, bool(builtin)) for name, builtin in rows]

    def roles_with_inherited(self, roles: Iterable[str]) -> frozenset[str]:
        """`roles` and every role they hold in turn through role-to-role grants (what a holder of them holds)."""
        held = set(roles)
        with self._read() as conn:
            rows = conn.execute(_ROLES_HELD_BY_ROLES, (list(held),)).fetchall()
        return frozenset(held | {role for (role,) in rows})

    # ----------------------------------------------------------------- the authentication chain's reads

    def security_snapshot(self, data_version: int | None = None) -> SecuritySnapshot:
        """The chain, integrations, group providers and external group grants, as one consistent view; cached
        until the catalog changes. `data_version`: as for find_login_account.

        Once read, it is read again in the background after every change, so that while PostgreSQL is unreachable
        the current one is at hand; without one, raises CatalogUnavailableError."""
        if data_version is None:
            data_version = self._generation
        with self._cache_lock:
            snapshot = self._security
            if snapshot is not None and self._security_version == data_version:
                return snapshot
            writes, default_chain = self._writes, self._default_chain
        with self._read() as conn, conn.transaction():
            # One snapshot for the several queries.
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            snapshot = load_snapshot(as_sqlite(conn), default_chain)
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
            if integration_properties(as_sqlite(conn), integration.name) is not None:
                if if_not_exists:
                    return False
                raise IntegrationExistsError(integration.name)
            require_group_providers(as_sqlite(conn), integration.group_providers)
            conn.execute(
                "INSERT INTO security_integrations (name, type, properties) VALUES (%s, %s, %s)",
                (integration.name, integration.type, properties_json(integration.properties)),
            )
            return True

    def alter_security_integration(
        self, name: str, rewrite: Callable[[list[tuple[str, str]]], SecurityIntegration]
    ) -> SecurityIntegration:
        """Replace an integration by `rewrite(its current properties)`, run inside the write transaction (two
        ALTERs at once, on any nodes, both take effect); whatever `rewrite` raises leaves it unchanged."""
        with self._write() as conn:
            current = integration_properties(as_sqlite(conn), name)
            if current is None:
                raise IntegrationNotFoundError(name)
            updated = rewrite(current)
            require_group_providers(as_sqlite(conn), updated.group_providers)
            conn.execute(
                "UPDATE security_integrations SET properties = %s WHERE name = %s",
                (properties_json(updated.properties), name),
            )
            return updated

    def drop_security_integration(self, name: str, *, if_exists: bool = False) -> bool:
        """Drop an integration; refused while the authentication chain names it."""
        with self._write() as conn:
            if integration_properties(as_sqlite(conn), name) is None:
                if if_exists:
                    return False
                raise IntegrationNotFoundError(name)
            refuse_if_in_chain(as_sqlite(conn), name, self._default_chain)
            conn.execute("DELETE FROM security_integrations WHERE name = %s", (name,))
            return True

    def set_authentication_chain(self, chain: Sequence[str]) -> None:
        """Persist the chain: `native` once, and integrations that exist, each once."""
        problem = chain_problem(chain)
        if problem is not None:
            raise InvalidChainError(problem)
        with self._write() as conn:
            require_integrations(as_sqlite(conn), chain)
            conn.execute(
                """
                INSERT INTO frontend_config (key, value) VALUES (%s, %s)
                ON CONFLICT (key) DO UPDATE
                SET value = excluded.value,
                    updated_at = to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
                """,
                (CHAIN_KEY, ",".join(chain)),
            )

    # ----------------------------------------------------------------- group providers

    def create_group_provider(self, provider: GroupProvider, *, if_not_exists: bool = False) -> bool:
        with self._write() as conn:
            if provider_properties(as_sqlite(conn), provider.name) is not None:
                if if_not_exists:
                    return False
                raise GroupProviderExistsError(provider.name)
            conn.execute(
                "INSERT INTO group_providers (name, type, properties) VALUES (%s, %s, %s)",
                (provider.name, provider.type, properties_json(provider.properties)),
            )
            return True

    def drop_group_provider(self, name: str, *, if_exists: bool = False) -> bool:
        """Drop a provider; refused while an integration or a token user names it."""
        with self._write() as conn:
            if provider_properties(as_sqlite(conn), name) is None:
                if if_exists:
                    return False
                raise GroupProviderNotFoundError(name)
            refuse_if_provider_used(as_sqlite(conn), name)
            conn.execute("DELETE FROM group_providers WHERE name = %s", (name,))
            return True

    # ----------------------------------------------------------------- roles of external groups

    def grant_roles_to_external_group(self, group: str, roles: Sequence[str]) -> tuple[str, ...]:
        """GRANT roles TO EXTERNAL GROUP group; returns those it already held."""
        with self._write() as conn:
            _require_roles(conn, roles)
            held = _external_group_roles(conn, group)
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO external_group_grants (group_name, role) VALUES (%s, %s)",
                    [(group, role) for role in dict.fromkeys(roles) if role not in held],
                )
            return tuple(role for role in roles if role in held)

    def revoke_roles_from_external_group(self, group: str, roles: Sequence[str]) -> tuple[str, ...]:
        """REVOKE roles FROM EXTERNAL GROUP group; returns those it did not hold."""
        with self._write() as conn:
            _require_roles(conn, roles)
            held = _external_group_roles(conn, group)
            with conn.cursor() as cursor:
                cursor.executemany(
                    "DELETE FROM external_group_grants WHERE group_name = %s AND role = %s",
                    [(group, r) for r in roles],
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
                "INSERT INTO users (name, host, plugin, auth_string, plugin_display) VALUES (%s, %s, %s, %s, %s)",
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
                "UPDATE users SET plugin = %s, auth_string = %s, plugin_display = %s WHERE name = %s AND host = %s",
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

        For upgrading a verifier after a successful login: a password changed in the meantime, here or on another
        node, is kept. Returns whether it replaced; durable like any write.
        """
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE users SET auth_string = %s WHERE name = %s AND host = %s AND plugin = %s AND auth_string = %s",
                (new, name, host, CACHING_SHA2, old),
            )
            return cursor.rowcount == 1

    def drop_user(self, name: str, host: str, *, if_exists: bool = False) -> bool:
        if name == ROOT_USER and host == ROOT_HOST:
            raise ProtectedObjectError("the root user cannot be dropped")
        with self._write() as conn:
            cursor = conn.execute("DELETE FROM users WHERE name = %s AND host = %s", (name, host))
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
            if _role_exists(conn, role):
                if if_not_exists:
                    return False
                raise RoleExistsError(role)
            conn.execute("INSERT INTO roles (name) VALUES (%s)", (role,))
            return True

    def drop_role(self, role: str, *, if_exists: bool = False) -> bool:
        """Drop a role; users who held it lose it (and it stops being one of their default roles)."""
        if role in BUILTIN_ROLES:
            raise ProtectedObjectError(f"the built-in role '{role}' cannot be dropped")
        with self._write() as conn:
            cursor = conn.execute("DELETE FROM roles WHERE name = %s", (role,))
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
            held = _roles_of_role(conn, role, direct=True)
            for granted in roles:
                if granted == role or role in _roles_of_role(conn, granted, direct=False):
                    raise RoleCycleError(role, granted)
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO role_inheritance (role, granted_role) VALUES (%s, %s)",
                    [(role, granted) for granted in dict.fromkeys(roles) if granted not in held],
                )
            return tuple(granted for granted in roles if granted in held)

    def revoke_roles_from_role(self, role: str, roles: Sequence[str]) -> tuple[str, ...]:
        """REVOKE roles FROM ROLE role; returns those it did not hold directly."""
        with self._write() as conn:
            _require_roles(conn, [role, *roles])
            held = _roles_of_role(conn, role, direct=True)
            with conn.cursor() as cursor:
                cursor.executemany(
                    "DELETE FROM role_inheritance WHERE role = %s AND granted_role = %s", [(role, r) for r in roles]
                )
            return tuple(granted for granted in roles if granted not in held)

    def roles_of_role(self, role: str) -> tuple[str, ...] | None:
        """The roles granted to `role` directly, by name; None if there is no such role."""
        with self._read() as conn:
            if not _role_exists(conn, role):
                return None
            return tuple(sorted(_roles_of_role(conn, role, direct=True)))

    def revoke_roles(self, name: str, host: str, roles: Sequence[str]) -> tuple[str, ...]:
        """Revoke roles (and drop them from the default roles); returns those that were not granted."""
        if name == ROOT_USER and host == ROOT_HOST and ROOT_ROLE in roles:
            raise ProtectedObjectError("the role 'root' cannot be revoked from the root user")
        with self._write() as conn:
            if not _user_exists(conn, name, host):
                raise UserNotFoundError(name, host)
            _require_roles(conn, roles)
            held = _granted_roles(conn, name, host)
            with conn.cursor() as cursor:
                cursor.executemany(
                    "DELETE FROM role_grants WHERE user_name = %s AND user_host = %s AND role = %s",
                    [(name, host, role) for role in roles],
                )
            return tuple(role for role in roles if role not in held)

    # ----------------------------------------------------------------- transactions

    @contextlib.contextmanager
    def _read(self, timeout: float = WRITE_TIMEOUT_SECONDS) -> Iterator[Connection]:
        """A connection for reads in autocommit mode: one statement is one consistent snapshot."""
        pool = self._usable_pool()
        with self._errors(), pool.connection(timeout=timeout) as conn:
            yield conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction, serialised with every other writer (any node), committed before it returns.

        Blocks its thread while another writer holds the counter's row lock (at most lock_timeout): never call it
        on the event loop.
        """
        pool = self._usable_pool()
        with self._errors(), pool.connection() as conn:
            with conn.transaction():
                conn.execute("SELECT version FROM fe_change_counter WHERE id = 1 FOR UPDATE")
                yield conn
                # The tables' triggers moved the counter; where it ends is where this write left the catalog.
                row = conn.execute("SELECT version FROM fe_change_counter WHERE id = 1").fetchone()
            with self._cache_lock:
                self._writes += 1
                self._login_cache.clear()
                self._security = None
        if row is not None:
            self._watcher.saw(int(row[0]))

    def _usable_pool(self) -> ConnectionPool[Connection]:
        pool = self._pool
        if pool is None or not self._available:
            raise CatalogUnavailableError(f"the catalog is unavailable: {self._unavailable_reason}")
        return pool

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (pg_errors.LockNotAvailable, pg_errors.QueryCanceled, pg_errors.TransactionRollback) as exc:
            raise CatalogBusyError(f"the catalog is busy: {self.location.mask(_first_line(exc))}") from None
        except PoolTimeout:
            raise CatalogUnavailableError(
                f"the catalog is unavailable: no connection to {self.location.describe()} "
                f"within {WRITE_TIMEOUT_SECONDS:g} s"
            ) from None
        except PoolClosed:
            raise CatalogUnavailableError(f"the catalog is unavailable: {self._unavailable_reason}") from None
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise CatalogUnavailableError(
                f"the catalog is unavailable: {self.location.describe()}: {self.location.mask(_first_line(exc))}"
            ) from None


# --------------------------------------------------------------------- helpers


def _configure(conn: Connection) -> None:
    """Each pooled connection: waits bounded like SQLite's busy timeout, and durable commits whatever the server's
    default (synchronous_commit = off would lose OK'd writes in a crash)."""
    conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(f"{int(WRITE_TIMEOUT_SECONDS * 1000)}ms")))
    conn.execute("SET statement_timeout = '30s'")
    row = conn.execute("SELECT current_setting('synchronous_commit')").fetchone()
    if row is not None and row[0] == "off":
        conn.execute("SET synchronous_commit = on")


def _check_ready(conn: Connection) -> None:
    row = conn.execute("SELECT 1 FROM users WHERE name = %s AND host = %s", (ROOT_USER, ROOT_HOST)).fetchone()
    if row is None:
        raise CatalogError("it has no root user; restore it from a backup, or point fe at an empty database")
    fsync = conn.execute("SELECT current_setting('fsync')").fetchone()
    if fsync is not None and fsync[0] == "off":
        log.warning("the user catalog's PostgreSQL runs with fsync = off: a crash of its host may lose OK'd writes")


def _account(row: Sequence[Any]) -> Account:
    name, host, plugin, auth_string, plugin_display, created_at, roles, default_roles = row[:8]
    direct = frozenset(roles)
    effective = frozenset(row[8]) if len(row) > 8 else frozenset()
    return Account(
        name=name,
        host=host,
        plugin=plugin,
        auth_string=auth_string,
        plugin_display=plugin_display,
        roles=direct,
        default_roles=tuple(default_roles),
        created_at=created_at,
        effective_roles=direct | effective,
    )


def _user_exists(conn: Connection, name: str, host: str) -> bool:
    return conn.execute("SELECT 1 FROM users WHERE name = %s AND host = %s", (name, host)).fetchone() is not None


def _role_exists(conn: Connection, role: str) -> bool:
    return conn.execute("SELECT 1 FROM roles WHERE name = %s", (role,)).fetchone() is not None


def _granted_roles(conn: Connection, name: str, host: str) -> set[str]:
    rows = conn.execute("SELECT role FROM role_grants WHERE user_name = %s AND user_host = %s", (name, host))
    return {role for (role,) in rows}


def _roles_of_role(conn: Connection, role: str, *, direct: bool) -> set[str]:
    if direct:
        rows = conn.execute("SELECT granted_role FROM role_inheritance WHERE role = %s", (role,))
    else:
        rows = conn.execute(_ROLES_HELD_BY_ROLES, ([role],))
    return {granted for (granted,) in rows}


def _require_roles(conn: Connection, roles: Iterable[str]) -> None:
    for role in roles:
        if not _role_exists(conn, role):
            raise RoleNotFoundError(role)


def _require_credentials_providers(conn: Connection, credentials: Credentials) -> None:
    if credentials.plugin in TOKEN_PLUGINS:
        require_group_providers(as_sqlite(conn), token_user_providers(credentials.auth_string))


def _external_group_roles(conn: Connection, group: str) -> set[str]:
    rows = conn.execute("SELECT role FROM external_group_grants WHERE group_name = %s", (group,))
    return {role for (role,) in rows}


def _insert_grants(conn: Connection, name: str, host: str, roles: Iterable[str]) -> None:
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO role_grants (user_name, user_host, role) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            [(name, host, role) for role in roles],
        )


def _replace_default_roles(conn: Connection, name: str, host: str, roles: Sequence[str]) -> None:
    conn.execute("DELETE FROM default_roles WHERE user_name = %s AND user_host = %s", (name, host))
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO default_roles (user_name, user_host, role, position) VALUES (%s, %s, %s, %s)",
            [(name, host, role, position) for position, role in enumerate(dict.fromkeys(roles))],
        )


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
