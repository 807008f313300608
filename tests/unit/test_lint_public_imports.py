"""The public-surface lint names every import that reaches into another package's modules."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lint_public_imports import main


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_reaching_into_another_package_is_named_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pkg = tmp_path / "federation"
    write(pkg / "__init__.py", "")
    write(pkg / "low" / "__init__.py", "from federation.low.inner import thing\n")
    write(pkg / "low" / "inner.py", "thing = 1\n")
    write(pkg / "high" / "__init__.py", "")
    write(pkg / "high" / "ok.py", "from federation.low import thing\nfrom federation.high.bad import x\n")
    write(pkg / "high" / "bad.py", "x = 1\nfrom federation.low.inner import thing\n")
    write(pkg / "leaf.py", "import federation.low.inner\n")
    assert main([str(pkg)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert "bad.py:2: imports federation.low.inner; import it from federation.low" in out[0]
    assert "leaf.py:1: imports federation.low.inner" in out[1]


def test_the_project_keeps_to_its_public_surfaces(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0, capsys.readouterr().out
