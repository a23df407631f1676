"""Which capability flags the upstream leg uses.

Flags that change what command-phase packets look like (or what the server may send) must be the same on both
legs, because packets pass through unchanged: those are the client's choice, limited to what the upstream offers.
Flags that only shape the login are fe's own choice on this leg (it logs in with its own account and attributes).
"""

from __future__ import annotations

from fe.mysql.constants import Capability

# The client's choice, relayed: every one of these changes packet formats or the server's behaviour per command.
RELAYED: int = (
    Capability.LONG_PASSWORD  # MariaDB reads bit 0 as CLIENT_MYSQL
    | Capability.FOUND_ROWS
    | Capability.LONG_FLAG
    | Capability.NO_SCHEMA
    | Capability.ODBC
    | Capability.LOCAL_FILES
    | Capability.IGNORE_SPACE
    | Capability.INTERACTIVE
    | Capability.IGNORE_SIGPIPE
    | Capability.TRANSACTIONS
    | Capability.MULTI_STATEMENTS
    | Capability.MULTI_RESULTS
    | Capability.PS_MULTI_RESULTS
    | Capability.SESSION_TRACK
    | Capability.DEPRECATE_EOF
    | Capability.QUERY_ATTRIBUTES
)

# fe's choice on this leg: what its own login needs, when the upstream offers it.
LOGIN: int = (
    Capability.PROTOCOL_41
    | Capability.CONNECT_WITH_DB
    | Capability.SECURE_CONNECTION
    | Capability.PLUGIN_AUTH
    | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA
    | Capability.CONNECT_ATTRS
)

# Never sent: SSL is per leg (the protocol adds it when this leg uses TLS); compression is not relayed; the
# response tracker does not follow optional metadata; expired-password sandboxes and multi-factor logins would
# leave fe's own login half done.
FORBIDDEN: int = (
    Capability.SSL
    | Capability.COMPRESS
    | Capability.ZSTD_COMPRESSION
    | Capability.OPTIONAL_RESULTSET_METADATA
    | Capability.CAN_HANDLE_EXPIRED_PASSWORDS
    | Capability.MULTI_FACTOR_AUTHENTICATION
    | 0xE0000000  # bits 29-31: MariaDB's SSL_VERIFY_SERVER_CERT, REMEMBER_OPTIONS, PROGRESS_OBSOLETE
)

REQUIRED: int = Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION | Capability.PLUGIN_AUTH


def relayable(upstream: int) -> int:
    """The relayed flags an upstream with these capabilities supports: all fe may offer its clients of them."""
    return upstream & RELAYED


def upstream_capabilities(client: int, upstream: int) -> int:
    """The flags for the upstream's HandshakeResponse: the client's relayed flags the upstream offers, plus
    fe's login flags the upstream offers. (MariaDB's extended capabilities, bits 32 and up, are never asked for.)"""
    return ((client & RELAYED) | LOGIN) & upstream & 0xFFFFFFFF & ~FORBIDDEN
