"""Syntax-tree nodes for the account, security integration, group provider and frontend config statements that
sqlglot does not know (it would parse them as Command).

Arguments hold plain Python values (names as written, without quotes); `statements.bind` turns a tree into a
typed statement object for the executor.
"""

from __future__ import annotations

import typing as t

from sqlglot import exp


class UserSpec(exp.Expression):
    """`name`, `'name'@'host'`, … or CURRENT_USER[()] (then `current` is True)."""

    arg_types: t.ClassVar[dict[str, bool]] = {"this": True, "host": False, "current": False}


class AuthClause(exp.Expression):
    """IDENTIFIED BY [PASSWORD] 'x' | IDENTIFIED WITH plugin [BY|AS 'x']; `keyword` is BY, AS or BY PASSWORD."""

    arg_types: t.ClassVar[dict[str, bool]] = {"plugin": False, "keyword": False, "this": False}


class CreateUser(exp.Expression):
    arg_types: t.ClassVar[dict[str, bool]] = {
        "this": True,
        "exists": False,
        "auth": False,
        "default_roles": False,
        "properties": False,
    }


class AlterUser(exp.Expression):
    # default_role_mode: "ROLES" (the listed default_roles), "NONE" or "ALL".
    arg_types: t.ClassVar[dict[str, bool]] = {
        "this": True,
        "exists": False,
        "auth": False,
        "default_roles": False,
        "default_role_mode": False,
    }


class DropUser(exp.Expression):
    arg_types: t.ClassVar[dict[str, bool]] = {"this": True, "exists": False}


class CreateRole(exp.Expression):
    arg_types: t.ClassVar[dict[str, bool]] = {"expressions": True, "exists": False}


class DropRole(exp.Expression):
    arg_types: t.ClassVar[dict[str, bool]] = {"expressions": True, "exists": False}


class GrantRoles(exp.Expression):
    """GRANT r[, r] TO [USER] user, or (with `role`) GRANT r[, r] TO ROLE role, or (with `group`) GRANT r[, r] TO
    EXTERNAL GROUP 'g'."""

    arg_types: t.ClassVar[dict[str, bool]] = {"expressions": True, "this": False, "role": False, "group": False}


class RevokeRoles(exp.Expression):
    arg_types: t.ClassVar[dict[str, bool]] = {"expressions": True, "this": False, "role": False, "group": False}


class SetPassword(exp.Expression):
    arg_types: t.ClassVar[dict[str, bool]] = {"this": False, "expression": True}


class ShowAuthentication(exp.Expression):
    arg_types: t.ClassVar[dict[str, bool]] = {"this": False, "all": False}


class ShowUsers(exp.Expression):
    arg_types: t.ClassVar[dict[str, bool]] = {}


class ShowCurrentUser(exp.Expression):
    arg_types: t.ClassVar[dict[str, bool]] = {}


class ShowGrants(exp.Expression):
    arg_types: t.ClassVar[dict[str, bool]] = {"this": False, "role": False, "group": False}


class ShowRoles(exp.Expression):
    arg_types: t.ClassVar[dict[str, bool]] = {}


# ------------------------------------------------------------------------- integrations, group providers, config
# `properties` holds the PROPERTIES / SET pairs as (key, value) tuples, in the order written.


class CreateSecurityIntegration(exp.Expression):
    arg_types: t.ClassVar[dict[str, bool]] = {"this": True, "exists": False, "properties": True}


class AlterSecurityIntegration(exp.Expression):
    arg_types: t.ClassVar[dict[str, bool]] = {"this": True, "properties": True}


class DropSecurityIntegration(exp.Expression):
    arg_types: t.ClassVar[dict[str, bool]] = {"this": True, "exists": False}


class ShowSecurityIntegrations(exp.Expression):
    arg_types: t.ClassVar[dict[str, bool]] = {}


class ShowCreateSecurityIntegration(exp.Expression):
    arg_types: t.ClassVar[dict[str, bool]] = {"this": True}


class CreateGroupProvider(exp.Expression):
    arg_types: t.ClassVar[dict[str, bool]] = {"this": True, "exists": False, "properties": True}


class DropGroupProvider(exp.Expression):
    arg_types: t.ClassVar[dict[str, bool]] = {"this": True, "exists": False}


class ShowGroupProviders(exp.Expression):
    arg_types: t.ClassVar[dict[str, bool]] = {}


class ShowCreateGroupProvider(exp.Expression):
    arg_types: t.ClassVar[dict[str, bool]] = {"this": True}


class AdminSetFrontendConfig(exp.Expression):
    arg_types: t.ClassVar[dict[str, bool]] = {"properties": True}


class AdminShowFrontendConfig(exp.Expression):
    arg_types: t.ClassVar[dict[str, bool]] = {"like": False}
