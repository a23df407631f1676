"""Result sets of the SHOW statements, column by column as MySQL / StarRocks print them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from fe.auth.groups import GroupProvider
from fe.catalog import Account, SecurityIntegration, format_identity
from fe.catalog.identity import like_regex
from fe.catalog.integration import properties_text
from fe.sql.results import Column, ResultSet
from fe.sql.session import Warning_

LONGLONG = 0x08

AUTHENTICATION_COLUMNS = (Column("UserIdentity"), Column("Password"), Column("AuthPlugin"), Column("UserForAuthPlugin"))
GRANTS_COLUMNS = (Column("UserIdentity"), Column("Catalog"), Column("Grants"))


def authentication(accounts: Iterable[Account]) -> ResultSet:
    """StarRocks' SHOW [ALL] AUTHENTICATION: Password is Yes for a non-empty password; the JSON for token users."""
    rows = [
        [
            account.identity,
            "Yes" if account.has_password else "No",
            account.plugin_display or None,  # NULL when no plugin was named, as StarRocks shows it
            account.auth_string if account.is_token_user else None,
        ]
        for account in accounts
    ]
    return ResultSet(AUTHENTICATION_COLUMNS, rows)


def users(accounts: Iterable[Account]) -> ResultSet:
    return ResultSet((Column("User"),), [[account.identity] for account in accounts])


def current_user(name: str, host: str) -> ResultSet:
    return ResultSet((Column("User"),), [[format_identity(name, host)]])


def grants(account: Account | None) -> ResultSet:
    """One row per user: `GRANT 'r1', 'r2' TO 'u'@'h'`, Catalog NULL as StarRocks shows role grants."""
    if account is None or not account.roles:
        return ResultSet(GRANTS_COLUMNS, [])
    roles = ", ".join(f"'{role}'" for role in sorted(account.roles))
    return ResultSet(GRANTS_COLUMNS, [[account.identity, None, f"GRANT {roles} TO {account.identity}"]])


def session_grants(identity: str, account: Account | None, by_group: Mapping[str, Iterable[str]]) -> ResultSet:
    """SHOW GRANTS in a session: the account's grants (none for a session an integration admitted), then one row
    per external group of the session that brings roles, saying so."""
    rows = [list(row) for row in grants(account).rows]
    for group, roles in sorted(by_group.items()):
        names = ", ".join(f"'{role}'" for role in sorted(roles))
        rows.append([identity, None, f"GRANT {names} TO EXTERNAL GROUP {_quoted(group)}"])
    return ResultSet(GRANTS_COLUMNS, rows)


def external_group_grants(group: str, roles: Sequence[str]) -> ResultSet:
    """SHOW GRANTS FOR EXTERNAL GROUP 'g': `GRANT 'r1', 'r2' TO EXTERNAL GROUP 'g'` (Catalog NULL)."""
    columns = (Column("ExternalGroup"), Column("Catalog"), Column("Grants"))
    names = ", ".join(f"'{role}'" for role in roles)
    return ResultSet(columns, [[group, None, f"GRANT {names} TO EXTERNAL GROUP {_quoted(group)}"]] if names else [])


def security_integrations(integrations: Iterable[SecurityIntegration]) -> ResultSet:
    columns = (Column("Name"), Column("Type"), Column("Comment"))
    return ResultSet(columns, [[i.name, i.type, i.comment] for i in sorted(integrations, key=lambda i: i.name)])


def create_security_integration(integration: SecurityIntegration) -> ResultSet:
    """StarRocks' SHOW CREATE SECURITY INTEGRATION: the statement that makes it, PROPERTIES on their own line."""
    columns = (Column("Security Integration"), Column("Create Security Integration"))
    text = (
        f"CREATE SECURITY INTEGRATION {_backquoted(integration.name)} PROPERTIES (\n"
        f"{properties_text(integration.properties)}\n)"
    )
    return ResultSet(columns, [[integration.name, text]])


def group_providers(providers: Iterable[GroupProvider]) -> ResultSet:
    columns = (Column("Name"), Column("Type"), Column("Comment"))
    return ResultSet(columns, [[p.name, p.type, p.comment] for p in sorted(providers, key=lambda p: p.name)])


def create_group_provider(provider: GroupProvider) -> ResultSet:
    columns = (Column("Group Provider"), Column("Create Group Provider"))
    text = f"CREATE GROUP PROVIDER {_backquoted(provider.name)} PROPERTIES (\n{properties_text(provider.properties)}\n)"
    return ResultSet(columns, [[provider.name, text]])


FRONTEND_CONFIG_COLUMNS = (
    Column("Key"),
    Column("AliasNames"),
    Column("Value"),
    Column("Type"),
    Column("IsMutable"),
    Column("Comment"),
)


def frontend_config(entries: Iterable[Sequence[str]], like: str | None) -> ResultSet:
    """ADMIN SHOW FRONTEND CONFIG [LIKE ...]: StarRocks' columns; `entries` are rows in that order."""
    matches = like_matcher(like)
    return ResultSet(FRONTEND_CONFIG_COLUMNS, [list(entry) for entry in entries if matches(entry[0])])


def _quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _backquoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def role_grants(role: str, granted: Iterable[str]) -> ResultSet:
    """SHOW GRANTS FOR ROLE: `GRANT 'r1', 'r2' TO ROLE 'role'` (Catalog NULL), as StarRocks lists role grants."""
    columns = (Column("RoleName"), Column("Catalog"), Column("Grants"))
    names = ", ".join(f"'{name}'" for name in granted)
    return ResultSet(columns, [[role, None, f"GRANT {names} TO ROLE '{role}'"]] if names else [])


def roles(entries: Iterable[tuple[str, bool]]) -> ResultSet:
    columns = (Column("Name"), Column("Builtin"), Column("Comment"))
    return ResultSet(columns, [[name, "true" if builtin else "false", ""] for name, builtin in sorted(entries)])


def warnings(entries: Iterable[Warning_], *, errors_only: bool, limit: int | None) -> ResultSet:
    columns = (Column("Level"), Column("Code", LONGLONG), Column("Message"))
    rows = [[w.level, w.code, w.message] for w in entries if not errors_only or w.level == "Error"]
    return ResultSet(columns, rows if limit is None else rows[:limit])


def variables(values: Mapping[str, object], like: str | None) -> ResultSet:
    matches = like_matcher(like)
    rows = [[name, _text(value)] for name, value in sorted(values.items()) if matches(name)]
    return ResultSet((Column("Variable_name"), Column("Value")), rows)


def databases(names: Iterable[str], like: str | None) -> ResultSet:
    matches = like_matcher(like)
    return ResultSet((Column("Database"),), [[name] for name in names if matches(name)])


def like_matcher(pattern: str | None) -> Callable[[str], bool]:
    """SQL LIKE (case-insensitive, `%`, `_`, backslash escapes) as a predicate; None matches everything."""
    if pattern is None:
        return lambda _text: True
    regex = like_regex(pattern)
    return lambda text: regex.fullmatch(text) is not None


def _text(value: object) -> object:
    return value if value is None else str(value)
