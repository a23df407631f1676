"""Statement text fit for a log: passwords and tokens masked.

`mask_secrets` reads the text with the fe dialect's own tokenizer (so quoting, escapes and comments are understood
the way the parser understands them) and masks:
- after the first IDENTIFIED or PASSWORD word (IDENTIFIED BY 'x', IDENTIFIED WITH plugin BY|AS 'x', BY PASSWORD
  'x', SET PASSWORD [FOR u] = 'x', PASSWORD('x')), every literal, quoted name, number and unknown word, and every
  comment: whatever follows those words may be a secret, even where the statement is malformed;
- anywhere, anything that looks like a JSON Web Token (base64url header starting `ey…`, then dot-separated parts).
Text the tokenizer refuses (an unterminated quote, say) is masked wholesale: every quoted part, and everything
after a password word.
"""

from __future__ import annotations

import re
import traceback

import sqlglot.errors
from sqlglot.tokens import Token, TokenType

from fe.sql.dialect import FeDialect

MASK = "***"
_QUOTED_MASK = "'***'"

_TRIGGERS = frozenset({"IDENTIFIED", "PASSWORD"})
# Words after a trigger that are syntax, kept so the masked statement still reads as what it was.
_SYNTAX_WORDS = frozenset(
    {
        "AS",
        "BY",
        "WITH",
        "FOR",
        "PASSWORD",
        "IDENTIFIED",
        "DEFAULT",
        "ROLE",
        "NONE",
        "ALL",
        "PROPERTIES",
        "USER",
        "IF",
        "EXISTS",
        "NOT",
        "CURRENT_USER",
        "CACHING_SHA2_PASSWORD",
        "MYSQL_NATIVE_PASSWORD",
        "AUTHENTICATION_JWT",
        "AUTHENTICATION_OPENID_CONNECT",
    }
)
_QUOTED_TYPES = frozenset(
    {
        TokenType.STRING,
        TokenType.NATIONAL_STRING,
        TokenType.HEX_STRING,
        TokenType.BIT_STRING,
        TokenType.BYTE_STRING,
        TokenType.RAW_STRING,
        TokenType.HEREDOC_STRING,
        TokenType.UNICODE_STRING,
    }
)
_VALUE_TYPES = frozenset({TokenType.IDENTIFIER, TokenType.VAR, TokenType.NUMBER})

# A compact JWS/JWE: a base64url JSON header, so it starts with the encoding of `{"` (eyJ), `{ ` (eyA), `{\n`
# (ewo) or `{\r` (ew0), then at least two more dot-separated parts.
_JWT = re.compile(r"(?<![\w-])(?:eyJ|eyA|ewo|ew0)[\w-]{7,}\.[\w-]{8,}\.[\w.-]*", re.ASCII)
# For text the tokenizer refuses: quoted runs (backslash escapes, doubled quotes; unterminated to the end).
_QUOTED = re.compile(r"""'(?:[^'\\]|\\.|'')*(?:'|$)|"(?:[^"\\]|\\.|"")*(?:"|$)|`(?:[^`]|``)*(?:`|$)""", re.DOTALL)
_TRIGGER_WORD = re.compile(r"\b(?:IDENTIFIED|PASSWORD)\b", re.IGNORECASE)

_dialect = FeDialect()


def mask_secrets(sql: str) -> str:
    """`sql` with every password and token masked; text without either comes back unchanged."""
    try:
        tokens = _dialect.tokenize(sql)
    except (sqlglot.errors.SqlglotError, ValueError, IndexError):
        return _mask_wholesale(sql)
    return _JWT.sub(MASK, _mask_tokens(sql, tokens))


def carries_secret(sql: str) -> bool:
    """Whether masking changes `sql`: a password or token is (or may be) in it."""
    return mask_secrets(sql) != sql


def describe_failure(exc: BaseException, sql: str) -> str:
    """A traceback of `exc` for the log: its frames (code, never values), each exception's type, and its message
    only when the statement carried no secret (a message may quote any part of the statement)."""
    secret = carries_secret(sql)
    lines: list[str] = []
    for error in _chain(exc):
        lines.append("Traceback (most recent call last):\n")
        lines.extend(traceback.format_tb(error.__traceback__))
        message = "(message withheld: the statement carries a secret)" if secret else mask_secrets(str(error))
        lines.append(f"{type(error).__qualname__}: {message}\n")
    return "".join(lines).rstrip("\n")


def _mask_tokens(sql: str, tokens: list[Token]) -> str:
    out: list[str] = []
    position = 0
    armed = False
    for token in tokens:
        gap = sql[position : token.start]
        # Between tokens there is only whitespace and comments; after a trigger a comment may hold the secret.
        out.append(_MASKED_COMMENT if armed and gap.strip() else gap)
        source = sql[token.start : token.end + 1]
        word = token.text.upper()
        if armed and token.token_type in _QUOTED_TYPES:
            out.append(_QUOTED_MASK)
        elif armed and token.token_type in _VALUE_TYPES and word not in _SYNTAX_WORDS:
            out.append(MASK)
        else:
            out.append(source)
        if word in _TRIGGERS and token.token_type not in _QUOTED_TYPES and token.token_type != TokenType.IDENTIFIER:
            armed = True
        position = token.end + 1
    tail = sql[position:]
    out.append(_MASKED_COMMENT if armed and tail.strip() else tail)
    return "".join(out)


_MASKED_COMMENT = f" /* {MASK} */ "


def _mask_wholesale(sql: str) -> str:
    trigger = _TRIGGER_WORD.search(sql)
    head = sql[: trigger.end()] if trigger else sql
    masked = _QUOTED.sub(_QUOTED_MASK, head)
    if trigger:
        masked += f" {MASK}"
    return _JWT.sub(MASK, masked)


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and the exceptions it was raised from or during, oldest first (as Python prints them)."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return chain[::-1]
