"""Typed statements: what the executor runs. `bind` turns one parsed sqlglot tree into one of these, or raises
the SqlError a client should see (unsupported statements: 1064 naming the statement)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from fe.sql import syntax
from fe.sql.results import SqlError, syntax_error

# ------------------------------------------------------------------------- users as written


@dataclass(frozen=True)
class UserRef:
    """A user as written in a statement; `current` for CURRENT_USER (name and host are then empty)."""

    name: str
    host: str = "%"
    current: bool = False


@dataclass(frozen=True)
class AuthOption:
    """IDENTIFIED BY 'x' (plugin None), BY PASSWORD 'hash', or WITH plugin [BY | AS 'x']; plugin as written."""

    plugin: str | None
    keyword: str | None  # "BY" | "AS" | "BY PASSWORD" | None
    value: str | None


# ------------------------------------------------------------------------- account statements


@dataclass(frozen=True)
class CreateUser:
    user: UserRef
    if_not_exists: bool = False
    auth: AuthOption | None = None
    default_roles: tuple[str, ...] = ()
    property_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class AlterUser:
    user: UserRef
    if_exists: bool = False
    auth: AuthOption | None = None
    # None: leave the default roles alone; "NONE", "ALL", or "ROLES" (then default_roles lists them).
    default_role_mode: str | None = None
    default_roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class DropUser:
    user: UserRef
    if_exists: bool = False


@dataclass(frozen=True)
class CreateRole:
    roles: tuple[str, ...]
    if_not_exists: bool = False


@dataclass(frozen=True)
class DropRole:
    roles: tuple[str, ...]
    if_exists: bool = False


@dataclass(frozen=True)
class GrantRoles:
    """To a user, or (when `role` is set) to a role, or (when `group` is set) to an external group."""

    roles: tuple[str, ...]
    user: UserRef | None = None
    role: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class RevokeRoles:
    roles: tuple[str, ...]
    user: UserRef | None = None
    role: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class SetPassword:
    user: UserRef | None
    password: str


@dataclass(frozen=True)
class ShowAuthentication:
    user: UserRef | None = None
    all_users: bool = False


@dataclass(frozen=True)
class ShowUsers:
    pass


@dataclass(frozen=True)
class ShowCurrentUser:
    pass


@dataclass(frozen=True)
class ShowGrants:
    user: UserRef | None = None
    role: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class ShowRoles:
    pass


# ------------------------------------------------------------------------- integrations, group providers, config

Properties = tuple[tuple[str, str], ...]  # ("key", "value") pairs, as written


@dataclass(frozen=True)
class CreateSecurityIntegration:
    name: str
    properties: Properties
    if_not_exists: bool = False


@dataclass(frozen=True)
class AlterSecurityIntegration:
    name: str
    properties: Properties


@dataclass(frozen=True)
class DropSecurityIntegration:
    name: str
    if_exists: bool = False


@dataclass(frozen=True)
class ShowSecurityIntegrations:
    pass


@dataclass(frozen=True)
class ShowCreateSecurityIntegration:
    name: str


@dataclass(frozen=True)
class CreateGroupProvider:
    name: str
    properties: Properties
    if_not_exists: bool = False


@dataclass(frozen=True)
class DropGroupProvider:
    name: str
    if_exists: bool = False


@dataclass(frozen=True)
class ShowGroupProviders:
    pass


@dataclass(frozen=True)
class ShowCreateGroupProvider:
    name: str


@dataclass(frozen=True)
class AdminSetFrontendConfig:
    properties: Properties


@dataclass(frozen=True)
class AdminShowFrontendConfig:
    like: str | None = None


# ------------------------------------------------------------------------- session statements


@dataclass(frozen=True)
class Assignment:
    """One `SET` item. scope: "SESSION", "GLOBAL" (also PERSIST) or "USER" (@name)."""

    scope: str
    name: str
    value: exp.Expr


@dataclass(frozen=True)
class SetVariables:
    assignments: tuple[Assignment, ...]


@dataclass(frozen=True)
class SelectItem:
    column_name: str
    expression: exp.Expr


@dataclass(frozen=True)
class SelectValues:
    """SELECT without tables: literals, @@variables, USER(), DATABASE(), …"""

    items: tuple[SelectItem, ...]
    limit: int | None = None
    offset: int = 0


@dataclass(frozen=True)
class ShowWarnings:
    errors_only: bool = False
    limit: int | None = None


@dataclass(frozen=True)
class ShowVariables:
    global_scope: bool = False
    like: str | None = None


@dataclass(frozen=True)
class ShowStatus:
    """SHOW [GLOBAL | SESSION] STATUS [LIKE ...]: the server's counters (fe keeps no per-session ones)."""

    like: str | None = None


@dataclass(frozen=True)
class ShowTables:
    """SHOW [FULL] TABLES [FROM db] [LIKE ...]: fe keeps no tables, so always an empty list (the mysql client asks
    for it on USE, for name completion)."""

    database: str | None = None
    full: bool = False


@dataclass(frozen=True)
class ShowDatabases:
    like: str | None = None


@dataclass(frozen=True)
class UseDatabase:
    name: str


Statement = (
    CreateUser
    | AlterUser
    | DropUser
    | CreateRole
    | DropRole
    | GrantRoles
    | RevokeRoles
    | SetPassword
    | ShowAuthentication
    | ShowUsers
    | ShowCurrentUser
    | ShowGrants
    | ShowRoles
    | CreateSecurityIntegration
    | AlterSecurityIntegration
    | DropSecurityIntegration
    | ShowSecurityIntegrations
    | ShowCreateSecurityIntegration
    | CreateGroupProvider
    | DropGroupProvider
    | ShowGroupProviders
    | ShowCreateGroupProvider
    | AdminSetFrontendConfig
    | AdminShowFrontendConfig
    | SetVariables
    | SelectValues
    | ShowWarnings
    | ShowVariables
    | ShowStatus
    | ShowTables
    | ShowDatabases
    | UseDatabase
)


# ------------------------------------------------------------------------- binding


def bind(tree: exp.Expr, sql: str) -> Statement:
    binder = _BINDERS.get(type(tree))
    if binder is None:
        raise unsupported(sql)
    return binder(tree, sql)


def unsupported(sql: str) -> SqlError:
    return syntax_error(sql)


def _user(spec: syntax.UserSpec | None) -> UserRef | None:
    if spec is None:
        return None
    if spec.args.get("current"):
        return UserRef(name="", host="", current=True)
    host = spec.args.get("host")
    return UserRef(name=spec.this, host="%" if host is None else host.lower())


def _required_user(spec: syntax.UserSpec) -> UserRef:
    user = _user(spec)
    assert user is not None
    return user


def _auth(clause: syntax.AuthClause | None) -> AuthOption | None:
    if clause is None:
        return None
    return AuthOption(plugin=clause.args.get("plugin"), keyword=clause.args.get("keyword"), value=clause.this)


def _names(tree: exp.Expr, key: str = "expressions") -> tuple[str, ...]:
    return tuple(tree.args.get(key) or ())


def _bind_create_user(tree: syntax.CreateUser, sql: str) -> Statement:
    return CreateUser(
        user=_required_user(tree.this),
        if_not_exists=bool(tree.args.get("exists")),
        auth=_auth(tree.args.get("auth")),
        default_roles=_names(tree, "default_roles"),
        property_keys=_names(tree, "properties"),
    )


def _bind_alter_user(tree: syntax.AlterUser, sql: str) -> Statement:
    return AlterUser(
        user=_required_user(tree.this),
        if_exists=bool(tree.args.get("exists")),
        auth=_auth(tree.args.get("auth")),
        default_role_mode=tree.args.get("default_role_mode"),
        default_roles=_names(tree, "default_roles"),
    )


def _bind_drop_user(tree: syntax.DropUser, sql: str) -> Statement:
    return DropUser(user=_required_user(tree.this), if_exists=bool(tree.args.get("exists")))


def _bind_create_role(tree: syntax.CreateRole, sql: str) -> Statement:
    return CreateRole(roles=_names(tree), if_not_exists=bool(tree.args.get("exists")))


def _bind_drop_role(tree: syntax.DropRole, sql: str) -> Statement:
    return DropRole(roles=_names(tree), if_exists=bool(tree.args.get("exists")))


def _bind_grant_roles(tree: syntax.GrantRoles, sql: str) -> Statement:
    if tree.args.get("role") is not None:
        return GrantRoles(roles=_names(tree), role=tree.args["role"])
    if tree.args.get("group") is not None:
        return GrantRoles(roles=_names(tree), group=tree.args["group"])
    return GrantRoles(roles=_names(tree), user=_required_user(tree.this))


def _bind_revoke_roles(tree: syntax.RevokeRoles, sql: str) -> Statement:
    if tree.args.get("role") is not None:
        return RevokeRoles(roles=_names(tree), role=tree.args["role"])
    if tree.args.get("group") is not None:
        return RevokeRoles(roles=_names(tree), group=tree.args["group"])
    return RevokeRoles(roles=_names(tree), user=_required_user(tree.this))


def _bind_set_password(tree: syntax.SetPassword, sql: str) -> Statement:
    return SetPassword(user=_user(tree.this), password=tree.expression)


def _bind_show_authentication(tree: syntax.ShowAuthentication, sql: str) -> Statement:
    return ShowAuthentication(user=_user(tree.this), all_users=bool(tree.args.get("all")))


def _bind_show_grants(tree: syntax.ShowGrants, sql: str) -> Statement:
    return ShowGrants(user=_user(tree.this), role=tree.args.get("role"), group=tree.args.get("group"))


def _properties(tree: exp.Expr) -> Properties:
    return tuple(tree.args.get("properties") or ())


def _bind_set(tree: exp.Set, sql: str) -> Statement:
    if tree.args.get("unset") or tree.args.get("tag"):
        raise unsupported(sql)
    assignments: list[Assignment] = []
    for item in tree.expressions:
        if not isinstance(item, exp.SetItem):
            raise unsupported(sql)
        assignments.extend(_bind_set_item(item, sql))
    return SetVariables(tuple(assignments))


def _bind_set_item(item: exp.SetItem, sql: str) -> list[Assignment]:
    kind = (item.args.get("kind") or "").upper()
    if kind in ("NAMES", "CHARACTER SET"):
        charset = _word_value(item.this, sql)
        names = ("character_set_client", "character_set_connection", "character_set_results")
        assignments = [Assignment("SESSION", name, exp.Literal.string(charset)) for name in names]
        if kind == "NAMES":
            collation = item.args.get("collate")
            value = exp.Literal.string(_word_value(collation, sql)) if collation is not None else None
            if value is not None:
                assignments.append(Assignment("SESSION", "collation_connection", value))
        return assignments
    if kind == "TRANSACTION":
        return _bind_set_transaction(item, sql)
    equality = item.this
    if not isinstance(equality, exp.EQ):
        raise unsupported(sql)
    target, value = equality.this, equality.expression
    scope = "GLOBAL" if kind in ("GLOBAL", "PERSIST", "PERSIST_ONLY") else "SESSION"
    if isinstance(target, exp.SessionParameter):
        target_kind = (target.args.get("kind") or "").upper()
        if target_kind in ("GLOBAL", "PERSIST", "PERSIST_ONLY"):
            scope = "GLOBAL"
        return [Assignment(scope, target.name.lower(), value)]
    if isinstance(target, exp.Parameter):
        return [Assignment("USER", target.name, value)]
    if isinstance(target, exp.Column) and not target.table:
        return [Assignment(scope, target.name.lower(), value)]
    raise unsupported(sql)


def _bind_set_transaction(item: exp.SetItem, sql: str) -> list[Assignment]:
    scope = "GLOBAL" if item.args.get("global_") else "SESSION"
    assignments = []
    for characteristic in item.expressions:
        text = characteristic.name.upper()
        if text.startswith("ISOLATION LEVEL "):
            level = text.removeprefix("ISOLATION LEVEL ").replace(" ", "-")
            for name in ("transaction_isolation", "tx_isolation"):
                assignments.append(Assignment(scope, name, exp.Literal.string(level)))
        elif text in ("READ ONLY", "READ WRITE"):
            read_only = exp.Literal.number(1 if text == "READ ONLY" else 0)
            for name in ("transaction_read_only", "tx_read_only"):
                assignments.append(Assignment(scope, name, read_only))
        else:
            raise unsupported(sql)
    return assignments


def _word_value(node: exp.Expr | None, sql: str) -> str:
    if isinstance(node, (exp.Literal, exp.Var, exp.Identifier, exp.Column)):
        return node.name
    if isinstance(node, exp.Expr) and node.is_string:
        return node.name
    raise unsupported(sql)


_SELECT_ALLOWED_ARGS = {"expressions", "limit", "offset", "from_", "from", "kind"}


def _bind_select(tree: exp.Select, sql: str) -> Statement:
    for key, value in tree.args.items():
        if value in (None, False, [], ""):
            continue
        if key not in _SELECT_ALLOWED_ARGS:
            raise unsupported(sql)
    source = tree.args.get("from_") or tree.args.get("from")
    if source is not None and not (isinstance(source.this, exp.Table) and source.this.name.lower() == "dual"):
        raise unsupported(sql)
    if tree.args.get("kind"):
        raise unsupported(sql)
    items = tuple(SelectItem(_column_name(projection), projection) for projection in tree.expressions)
    limit, offset = _limit(tree, sql)
    return SelectValues(items=items, limit=limit, offset=offset)


def _limit(tree: exp.Expr, sql: str) -> tuple[int | None, int]:
    limit_node = tree.args.get("limit")
    offset_node = tree.args.get("offset")
    limit = None
    offset = 0
    if limit_node is not None:
        value = limit_node.expression
        if not (isinstance(value, exp.Literal) and value.is_int):
            raise unsupported(sql)
        limit = int(value.name)
        inner_offset = limit_node.args.get("offset")
        if isinstance(inner_offset, exp.Literal) and inner_offset.is_int:
            offset = int(inner_offset.name)
    if offset_node is not None:
        value = offset_node.expression
        if not (isinstance(value, exp.Literal) and value.is_int):
            raise unsupported(sql)
        offset = int(value.name)
    return limit, offset


def _column_name(projection: exp.Expr) -> str:
    if isinstance(projection, exp.Alias):
        return projection.alias
    if isinstance(projection, exp.Literal) and projection.is_string:
        return projection.name
    return projection.meta.get("source_text") or projection.sql(dialect="mysql")


def _bind_show(tree: exp.Show, sql: str) -> Statement:
    kind = str(tree.this).upper()
    like_node = tree.args.get("like")
    like = like_node.name if like_node is not None else None
    if tree.args.get("where") is not None:
        raise unsupported(sql)
    if kind in ("WARNINGS", "ERRORS"):
        limit, _ = _limit(tree, sql) if tree.args.get("limit") else (None, 0)
        return ShowWarnings(errors_only=kind == "ERRORS", limit=limit)
    if kind == "VARIABLES":
        return ShowVariables(global_scope=bool(tree.args.get("global_")), like=like)
    if kind == "DATABASES":
        return ShowDatabases(like=like)
    if kind == "STATUS":
        return ShowStatus(like=like)
    if kind == "TABLES":
        db = tree.args.get("db")
        return ShowTables(database=db.name if db is not None else None, full=bool(tree.args.get("full")))
    raise unsupported(sql)


def _bind_use(tree: exp.Use, sql: str) -> Statement:
    if tree.args.get("kind") is not None or not tree.this:
        raise unsupported(sql)
    return UseDatabase(name=tree.this.name)


_BINDERS: dict[type[exp.Expr], Callable[[Any, str], Statement]] = {
    syntax.CreateUser: _bind_create_user,
    syntax.AlterUser: _bind_alter_user,
    syntax.DropUser: _bind_drop_user,
    syntax.CreateRole: _bind_create_role,
    syntax.DropRole: _bind_drop_role,
    syntax.GrantRoles: _bind_grant_roles,
    syntax.RevokeRoles: _bind_revoke_roles,
    syntax.SetPassword: _bind_set_password,
    syntax.ShowAuthentication: _bind_show_authentication,
    syntax.ShowUsers: lambda tree, sql: ShowUsers(),
    syntax.ShowCurrentUser: lambda tree, sql: ShowCurrentUser(),
    syntax.ShowGrants: _bind_show_grants,
    syntax.ShowRoles: lambda tree, sql: ShowRoles(),
    syntax.CreateSecurityIntegration: lambda tree, sql: CreateSecurityIntegration(
        tree.this, _properties(tree), bool(tree.args.get("exists"))
    ),
    syntax.AlterSecurityIntegration: lambda tree, sql: AlterSecurityIntegration(tree.this, _properties(tree)),
    syntax.DropSecurityIntegration: lambda tree, sql: DropSecurityIntegration(tree.this, bool(tree.args.get("exists"))),
    syntax.ShowSecurityIntegrations: lambda tree, sql: ShowSecurityIntegrations(),
    syntax.ShowCreateSecurityIntegration: lambda tree, sql: ShowCreateSecurityIntegration(tree.this),
    syntax.CreateGroupProvider: lambda tree, sql: CreateGroupProvider(
        tree.this, _properties(tree), bool(tree.args.get("exists"))
    ),
    syntax.DropGroupProvider: lambda tree, sql: DropGroupProvider(tree.this, bool(tree.args.get("exists"))),
    syntax.ShowGroupProviders: lambda tree, sql: ShowGroupProviders(),
    syntax.ShowCreateGroupProvider: lambda tree, sql: ShowCreateGroupProvider(tree.this),
    syntax.AdminSetFrontendConfig: lambda tree, sql: AdminSetFrontendConfig(_properties(tree)),
    syntax.AdminShowFrontendConfig: lambda tree, sql: AdminShowFrontendConfig(tree.args.get("like")),
    exp.Set: _bind_set,
    exp.Select: _bind_select,
    exp.Show: _bind_show,
    exp.Use: _bind_use,
}
