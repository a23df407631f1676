"""The persisted user catalog: identities, how they log in, roles and role grants."""

from fe.catalog.account import (
    ADMIN_ROLES,
    BUILTIN_ROLES,
    CACHING_SHA2,
    MYSQL_NATIVE,
    PASSWORD_PLUGINS,
    PUBLIC_ROLE,
    ROOT_HOST,
    ROOT_ROLE,
    ROOT_USER,
    USER_ADMIN_ROLE,
    Account,
    Credentials,
)
from fe.catalog.errors import (
    CatalogBusyError,
    CatalogError,
    CatalogOperationError,
    ProtectedObjectError,
    RoleCycleError,
    RoleExistsError,
    RoleNotFoundError,
    RoleNotGrantedError,
    UserExistsError,
    UserNotFoundError,
)
from fe.catalog.identity import format_identity
from fe.catalog.store import Catalog

__all__ = [
    "ADMIN_ROLES",
    "BUILTIN_ROLES",
    "CACHING_SHA2",
    "MYSQL_NATIVE",
    "PASSWORD_PLUGINS",
    "PUBLIC_ROLE",
    "ROOT_HOST",
    "ROOT_ROLE",
    "ROOT_USER",
    "USER_ADMIN_ROLE",
    "Account",
    "Catalog",
    "CatalogBusyError",
    "CatalogError",
    "CatalogOperationError",
    "Credentials",
    "ProtectedObjectError",
    "RoleCycleError",
    "RoleExistsError",
    "RoleNotFoundError",
    "RoleNotGrantedError",
    "UserExistsError",
    "UserNotFoundError",
    "format_identity",
]
