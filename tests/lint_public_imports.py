"""The public-surface lint of ``make lint``: other layers import a package, never its insides.

STYLE.md: each subpackage's ``__init__.py`` re-exports what other layers may use, and everything
else is private to its folder. This check fails on any ``from federation.<pkg>.<module> import ...``
(or ``import federation.<pkg>.<module>``) written outside ``federation/<pkg>/``, naming the file,
the line and the package to import from instead. Inside a package, modules import each other freely.

Run: ``python -m tests.lint_public_imports [PACKAGE_DIR]`` (default: the ``federation`` package).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "federation"


def _imported(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name


def violations(package: Path) -> list[tuple[Path, int, str, str]]:
    """(file, line, imported module, package to import from) for every reach into another
    subpackage's modules, by file and line."""
    top = package.name
    subpackages = {p.parent.name for p in package.glob("*/__init__.py")}
    found = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package).parts
        own = parts[0] if len(parts) > 1 else None
        for line, module in _imported(ast.parse(path.read_text(), str(path))):
            names = module.split(".")
            if len(names) >= 3 and names[0] == top and names[1] in subpackages and names[1] != own:
                found.append((path, line, module, f"{top}.{names[1]}"))
    return found


def main(argv: Sequence[str]) -> int:
    package = Path(argv[0]) if argv else PACKAGE
    found = violations(package)
    for path, line, module, instead in found:
        print(f"{path}:{line}: imports {module}; import it from {instead} (its __init__ re-exports it)")
    if found:
        print(f"{len(found)} import(s) reach into another package", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
