"""The federation API server: the shared Kubernetes API machinery over Postgres, with token auth.

Public surface (everything else in this package is private to it):

* :func:`create_app`: the ASGI app, for tests and embedding;
* :func:`run` (``federation-apiserver``) and :func:`run_up` (``fedctl up``): serve until a signal;
* :class:`Paths` and :func:`database`: where the server keeps its files, and the database it uses
  (the configured one, or the embedded Postgres), for the CLI's ``db`` and ``token`` commands.

Names are loaded on first use (PEP 562), so that a CLI command that needs none of them does not
import the server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from federation.apimachinery import lazy_exports

if TYPE_CHECKING:
    from federation.api.app import create_app
    from federation.api.runtime import Paths, database, run, run_up

_WHERE = {
    "app": ("create_app",),
    "runtime": ("Paths", "database", "run", "run_up"),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}

__all__ = [
    "Paths",
    "create_app",
    "database",
    "run",
    "run_up",
]


__getattr__ = lazy_exports(__name__, _MODULE_OF)
