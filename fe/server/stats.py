"""Counters of one server process, for SHOW STATUS: connections, login outcomes by reason, token and key caches."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ServerStats:
    started: float = field(default_factory=time.monotonic)
    connections: int = 0  # accepted since start
    connected: int = 0  # open now
    logins: Counter[str] = field(default_factory=Counter)  # "success", and each failure reason
    token_stats: Callable[[], Mapping[str, Any]] = dict

    def login(self, outcome: str, reason: str) -> None:
        self.logins["success" if outcome == "success" else reason] += 1

    def snapshot(self) -> dict[str, object]:
        """Status variables: MySQL's names where MySQL has the counter, `Fe_` names for the rest."""
        failures = sum(count for reason, count in self.logins.items() if reason != "success")
        status: dict[str, object] = {
            "Uptime": int(time.monotonic() - self.started),
            "Connections": self.connections,
            "Threads_connected": self.connected,
            "Aborted_connects": failures,
            "Fe_logins_succeeded": self.logins["success"],
            "Fe_logins_failed": failures,
        }
        for reason, count in sorted(self.logins.items()):
            if reason != "success":
                status[f"Fe_login_failures_{reason}"] = count
        tokens = self.token_stats()
        status["Fe_tokens_accepted"] = tokens.get("accepted", 0)
        status["Fe_token_cache_hits"] = tokens.get("token_cache_hits", 0)
        status["Fe_token_cache_size"] = tokens.get("token_cache_size", 0)
        for name in ("jwks_fetches", "jwks_fetch_failures", "jwks_unknown_kid_refetches", "jwks_stale_serves"):
            status[f"Fe_{name}"] = sum(tokens.get(name, {}).values())
        ages = tokens.get("jwks_key_age_seconds", {}).values()
        status["Fe_jwks_oldest_key_set_seconds"] = int(max(ages, default=0))
        return status
