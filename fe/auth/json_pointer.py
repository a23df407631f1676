"""RFC 6901 JSON Pointers, for a `principal_field` that names a nested claim ("/realm_access/username").

`parse_pointer` checks the syntax once, at CREATE USER time, and returns the unescaped reference tokens;
`resolve` walks a decoded JSON document with them at each login.
"""

from __future__ import annotations

import enum
import re

_BAD_ESCAPE = re.compile(r"~(?![01])")
# RFC 6901 §4: an array index is 0 or digits without a leading zero; "-" (past the end) never names a value.
_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]{0,17}", re.ASCII)


class PointerError(ValueError):
    """Not a JSON Pointer; the message says why."""


class Missing(enum.Enum):
    MISSING = "missing"


MISSING = Missing.MISSING


def is_pointer(text: str) -> bool:
    return text.startswith("/")


def parse_pointer(text: str) -> tuple[str, ...]:
    """The reference tokens of `text`, with `~1` → `/` and `~0` → `~` undone; PointerError when malformed."""
    if not is_pointer(text):
        raise PointerError("a JSON Pointer starts with '/'")
    tokens = []
    for raw in text[1:].split("/"):
        bad = _BAD_ESCAPE.search(raw)
        if bad is not None:
            escape = raw[bad.start() : bad.start() + 2]
            raise PointerError(f"bad escape {escape!r}: '~' must be followed by 0 or 1 ('~0' is '~', '~1' is '/')")
        # Order matters (RFC 6901 §4): "~01" is the text "~1", not "/".
        tokens.append(raw.replace("~1", "/").replace("~0", "~"))
    return tuple(tokens)


def resolve(document: object, tokens: tuple[str, ...]) -> object:
    """The value the tokens point at in a decoded JSON document, or MISSING if there is none."""
    current = document
    for token in tokens:
        if isinstance(current, dict):
            if token not in current:
                return MISSING
            current = current[token]
        elif isinstance(current, list):
            if not _ARRAY_INDEX.fullmatch(token):
                return MISSING
            index = int(token)
            if index >= len(current):
                return MISSING
            current = current[index]
        else:
            return MISSING
    return current
