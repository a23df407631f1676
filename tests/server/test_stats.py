"""Status counters: login outcomes by reason, and the token verifier's counters summed over key sets."""

from __future__ import annotations

from fe.server.stats import ServerStats


def test_snapshot() -> None:
    token_stats = {
        "accepted": 5,
        "token_cache_hits": 2,
        "token_cache_size": 3,
        "jwks_fetches": {"https://a/jwks": 2, "https://b/jwks": 1},
        "jwks_fetch_failures": {"https://b/jwks": 4},
        "jwks_key_age_seconds": {"https://a/jwks": 12.5, "https://b/jwks": 300.2},
    }
    stats = ServerStats(token_stats=lambda: token_stats)
    stats.connections, stats.connected = 9, 2
    for outcome, reason in [("success", "ok"), ("failure", "expired"), ("failure", "expired"), ("failure", "x")]:
        stats.login(outcome, reason)
    status = stats.snapshot()
    assert status["Connections"] == 9 and status["Threads_connected"] == 2
    assert status["Fe_logins_succeeded"] == 1 and status["Fe_logins_failed"] == 3 == status["Aborted_connects"]
    assert status["Fe_login_failures_expired"] == 2 and status["Fe_login_failures_x"] == 1
    assert status["Fe_tokens_accepted"] == 5 and status["Fe_token_cache_hits"] == 2
    assert status["Fe_jwks_fetches"] == 3 and status["Fe_jwks_fetch_failures"] == 4
    assert status["Fe_jwks_stale_serves"] == 0 and status["Fe_jwks_oldest_key_set_seconds"] == 300
