"""The module-size lint of ``make lint``: no module under ``federation/`` passes 600 lines.

STYLE.md asks for small modules split by responsibility (most 250-550 lines); a module that passes
~550 lines is split in the change that grows it. This check is the hard stop behind that rule: it
prints every module over :data:`LIMIT` with its line count and exits 1.

Run: ``python -m tests.lint_module_size [ROOT ...]`` (default root: the ``federation`` package).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

LIMIT = 600
PACKAGE = Path(__file__).resolve().parents[1] / "federation"


def line_count(path: Path) -> int:
    with path.open("rb") as source:
        return sum(1 for _ in source)


def oversized(roots: Iterable[Path], *, limit: int = LIMIT) -> list[tuple[Path, int]]:
    """Every ``.py`` file under ``roots`` longer than ``limit`` lines, with its count, by path."""
    found = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            lines = line_count(path)
            if lines > limit:
                found.append((path, lines))
    return found


def main(argv: Sequence[str]) -> int:
    roots = [Path(arg) for arg in argv] or [PACKAGE]
    found = oversized(roots)
    for path, lines in found:
        shown = path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path
        print(f"{shown}: {lines} lines (limit {LIMIT}): split it by responsibility")
    if found:
        print(f"{len(found)} module(s) over {LIMIT} lines", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
