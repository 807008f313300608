"""The documentation site builds, and its quick start is what the README says.

``mkdocs build --strict`` (the material theme, mkdocs.yml at the top) into a temporary directory: a
broken link, a nav entry without its page or a bad setting fails it. The quick start's commands are
the README's two (``make demo``, ``make test``) and the first steps after them, exactly. They are not
run here: ``make test`` inside the test suite would run the suite again, and ``make demo`` serves
until Ctrl-C on the fixed port 6443 (``fedctl up``, which it runs, is exercised end to end by
tests/e2e/test_fedctl_up.py and the walkthrough by test_docs_controllers.py). Instead ``make -n``
checks that both targets exist and parse.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
QUICKSTART = ROOT / "docs" / "quickstart.md"


def sh_blocks(path: Path) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", path.read_text(), flags=re.S)


def nav_pages(nav: list[object]) -> list[str]:
    pages: list[str] = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages += nav_pages(value) if isinstance(value, list) else [str(value)]
    return pages


def test_mkdocs_builds_strict(tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    for page in nav_pages(config["nav"]):
        assert (ROOT / "docs" / page).is_file(), page
    site = tmp_path / "site"
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(ROOT / "mkdocs.yml"),
            "-d",
            str(site),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": str(Path(sys.executable).parent), "NO_MKDOCS_2_WARNING": "1"},
    )
    assert built.returncode == 0, built.stdout + built.stderr
    assert "WARNING" not in built.stderr, built.stderr
    for page in ("index.html", "quickstart/index.html", "metrics/index.html", "api-reference/index.html"):
        assert (site / page).is_file(), page
    assert (site / "alerts.yaml").read_text() == (ROOT / "docs" / "alerts.yaml").read_text()
    assert (site / "dashboard.json").is_file()


def test_the_quick_start_is_the_readme_and_its_targets_exist() -> None:
    readme = sh_blocks(README)
    quick = sh_blocks(QUICKSTART)
    assert quick == readme[: len(quick)], "docs/quickstart.md's commands differ from README.md's"
    commands = [line.split("#")[0].strip() for line in quick[0].splitlines()]
    assert commands == ["make demo", "make test"], quick[0]
    make = require_tool("make", "the quick start's commands are make targets")
    for target in ("demo", "test"):
        dry = subprocess.run([make, "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert dry.returncode == 0, dry.stderr
        assert dry.stdout.strip(), target
