"""The per-user JSON of token users: validated at CREATE/ALTER USER time."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import pytest

from fe.auth.token_spec import (
    NO_AUDIENCE_WARNING,
    PLAIN_HTTP_WARNING,
    InvalidAuthString,
    TokenAuthSpec,
    conf_relative_path,
    parse_token_auth_string,
)


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "idp.jwks").write_text('{"keys": []}')
    return conf


def parse(conf: Path, doc: object) -> TokenAuthSpec:
    spec, warnings = parse_token_auth_string(doc if isinstance(doc, str) else json.dumps(doc), conf)
    assert warnings == ([] if spec.required_audience else [NO_AUDIENCE_WARNING])
    return spec


def test_a_missing_audience_is_accepted_with_a_warning(conf: Path) -> None:
    _, warnings = parse_token_auth_string('{"jwks_url": "idp.jwks"}', conf)
    assert warnings == [NO_AUDIENCE_WARNING]
    _, warnings = parse_token_auth_string('{"jwks_url": "idp.jwks", "required_audience": "fe"}', conf)
    assert warnings == []


def refused(conf: Path, doc: object) -> str:
    with pytest.raises(InvalidAuthString) as info:
        parse_token_auth_string(doc if isinstance(doc, str) else json.dumps(doc), conf)
    return str(info.value)


def test_minimal_remote(conf: Path) -> None:
    spec = parse(conf, {"jwks_url": "https://idp.example/jwks"})
    assert spec == TokenAuthSpec("https://idp.example/jwks")
    assert spec.is_remote and spec.principal_field == "sub"
    assert spec.required_issuer is None and spec.required_audience is None and spec.allowed_algorithms is None


def test_full_local(conf: Path) -> None:
    spec = parse(
        conf,
        {
            "jwks_url": "idp.jwks",
            "principal_field": "preferred_username",
            "required_issuer": "https://a",
            "required_audience": ["x", "y"],
            "allowed_algorithms": ["ES256", "EdDSA"],
        },
    )
    assert not spec.is_remote
    assert conf_relative_path(spec.jwks_url) == PurePosixPath("idp.jwks")
    assert spec.required_issuer == ("https://a",)
    assert spec.required_audience == ("x", "y")
    assert spec.allowed_algorithms == ("ES256", "EdDSA")


def test_comma_separated_and_array_issuer(conf: Path) -> None:
    comma = parse(conf, {"jwks_url": "idp.jwks", "required_issuer": "https://a, https://b ,https://a"})
    array = parse(conf, {"jwks_url": "idp.jwks", "required_issuer": [" https://a", "https://b"]})
    assert comma.required_issuer == array.required_issuer == ("https://a", "https://b")


def test_to_json_round_trips(conf: Path) -> None:
    spec = parse(conf, {"jwks_url": "idp.jwks", "required_audience": "a,b", "allowed_algorithms": "RS256"})
    assert json.loads(spec.to_json()) == {
        "jwks_url": "idp.jwks",
        "principal_field": "sub",
        "required_audience": ["a", "b"],
        "allowed_algorithms": ["RS256"],
    }
    assert parse(conf, spec.to_json()) == spec


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("{", "not valid JSON"),
        ("{'jwks_url': 'x'}", "not valid JSON"),
        ("[1]", "must be a JSON object, not an array"),
        ('"https://idp"', "must be a JSON object, not a string"),
        ("null", "not null"),
        ("{}", "'jwks_url' is required"),
        ('{"jwks_url": "idp.jwks", "jwks_url": "other.jwks"}', "more than once"),
        ("[" * 100_000 + "]" * 100_000, "too long"),
    ],
)
def test_bad_documents(conf: Path, text: str, message: str) -> None:
    assert message in refused(conf, text)


def test_deep_nesting_within_the_length_limit(conf: Path) -> None:
    assert "nested too deeply" in refused(conf, "[" * 30_000 + "]" * 30_000)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"jwks_url": "idp.jwks", "jwks_uri": "x"}, "unknown key 'jwks_uri'"),
        ({"jwks_url": "idp.jwks", "Principal_Field": "x"}, "unknown key"),
        ({"jwks_url": 5}, "'jwks_url' must be a string, not a number"),
        ({"jwks_url": None}, "not null"),
        ({"jwks_url": ["idp.jwks"]}, "not an array"),
        ({"jwks_url": {"a": 1}}, "not an object"),
        ({"jwks_url": ""}, "must not be empty"),
        ({"jwks_url": "  "}, "must not be empty"),
        ({"jwks_url": "idp.jwks", "principal_field": True}, "not a boolean"),
        ({"jwks_url": "idp.jwks", "principal_field": ""}, "must not be empty"),
        ({"jwks_url": "idp.jwks", "required_issuer": ""}, "must not be empty"),
        ({"jwks_url": "idp.jwks", "required_issuer": []}, "must not be empty"),
        ({"jwks_url": "idp.jwks", "required_issuer": "a,,b"}, "empty entries"),
        ({"jwks_url": "idp.jwks", "required_issuer": ["a", 1]}, "array of strings"),
        ({"jwks_url": "idp.jwks", "required_audience": 7}, "not a number"),
        ({"jwks_url": "idp.jwks", "required_audience": "a\nb"}, "malformed entry"),
        ({"jwks_url": "idp.jwks", "allowed_algorithms": ["HS256"]}, "unsupported algorithm 'HS256'"),
        ({"jwks_url": "idp.jwks", "allowed_algorithms": "none"}, "unsupported algorithm 'none'"),
        ({"jwks_url": "x" * 3000}, "too long"),
        ({"jwks_url": "idp\x00.jwks"}, "control characters"),
    ],
)
def test_bad_values(conf: Path, doc: dict[str, object], message: str) -> None:
    assert message in refused(conf, doc)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://", "has no host"),
        ("https://user:pw@idp.example/jwks", "credentials"),
        ("https://idp.example:99999/jwks", "bad port"),
        ("https://idp.example/a b", "spaces"),
        ("HTTPS://idp.example/jwks", "lower-case"),
        ("file:///etc/passwd", "only http:// and https://"),
        ("ftp://idp.example/jwks", "only http:// and https://"),
    ],
)
def test_bad_urls(conf: Path, url: str, message: str) -> None:
    assert message in refused(conf, {"jwks_url": url})


@pytest.mark.parametrize("path", ["/etc/passwd", "~/keys.jwks", "C:\\keys.jwks", "\\\\server\\share"])
def test_absolute_paths_are_refused(conf: Path, path: str) -> None:
    assert "absolute path" in refused(conf, {"jwks_url": path})


@pytest.mark.parametrize("path", ["../fe.secret", "keys/../../x.jwks", "..", "a\\..\\..\\x"])
def test_dot_dot_escape_is_refused(conf: Path, path: str) -> None:
    assert "escapes conf/" in refused(conf, {"jwks_url": path})


def test_symlink_escape_is_refused(conf: Path) -> None:
    outside = conf.parent / "outside.jwks"
    outside.write_text("{}")
    (conf / "link.jwks").symlink_to(outside)
    (conf / "dirlink").symlink_to(conf.parent)
    assert "through a link" in refused(conf, {"jwks_url": "link.jwks"})
    assert "through a link" in refused(conf, {"jwks_url": "dirlink/outside.jwks"})


def test_symlink_inside_conf_is_fine(conf: Path) -> None:
    (conf / "alias.jwks").symlink_to(conf / "idp.jwks")
    assert parse(conf, {"jwks_url": "alias.jwks"}).jwks_url == "alias.jwks"


def test_missing_file_is_a_warning(conf: Path) -> None:
    spec, warnings = parse_token_auth_string('{"jwks_url": "later.jwks", "required_audience": "fe"}', conf)
    assert spec.jwks_url == "later.jwks"
    assert warnings == ["key file conf/later.jwks does not exist yet; logins will fail until it is created"]


def test_directory_is_refused(conf: Path) -> None:
    (conf / "keys").mkdir()
    assert "not a regular file" in refused(conf, {"jwks_url": "keys"})


def test_specs_are_hashable_and_compare_by_value(conf: Path) -> None:
    a = parse(conf, {"jwks_url": "idp.jwks", "required_issuer": "x"})
    b = parse(conf, {"jwks_url": "idp.jwks", "required_issuer": ["x"]})
    assert a == b and hash(a) == hash(b)


# ---- http:// key URLs ----


def test_a_plain_http_key_url_is_accepted_with_a_warning(conf: Path) -> None:
    text = '{"jwks_url": "http://idp.example/jwks", "required_audience": "fe"}'
    spec, warnings = parse_token_auth_string(text, conf)
    assert spec.jwks_url == "http://idp.example/jwks"
    assert warnings == [PLAIN_HTTP_WARNING]
    assert "replaced in flight" in PLAIN_HTTP_WARNING
    _, warnings = parse_token_auth_string('{"jwks_url": "http://127.0.0.1:8080/jwks"}', conf)
    assert warnings == [PLAIN_HTTP_WARNING, NO_AUDIENCE_WARNING]
    _, warnings = parse_token_auth_string('{"jwks_url": "https://idp.example/jwks", "required_audience": "fe"}', conf)
    assert warnings == []


def test_require_https_refuses_a_plain_http_key_url(conf: Path) -> None:
    with pytest.raises(InvalidAuthString) as info:
        parse_token_auth_string('{"jwks_url": "http://idp.example/jwks"}', conf, require_https=True)
    message = str(info.value)
    assert "'jwks_url' 'http://idp.example/jwks' is plain http://" in message
    assert "require_https_key_urls" in message and "replaced in flight" in message
    https, warnings = parse_token_auth_string(
        '{"jwks_url": "https://idp.example/jwks", "required_audience": "fe"}', conf, require_https=True
    )
    assert https.jwks_url == "https://idp.example/jwks" and warnings == []
    local, _ = parse_token_auth_string('{"jwks_url": "idp.jwks", "required_audience": "fe"}', conf, require_https=True)
    assert local.jwks_url == "idp.jwks"  # a key file under conf/ is not fetched: nothing to replace in flight


# ---- principal_field as a JSON Pointer ----


def test_a_pointer_principal_field_is_validated_and_kept_as_written(conf: Path) -> None:
    spec = parse(conf, {"jwks_url": "idp.jwks", "principal_field": "/realm_access/username"})
    assert spec.principal_field == "/realm_access/username"
    assert spec.principal_pointer == ("realm_access", "username")
    assert json.loads(spec.to_json())["principal_field"] == "/realm_access/username"
    escaped = parse(conf, {"jwks_url": "idp.jwks", "principal_field": "/https:~1~1idp~1/user~0name/0"})
    assert escaped.principal_pointer == ("https://idp/", "user~name", "0")
    assert parse(conf, {"jwks_url": "idp.jwks", "principal_field": "email"}).principal_pointer is None


@pytest.mark.parametrize(
    ("pointer", "message"),
    [
        ("/realm_access/~2", "bad escape '~2'"),
        ("/realm_access~", "bad escape '~'"),
        ("/~x/name", "bad escape '~x'"),
    ],
)
def test_a_malformed_pointer_is_refused(conf: Path, pointer: str, message: str) -> None:
    text = refused(conf, {"jwks_url": "idp.jwks", "principal_field": pointer})
    assert f"'principal_field' {pointer!r} is not a valid JSON Pointer" in text
    assert message in text


# ---- token_as_password ----


def test_token_as_password_defaults_to_true_and_is_stored_only_when_false(conf: Path) -> None:
    default = parse(conf, {"jwks_url": "idp.jwks"})
    assert default.token_as_password is True
    assert "token_as_password" not in json.loads(default.to_json())
    explicit_true = parse(conf, {"jwks_url": "idp.jwks", "token_as_password": True})
    assert explicit_true == default and explicit_true.to_json() == default.to_json()
    off = parse(conf, {"jwks_url": "idp.jwks", "token_as_password": False})
    assert off.token_as_password is False and off != default
    assert json.loads(off.to_json())["token_as_password"] is False
    assert parse(conf, off.to_json()) == off
    assert TokenAuthSpec.from_json(off.to_json()) == off
    assert TokenAuthSpec.from_json(default.to_json()) == default


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("false", "must be true or false, not a string"),
        (0, "must be true or false, not a number"),
        (None, "must be true or false, not null"),
        ([False], "must be true or false, not an array"),
    ],
)
def test_token_as_password_must_be_a_boolean(conf: Path, value: object, message: str) -> None:
    assert f"'token_as_password' {message}" in refused(conf, {"jwks_url": "idp.jwks", "token_as_password": value})


def test_from_json_reads_every_stored_key(conf: Path) -> None:
    spec = parse(
        conf,
        {
            "jwks_url": "idp.jwks",
            "principal_field": "/a/b",
            "required_issuer": "https://a",
            "required_audience": ["x", "y"],
            "allowed_algorithms": ["ES256"],
            "token_as_password": False,
        },
    )
    assert TokenAuthSpec.from_json(spec.to_json()) == spec
