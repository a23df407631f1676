"""fe/auth takes plain values, not fe.config's Settings: the server maps each setting to them (fe/server/app.py), and
the defaults on both sides agree."""

from __future__ import annotations

import inspect
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from fe.auth.jwks_http import KeyFetchOptions
from fe.auth.verifier import TokenVerifier
from fe.config import Settings
from fe.server import app

# Settings field → (where it goes, its name there)
_KEY_FETCH = {
    "jwks_refresh_seconds": "refresh_seconds",
    "jwks_max_stale_seconds": "max_stale_seconds",
    "jwks_unknown_kid_cooldown_seconds": "unknown_kid_cooldown_seconds",
    "jwks_fetch_timeout_seconds": "fetch_timeout_seconds",
    "jwks_max_response_bytes": "max_response_bytes",
    "jwks_max_keys": "max_keys",
    "jwks_http_proxy": "http_proxy",
    "jwks_https_proxy": "https_proxy",
    "jwks_no_proxy": "no_proxy",
}
_VERIFIER = {
    "jwt_leeway_seconds": "leeway_seconds",
    "max_token_bytes": "max_token_bytes",
    "verified_token_cache_size": "cache_entries",
    "verified_token_cache_bytes": "cache_bytes",
}


def test_fe_auth_does_not_import_the_settings() -> None:
    code = (
        "import importlib, pkgutil, sys, fe.auth\n"
        "for module in pkgutil.walk_packages(fe.auth.__path__, 'fe.auth.'):\n"
        "    importlib.import_module(module.name)\n"
        "print('fe.config' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_defaults_agree_with_the_settings() -> None:
    settings = Settings()
    options = KeyFetchOptions()
    for setting, option in _KEY_FETCH.items():
        assert getattr(options, option) == getattr(settings, setting), setting
    assert options.ca_bundle is None and settings.jwks_ca_bundle == ""
    parameters = inspect.signature(TokenVerifier).parameters
    for setting, keyword in _VERIFIER.items():
        assert parameters[keyword].default == getattr(settings, setting), setting


def test_server_passes_every_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(app, "TokenVerifier", lambda *args, **kwargs: made.append((args, kwargs)))
    # Every value differs from its default, so a setting that is not passed on shows.
    values: dict[str, Any] = {
        "jwks_refresh_seconds": 11.0,
        "jwks_max_stale_seconds": 12.0,
        "jwks_unknown_kid_cooldown_seconds": 13.0,
        "jwks_fetch_timeout_seconds": 1.5,
        "jwks_max_response_bytes": 4096,
        "jwks_max_keys": 7,
        "jwks_http_proxy": "http://proxy.internal:3128",
        "jwks_https_proxy": "http://proxy.internal:3129",
        "jwks_no_proxy": "localhost, 10.0.0.0/8",
        "jwt_leeway_seconds": 5,
        "max_token_bytes": 2048,
        "verified_token_cache_size": 3,
        "verified_token_cache_bytes": 30_000,
    }
    app.make_token_verifier(Settings(home=tmp_path, jwks_ca_bundle="conf/ca.pem", **values))
    [(args, kwargs)] = made
    assert args == (tmp_path / "conf",)
    expected_fetch = KeyFetchOptions(
        **{_KEY_FETCH[k]: v for k, v in values.items() if k in _KEY_FETCH}, ca_bundle=tmp_path / "conf/ca.pem"
    )
    assert kwargs.pop("key_fetch") == expected_fetch
    assert kwargs == {_VERIFIER[k]: v for k, v in values.items() if k in _VERIFIER}
    covered = {*_KEY_FETCH, *_VERIFIER, "jwks_ca_bundle"}
    token_settings = {f.name for f in fields(Settings) if f.name.startswith(("jwks_", "jwt_", "verified_token_"))}
    assert token_settings | {"max_token_bytes"} == covered
