"""What the catalog raises. `CatalogError` is fatal (the server refuses to start); the others describe one
operation that could not be done, and the SQL layer turns them into MySQL errors."""

from __future__ import annotations

from fe.catalog.identity import format_identity


class CatalogError(Exception):
    """The catalog file is corrupt, unreadable, or from a newer fe: the message says which and what to do."""


class CatalogOperationError(Exception):
    """One write or read that could not be done; the catalog itself is fine."""


class UserExistsError(CatalogOperationError):
    def __init__(self, name: str, host: str) -> None:
        super().__init__(f"user {format_identity(name, host)} already exists")
        self.name = name
        self.host = host


class UserNotFoundError(CatalogOperationError):
    def __init__(self, name: str, host: str) -> None:
        super().__init__(f"cannot find user {format_identity(name, host)}")
        self.name = name
        self.host = host


class RoleExistsError(CatalogOperationError):
    def __init__(self, role: str) -> None:
        super().__init__(f"role '{role}' already exists")
        self.role = role


class RoleNotFoundError(CatalogOperationError):
    def __init__(self, role: str) -> None:
        super().__init__(f"role '{role}' does not exist")
        self.role = role


class RoleNotGrantedError(CatalogOperationError):
    def __init__(self, role: str, name: str, host: str) -> None:
        super().__init__(f"role '{role}' is not granted to {format_identity(name, host)}")
        self.role = role
        self.name = name
        self.host = host


class ProtectedObjectError(CatalogOperationError):
    """An operation on root or a built-in role that would break the catalog's invariants."""


class RoleCycleError(CatalogOperationError):
    def __init__(self, role: str, granted: str) -> None:
        super().__init__(f"granting '{granted}' to role '{role}' would make a cycle ('{granted}' already holds it)")
        self.role = role
        self.granted = granted


class CatalogBusyError(CatalogOperationError):
    """The catalog stayed locked by another process past the busy timeout, or the disk refused the write."""


class IntegrationExistsError(CatalogOperationError):
    def __init__(self, name: str) -> None:
        super().__init__(f"security integration '{name}' already exists")  # StarRocks' text
        self.name = name


class IntegrationNotFoundError(CatalogOperationError):
    def __init__(self, name: str, *, in_chain: bool = False) -> None:
        text = f"security integration '{name}' not found"  # StarRocks' text
        if in_chain:
            text = f"'authentication_chain' names {text}"
        super().__init__(text)
        self.name = name


class IntegrationInUseError(CatalogOperationError):
    """DROP SECURITY INTEGRATION of one the authentication chain names."""

    def __init__(self, name: str, chain: str, remaining: str, *, from_settings: bool) -> None:
        where = "fe.conf's authentication_chain" if from_settings else "authentication_chain"
        super().__init__(
            f"security integration '{name}' is in {where} ({chain}); take it out first: "
            f'ADMIN SET FRONTEND CONFIG ("authentication_chain" = "{remaining}")'
        )
        self.name = name


class GroupProviderExistsError(CatalogOperationError):
    def __init__(self, name: str) -> None:
        super().__init__(f"Group Provider '{name}' already exists")  # StarRocks' text
        self.name = name


class GroupProviderNotFoundError(CatalogOperationError):
    def __init__(self, name: str) -> None:
        super().__init__(f"Group Provider '{name}' not found")  # StarRocks' text
        self.name = name


class GroupProviderInUseError(CatalogOperationError):
    def __init__(self, name: str, user: str) -> None:
        super().__init__(f"Group Provider '{name}' is used by {user}; change or drop that first")
        self.name = name
        self.user = user


class InvalidChainError(CatalogOperationError):
    """An authentication_chain that is not a list of `native` and existing integrations, each once."""
