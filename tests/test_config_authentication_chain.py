"""The authentication_chain setting: read from fe.conf and FE_AUTHENTICATION_CHAIN, checked at start by the rule
ADMIN SET FRONTEND CONFIG applies, and documented in conf/fe.conf."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fe.config import ConfigError, Settings, load_settings

SHIPPED_CONF = Path(__file__).resolve().parent.parent / "conf" / "fe.conf"


def test_default_and_documented() -> None:
    assert Settings().authentication_chain == "native"
    assert re.search(r"^# authentication_chain = native$", SHIPPED_CONF.read_text(), re.MULTILINE)


def test_read_from_fe_conf_and_the_environment(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "fe.conf").write_text("authentication_chain = native, corp\n")
    assert load_settings(tmp_path, environ={}).authentication_chain == "native, corp"
    environ = {"FE_AUTHENTICATION_CHAIN": "corp,NATIVE"}
    assert load_settings(tmp_path, environ=environ).authentication_chain == "corp,NATIVE"


@pytest.mark.parametrize("chain", ["corp", "native,corp,corp", "native,", ""])
def test_a_chain_without_native_or_with_repeats_stops_the_start(tmp_path: Path, chain: str) -> None:
    with pytest.raises(ConfigError, match="'native' must be in the list, and cannot have duplicates"):
        load_settings(tmp_path, environ={"FE_AUTHENTICATION_CHAIN": chain})
