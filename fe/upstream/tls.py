"""TLS towards the upstream: the four modes MySQL clients know, and the client context for each."""

from __future__ import annotations

import functools
import ssl
from dataclasses import dataclass
from enum import StrEnum


class TlsMode(StrEnum):
    DISABLED = "disabled"  # plain TCP (fe then never sends a password in cleartext, see auth.ClientAuth)
    REQUIRED = "required"  # encrypted, the certificate not checked
    VERIFY_CA = "verify_ca"  # the certificate must chain to the CA
    VERIFY_IDENTITY = "verify_identity"  # ... and name the host


@dataclass(frozen=True, slots=True)
class TlsOptions:
    mode: TlsMode = TlsMode.VERIFY_IDENTITY
    ca_file: str | None = None  # PEM bundle; None: the system's trusted CAs
    server_name: str | None = None  # the name the certificate must carry (verify_identity); None: the host


@functools.lru_cache(maxsize=16)
def client_context(options: TlsOptions) -> ssl.SSLContext | None:
    """The context for `options` (None when TLS is disabled), built once: loading a CA bundle is not cheap."""
    if options.mode is TlsMode.DISABLED:
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=options.ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if options.mode is TlsMode.REQUIRED:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif options.mode is TlsMode.VERIFY_CA:
        context.check_hostname = False
    return context
