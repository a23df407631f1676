"""meta/ holds the catalog (password hashes) and private keys: fe creates it 0700 and tightens an existing one."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from fe.cli import main
from fe.config import Settings
from fe.server.app import prepare_home


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o000], ids=["umask022", "umask000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def test_first_start_creates_a_private_meta_dir(tmp_path: Path, umask: int, caplog: pytest.LogCaptureFixture) -> None:
    prepare_home(Settings(home=tmp_path))
    assert mode_of(tmp_path / "meta") == 0o700
    assert mode_of(tmp_path / "meta" / "tls") == 0o700
    assert (tmp_path / "meta" / "catalog.db").exists()
    assert "open to other users" not in caplog.text  # nothing to warn about on a fresh home


def test_an_existing_open_meta_dir_is_tightened_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    meta = tmp_path / "meta"
    meta.mkdir()
    meta.chmod(0o755)
    with caplog.at_level(logging.WARNING, logger="fe.tls"):
        prepare_home(Settings(home=tmp_path))
    assert mode_of(meta) == 0o700
    assert f"{meta} was open to other users (mode 0755); it is now 0700" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="fe.tls"):
        prepare_home(Settings(home=tmp_path))  # the next start has nothing to say
    assert "open to other users" not in caplog.text


def test_token_keygen_creates_a_private_meta_dir(tmp_path: Path, umask: int) -> None:
    assert main(["token", "keygen", "--home", str(tmp_path)]) == 0
    assert mode_of(tmp_path / "meta") == 0o700
    assert mode_of(tmp_path / "meta" / "dev-signing-key.pem") == 0o600
