"""What the PostgreSQL catalog raises beyond fe.catalog.errors."""

from __future__ import annotations

from fe.catalog.errors import CatalogBusyError


class CatalogUnavailableError(CatalogBusyError):
    """PostgreSQL cannot be reached (down, restarting, network): the write or read was not done. A CatalogBusyError,
    so the SQL layer answers it with a clear ERR and the session goes on."""
