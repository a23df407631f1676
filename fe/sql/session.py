"""Per-connection session state that SQL statements read and change."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fe.auth.methods import LoginOutcome


@dataclass(frozen=True)
class Warning_:
    level: str  # "Note" | "Warning" | "Error"
    code: int
    message: str


@dataclass(slots=True)  # one per login
class Session:
    connection_id: int
    # Who logged in: the login name and the client's address; and the catalog identity it matched.
    user: str
    client_host: str
    matched_name: str
    matched_host: str
    database: str = ""
    autocommit: bool = True
    variables: dict[str, object] = field(default_factory=dict)
    # Warnings of the last statement, for SHOW WARNINGS; replaced by each statement that is not SHOW WARNINGS.
    warnings: list[Warning_] = field(default_factory=list)
    # How the session logged in: the account, the method, the token's claims (one value, kept for the session).
    login: LoginOutcome | None = None
    # Set at login: the external groups the session's group providers gave it (the roles granted to them are the
    # session's too), and the security integration that admitted it (None for a catalog account).
    groups: frozenset[str] = frozenset()
    security_integration: str | None = None

    @property
    def current_user(self) -> str:
        """CURRENT_USER(): the catalog identity, `name@host`."""
        return f"{self.matched_name}@{self.matched_host}"

    @property
    def login_user(self) -> str:
        """USER(): the name the client sent and the address it came from."""
        return f"{self.user}@{self.client_host}"

    def reset(self) -> None:
        """COM_RESET_CONNECTION: back to a freshly logged-in session, same user and default database."""
        self.autocommit = True
        self.variables.clear()
        self.warnings.clear()
