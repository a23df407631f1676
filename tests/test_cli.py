"""The `fe` command line: `fe token` takes --home before or after its subcommand; bad settings exit 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jwt
import pytest

from fe.cli import main


def test_token_keygen_and_mint_with_home_in_either_place(tmp_path: Path) -> None:
    assert main(["token", "keygen", "--home", str(tmp_path)]) == 0
    jwks = json.loads((tmp_path / "conf" / "dev.jwks").read_text())
    assert [key["kty"] for key in jwks["keys"]] == ["EC"]
    assert main(["token", "--home", str(tmp_path), "mint", "--user", "tom", "--out", str(tmp_path / "a")]) == 0
    assert (
        main(
            [
                "token",
                "mint",
                "--user",
                "ann",
                "--audience",
                "fe",
                "--home",
                str(tmp_path),
                "--out",
                str(tmp_path / "b"),
            ]
        )
        == 0
    )
    claims = jwt.decode((tmp_path / "b").read_text().strip(), options={"verify_signature": False})
    assert claims["sub"] == "ann" and claims["aud"] in ("fe", ["fe"])
    assert (tmp_path / "b").stat().st_mode & 0o777 == 0o600


def test_bad_configuration_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "fe.conf").write_text("query_port = not-a-number\n")
    assert main(["serve", "--home", str(tmp_path)]) == 2
    assert "bad value for query_port" in capsys.readouterr().err


def test_python_dash_m_fe_is_the_fe_command() -> None:
    import subprocess
    import sys

    from fe import __version__

    done = subprocess.run([sys.executable, "-m", "fe", "--version"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout.strip() == f"fe {__version__}"


def test_unknown_event_loop_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "fe.conf").write_text("event_loop = trio\n")
    assert main(["serve", "--home", str(tmp_path)]) == 2
    assert "event_loop must be auto, asyncio or uvloop, got 'trio'" in capsys.readouterr().err


def test_uvloop_asked_for_but_missing_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` now fails as if it were not installed
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "fe.conf").write_text("event_loop = uvloop\n")
    assert main(["serve", "--home", str(tmp_path)]) == 2
    assert "uvloop is not installed" in capsys.readouterr().err
    assert not (tmp_path / "meta").exists()  # refused before touching the catalog


def test_uvloop_by_default_when_installed_and_either_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    from fe.config import load_settings
    from fe.server import eventloop

    assert load_settings(Path("/nonexistent-fe-home"), environ={}).event_loop == "auto"
    assert eventloop.resolve("auto") == "uvloop"
    assert eventloop.resolve("asyncio") == "asyncio"
    assert eventloop.resolve("uvloop") == "uvloop"

    async def name() -> str:
        return eventloop.running_loop_name()

    assert eventloop.run(name(), "uvloop") == "uvloop"
    assert eventloop.run(name(), "asyncio") == "asyncio"
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as where uvloop has no build (Windows, PyPy)
    assert eventloop.resolve("auto") == "asyncio"
