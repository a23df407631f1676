"""Where the PostgreSQL catalog is: a `postgresql://` URL (or libpq `key=value` string) and a password kept apart.

The password comes from the URL, or better from FE_CATALOG_PASSWORD or a file; it is handed to libpq as its own
parameter and never appears in `describe()`, in `repr()` or in an error message (`mask()` scrubs it from any text
that might quote it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

SCHEMES = ("postgresql://", "postgres://")
PASSWORD_ENV = "FE_CATALOG_PASSWORD"

# Applied unless the URL sets them: a dead server or a silent network must fail a request within seconds instead
# of TCP's minutes, so that writes get a clear error and the change watcher notices the outage.
_DEFAULTS: dict[str, Any] = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 3,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
    "application_name": "fe",
}


class LocationError(ValueError):
    """The catalog setting is not a usable PostgreSQL location; the message never holds the password."""


def is_postgres_location(text: str) -> bool:
    return text.strip().lower().startswith(SCHEMES)


@dataclass(frozen=True)
class PostgresLocation:
    params: dict[str, Any]  # libpq parameters without the password
    password: str | None = field(default=None, repr=False)

    def connect_kwargs(self) -> dict[str, Any]:
        """What psycopg.connect (and the pool) take: the parameters, fe's defaults and the password."""
        kwargs = {**_DEFAULTS, **self.params}
        if self.password is not None:
            kwargs["password"] = self.password
        return kwargs

    def describe(self) -> str:
        """postgresql://user@host:port/dbname, for messages and logs."""
        user = self.params.get("user", "")
        host = self.params.get("host", "") or "localhost"
        port = self.params.get("port", "")
        dbname = self.params.get("dbname", "")
        return f"postgresql://{f'{user}@' if user else ''}{host}{f':{port}' if port else ''}/{dbname}"

    def mask(self, text: str) -> str:
        """`text` with the password, if it appears, replaced by ***."""
        if self.password:
            text = text.replace(self.password, "***")
        return text


def parse_location(text: str, password: str | None = None) -> PostgresLocation:
    """Read a `postgresql://` URL or a libpq `key=value` string; `password`, when given, wins over the URL's."""
    try:
        params: dict[str, Any] = conninfo_to_dict(text.strip())
    except psycopg.ProgrammingError as exc:
        url_password = _password_in(text)
        message = str(exc).replace(url_password, "***") if url_password else str(exc)
        raise LocationError(f"the catalog location is not a valid PostgreSQL connection string: {message}") from None
    url_password = params.pop("password", None)
    chosen = password if password is not None else url_password
    if not params.get("dbname"):
        raise LocationError("the catalog location names no database (postgresql://user@host:port/DATABASE)")
    return PostgresLocation(params, chosen or None)


def _password_in(text: str) -> str:
    """The password part of a URL (user:password@host), for masking a message about a URL that did not parse."""
    for scheme in SCHEMES:
        if text.lower().startswith(scheme):
            authority = text[len(scheme) :].split("/", 1)[0]
            userinfo, at, _host = authority.rpartition("@")
            if at and ":" in userinfo:
                return userinfo.split(":", 1)[1]
    return ""
