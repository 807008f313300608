"""The module-size lint names every module over 600 lines and fails; at 600 it passes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lint_module_size import LIMIT, main


def write_lines(path: Path, count: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x = 1\n" * count)


def test_a_module_over_the_limit_is_named_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_lines(tmp_path / "pkg" / "big.py", LIMIT + 1)
    write_lines(tmp_path / "pkg" / "sub" / "deep.py", LIMIT + 40)
    write_lines(tmp_path / "pkg" / "fits.py", LIMIT)
    assert main([str(tmp_path / "pkg")]) == 1
    out = capsys.readouterr().out
    assert f"big.py: {LIMIT + 1} lines" in out
    assert f"deep.py: {LIMIT + 40} lines" in out
    assert "fits.py" not in out


def test_modules_within_the_limit_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_lines(tmp_path / "pkg" / "fits.py", LIMIT)
    (tmp_path / "pkg" / "notes.txt").write_text("not python\n" * (LIMIT * 2))
    assert main([str(tmp_path / "pkg")]) == 0
    assert capsys.readouterr().out == ""
