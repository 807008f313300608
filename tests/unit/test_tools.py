"""A test that needs a missing tool skips on a developer's machine and fails under ``CI=true``.

The tool lookup itself is real: ``PATH`` points at a folder that holds (or lacks) the program.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tools import require_tool

WHY = "the end-to-end tests drive it"


@pytest.fixture
def path_with_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``PATH`` is one folder holding an executable ``fake-tool``."""
    tool = tmp_path / "fake-tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    return tool


@pytest.mark.parametrize("ci", [None, "", "false"], ids=["unset", "empty", "false"])
def test_a_missing_tool_skips_with_its_reason(
    path_with_tool: Path, monkeypatch: pytest.MonkeyPatch, ci: str | None
) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception) as skipped:
        require_tool("kubectl", WHY)
    assert skipped.value.msg == f"kubectl is not installed: {WHY}"


@pytest.mark.parametrize("ci", ["true", "TRUE", "1"], ids=["true", "upper", "one"])
def test_under_ci_a_missing_tool_fails_the_run(
    path_with_tool: Path, monkeypatch: pytest.MonkeyPatch, ci: str
) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception) as failed:
        require_tool("kubectl", WHY)
    assert failed.value.msg is not None
    assert failed.value.msg.startswith(f"kubectl is not installed: {WHY}")
    assert "CI=true" in failed.value.msg


@pytest.mark.parametrize("ci", [None, "true"], ids=["developer", "ci"])
def test_a_present_tool_is_found_on_path(
    path_with_tool: Path, monkeypatch: pytest.MonkeyPatch, ci: str | None
) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    assert require_tool("fake-tool", WHY) == path_with_tool
