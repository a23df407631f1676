"""RFC 6901 JSON Pointers: parsing (escapes, malformed pointers) and resolving against decoded claims."""

from __future__ import annotations

import pytest

from fe.auth.json_pointer import MISSING, PointerError, parse_pointer, resolve

# RFC 6901 §5's example document and every pointer it lists, with the value each must find.
RFC_DOCUMENT = {
    "foo": ["bar", "baz"],
    "": 0,
    "a/b": 1,
    "c%d": 2,
    "e^f": 3,
    "g|h": 4,
    "i\\j": 5,
    'k"l': 6,
    " ": 7,
    "m~n": 8,
}
RFC_EXAMPLES = [
    ("/foo", ["bar", "baz"]),
    ("/foo/0", "bar"),
    ("/", 0),
    ("/a~1b", 1),
    ("/c%d", 2),
    ("/e^f", 3),
    ("/g|h", 4),
    ("/i\\j", 5),
    ('/k"l', 6),
    ("/ ", 7),
    ("/m~0n", 8),
]


@pytest.mark.parametrize(("pointer", "value"), RFC_EXAMPLES, ids=[p for p, _ in RFC_EXAMPLES])
def test_rfc_6901_examples(pointer: str, value: object) -> None:
    assert resolve(RFC_DOCUMENT, parse_pointer(pointer)) == value


@pytest.mark.parametrize(
    ("pointer", "tokens"),
    [
        ("/realm_access/username", ("realm_access", "username")),
        ("/a~1b/c", ("a/b", "c")),
        ("/m~0n", ("m~n",)),
        ("/~01", ("~1",)),  # ~1 is undone first: "~01" is the text "~1", never "/"
        ("/~10", ("/0",)),
        ("/https:~1~1sts.amazonaws.com~1/request_tags", ("https://sts.amazonaws.com/", "request_tags")),
        ("/", ("",)),
        ("//x", ("", "x")),
        ("/a/", ("a", "")),
        ("/ü/名前", ("ü", "名前")),
    ],
)
def test_escapes_are_undone(pointer: str, tokens: tuple[str, ...]) -> None:
    assert parse_pointer(pointer) == tokens


@pytest.mark.parametrize(
    ("pointer", "message"),
    [
        ("/a/~2", "bad escape '~2'"),
        ("/a~", "bad escape '~'"),
        ("/~a", "bad escape '~a'"),
        ("/ok/~~0", "bad escape '~~'"),
        ("sub", "starts with '/'"),
        ("", "starts with '/'"),
    ],
)
def test_malformed_pointers(pointer: str, message: str) -> None:
    with pytest.raises(PointerError) as info:
        parse_pointer(pointer)
    assert message in str(info.value)


CLAIMS = {
    "sub": "f81d4fae",
    "realm_access": {"username": "tom", "roles": ["admin", "dev"], "count": 3, "flag": True, "nothing": None},
    "accounts": [{"name": "tom"}, {"name": "ann"}],
    "https://sts.amazonaws.com/": {"request_tags": {"starrocks_user": "data-eng"}},
    "a/b": {"m~n": "escaped"},
}


@pytest.mark.parametrize(
    ("pointer", "value"),
    [
        ("/sub", "f81d4fae"),
        ("/realm_access/username", "tom"),
        ("/realm_access/roles/1", "dev"),
        ("/accounts/0/name", "tom"),
        ("/accounts/1/name", "ann"),
        ("/https:~1~1sts.amazonaws.com~1/request_tags/starrocks_user", "data-eng"),
        ("/a~1b/m~0n", "escaped"),
        # Non-string values are found as they are; the verifier decides what to make of them.
        ("/realm_access/count", 3),
        ("/realm_access/flag", True),
        ("/realm_access/nothing", None),
        ("/realm_access/roles", ["admin", "dev"]),
        ("/realm_access", CLAIMS["realm_access"]),
    ],
)
def test_resolve_finds_nested_values(pointer: str, value: object) -> None:
    assert resolve(CLAIMS, parse_pointer(pointer)) == value


@pytest.mark.parametrize(
    "pointer",
    [
        "/missing",
        "/realm_access/missing",
        "/realm_access/username/deeper",  # through a string
        "/realm_access/count/0",  # through a number
        "/realm_access/nothing/x",  # through null
        "/accounts/2/name",  # past the end
        "/accounts/-/name",  # "-" names the element after the last: never a value
        "/accounts/01/name",  # leading zero
        "/accounts/+1/name",
        "/accounts/-1/name",
        "/accounts/1.0/name",
        "/accounts/ 1/name",
        "/accounts/١/name",  # an Arabic-Indic digit is not an index
        "/accounts/99999999999999999999999999/name",
        "/accounts/name",  # a member name on an array
        "/realm_access/Username",  # names are case-sensitive
        "/a/b",  # "/" must be escaped to match the member "a/b"
        "/a~1b/m~1n",  # "m/n" is not "m~n"
    ],
)
def test_resolve_reports_missing_values(pointer: str) -> None:
    assert resolve(CLAIMS, parse_pointer(pointer)) is MISSING


def test_object_keys_that_look_like_indexes_are_plain_names() -> None:
    assert resolve({"0": {"01": "x"}}, parse_pointer("/0/01")) == "x"
