"""One statement in, one Result (or SqlError) out: parse with the fe dialect, bind to a typed statement, run it
against the session or the catalog.

Session statements run on the event loop (they touch only the session); account statements run on a small
thread pool, since they write SQLite (which may wait for another process's write lock) and hash passwords.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import sqlglot.errors
from sqlglot import exp
from sqlglot.tokens import Token, TokenType

from fe.catalog import CatalogBusyError
from fe.catalog.backends import CatalogBackend
from fe.catalog.security import parse_chain
from fe.config import Settings
from fe.mysql.errors import ErrorCode
from fe.sql import errors, show
from fe.sql import statements as st
from fe.sql.accounts import AccountStatements, translate_catalog_error
from fe.sql.dialect import FeDialect
from fe.sql.evaluate import Evaluator
from fe.sql.integrations import SecurityStatements
from fe.sql.redact import describe_failure, mask_secrets
from fe.sql.results import Column, OkResult, Result, ResultSet, SqlError, syntax_error
from fe.sql.session import Session, Warning_
from fe.sql.variables import (
    READ_ONLY,
    SECURITY_INTEGRATION_VARIABLE,
    SERVER_VERSION,
    boolean_value,
    system_variable_defaults,
)
from fe.util.lru import BoundedLRU

log = logging.getLogger(__name__)

# The databases fe shows and accepts in USE / COM_INIT_DB; StarRocks has these two on every cluster.
DATABASES = ("information_schema", "sys")

LONGLONG = 0x08
# Clients send the same few session statements on every connection (SET NAMES, SELECT @@..., SELECT 1): their
# parsed form is remembered by text. Account statements are never cached: they may carry passwords.
_PARSE_CACHE_SIZE = 512
_PARSE_CACHE_MAX_TEXT = 1024
_CACHEABLE = (
    st.SetVariables,
    st.SelectValues,
    st.ShowWarnings,
    st.ShowVariables,
    st.ShowStatus,
    st.ShowDatabases,
    st.UseDatabase,
)
_NON_KEYWORD_TOKENS = {TokenType.VAR, TokenType.IDENTIFIER, TokenType.STRING, TokenType.NUMBER}
# Statements that read or write the catalog (and may hash a password): run off the event loop. SQLite takes one
# writer at a time anyway; a few threads let SHOW statements proceed while a write waits for the lock.
_CATALOG_STATEMENTS = (
    st.CreateUser,
    st.AlterUser,
    st.DropUser,
    st.SetPassword,
    st.CreateRole,
    st.DropRole,
    st.GrantRoles,
    st.RevokeRoles,
    st.ShowAuthentication,
    st.ShowUsers,
    st.ShowGrants,
    st.ShowRoles,
    st.CreateSecurityIntegration,
    st.AlterSecurityIntegration,
    st.DropSecurityIntegration,
    st.ShowSecurityIntegrations,
    st.ShowCreateSecurityIntegration,
    st.CreateGroupProvider,
    st.DropGroupProvider,
    st.ShowGroupProviders,
    st.ShowCreateGroupProvider,
    st.AdminSetFrontendConfig,
    st.AdminShowFrontendConfig,
)
_CATALOG_THREADS = 4
# An unexpected failure logs the statement, masked, this long at most (masking reads at most _LOG_SCAN of it).
_LOG_CHARS = 200
_LOG_SCAN = 4096


class Executor:
    def __init__(
        self, catalog: CatalogBackend, settings: Settings, status: Callable[[], Mapping[str, object]] | None = None
    ) -> None:
        self._catalog = catalog
        self._status = status
        self._settings = settings
        self._dialect = FeDialect()
        self._accounts = AccountStatements(catalog, settings)
        self._security = SecurityStatements(catalog, settings, self._accounts)
        # Logins walk fe.conf's authentication_chain until the catalog stores one (ADMIN SET FRONTEND CONFIG).
        catalog.set_default_authentication_chain(parse_chain(settings.authentication_chain))
        self._defaults = system_variable_defaults(settings)
        self._parsed: BoundedLRU[str, st.Statement] = BoundedLRU(_PARSE_CACHE_SIZE)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    async def execute(self, session: Session, sql: str) -> Result:
        """Run one statement. Raises SqlError only; the session stays usable either way."""
        try:
            statement = self._parse(sql)
            if not isinstance(statement, st.ShowWarnings):
                session.warnings = []
            if isinstance(statement, _CATALOG_STATEMENTS):
                return await self._run_off_loop(session, statement)
            return self._run(session, statement)
        except SqlError as exc:
            failure = exc
        except CatalogBusyError as exc:
            failure = translate_catalog_error(exc)
        except Exception as exc:
            # Never the statement as sent: it may carry a password or a token.
            log.error("statement failed unexpectedly: %r\n%s", _loggable(sql), describe_failure(exc, sql))
            failure = errors.internal_error()
        session.warnings = [Warning_("Error", failure.code, failure.message)]
        raise failure

    async def _run_off_loop(self, session: Session, statement: st.Statement) -> Result:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=_CATALOG_THREADS, thread_name_prefix="fe-catalog")
            pool = self._pool
        return await asyncio.get_running_loop().run_in_executor(pool, functools.partial(self._run, session, statement))

    def _show_tables(self, session: Session, statement: st.ShowTables) -> ResultSet:
        database = statement.database or session.database
        if not database:
            raise errors.no_database_selected()
        name = self._database_name(database)
        columns = [Column(f"Tables_in_{name}")] + ([Column("Table_type")] if statement.full else [])
        return ResultSet(columns, [])

    def _database_name(self, db: str) -> str:
        for name in DATABASES:
            if name.lower() == db.lower():
                return name
        raise errors.unknown_database(db)

    def use_database(self, session: Session, db: str) -> None:
        """COM_INIT_DB and USE."""
        session.database = self._database_name(db)

    # ----------------------------------------------------------------- parsing

    def _parse(self, sql: str) -> st.Statement:
        cached = self._parsed.get(sql)
        if cached is not None:
            return cached
        statement = self._parse_text(sql)
        if isinstance(statement, _CACHEABLE) and len(sql) <= _PARSE_CACHE_MAX_TEXT:
            self._parsed.put(sql, statement)
        return statement

    def _parse_text(self, sql: str) -> st.Statement:
        try:
            tokens = self._dialect.tokenize(sql)
        except sqlglot.errors.SqlglotError:
            raise syntax_error(sql) from None
        second = _second_statement(tokens)
        if second is not None:
            # One statement per COM_QUERY, as MySQL runs them for a client without CLIENT_MULTI_STATEMENTS:
            # 1064 naming the rest of the text, and nothing of it runs.
            raise syntax_error(sql[second:])
        try:
            trees = [tree for tree in self._dialect.parser().parse(tokens, sql) if tree is not None]
        except sqlglot.errors.ParseError as exc:
            if not tokens or tokens[0].token_type in _NON_KEYWORD_TOKENS:
                raise syntax_error(sql) from None  # not a statement at all: name all of it, as MySQL does
            detail = exc.errors[0] if exc.errors else {}
            near = (detail.get("highlight") or "") + (detail.get("end_context") or "")
            raise syntax_error(near or sql) from None
        except sqlglot.errors.SqlglotError:
            raise syntax_error(sql) from None
        trees = [tree for tree in trees if not isinstance(tree, exp.Semicolon)]
        if not trees:
            raise errors.empty_query()
        if len(trees) > 1:
            raise syntax_error(sql)
        return st.bind(trees[0], sql)

    # ----------------------------------------------------------------- dispatch

    def _run(self, session: Session, statement: st.Statement) -> Result:
        accounts = self._accounts
        match statement:
            case st.SelectValues():
                return self._select(session, statement)
            case st.SetVariables():
                return self._set(session, statement)
            case st.ShowWarnings():
                return show.warnings(session.warnings, errors_only=statement.errors_only, limit=statement.limit)
            case st.ShowVariables():
                return show.variables(self._visible_variables(session), statement.like)
            case st.ShowStatus():
                return show.variables(self._status() if self._status is not None else {}, statement.like)
            case st.ShowTables():
                return self._show_tables(session, statement)
            case st.ShowDatabases():
                return show.databases(DATABASES, statement.like)
            case st.UseDatabase():
                self.use_database(session, statement.name)
                return OkResult()
            case st.CreateUser():
                return accounts.create_user(session, statement)
            case st.AlterUser():
                return accounts.alter_user(session, statement)
            case st.DropUser():
                return accounts.drop_user(session, statement)
            case st.SetPassword():
                return accounts.set_password(session, statement)
            case st.CreateRole():
                return accounts.create_role(session, statement)
            case st.DropRole():
                return accounts.drop_role(session, statement)
            case st.GrantRoles():
                return accounts.grant_roles(session, statement)
            case st.RevokeRoles():
                return accounts.revoke_roles(session, statement)
            case st.ShowAuthentication():
                return accounts.show_authentication(session, statement)
            case st.ShowUsers():
                return accounts.show_users(session)
            case st.ShowCurrentUser():
                return accounts.show_current_user(session)
            case st.ShowGrants():
                return accounts.show_grants(session, statement)
            case st.ShowRoles():
                return accounts.show_roles(session)
        return self._run_security(session, statement)

    def _run_security(self, session: Session, statement: st.Statement) -> Result:
        security = self._security
        match statement:
            case st.CreateSecurityIntegration():
                return security.create_security_integration(session, statement)
            case st.AlterSecurityIntegration():
                return security.alter_security_integration(session, statement)
            case st.DropSecurityIntegration():
                return security.drop_security_integration(session, statement)
            case st.ShowSecurityIntegrations():
                return security.show_security_integrations(session)
            case st.ShowCreateSecurityIntegration():
                return security.show_create_security_integration(session, statement)
            case st.CreateGroupProvider():
                return security.create_group_provider(session, statement)
            case st.DropGroupProvider():
                return security.drop_group_provider(session, statement)
            case st.ShowGroupProviders():
                return security.show_group_providers(session)
            case st.ShowCreateGroupProvider():
                return security.show_create_group_provider(session, statement)
            case st.AdminSetFrontendConfig():
                return security.admin_set_frontend_config(session, statement)
            case st.AdminShowFrontendConfig():
                return security.admin_show_frontend_config(session, statement)
        raise AssertionError(f"unhandled statement {statement!r}")

    # ----------------------------------------------------------------- SELECT and SET

    def _select(self, session: Session, statement: st.SelectValues) -> ResultSet:
        evaluator = Evaluator(session, lambda name, scope: self._read_variable(session, name, scope), SERVER_VERSION)
        values = [evaluator.value(item.expression) for item in statement.items]
        columns = [
            Column(item.column_name, _type_code(value)) for item, value in zip(statement.items, values, strict=True)
        ]
        rows = [values]
        if statement.offset > 0 or statement.limit == 0:
            rows = []
        return ResultSet(columns, rows)

    def _set(self, session: Session, statement: st.SetVariables) -> OkResult:
        evaluator = Evaluator(session, lambda name, scope: self._read_variable(session, name, scope), SERVER_VERSION)
        changes: list[tuple[st.Assignment, object]] = []
        for assignment in statement.assignments:
            value = evaluator.value(assignment.value)
            if assignment.scope != "USER":
                value = self._check_assignment(session, assignment, value)
            changes.append((assignment, value))
        # All items are checked before any takes effect, as MySQL does.
        for assignment, value in changes:
            if assignment.scope == "USER":
                session.variables["@" + assignment.name] = value
            elif assignment.name == "autocommit":
                session.autocommit = bool(value)
            else:
                session.variables[assignment.name] = value
        return OkResult(warnings=len(session.warnings))

    def _check_assignment(self, session: Session, assignment: st.Assignment, value: object) -> object:
        name = assignment.name
        if name in READ_ONLY:
            raise errors.read_only_variable(name)
        if assignment.scope == "GLOBAL":
            if not self._accounts.is_user_admin(session):
                raise errors.access_denied_system_variables()
            session.warnings.append(
                Warning_(
                    "Warning", int(ErrorCode.WRONG_ARGUMENTS), f"SET GLOBAL {name} applies to this session only in fe"
                )
            )
        if name == "autocommit":
            flag = boolean_value(value)
            if flag is None:
                raise errors.wrong_value_for_variable(name, value)
            return flag
        return value

    def _read_variable(self, session: Session, name: str, scope: str | None) -> object:
        if name == "autocommit":
            return int(session.autocommit)
        if name == SECURITY_INTEGRATION_VARIABLE:
            return session.security_integration  # NULL unless a security integration admitted this session
        if name in session.variables:
            return session.variables[name]
        if name in self._defaults:
            return self._defaults[name]
        raise errors.unknown_system_variable(name)

    def _visible_variables(self, session: Session) -> dict[str, object]:
        values = dict(self._defaults)
        values.update((name, value) for name, value in session.variables.items() if not name.startswith("@"))
        values["autocommit"] = "ON" if session.autocommit else "OFF"
        values[SECURITY_INTEGRATION_VARIABLE] = session.security_integration or ""
        return values


def _second_statement(tokens: Sequence[Token]) -> int | None:
    """Where a second statement starts in the text (a token after a `;` that follows a statement), if any."""
    in_statement = after_semicolon = False
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            after_semicolon = in_statement
        elif after_semicolon:
            return token.start
        else:
            in_statement = True
    return None


def _loggable(sql: str) -> str:
    return mask_secrets(sql[:_LOG_SCAN])[:_LOG_CHARS]


def _type_code(value: object) -> int:
    return LONGLONG if isinstance(value, int) and not isinstance(value, bool) else Column.type_code
