"""Every example in docs/simulator.md runs, in order, as a user would type it (typer's docs_src idea).

``console`` blocks become one bash script: ``$ `` lines are commands (heredocs included), other lines are
sample output and are ignored; a command must succeed unless its comment says it ``fails``, in which case
it must fail. A command ending in ``&`` is started in the background and waited for until it prints
``simulator ready``; it is stopped with SIGTERM at the end. ``python`` blocks run in a fresh interpreter.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from federation.sim import READY_LINE
from tests.tools import require_tool

DOC = Path(__file__).resolve().parents[2] / "docs" / "simulator.md"
BIN = Path(sys.executable).parent


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(), flags=re.S)


def script_of(console_blocks: list[str]) -> str:
    out = ["set -u", "BG_PID=", "trap '[ -n \"$BG_PID\" ] && kill -TERM $BG_PID 2>/dev/null; wait' EXIT"]
    for block in console_blocks:
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            i += 1
            if not line.startswith("$ "):
                continue
            command = line[2:]
            body: list[str] = []
            heredoc = re.search(r"<<'(\w+)'", command)
            if heredoc:
                while i < len(lines) and lines[i] != heredoc.group(1):
                    body.append(lines[i])
                    i += 1
                body.append(heredoc.group(1))
                i += 1
            expect_failure = re.search(r"#[^'\"]*\bfails\b", command) is not None
            command = re.sub(r"\s+#[^'\"]*$", "", command)
            shown = shlex.quote(command)
            if command.endswith("&"):
                out.append(f"{command[:-1]} > bg.log 2>&1 &")
                out.append("BG_PID=$!")
                out.append(f"for _ in $(seq 600); do grep -q '{READY_LINE}' bg.log && break; sleep 0.1; done")
                out.append(
                    f"grep -q '{READY_LINE}' bg.log || {{ cat bg.log >&2; echo 'not ready' >&2; exit 1; }}"
                )
                continue
            text = "\n".join([command, *body])
            if expect_failure:
                out.append(f"if {{ {text}\n}}; then echo UNEXPECTED SUCCESS: {shown} >&2; exit 1; fi")
            else:
                out.append(f"{{ {text}\n}} || {{ echo FAILED: {shown} >&2; exit 1; }}")
    return "\n".join(out) + "\n"


def test_console_examples_run(tmp_path: Path) -> None:
    require_tool("kubectl", "docs/simulator.md's examples run it")
    require_tool("curl", "docs/simulator.md's examples run it")
    script = tmp_path / "doc.sh"
    script.write_text(script_of(blocks("console")))
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "HOME": str(tmp_path)}
    done = subprocess.run(
        ["bash", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{(tmp_path / 'bg.log').read_text()}"
    assert "us-central1" in done.stdout
    assert '"cluster": "us-central1"' in done.stdout
    assert "429" in done.stdout


def test_python_examples_run(tmp_path: Path) -> None:
    for code in blocks("python"):
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert "asia-east1-node-0" in done.stdout
