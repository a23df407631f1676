"""fe: a MySQL-protocol server with JWT / OpenID Connect logins."""

__version__ = "0.1.0"
