"""base64url as JOSE uses it (RFC 7515 §2, RFC 4648 §5): the URL-safe alphabet, no padding, canonical.

The decoder is strict, so every byte string has exactly one accepted spelling: only the 64 alphabet characters,
no `=`, no whitespace, and the unused low bits of the last character must be zero (RFC 4648 §3.5).
"""

from __future__ import annotations

import binascii

_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# To the standard alphabet for binascii; '+', '/' and '=' become '*', which strict_mode refuses like any other
# character outside the alphabet (without strict_mode, a2b_base64 would skip such characters).
_TO_STANDARD = bytes.maketrans(b"-_+/=", b"+/***")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_PADDING = (b"", b"===", b"==", b"=")  # by length mod 4; "===" makes a length of 1 mod 4 an error
# Value of each alphabet byte, for the trailing-bits check.
_VALUE = {char: value for value, char in enumerate(_ALPHABET)}
# Text length mod 4 → the mask of the last character's unused bits (2 chars carry 1 byte, 3 chars carry 2).
_UNUSED_BITS = (0, 0, 0b1111, 0b11)


class Base64urlError(ValueError):
    """Not strict base64url; the message says what is wrong."""


def decode(text: str | bytes) -> bytes:
    """Strict base64url without padding → bytes; Base64urlError for anything else (including `=` padding)."""
    if isinstance(text, bytes):
        data = text
    elif text.isascii():
        data = text.encode("ascii")
    else:
        raise Base64urlError("not base64url (non-ASCII characters)")
    remainder = len(data) % 4
    try:
        raw = binascii.a2b_base64(data.translate(_TO_STANDARD) + _PADDING[remainder], strict_mode=True)
    except binascii.Error:
        raise Base64urlError(_what_is_wrong(data)) from None
    if remainder and _VALUE[data[-1]] & _UNUSED_BITS[remainder]:
        raise Base64urlError("not canonical base64url (non-zero trailing bits)")
    return raw


def encode(raw: bytes) -> str:
    """bytes → base64url without padding."""
    return binascii.b2a_base64(raw, newline=False).translate(_TO_URLSAFE).rstrip(b"=").decode("ascii")


def _what_is_wrong(data: bytes) -> str:
    if b"=" in data:
        return "not base64url (padded)"
    if data.strip(_ALPHABET):
        return "not base64url (characters outside the alphabet)"
    return "not base64url (impossible length)"
