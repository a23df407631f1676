"""What the catalog stores about one user identity, as the rest of the server sees it."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from fe.auth.token_spec import TOKEN_PLUGINS, TokenAuthSpec
from fe.catalog.identity import format_identity

CACHING_SHA2 = "caching_sha2_password"
MYSQL_NATIVE = "mysql_native_password"
PASSWORD_PLUGINS = (CACHING_SHA2, MYSQL_NATIVE)
KNOWN_PLUGINS = (*PASSWORD_PLUGINS, *TOKEN_PLUGINS)

ROOT_USER = "root"
ROOT_HOST = "%"
ROOT_ROLE = "root"
USER_ADMIN_ROLE = "user_admin"
PUBLIC_ROLE = "public"
BUILTIN_ROLES = (ROOT_ROLE, USER_ADMIN_ROLE, PUBLIC_ROLE)
# Members of these roles may manage users, roles and grants.
ADMIN_ROLES = frozenset({ROOT_ROLE, USER_ADMIN_ROLE})


@dataclass(frozen=True)
class Credentials:
    """How an identity logs in: the plugin, what is stored for it, and the plugin name to show."""

    plugin: str  # one of KNOWN_PLUGINS
    auth_string: str  # pbkdf2 hash, "*HEX" native hash, "" (empty password) or normalised token JSON
    plugin_display: str  # upper-cased, as the administrator named it (AUTHENTICATION_JWT, ...); "" when none was

    def __post_init__(self) -> None:
        if self.plugin not in KNOWN_PLUGINS:
            raise ValueError(f"unknown authentication plugin {self.plugin!r}")


@dataclass(frozen=True)
class Account:
    name: str
    host: str
    plugin: str
    auth_string: str
    plugin_display: str
    roles: frozenset[str] = frozenset()  # granted to this identity directly
    default_roles: tuple[str, ...] = ()
    created_at: str = field(default="", compare=False)
    # Direct roles plus every role they hold in turn (GRANT r TO ROLE r2); privileges follow these.
    effective_roles: frozenset[str] = frozenset()

    @property
    def identity(self) -> str:
        return format_identity(self.name, self.host)

    @property
    def is_token_user(self) -> bool:
        return self.plugin in TOKEN_PLUGINS

    @property
    def has_password(self) -> bool:
        return self.plugin in PASSWORD_PLUGINS and self.auth_string != ""

    @property
    def is_root(self) -> bool:
        return self.name == ROOT_USER and self.host == ROOT_HOST

    @cached_property
    def is_user_admin(self) -> bool:
        """May create, alter and drop users, manage roles and grants. (Asked at every login; the account is
        immutable, so it is worked out once per Account object.)"""
        return self.is_root or bool((self.roles | self.effective_roles) & ADMIN_ROLES)

    @cached_property
    def token_spec(self) -> TokenAuthSpec | None:
        """The stored (already validated and normalised) token JSON, parsed once per Account object."""
        if not self.is_token_user:
            return None
        return token_spec_from_stored_json(self.auth_string)


def token_spec_from_stored_json(text: str) -> TokenAuthSpec:
    return TokenAuthSpec.from_json(text)
