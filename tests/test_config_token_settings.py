"""The settings of issue 10's key and login policy: proxies for key fetches, require_https_key_urls,
token_as_password, login_error_detail — read, checked at start, and documented in conf/fe.conf."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fe.config import ConfigError, Settings, as_environment, load_settings

SHIPPED_CONF = Path(__file__).resolve().parent.parent / "conf" / "fe.conf"
NEW_SETTINGS = {
    "jwks_http_proxy": "",
    "jwks_https_proxy": "",
    "jwks_no_proxy": "",
    "require_https_key_urls": False,
    "token_as_password": True,
    "login_error_detail": "generic",
}


def write_conf(home: Path, text: str) -> None:
    (home / "conf").mkdir(exist_ok=True)
    (home / "conf" / "fe.conf").write_text(text)


def test_defaults() -> None:
    settings = Settings()
    assert {name: getattr(settings, name) for name in NEW_SETTINGS} == NEW_SETTINGS


@pytest.mark.parametrize("name", NEW_SETTINGS)
def test_each_is_documented_in_the_shipped_fe_conf_with_its_default(name: str) -> None:
    text = SHIPPED_CONF.read_text()
    match = re.search(rf"^# {name} =(.*)$", text, re.MULTILINE)
    assert match, f"{name} is not documented in conf/fe.conf"
    default = NEW_SETTINGS[name]
    shown = str(default).lower() if isinstance(default, bool) else str(default)
    assert match.group(1).strip() == shown


def test_read_from_fe_conf_and_the_environment(tmp_path: Path) -> None:
    write_conf(
        tmp_path,
        "jwks_http_proxy = http://proxy.internal:3128\n"
        "jwks_https_proxy = http://proxy.internal:3129\n"
        "jwks_no_proxy = localhost, .corp.example, 10.0.0.0/8\n"
        "require_https_key_urls = true\n"
        "token_as_password = false\n"
        "login_error_detail = full\n",
    )
    settings = load_settings(tmp_path, environ={})
    assert settings.jwks_http_proxy == "http://proxy.internal:3128"
    assert settings.jwks_https_proxy == "http://proxy.internal:3129"
    assert settings.jwks_no_proxy == "localhost, .corp.example, 10.0.0.0/8"
    assert settings.require_https_key_urls is True and settings.token_as_password is False
    assert settings.login_error_detail == "full"
    assert load_settings(tmp_path, environ=as_environment(settings)) == settings
    overridden = load_settings(tmp_path, environ={"FE_TOKEN_AS_PASSWORD": "on", "FE_JWKS_NO_PROXY": "*"})
    assert overridden.token_as_password is True and overridden.jwks_no_proxy == "*"


def test_proxy_variables_of_the_environment_are_not_settings(tmp_path: Path) -> None:
    settings = load_settings(
        tmp_path, environ={"HTTP_PROXY": "http://a:1", "HTTPS_PROXY": "http://b:2", "NO_PROXY": "*"}
    )
    assert (settings.jwks_http_proxy, settings.jwks_https_proxy, settings.jwks_no_proxy) == ("", "", "")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("login_error_detail = verbose\n", "login_error_detail must be generic or full"),
        ("token_as_password = sometimes\n", "bad value for token_as_password"),
        ("require_https_key_urls = 2\n", "bad value for require_https_key_urls"),
        ("jwks_http_proxy = proxy.internal:3128\n", "jwks_http_proxy must be an http:// URL"),
        ("jwks_https_proxy = https://proxy.internal:3128\n", "jwks_https_proxy must be an http:// URL"),
        ("jwks_https_proxy = http://proxy.internal\n", "jwks_https_proxy must name a host and a port"),
        ("jwks_no_proxy = idp.example:443\n", "jwks_no_proxy entry 'idp.example:443': ports are not supported"),
    ],
)
def test_mistakes_stop_the_start(tmp_path: Path, text: str, message: str) -> None:
    write_conf(tmp_path, text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(tmp_path, environ={})
