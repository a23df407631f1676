"""The user catalog in PostgreSQL (psycopg 3 and its pool), for fe nodes on several hosts sharing one catalog."""

from fe.catalog.pg.errors import CatalogUnavailableError
from fe.catalog.pg.location import LocationError, PostgresLocation, is_postgres_location, parse_location
from fe.catalog.pg.store import PostgresCatalog

__all__ = [
    "CatalogUnavailableError",
    "LocationError",
    "PostgresCatalog",
    "PostgresLocation",
    "is_postgres_location",
    "parse_location",
]
