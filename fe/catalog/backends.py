"""Which catalog a server opens: the embedded SQLite file (the default) or PostgreSQL, from the settings.

    catalog = postgresql://fe@db.example.com:5432/fe        # fe.conf, or FE_CATALOG
    catalog_password_file = conf/catalog.password           # or FE_CATALOG_PASSWORD in the environment

An empty `catalog` (or `sqlite`) keeps `<home>/meta/catalog.db`. Both catalogs have the methods of
`CatalogBackend`, with the same meaning; the rest of the server needs nothing else.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from fe.auth.groups import GroupProvider
from fe.catalog.account import Account, Credentials
from fe.catalog.errors import CatalogError
from fe.catalog.integration import SecurityIntegration
from fe.catalog.security import SecuritySnapshot
from fe.catalog.store import Catalog

log = logging.getLogger("fe.catalog")

SQLITE_CATALOG_FILE = "catalog.db"
LOCATION_ENV = "FE_CATALOG"
PASSWORD_FILE_ENV = "FE_CATALOG_PASSWORD_FILE"


class CatalogBackend(Protocol):
    """What the server uses of a catalog (fe/catalog/store.py documents each method)."""

    def close(self) -> None: ...
    def find_login_account(self, name: str, client_ip: str, data_version: int | None = None) -> Account | None: ...
    def set_domain_resolver(self, addresses: Callable[[str], Collection[str]], version: Callable[[], int]) -> None: ...
    def change_marker(self) -> tuple[int, int]: ...
    def domain_hosts(self) -> set[str]: ...
    def get_account(self, name: str, host: str) -> Account | None: ...
    def list_accounts(self) -> list[Account]: ...
    def list_roles(self) -> list[tuple[str, bool]]: ...
    def roles_with_inherited(self, roles: Iterable[str]) -> frozenset[str]: ...
    def create_user(
        self,
        name: str,
        host: str,
        credentials: Credentials,
        *,
        default_roles: Sequence[str] = (),
        if_not_exists: bool = False,
    ) -> bool: ...
    def alter_credentials(self, name: str, host: str, credentials: Credentials, *, if_exists: bool = False) -> bool: ...
    def set_default_roles(self, name: str, host: str, roles: Sequence[str]) -> None: ...
    def replace_password_hash(self, name: str, host: str, old: str, new: str) -> bool: ...
    def drop_user(self, name: str, host: str, *, if_exists: bool = False) -> bool: ...
    def create_role(self, role: str, *, if_not_exists: bool = False) -> bool: ...
    def drop_role(self, role: str, *, if_exists: bool = False) -> bool: ...
    def grant_roles(self, name: str, host: str, roles: Sequence[str]) -> tuple[str, ...]: ...
    def grant_roles_to_role(self, role: str, roles: Sequence[str]) -> tuple[str, ...]: ...
    def revoke_roles_from_role(self, role: str, roles: Sequence[str]) -> tuple[str, ...]: ...
    def roles_of_role(self, role: str) -> tuple[str, ...] | None: ...
    def revoke_roles(self, name: str, host: str, roles: Sequence[str]) -> tuple[str, ...]: ...
    # The authentication chain, security integrations, group providers, roles of external groups.
    def security_snapshot(self, data_version: int | None = None) -> SecuritySnapshot: ...
    def set_default_authentication_chain(self, chain: Sequence[str]) -> None: ...
    @property
    def default_authentication_chain(self) -> tuple[str, ...]: ...
    def authentication_chain(self, data_version: int | None = None) -> tuple[str, ...]: ...
    def list_integrations(self, data_version: int | None = None) -> tuple[SecurityIntegration, ...]: ...
    def get_integration(self, name: str, data_version: int | None = None) -> SecurityIntegration | None: ...
    def list_group_providers(self, data_version: int | None = None) -> tuple[GroupProvider, ...]: ...
    def get_group_provider(self, name: str, data_version: int | None = None) -> GroupProvider | None: ...
    def group_providers(self, names: Iterable[str], data_version: int | None = None) -> tuple[GroupProvider, ...]: ...
    def roles_of_external_groups(
        self, groups: Iterable[str], *, inherited: bool = False, data_version: int | None = None
    ) -> dict[str, frozenset[str]]: ...
    def create_security_integration(self, integration: SecurityIntegration, *, if_not_exists: bool = False) -> bool: ...
    def alter_security_integration(
        self, name: str, rewrite: Callable[[list[tuple[str, str]]], SecurityIntegration]
    ) -> SecurityIntegration: ...
    def drop_security_integration(self, name: str, *, if_exists: bool = False) -> bool: ...
    def set_authentication_chain(self, chain: Sequence[str]) -> None: ...
    def create_group_provider(self, provider: GroupProvider, *, if_not_exists: bool = False) -> bool: ...
    def drop_group_provider(self, name: str, *, if_exists: bool = False) -> bool: ...
    def grant_roles_to_external_group(self, group: str, roles: Sequence[str]) -> tuple[str, ...]: ...
    def revoke_roles_from_external_group(self, group: str, roles: Sequence[str]) -> tuple[str, ...]: ...


if TYPE_CHECKING:  # mypy proves both catalogs have every method, with compatible signatures
    from fe.catalog.pg.store import PostgresCatalog

    def _sqlite_is_a_backend(catalog: Catalog) -> CatalogBackend:
        return catalog

    def _postgres_is_a_backend(catalog: PostgresCatalog) -> CatalogBackend:
        return catalog


def catalog_location(settings: Any) -> str:
    """The `catalog` setting; FE_CATALOG while Settings has no such field."""
    value = getattr(settings, "catalog", None)
    if value is None:
        value = os.environ.get(LOCATION_ENV, "")
    return str(value).strip()


def catalog_password(settings: Any, environ: dict[str, str] | None = None) -> str | None:
    """The PostgreSQL password: FE_CATALOG_PASSWORD, or the first line of `catalog_password_file` (relative to
    <home>); None when neither is set (the URL's, or libpq's own PGPASSWORD / ~/.pgpass, then apply)."""
    env = os.environ if environ is None else environ
    file_setting = getattr(settings, "catalog_password_file", None)
    if file_setting is None:
        file_setting = env.get(PASSWORD_FILE_ENV, "")
    from fe.catalog.pg.location import PASSWORD_ENV  # (psycopg is imported only where PostgreSQL is used)

    from_env = env.get(PASSWORD_ENV)
    if file_setting and from_env is not None:
        raise CatalogError(f"both {PASSWORD_ENV} and catalog_password_file are set: set only one")
    if from_env is not None:
        return from_env
    if not file_setting:
        return None
    path = Path(file_setting)
    if not path.is_absolute():
        path = Path(settings.home) / path
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except OSError as exc:
        raise CatalogError(f"cannot read catalog_password_file {path}: {exc.strerror or exc}") from None
    if mode & 0o077:
        log.warning("catalog_password_file %s can be read by other users; chmod 600 it", path)
    lines = text.splitlines()
    return lines[0] if lines else ""


def open_catalog_from_settings(settings: Any, *, on_notification: Callable[[], None] | None = None) -> CatalogBackend:
    """Open the catalog the settings name, creating it (with root, `settings.root_password`) on first start.

    `on_notification` is called (on a background thread) for each change notification a PostgreSQL catalog
    receives. Raises CatalogError when the catalog cannot be used; its message never holds the password.
    """
    location = catalog_location(settings)
    if location in ("", "sqlite"):
        meta_dir = Path(settings.meta_dir)
        meta_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return Catalog.open(meta_dir / SQLITE_CATALOG_FILE, root_password=settings.root_password)
    # Only now: psycopg (some 100 ms of imports) is loaded by processes that use PostgreSQL, not by every fe start.
    from fe.catalog.pg.location import LocationError, is_postgres_location, parse_location
    from fe.catalog.pg.store import PostgresCatalog

    if not is_postgres_location(location):
        raise CatalogError("the catalog setting must be empty (the SQLite catalog in meta/) or a postgresql:// URL")
    try:
        where = parse_location(location, catalog_password(settings))
    except LocationError as exc:
        raise CatalogError(str(exc)) from None
    return PostgresCatalog.open(where, root_password=settings.root_password, on_notification=on_notification)


def ping(catalog: CatalogBackend) -> None:
    """One read of the catalog (for /readyz); raises CatalogBusyError (PostgreSQL: CatalogUnavailableError) when it
    does not answer."""
    if isinstance(catalog, Catalog):
        catalog.change_marker()  # SQLite: reads the file's data_version
    else:
        cast("PostgresCatalog", catalog).ping()
