"""Opening an upstream connection: TCP and TLS as configured (or the database's Unix socket), and the login as an
upstream account with the session's connection attributes and its client's capability flags."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import socket
from collections.abc import Mapping

from fe.mysql.constants import Capability
from fe.upstream.capabilities import upstream_capabilities
from fe.upstream.connection import UpstreamConnection
from fe.upstream.endpoint import UpstreamAccount, UpstreamServer
from fe.upstream.errors import Reason, UpstreamError, translate
from fe.upstream.login import authenticate, read_greeting
from fe.upstream.protocol import DEFAULT_CHARSET, ClientProtocol
from fe.upstream.stream import UpstreamStream
from fe.upstream.tls import TlsMode, client_context


async def open_stream(server: UpstreamServer) -> UpstreamStream:
    """A connection to the upstream's Unix socket or TCP port (raises OSError, socket.gaierror)."""
    if server.socket_path:
        return await UpstreamStream.open_unix(server.socket_path)
    return await UpstreamStream.open(server.host, server.port)


def _is_loopback(peer: object) -> bool:
    if not isinstance(peer, tuple) or not peer:
        return False
    try:
        return ipaddress.ip_address(str(peer[0]).split("%", 1)[0]).is_loopback
    except ValueError:
        return False


async def connect(
    server: UpstreamServer,
    account: UpstreamAccount,
    *,
    client_capabilities: int,
    attributes: Mapping[str, str] | None = None,
    database: str = "",
    charset: int = DEFAULT_CHARSET,
) -> UpstreamConnection:
    """Open a connection and log `account` in. `client_capabilities`: the flags the client negotiated with fe;
    the connection uses those the upstream offers too (capabilities.upstream_capabilities). Raises
    UpstreamError: DOWN, TIMEOUT (connect_timeout covers TCP, TLS and the login), TLS, REFUSED (with the
    upstream's ERR), INSECURE, CLOSED, PROTOCOL."""
    where = f"upstream {server.address}"
    stream: UpstreamStream | None = None
    try:
        async with asyncio.timeout(server.connect_timeout):
            try:
                stream = await open_stream(server)
            except socket.gaierror as exc:
                raise UpstreamError(Reason.DOWN, f"{where} is down: cannot resolve {server.host}: {exc}") from exc
            except OSError as exc:
                reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
                if server.socket_path and exc.errno == errno.EACCES:
                    reason += (
                        " (fe's user needs write permission on the socket and search permission on its directories)"
                    )
                raise UpstreamError(Reason.DOWN, f"{where} is down: {reason}") from exc
            local = bool(server.socket_path)
            loopback = local or _is_loopback(stream.peername())
            protocol = ClientProtocol(unix_socket=local)
            greeting = await read_greeting(stream, protocol, where)
            capabilities = upstream_capabilities(client_capabilities, greeting.capabilities)
            context = None if local else client_context(server.tls)
            if context is not None:
                if not greeting.capabilities & Capability.SSL:
                    raise UpstreamError(Reason.TLS, f"{where} does not offer TLS (upstream TLS is {server.tls.mode})")
                stream.write(protocol.ssl_request(capabilities, charset=charset))
                name = server.tls.server_name or server.host
                hostname = name if server.tls.mode is TlsMode.VERIFY_IDENTITY else None
                await stream.start_tls(context, hostname)
                protocol.tls_established()
            first = protocol.handshake_response(
                capabilities,
                account.user,
                account.password,
                loopback=loopback,
                database=database,
                attributes=attributes,
                charset=charset,
                server_public_key=server.server_public_key,
            )
            await authenticate(stream, protocol, first, where)
    except BaseException as exc:
        if stream is not None:
            stream.abort()
        raise translate(exc, where, "during the login") from exc
    return UpstreamConnection(server, account, stream, protocol, loopback)
