"""Public names of a package, imported on first use (PEP 562).

A package's ``__init__`` lists where each public name lives and gets a module ``__getattr__`` from
:func:`lazy_exports`; importing one small module of the package then does not import all of it,
which keeps ``fedctl`` quick to start.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: name -> its value from ``package.homes[name]``,
    kept in the package's namespace after the first lookup."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{home}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
