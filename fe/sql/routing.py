"""With an upstream database behind fe (the gateway), which statements fe answers itself: its accounts, roles,
security integrations, group providers, authentication settings and its own status counters. Everything else is
the database's and is relayed without being parsed.

The decision looks at the statement's first word (past whitespace and comments) and, only when it could start one
of fe's statements, reads its first tokens with the fe dialect's tokenizer (no parse): well under a microsecond for
the database's queries, a few microseconds for fe's.
"""

from __future__ import annotations

import re

import sqlglot.errors
from sqlglot.tokens import Token, TokenType

from fe.sql.dialect import FeDialect

# fe statements are short; anything longer (a bulk INSERT) is the database's without a look.
MAX_FE_STATEMENT = 64 * 1024
_LOOK_AHEAD = 8
_OBJECTS = {"USER", "ROLE"}
_FE_OBJECTS = {("SECURITY", "INTEGRATION"), ("GROUP", "PROVIDER")}
_SHOW_FE = {"AUTHENTICATION", "USERS", "GRANTS", "ROLES"}
_SHOW_FE_PAIRS = {("ALL", "AUTHENTICATION"), ("SECURITY", "INTEGRATIONS"), ("GROUP", "PROVIDERS")}

_dialect = FeDialect()
# Whitespace and comments, then the first word: only these can begin a statement fe answers.
# Each alternative can match only one way (one whitespace character; a comment that ends at its first `*/`), and
# the repetition is possessive: no backtracking, so a long run of spaces or comments before a non-word is linear.
_FIRST_WORD = re.compile(r"(?:\s|/\*(?!!)(?:[^*]|\*(?!/))*\*/|--[^\n]*(?:\n|$)|#[^\n]*(?:\n|$))*+([A-Za-z]+)")
_CANDIDATES = frozenset({"CREATE", "ALTER", "DROP", "GRANT", "REVOKE", "SET", "ADMIN", "SHOW"})


_LEADING_WORD = re.compile(rb"[A-Za-z]+")
_CANDIDATE_WORDS = frozenset(word.encode() for word in _CANDIDATES)
_CANDIDATE_HEADS = frozenset(word[:3] for word in _CANDIDATE_WORDS)  # every candidate has at least 3 letters


def is_fe_query(body: bytes) -> bool:
    """is_fe_statement for a COM_QUERY's bytes. A statement that starts with a word no statement of fe's starts
    with (most of the database's: SELECT, INSERT, ...) is told without decoding it; the rest is decoded and looked
    at as text."""
    head = body[:3]
    if head.isalpha() and head.upper() not in _CANDIDATE_HEADS:  # SELECT, INSERT, ...: the usual case, told first
        return False
    lead = _LEADING_WORD.match(body)
    if lead is not None and lead.group().upper() not in _CANDIDATE_WORDS:
        return False
    return len(body) <= MAX_FE_STATEMENT and is_fe_statement(body.decode("utf-8", "replace"))


def is_fe_statement(sql: str) -> bool:
    if len(sql) > MAX_FE_STATEMENT:
        return False
    lead = _FIRST_WORD.match(sql)
    if lead is None or lead.group(1).upper() not in _CANDIDATES:
        return False
    try:
        tokens = _dialect.tokenize(sql)
    except sqlglot.errors.SqlglotError:
        return False  # not even tokens: the database's own error is the better answer
    words = [_word(token) for token in tokens[:_LOOK_AHEAD]]
    if not words:
        return False
    first, rest = words[0], words[1:]
    if first in ("CREATE", "ALTER", "DROP"):
        return _names_fe_object(rest)
    if first in ("GRANT", "REVOKE"):
        # GRANT role TO … is fe's; GRANT <privilege> ON <object> TO … (and GRANT PROXY ON …) is the database's.
        return not any(token.token_type == TokenType.ON for token in tokens)
    if first == "SET":
        return rest[:1] == ["PASSWORD"]
    if first == "ADMIN":
        return rest[1:3] == ["FRONTEND", "CONFIG"]
    if first == "SHOW":
        return _shows_fe(rest, tokens)
    return False


def _word(token: Token) -> str:
    return token.text.upper() if token.token_type != TokenType.STRING else ""


def _names_fe_object(words: list[str]) -> bool:
    if words[:1] and words[0] in _OBJECTS:
        return True
    return tuple(words[:2]) in _FE_OBJECTS


def _shows_fe(words: list[str], tokens: list[Token]) -> bool:
    if words[:1] and words[0] in _SHOW_FE:
        return True
    if tuple(words[:2]) in _SHOW_FE_PAIRS:
        return True
    if words[:1] == ["CREATE"] and tuple(words[1:3]) in _FE_OBJECTS:
        return True
    if "STATUS" in words[:2]:
        # SHOW [GLOBAL|SESSION] STATUS LIKE 'Fe_%': fe's own counters; the database's otherwise.
        patterns = [token.text for token in tokens if token.token_type == TokenType.STRING]
        return bool(patterns) and patterns[0].lower().startswith("fe")
    return False
