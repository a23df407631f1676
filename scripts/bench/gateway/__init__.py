"""The gateway benchmark: fe relaying sessions to a real MariaDB, next to the same client talking to that MariaDB
directly. `python -m scripts.bench.gateway` runs it; docs/gateway.md describes the method and holds the results."""
