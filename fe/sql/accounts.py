"""Running the account statements against the catalog: who may, what is stored, which error otherwise.

Only root and members of `root` / `user_admin` (granted to the account, or to one of the session's external groups)
may manage users, roles and grants; anyone may SET PASSWORD for their own password identity and look at their own
grants and authentication. Granting, revoking or altering
anything about root itself is reserved to root: giving the role root by any path (one rule,
`_require_may_give`), and changing or dropping an account that holds it.

Everything here may block on the catalog (SQLite) or on password hashing: the executor runs it off the event loop.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence

from fe.auth.passwords import hash_password, native_hash
from fe.auth.token_spec import TOKEN_PLUGINS, InvalidAuthString, parse_token_auth_string
from fe.catalog import (
    ADMIN_ROLES,
    CACHING_SHA2,
    MYSQL_NATIVE,
    ROOT_HOST,
    ROOT_ROLE,
    ROOT_USER,
    Account,
    CatalogBusyError,
    Credentials,
    GroupProviderNotFoundError,
    ProtectedObjectError,
    RoleCycleError,
    RoleExistsError,
    RoleNotFoundError,
    RoleNotGrantedError,
    UserExistsError,
    UserNotFoundError,
    format_identity,
)
from fe.catalog.backends import CatalogBackend
from fe.config import Settings
from fe.mysql.errors import ErrorCode
from fe.sql import errors, show
from fe.sql import statements as st
from fe.sql.results import OkResult, ResultSet, SqlError
from fe.sql.session import Session, Warning_

# StarRocks' user name rule (Java's \w is ASCII-only).
USER_NAME_PATTERN = re.compile(r"^\w{1,64}/?[.\w-]{0,63}$", re.ASCII)
ROLE_NAME_PATTERN = re.compile(r"^\w{1,64}$", re.ASCII)
NO_PLUGIN_NAMED = ""
HOST_PATTERN = re.compile(r"^[\w.:%-]{1,255}$", re.ASCII)
DOMAIN_HOST_PATTERN = re.compile(r"^\[[A-Za-z0-9_.-]{1,253}\]$", re.ASCII)
_NATIVE_HASH_PATTERN = re.compile(r"^\*[0-9A-Fa-f]{40}$")
MAX_GROUP_NAME = 256


class AccountStatements:
    def __init__(self, catalog: CatalogBackend, settings: Settings) -> None:
        self._catalog = catalog
        self._settings = settings

    # ----------------------------------------------------------------- users

    def create_user(self, session: Session, stmt: st.CreateUser) -> OkResult:
        operation = "CREATE USER"
        self._require_user_admin(session)
        name, host = self._identity(session, stmt.user, operation)
        if stmt.property_keys:
            raise errors.wrong_arguments(
                operation, f"PROPERTIES ({', '.join(stmt.property_keys)}) are not supported by fe"
            )
        roles = self._role_names(stmt.default_roles, operation)
        self._require_may_give(session, roles)
        credentials = self._credentials(session, stmt.auth, operation)
        try:
            created = self._catalog.create_user(
                name, host, credentials, default_roles=roles, if_not_exists=stmt.if_not_exists
            )
        except UserExistsError as exc:
            raise errors.operation_failed(operation, _who(name, host), str(exc)) from None
        except ProtectedObjectError as exc:
            raise errors.operation_failed(operation, _who(name, host), str(exc)) from None
        except RoleNotFoundError as exc:
            raise errors.unknown_authorization_id(exc.role, reason=str(exc)) from None
        except GroupProviderNotFoundError as exc:
            raise errors.wrong_arguments(operation, str(exc)) from None
        if not created:
            _note(
                session,
                ErrorCode.USER_ALREADY_EXISTS,
                f"Authorization ID {_who(name, host)} already exists.",
            )
        return _ok(session)

    def alter_user(self, session: Session, stmt: st.AlterUser) -> OkResult:
        operation = "ALTER USER"
        self._require_user_admin(session)
        name, host = self._identity(session, stmt.user, operation)
        self._require_root_for_root(session, name, host, "alter the root user")
        credentials = self._credentials(session, stmt.auth, operation) if stmt.auth is not None else None
        account = self._catalog.get_account(name, host)
        if account is None:
            if stmt.if_exists:
                _note(
                    session,
                    ErrorCode.USER_DOES_NOT_EXIST,
                    f"Authorization ID {_who(name, host)} does not exist.",
                )
                return _ok(session)
            raise errors.operation_failed(operation, _who(name, host), f"cannot find user {_who(name, host)}")
        self._require_root_for_root_holder(session, account, "alter")
        default_roles = self._default_roles(account, stmt, operation)
        if default_roles:
            self._require_may_give(session, default_roles)
        try:
            if credentials is not None:
                self._catalog.alter_credentials(name, host, credentials)
            if default_roles is not None:
                self._catalog.set_default_roles(name, host, default_roles)
        except UserNotFoundError as exc:
            raise errors.operation_failed(operation, _who(name, host), str(exc)) from None
        except RoleNotFoundError as exc:
            raise errors.unknown_authorization_id(exc.role, reason=str(exc)) from None
        except RoleNotGrantedError as exc:
            raise errors.role_not_granted(exc.role, _who(name, host)) from None
        except GroupProviderNotFoundError as exc:
            raise errors.wrong_arguments(operation, str(exc)) from None
        return _ok(session)

    def drop_user(self, session: Session, stmt: st.DropUser) -> OkResult:
        operation = "DROP USER"
        self._require_user_admin(session)
        name, host = self._identity(session, stmt.user, operation)
        self._require_root_for_root_holder(session, self._catalog.get_account(name, host), "drop")
        try:
            dropped = self._catalog.drop_user(name, host, if_exists=stmt.if_exists)
        except (UserNotFoundError, ProtectedObjectError) as exc:
            raise errors.operation_failed(operation, _who(name, host), str(exc)) from None
        if not dropped:
            _note(
                session,
                ErrorCode.USER_DOES_NOT_EXIST,
                f"Authorization ID {_who(name, host)} does not exist.",
            )
        return _ok(session)

    def set_password(self, session: Session, stmt: st.SetPassword) -> OkResult:
        operation = "SET PASSWORD"
        if stmt.user is None or stmt.user.current:
            name, host = session.matched_name, session.matched_host
        else:
            name, host = self._identity(session, stmt.user, operation)
        if (name, host) != (session.matched_name, session.matched_host):
            self._require_user_admin(session)
            self._require_root_for_root(session, name, host, "change root's password")
        account = self._catalog.get_account(name, host)
        if account is None:
            raise errors.no_matching_user()
        if (name, host) != (session.matched_name, session.matched_host):
            self._require_root_for_root_holder(session, account, "change the password of")
        if account.is_token_user:
            raise errors.set_password_not_applicable(account.identity)
        if account.plugin == MYSQL_NATIVE:
            credentials = Credentials(MYSQL_NATIVE, native_hash(stmt.password), account.plugin_display)
        else:
            credentials = Credentials(CACHING_SHA2, hash_password(stmt.password), account.plugin_display)
        try:
            self._catalog.alter_credentials(name, host, credentials)
        except UserNotFoundError:
            raise errors.no_matching_user() from None
        return _ok(session)

    # ----------------------------------------------------------------- roles and grants

    def create_role(self, session: Session, stmt: st.CreateRole) -> OkResult:
        operation = "CREATE ROLE"
        self._require_user_admin(session)
        for role in self._role_names(stmt.roles, operation):
            try:
                if not self._catalog.create_role(role, if_not_exists=stmt.if_not_exists):
                    _note(session, ErrorCode.USER_ALREADY_EXISTS, f"Authorization ID '{role}' already exists.")
            except (RoleExistsError, ProtectedObjectError) as exc:
                raise errors.operation_failed(operation, f"'{role}'", str(exc)) from None
        return _ok(session)

    def drop_role(self, session: Session, stmt: st.DropRole) -> OkResult:
        operation = "DROP ROLE"
        self._require_user_admin(session)
        for role in self._role_names(stmt.roles, operation):
            try:
                if not self._catalog.drop_role(role, if_exists=stmt.if_exists):
                    _note(session, ErrorCode.USER_DOES_NOT_EXIST, f"Authorization ID '{role}' does not exist.")
            except (RoleNotFoundError, ProtectedObjectError) as exc:
                raise errors.operation_failed(operation, f"'{role}'", str(exc)) from None
        return _ok(session)

    def grant_roles(self, session: Session, stmt: st.GrantRoles) -> OkResult:
        operation = "GRANT"
        self._require_user_admin(session)
        roles = self._role_names(stmt.roles, operation)
        if stmt.role is not None:
            return self._grant_to_role(session, roles, stmt.role, operation)
        if stmt.group is not None:
            return self._grant_to_group(session, roles, stmt.group, operation)
        assert stmt.user is not None
        name, host = self._identity(session, stmt.user, operation)
        self._require_may_give(session, roles)
        try:
            self._catalog.grant_roles(name, host, roles)
        except UserNotFoundError:
            raise errors.unknown_authorization_id(name, host, f"cannot find user {_who(name, host)}") from None
        except RoleNotFoundError as exc:
            raise errors.unknown_authorization_id(exc.role, reason=str(exc)) from None
        return _ok(session)

    def revoke_roles(self, session: Session, stmt: st.RevokeRoles) -> OkResult:
        operation = "REVOKE"
        self._require_user_admin(session)
        roles = self._role_names(stmt.roles, operation)
        if stmt.role is not None:
            return self._revoke_from_role(session, roles, stmt.role, operation)
        if stmt.group is not None:
            return self._revoke_from_group(session, roles, stmt.group, operation)
        assert stmt.user is not None
        name, host = self._identity(session, stmt.user, operation)
        if ROOT_ROLE in roles:
            self._require_root(session, "revoke the role 'root'")
        try:
            not_granted = self._catalog.revoke_roles(name, host, roles)
        except UserNotFoundError:
            raise errors.unknown_authorization_id(name, host, f"cannot find user {_who(name, host)}") from None
        except RoleNotFoundError as exc:
            raise errors.unknown_authorization_id(exc.role, reason=str(exc)) from None
        except ProtectedObjectError as exc:
            raise errors.wrong_arguments(operation, str(exc)) from None
        for role in not_granted:
            _note(session, ErrorCode.ROLE_NOT_GRANTED, f"`{role}`@`%` is not granted to {_who(name, host)}")
        return _ok(session)

    def _grant_to_role(self, session: Session, roles: tuple[str, ...], role: str, operation: str) -> OkResult:
        (role,) = self._role_names((role,), operation)
        self._require_may_give(session, roles)
        try:
            self._catalog.grant_roles_to_role(role, roles)
        except RoleNotFoundError as exc:
            raise errors.unknown_authorization_id(exc.role, reason=str(exc)) from None
        except RoleCycleError as exc:
            raise errors.wrong_arguments(operation, str(exc)) from None
        return _ok(session)

    def _revoke_from_role(self, session: Session, roles: tuple[str, ...], role: str, operation: str) -> OkResult:
        (role,) = self._role_names((role,), operation)
        if ROOT_ROLE in roles:
            self._require_root(session, "revoke the role 'root'")
        try:
            not_granted = self._catalog.revoke_roles_from_role(role, roles)
        except RoleNotFoundError as exc:
            raise errors.unknown_authorization_id(exc.role, reason=str(exc)) from None
        for granted in not_granted:
            _note(session, ErrorCode.ROLE_NOT_GRANTED, f"`{granted}`@`%` is not granted to role '{role}'")
        return _ok(session)

    def _grant_to_group(self, session: Session, roles: tuple[str, ...], group: str, operation: str) -> OkResult:
        group = _group_name(group, operation)
        self._require_may_give(session, roles)
        try:
            self._catalog.grant_roles_to_external_group(group, roles)
        except RoleNotFoundError as exc:
            raise errors.unknown_authorization_id(exc.role, reason=str(exc)) from None
        return _ok(session)

    def _revoke_from_group(self, session: Session, roles: tuple[str, ...], group: str, operation: str) -> OkResult:
        group = _group_name(group, operation)
        if ROOT_ROLE in roles:
            self._require_root(session, "revoke the role 'root'")
        try:
            not_granted = self._catalog.revoke_roles_from_external_group(group, roles)
        except RoleNotFoundError as exc:
            raise errors.unknown_authorization_id(exc.role, reason=str(exc)) from None
        for role in not_granted:
            message = f"`{role}`@`%` is not granted to external group {_quoted(group)}"
            _note(session, ErrorCode.ROLE_NOT_GRANTED, message)
        return _ok(session)

    # ----------------------------------------------------------------- SHOW

    def show_authentication(self, session: Session, stmt: st.ShowAuthentication) -> ResultSet:
        if stmt.all_users:
            self._require_user_admin(session)
            return show.authentication(self._catalog.list_accounts())
        account = self._target_account(session, stmt.user, "SHOW AUTHENTICATION")
        return show.authentication([account] if account is not None else [])

    def show_users(self, session: Session) -> ResultSet:
        self._require_user_admin(session)
        return show.users(self._catalog.list_accounts())

    def show_current_user(self, session: Session) -> ResultSet:
        return show.current_user(session.matched_name, session.matched_host)

    def show_grants(self, session: Session, stmt: st.ShowGrants) -> ResultSet:
        if stmt.role is not None:
            self._require_user_admin(session)
            granted = self._catalog.roles_of_role(stmt.role)
            if granted is None:
                raise errors.unknown_authorization_id(stmt.role, reason=f"role '{stmt.role}' does not exist")
            return show.role_grants(stmt.role, granted)
        if stmt.group is not None:
            self._require_user_admin(session)
            group = _group_name(stmt.group, "SHOW GRANTS")
            held = self._catalog.roles_of_external_groups([group]).get(group, frozenset())
            return show.external_group_grants(group, sorted(held))
        account = self._target_account(session, stmt.user, "SHOW GRANTS")
        if stmt.user is not None and not stmt.user.current:
            return show.grants(account)
        # Your own grants: the account's, and those your external groups bring, each where it came from.
        identity = format_identity(session.matched_name, session.matched_host)
        by_group = self._catalog.roles_of_external_groups(sorted(session.groups))
        return show.session_grants(identity, account, by_group)

    def show_roles(self, session: Session) -> ResultSet:
        self._require_user_admin(session)
        return show.roles(self._catalog.list_roles())

    # ----------------------------------------------------------------- privileges

    def session_account(self, session: Session) -> Account | None:
        """The identity the session logged in as, read afresh (a revoked role takes effect at once)."""
        return self._catalog.get_account(session.matched_name, session.matched_host)

    def is_user_admin(self, session: Session) -> bool:
        account = self.session_account(session)
        if account is not None and account.is_user_admin:
            return True
        return bool(self.group_roles(session) & ADMIN_ROLES)

    def group_roles(self, session: Session) -> frozenset[str]:
        """Every role the session holds through its external groups (and the roles those hold in turn)."""
        if not session.groups:
            return frozenset()
        by_group = self._catalog.roles_of_external_groups(session.groups, inherited=True)
        return frozenset().union(*by_group.values())

    def require_user_admin(self, session: Session) -> None:
        """ERR 1227 unless the session may manage users, roles, integrations and group providers."""
        self._require_user_admin(session)

    def _require_user_admin(self, session: Session) -> None:
        if not self.is_user_admin(session):
            raise errors.access_denied_user_admin()

    @staticmethod
    def _require_root(session: Session, what: str) -> None:
        if not _is_root(session):
            raise errors.access_denied_root_only(what)

    def _require_root_for_root(self, session: Session, name: str, host: str, what: str) -> None:
        if (name, host) == (ROOT_USER, ROOT_HOST):
            self._require_root(session, what)

    def _require_root_for_root_holder(self, session: Session, account: Account | None, action: str) -> None:
        """Whoever could change how an account that holds root logs in could log in as it, and be root."""
        if account is not None and _holds_root(account.roles | account.effective_roles):
            self._require_root(session, f"{action} an account that holds the role 'root'")

    def _require_may_give(self, session: Session, roles: Collection[str]) -> None:
        """The one rule for every statement that gives roles: CREATE USER … DEFAULT ROLE, GRANT to a user, GRANT to
        a role (its holders get the roles too), ALTER USER … DEFAULT ROLE. Only root may give the role root,
        whether named or held by a given role through role-to-role grants."""
        if not roles or _is_root(session):
            return
        if _holds_root(roles):
            self._require_root(session, "grant the role 'root'")
        if _holds_root(self._catalog.roles_with_inherited(roles)):
            self._require_root(session, "grant a role that holds the role 'root'")

    def _target_account(self, session: Session, user: st.UserRef | None, operation: str) -> Account | None:
        """Your own account, or (user admins only) someone else's."""
        if user is None or user.current:
            return self.session_account(session)
        name, host = self._identity(session, user, operation)
        if (name, host) != (session.matched_name, session.matched_host):
            self._require_user_admin(session)
        account = self._catalog.get_account(name, host)
        if account is None:
            raise errors.operation_failed(operation, _who(name, host), f"cannot find user {_who(name, host)}")
        return account

    # ----------------------------------------------------------------- validation

    @staticmethod
    def _identity(session: Session, user: st.UserRef, operation: str) -> tuple[str, str]:
        if user.current:
            return session.matched_name, session.matched_host
        if not USER_NAME_PATTERN.match(user.name):
            raise errors.wrong_arguments(
                operation,
                f"invalid user name '{user.name}': it must match {USER_NAME_PATTERN.pattern} "
                "(letters, digits and _; then optionally one / and up to 63 of . _ - letters digits)",
            )
        if not (HOST_PATTERN.match(user.host) or DOMAIN_HOST_PATTERN.match(user.host)):
            raise errors.wrong_arguments(
                operation,
                f"invalid host '{user.host}': use %, an IP address, a pattern with % and _, or ['domain']",
            )
        return user.name, user.host

    @staticmethod
    def _role_names(roles: Sequence[str], operation: str) -> tuple[str, ...]:
        for role in roles:
            if not ROLE_NAME_PATTERN.match(role):
                raise errors.wrong_arguments(operation, f"invalid role name '{role}': use 1 to 64 letters, digits or _")
        return tuple(dict.fromkeys(roles))

    def _default_roles(self, account: Account, stmt: st.AlterUser, operation: str) -> tuple[str, ...] | None:
        if stmt.default_role_mode is None:
            return None
        if stmt.default_role_mode == "NONE":
            return ()
        if stmt.default_role_mode == "ALL":
            return tuple(sorted(account.roles))
        return self._role_names(stmt.default_roles, operation)

    def _credentials(self, session: Session, auth: st.AuthOption | None, operation: str) -> Credentials:
        """What to store for an IDENTIFIED clause: hashes for passwords, normalised JSON for token users."""
        # No plugin named (IDENTIFIED BY ..., or nothing): StarRocks' native password, whose AuthPlugin SHOW
        # AUTHENTICATION reports as NULL; fe stores it as caching_sha2_password.
        if auth is None:
            return Credentials(CACHING_SHA2, "", NO_PLUGIN_NAMED)
        if auth.plugin is None:
            if auth.keyword == "BY PASSWORD":
                return Credentials(MYSQL_NATIVE, _native_hash_literal(auth.value or ""), NO_PLUGIN_NAMED)
            return Credentials(CACHING_SHA2, hash_password(auth.value or ""), NO_PLUGIN_NAMED)
        plugin = auth.plugin.lower()
        display = auth.plugin.upper()
        if plugin == CACHING_SHA2:
            if auth.keyword == "AS":
                raise errors.wrong_arguments(
                    operation, "IDENTIFIED WITH caching_sha2_password AS '<hash>' is not supported; use BY '<password>'"
                )
            return Credentials(CACHING_SHA2, hash_password(auth.value or ""), display)
        if plugin == MYSQL_NATIVE:
            if auth.keyword == "AS":
                return Credentials(MYSQL_NATIVE, _native_hash_literal(auth.value or ""), display)
            return Credentials(MYSQL_NATIVE, native_hash(auth.value or ""), display)
        if plugin in TOKEN_PLUGINS:
            if auth.value is None:
                raise errors.wrong_arguments(
                    operation, f"IDENTIFIED WITH {plugin} needs AS '<json>' with at least \"jwks_url\""
                )
            try:
                spec, warnings = parse_token_auth_string(
                    auth.value,
                    self._settings.conf_dir,
                    require_https=self._settings.require_https_key_urls,
                    discovery_allow_http=self._settings.discovery_allow_http,
                )
            except InvalidAuthString as exc:
                raise errors.wrong_arguments(operation, str(exc)) from None
            for message in warnings:
                session.warnings.append(Warning_("Warning", int(ErrorCode.WRONG_ARGUMENTS), message))
            return Credentials(plugin, spec.to_json(), display)
        raise errors.plugin_not_loaded(auth.plugin)


def _group_name(group: str, operation: str) -> str:
    """An external group as providers report it: any text but empty, padded or with control characters."""
    if not group or group != group.strip() or len(group) > MAX_GROUP_NAME or any(ord(ch) < 0x20 for ch in group):
        raise errors.wrong_arguments(
            operation,
            f"invalid external group name {_quoted(group)}: 1 to {MAX_GROUP_NAME} characters, no control "
            "characters, no leading or trailing spaces",
        )
    return group


def _quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _native_hash_literal(text: str) -> str:
    if text == "":
        return ""
    if not _NATIVE_HASH_PATTERN.match(text):
        raise errors.password_format()
    return text.upper()


def _is_root(session: Session) -> bool:
    return (session.matched_name, session.matched_host) == (ROOT_USER, ROOT_HOST)


def _holds_root(roles: Iterable[str]) -> bool:
    # Role names are case-sensitive and no role differs from 'root' only in case (the catalog refuses to create
    # one), so this only adds safety: a catalog from before that rule cannot slip a 'ROOT' past it.
    return any(role.lower() == ROOT_ROLE for role in roles)


def _who(name: str, host: str) -> str:
    return format_identity(name, host)


def _note(session: Session, code: int, message: str) -> None:
    session.warnings.append(Warning_("Note", int(code), message))


def _ok(session: Session) -> OkResult:
    return OkResult(warnings=len(session.warnings))


def translate_catalog_error(exc: CatalogBusyError) -> SqlError:
    return errors.catalog_unavailable(str(exc))
