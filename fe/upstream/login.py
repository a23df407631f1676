"""The connection phase over an UpstreamStream: reading the greeting, running an authentication exchange (the
login, or a COM_CHANGE_USER) until the upstream's OK."""

from __future__ import annotations

from fe.upstream.endpoint import READ_SIZE
from fe.upstream.errors import Reason, UpstreamError, UpstreamProtocolError
from fe.upstream.packets import Greeting
from fe.upstream.protocol import (
    NEED_DATA,
    ClientProtocol,
    GreetingReceived,
    GreetingRefused,
    LoginRefused,
    LoginSucceeded,
    SendAuth,
)
from fe.upstream.stream import UpstreamStream


async def read_greeting(stream: UpstreamStream, protocol: ClientProtocol, where: str) -> Greeting:
    """The upstream's greeting; `where` names it in errors ("upstream host:port")."""
    while True:
        event = protocol.next_event()
        if isinstance(event, GreetingReceived):
            return event.greeting
        if isinstance(event, GreetingRefused):
            raise UpstreamError(Reason.REFUSED, f"{where} refused the connection: {event.error}", event.error)
        data = await stream.read(READ_SIZE)
        if not data:
            raise UpstreamError(Reason.CLOSED, f"{where} closed the connection before its greeting")
        protocol.receive_data(data)


async def authenticate(
    stream: UpstreamStream,
    protocol: ClientProtocol,
    first: bytes,
    where: str,
) -> None:
    """Send the login's first packet and run the exchange until OK; raises UpstreamError when refused."""
    stream.write(first)
    while True:
        event = protocol.next_event()
        if event is NEED_DATA:
            data = await stream.read(READ_SIZE)
            if not data:
                raise UpstreamError(Reason.CLOSED, f"{where} closed the connection during the login")
            protocol.receive_data(data)
        elif isinstance(event, SendAuth):
            stream.write(event.data)
        elif isinstance(event, LoginSucceeded):
            return
        elif isinstance(event, LoginRefused):
            raise UpstreamError(Reason.REFUSED, f"{where} refused the login: {event.error}", event.error)
        else:
            raise UpstreamProtocolError(f"unexpected {event!r} during the login")
