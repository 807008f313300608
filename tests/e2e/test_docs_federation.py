"""The federation's documented examples run as written (typer's docs_src idea): the README's
quickstart commands against ``fedctl up``, and every YAML example of docs/api.md through kubectl."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import FEDCTL, RunningFederation, start_federation
from tests.tools import kubectl_binary

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[RunningFederation]:
    running = start_federation(tmp_path_factory.mktemp("fed"), database_url=database_url)
    yield running
    running.stop()


def blocks(doc: Path, kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", doc.read_text(), flags=re.S)


def test_readme_quickstart_commands(federation: RunningFederation) -> None:
    (quickstart,) = [b for b in blocks(ROOT / "README.md", "sh") if "kubectl" in b]
    env = {**os.environ, "KUBECONFIG": str(federation.kubeconfig), "HOME": str(federation.data_dir)}
    programs = {"kubectl": kubectl_binary("machine"), "fedctl": FEDCTL}
    ran = 0
    for line in quickstart.splitlines():
        args = shlex.split(line, comments=True)
        if not args or args[0] not in programs or args[:2] == ["fedctl", "demo"]:
            continue  # `export KUBECONFIG=...` is what env= does here; the demo is tests/e2e/test_demo.py
        done = subprocess.run(
            [programs[args[0]], *args[1:]],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"{line}\n{done.stderr}"
        ran += 1
    assert ran >= 3


def test_api_doc_yaml_examples_apply(federation: RunningFederation) -> None:
    examples = blocks(ROOT / "docs" / "api.md", "yaml")
    assert examples
    env = {**os.environ, "KUBECONFIG": str(federation.kubeconfig), "HOME": str(federation.data_dir)}
    for example in examples:
        done = subprocess.run(
            [kubectl_binary("machine"), "apply", "-f", "-"],
            input=example,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"{example}\n{done.stderr}"
    listed = subprocess.run(
        [kubectl_binary("machine"), "get", "clusters"], env=env, capture_output=True, text=True, timeout=60
    )
    assert "asia-east1" in listed.stdout
