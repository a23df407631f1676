"""The one exception token verification raises: a stable reason code for logs and metrics, and a human message."""

from __future__ import annotations

REASONS = frozenset(
    {
        "too_large",
        "malformed",
        "alg_not_allowed",
        "crit_unsupported",
        "wrong_token_type",
        "unknown_kid",
        "ambiguous_key",
        "alg_key_mismatch",
        "bad_signature",
        "exp_missing",
        "expired",
        "not_yet_valid",
        "issued_in_future",
        "wrong_issuer",
        "wrong_audience",
        "principal_missing",
        "principal_mismatch",
        "key_server_unreachable",
        "key_set_invalid",
        "key_file_unreadable",
        "internal_error",
    }
)


class TokenRejected(Exception):
    """A token login that must fail. `reason` is one of REASONS; `message` goes to the log, and to the client only
    once `signature_verified`: before that the token may be anyone's, and the reason would tell a stranger about
    the account (that it exists, how it logs in, where its keys live)."""

    def __init__(self, reason: str, message: str, *, signature_verified: bool = False) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown rejection reason {reason!r}")
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.signature_verified = signature_verified

    def __repr__(self) -> str:
        return f"TokenRejected({self.reason!r}, {self.message!r})"


def shorten(value: object, limit: int = 80) -> str:
    """repr() of an attacker-controlled value, cut so it cannot flood an ERR packet or a log line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
