"""Running the security integration, group provider and frontend config statements against the catalog.

Every statement here, reads included, is for root and user admins only (ERR 1227, as the account statements).
PROPERTIES are validated before anything is written (ERR 1210 naming the problem, nothing stored); a name that
exists already, or is not there, or is still in use is ERR 1396 with StarRocks' text for the reason. Runs off the
event loop, like the account statements (the executor's catalog thread pool).
"""

from __future__ import annotations

import logging
import re
from dataclasses import fields
from pathlib import Path

from fe.auth.groups import GroupProvider, InvalidProviderProperties, parse_group_provider
from fe.catalog import (
    NATIVE,
    GroupProviderExistsError,
    GroupProviderInUseError,
    GroupProviderNotFoundError,
    IntegrationExistsError,
    IntegrationInUseError,
    IntegrationNotFoundError,
    InvalidChainError,
    ProtectedObjectError,
    SecurityIntegration,
)
from fe.catalog.backends import CatalogBackend
from fe.catalog.integration import (
    InvalidIntegrationProperties,
    merge_properties,
    parse_integration_properties,
)
from fe.catalog.security import CHAIN_KEY, parse_chain
from fe.config import Settings
from fe.mysql.errors import ErrorCode
from fe.sql import errors, show
from fe.sql import statements as st
from fe.sql.accounts import AccountStatements
from fe.sql.results import OkResult, ResultSet
from fe.sql.session import Session, Warning_

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^\w{1,64}$", re.ASCII)
MUTABLE_CONFIG = (CHAIN_KEY,)
_JAVA_TYPES = {bool: "boolean", int: "int", float: "double", str: "String", Path: "String"}
# Settings whose values ADMIN SHOW FRONTEND CONFIG never shows (root's first password, and whatever is named so).
_SECRET = re.compile(r"password|secret|credential", re.IGNORECASE)
_PROXY_CREDENTIALS = re.compile(r"//[^/@]*@")


class SecurityStatements:
    def __init__(self, catalog: CatalogBackend, settings: Settings, accounts: AccountStatements) -> None:
        self._catalog = catalog
        self._settings = settings
        self._accounts = accounts

    # ----------------------------------------------------------------- security integrations

    def create_security_integration(self, session: Session, stmt: st.CreateSecurityIntegration) -> OkResult:
        operation = "CREATE SECURITY INTEGRATION"
        self._accounts.require_user_admin(session)
        name = _name(stmt.name, operation, "security integration")
        if name.lower() == NATIVE:
            raise errors.wrong_arguments(
                operation, f"'{name}' is a reserved name: 'native' stands for the catalog's own users in the chain"
            )
        integration, warnings = self._parse_integration(name, stmt.properties, operation)
        try:
            created = self._catalog.create_security_integration(integration, if_not_exists=stmt.if_not_exists)
        except IntegrationExistsError as exc:
            raise errors.operation_failed(operation, f"'{name}'", str(exc)) from None
        except (GroupProviderNotFoundError, ProtectedObjectError) as exc:
            raise errors.wrong_arguments(operation, str(exc)) from None
        if not created:
            _note(session, f"security integration '{name}' already exists")
            return _ok(session)
        _warn(session, warnings)
        log.info("security integration %s created by %s", name, session.current_user)
        return _ok(session)

    def alter_security_integration(self, session: Session, stmt: st.AlterSecurityIntegration) -> OkResult:
        operation = "ALTER SECURITY INTEGRATION"
        self._accounts.require_user_admin(session)
        name = _name(stmt.name, operation, "security integration")
        warnings: list[str] = []

        def rewrite(current: list[tuple[str, str]]) -> SecurityIntegration:
            try:
                merged = merge_properties(current, stmt.properties)
            except InvalidIntegrationProperties as exc:
                raise errors.wrong_arguments(operation, str(exc)) from None
            integration, found = self._parse_integration(name, merged, operation)
            warnings[:] = found
            return integration

        try:
            self._catalog.alter_security_integration(name, rewrite)
        except IntegrationNotFoundError as exc:
            raise errors.operation_failed(operation, f"'{name}'", str(exc)) from None
        except GroupProviderNotFoundError as exc:
            raise errors.wrong_arguments(operation, str(exc)) from None
        _warn(session, warnings)
        log.info("security integration %s altered by %s", name, session.current_user)
        return _ok(session)

    def drop_security_integration(self, session: Session, stmt: st.DropSecurityIntegration) -> OkResult:
        operation = "DROP SECURITY INTEGRATION"
        self._accounts.require_user_admin(session)
        name = _name(stmt.name, operation, "security integration")
        try:
            dropped = self._catalog.drop_security_integration(name, if_exists=stmt.if_exists)
        except (IntegrationNotFoundError, IntegrationInUseError) as exc:
            raise errors.operation_failed(operation, f"'{name}'", str(exc)) from None
        if not dropped:
            _note(session, f"security integration '{name}' not found")
        return _ok(session)

    def show_security_integrations(self, session: Session) -> ResultSet:
        self._accounts.require_user_admin(session)
        return show.security_integrations(self._catalog.list_integrations())

    def show_create_security_integration(self, session: Session, stmt: st.ShowCreateSecurityIntegration) -> ResultSet:
        operation = "SHOW CREATE SECURITY INTEGRATION"
        self._accounts.require_user_admin(session)
        integration = self._catalog.get_integration(stmt.name)
        if integration is None:
            raise errors.operation_failed(operation, f"'{stmt.name}'", str(IntegrationNotFoundError(stmt.name)))
        return show.create_security_integration(integration)

    def _parse_integration(
        self, name: str, properties: st.Properties | list[tuple[str, str]], operation: str
    ) -> tuple[SecurityIntegration, list[str]]:
        try:
            return parse_integration_properties(
                name,
                properties,
                self._settings.conf_dir,
                require_https=self._settings.require_https_key_urls,
                discovery_allow_http=self._settings.discovery_allow_http,
            )
        except InvalidIntegrationProperties as exc:
            raise errors.wrong_arguments(operation, str(exc)) from None

    # ----------------------------------------------------------------- group providers

    def create_group_provider(self, session: Session, stmt: st.CreateGroupProvider) -> OkResult:
        operation = "CREATE GROUP PROVIDER"
        self._accounts.require_user_admin(session)
        name = _name(stmt.name, operation, "group provider")
        try:
            provider, warnings = parse_group_provider(name, stmt.properties, self._settings.conf_dir)
        except InvalidProviderProperties as exc:
            raise errors.wrong_arguments(operation, str(exc)) from None
        try:
            created = self._catalog.create_group_provider(provider, if_not_exists=stmt.if_not_exists)
        except GroupProviderExistsError as exc:
            raise errors.operation_failed(operation, f"'{name}'", str(exc)) from None
        if not created:
            _note(session, f"Group Provider '{name}' already exists")
            return _ok(session)
        _warn(session, warnings)
        log.info("group provider %s created by %s", name, session.current_user)
        return _ok(session)

    def drop_group_provider(self, session: Session, stmt: st.DropGroupProvider) -> OkResult:
        operation = "DROP GROUP PROVIDER"
        self._accounts.require_user_admin(session)
        name = _name(stmt.name, operation, "group provider")
        try:
            dropped = self._catalog.drop_group_provider(name, if_exists=stmt.if_exists)
        except (GroupProviderNotFoundError, GroupProviderInUseError) as exc:
            raise errors.operation_failed(operation, f"'{name}'", str(exc)) from None
        if not dropped:
            _note(session, f"Group Provider '{name}' not found")
        return _ok(session)

    def show_group_providers(self, session: Session) -> ResultSet:
        self._accounts.require_user_admin(session)
        return show.group_providers(self._catalog.list_group_providers())

    def show_create_group_provider(self, session: Session, stmt: st.ShowCreateGroupProvider) -> ResultSet:
        self._accounts.require_user_admin(session)
        provider: GroupProvider | None = self._catalog.get_group_provider(stmt.name)
        if provider is None:
            raise errors.operation_failed(
                "SHOW CREATE GROUP PROVIDER", f"'{stmt.name}'", str(GroupProviderNotFoundError(stmt.name))
            )
        return show.create_group_provider(provider)

    # ----------------------------------------------------------------- frontend config

    def admin_set_frontend_config(self, session: Session, stmt: st.AdminSetFrontendConfig) -> OkResult:
        """Only authentication_chain can change at run time; it is stored in the catalog, so every worker (and
        every fe sharing the catalog) uses it from its next login on, and it outlives restarts."""
        operation = "ADMIN SET FRONTEND CONFIG"
        self._accounts.require_user_admin(session)
        chains = []
        for key, value in stmt.properties:
            if key.strip().lower() not in MUTABLE_CONFIG:
                raise errors.wrong_arguments(operation, f"Config '{key}' does not exist or is not mutable")
            chains.append(parse_chain(value))
        for chain in chains:
            try:
                self._catalog.set_authentication_chain(chain)
            except (InvalidChainError, IntegrationNotFoundError) as exc:
                raise errors.wrong_arguments(operation, str(exc)) from None
            log.info("authentication_chain set to %s by %s", ",".join(chain), session.current_user)
        return _ok(session)

    def admin_show_frontend_config(self, session: Session, stmt: st.AdminShowFrontendConfig) -> ResultSet:
        self._accounts.require_user_admin(session)
        return show.frontend_config(self._config_rows(), stmt.like)

    def _config_rows(self) -> list[list[str]]:
        """StarRocks' columns: Key, AliasNames, Value, Type, IsMutable, Comment — every fe setting, by name."""
        rows = []
        for setting in sorted(fields(Settings), key=lambda f: f.name):
            key = setting.name
            if key == CHAIN_KEY:
                chain = self._catalog.authentication_chain()
                # StarRocks shows its String[] setting the way Java prints an array.
                rows.append([key, "[]", f"[{', '.join(chain)}]", "String[]", "true", _CHAIN_COMMENT])
                continue
            value = getattr(self._settings, key)
            rows.append([key, "[]", _shown(key, value), _JAVA_TYPES.get(type(value), "String"), "false", ""])
        return rows


_CHAIN_COMMENT = (
    "native and security integrations, in the order logins try them; stored in the catalog by ADMIN SET FRONTEND "
    "CONFIG, else fe.conf's"
)


def _shown(key: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if _SECRET.search(key) and text:
        return "******"
    if key.endswith("_proxy"):
        return _PROXY_CREDENTIALS.sub("//******@", text)
    return text


def _name(name: str, operation: str, what: str) -> str:
    if not NAME_PATTERN.match(name):
        raise errors.wrong_arguments(operation, f"invalid {what} name '{name}': use 1 to 64 letters, digits or _")
    return name


def _note(session: Session, message: str) -> None:
    session.warnings.append(Warning_("Note", int(ErrorCode.CANNOT_USER), message))


def _warn(session: Session, messages: list[str]) -> None:
    for message in messages:
        session.warnings.append(Warning_("Warning", int(ErrorCode.WRONG_ARGUMENTS), message))


def _ok(session: Session) -> OkResult:
    return OkResult(warnings=len(session.warnings))
