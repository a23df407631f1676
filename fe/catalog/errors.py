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
