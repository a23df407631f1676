"""Who may hold a connection: connections still logging in have their own pool, bounded in all and per client
address, apart from logged-in sessions; and when the sessions are at `max_connections`, administrators (root and
user_admin) still get in through a few reserved slots, as MySQL keeps one for CONNECTION_ADMIN.

Strangers who open sockets and never log in can therefore fill only the login pool, never the sessions. When one
address holds its whole share of the pool, its oldest unfinished login makes room for its newest: an idle flood
from an address cannot keep that address's real users (an administrator on the same host) out.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass


@dataclass(frozen=True)
class LimitSettings:
    max_sessions: int  # max_connections: logged-in sessions of ordinary users
    admin_reserved: int  # more sessions only administrators may take
    max_logging_in: int  # connections that have not finished logging in
    max_logging_in_per_address: int


@dataclass(frozen=True, slots=True)
class Admission:
    admitted: bool
    evict: Hashable | None = None  # a connection that must be closed to make room for this one


_ADMITTED = Admission(True)  # the common answers, shared
_REFUSED = Admission(False)


class ConnectionLimits:
    """Bookkeeping only: the listener and the connections call it; it closes nothing itself."""

    def __init__(self, settings: LimitSettings) -> None:
        self.settings = settings
        # A share smaller than the pool: an address that could fill the pool alone has no share to be held to.
        self._has_share = settings.max_logging_in_per_address < settings.max_logging_in
        self._logging_in: OrderedDict[Hashable, str] = OrderedDict()  # oldest first → client address
        self._per_address: dict[str, int] = {}
        self._sessions: set[Hashable] = set()
        self.evicted = 0
        self.refused = 0

    @property
    def logging_in(self) -> int:
        return len(self._logging_in)

    @property
    def sessions(self) -> int:
        return len(self._sessions)

    def connect(self, connection: Hashable, address: str) -> Admission:
        """A new socket: admitted to the login pool, maybe in place of the address's oldest unfinished login."""
        limits = self.settings
        per_address = self._per_address
        evict: Hashable | None = None
        if self._has_share and per_address.get(address, 0) >= limits.max_logging_in_per_address:
            evict = next(c for c, a in self._logging_in.items() if a == address)
        elif len(self._logging_in) >= limits.max_logging_in:
            self.refused += 1
            return _REFUSED
        if evict is not None:
            self.evicted += 1
            self.disconnect(evict)
        self._logging_in[connection] = address
        per_address[address] = per_address.get(address, 0) + 1
        return _ADMITTED if evict is None else Admission(True, evict)

    def readdress(self, connection: Hashable, address: str) -> Hashable | None:
        """A PROXY header named the real client: count the unfinished login under that address from now on.
        Returns a connection to close when that address was already at its share (its oldest unfinished login)."""
        old = self._logging_in.get(connection)
        if old is None or old == address:
            return None
        self._leave_pool(connection)
        admission = self.connect(connection, address)
        return admission.evict

    def log_in(self, connection: Hashable, is_admin: bool) -> bool:
        """The login verified: may it become a session? (A COM_CHANGE_USER of a session keeps its slot.)"""
        if connection in self._sessions:
            return True
        limits = self.settings
        allowed = limits.max_sessions + (limits.admin_reserved if is_admin else 0)
        if len(self._sessions) >= allowed:
            self.refused += 1
            return False
        self._leave_pool(connection)
        self._sessions.add(connection)
        return True

    def disconnect(self, connection: Hashable) -> None:
        self._leave_pool(connection)
        self._sessions.discard(connection)

    def _leave_pool(self, connection: Hashable) -> None:
        address = self._logging_in.pop(connection, None)
        if address is not None:
            left = self._per_address[address] - 1
            if left:
                self._per_address[address] = left
            else:
                del self._per_address[address]
