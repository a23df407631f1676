"""Settings: fe.conf, then FE_* environment variables, then flags; every mistake named."""

from __future__ import annotations

from pathlib import Path

import pytest

from fe.config import ConfigError, as_environment, load_settings


def write_conf(home: Path, text: str) -> None:
    (home / "conf").mkdir(exist_ok=True)
    (home / "conf" / "fe.conf").write_text(text)


def test_defaults_without_a_conf_file(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={})
    assert (settings.host, settings.query_port, settings.workers) == ("127.0.0.1", 9030, 1)
    assert settings.conf_dir == tmp_path.resolve() / "conf"
    assert settings.jwt_leeway_seconds == 60 and settings.max_token_bytes == 16384


def test_conf_then_environment_then_flags(tmp_path: Path) -> None:
    write_conf(
        tmp_path,
        "# comment\nquery_port = 9100  # trailing comment\nrequire_secure_transport = yes\n"
        'jwks_ca_bundle = "conf/ca.pem"\nidle_timeout_seconds = 12.5\n',
    )
    settings = load_settings(tmp_path, environ={})
    assert settings.query_port == 9100 and settings.require_secure_transport is True
    assert settings.jwks_ca_bundle == "conf/ca.pem" and settings.idle_timeout_seconds == 12.5
    settings = load_settings(tmp_path, environ={"FE_QUERY_PORT": "9200"})
    assert settings.query_port == 9200
    settings = load_settings(tmp_path, {"query_port": 9300, "host": None}, environ={"FE_QUERY_PORT": "9200"})
    assert settings.query_port == 9300 and settings.host == "127.0.0.1"


def test_supervisor_settings_round_trip_through_the_environment(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, {"require_secure_transport": True, "workers": 2}, environ={})
    assert load_settings(tmp_path, environ=as_environment(settings)) == settings


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("query_prot = 1\n", "unknown setting 'query_prot'"),
        ("query_port = abc\n", "bad value for query_port"),
        ("require_secure_transport = maybe\n", "bad value for require_secure_transport"),
        ("just some words\n", "expected 'key = value'"),
        ("ssl_cert = a.pem\n", "ssl_cert and ssl_key must be set together"),
        ("query_port = 70000\n", "query_port must be 0..65535"),
        ("workers = 0\n", "workers must be at least 1"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, text: str, message: str) -> None:
    write_conf(tmp_path, text)
    with pytest.raises(ConfigError, match=message):
        load_settings(tmp_path, environ={})
