"""The client side of the MySQL protocol towards the real database (the gateway's upstream leg).

`protocol` and `response` are sans-IO (bytes in, events out); `connection` runs them over asyncio with TLS and
timeouts; `pool` keeps authenticated connections per upstream account. Nothing here knows about tokens: a session
arrives as an upstream account, connection attributes and the capability flags its client negotiated with fe.
"""
