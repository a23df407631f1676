"""`fe token keygen` prints the next steps of the README's quickstart, word for word."""

from __future__ import annotations

from pathlib import Path

import pytest

from fe.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def test_keygen_hints_are_the_readme_quickstart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # the quickstart runs in the server's home
    assert main(["token", "keygen"]) == 0
    hints = capsys.readouterr().out.splitlines()
    create_user = next(line.strip() for line in hints if line.strip().startswith("CREATE USER tom"))
    mint = next(line.strip() for line in hints if " token mint " in line)
    # The README gives the statement inside a shell's double quotes, folded onto two lines.
    readme = README.read_text(encoding="utf-8").replace('\\"', '"').replace("\\\n  ", "")
    assert create_user.rstrip(";") in readme
    assert f"\n{mint}\n" in readme


def test_keygen_hints_name_the_home_when_it_is_not_the_current_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "a home"
    assert main(["token", "keygen", "--home", str(home)]) == 0
    assert f"--out tom.token --home '{home}'" in capsys.readouterr().out
