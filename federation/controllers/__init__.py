"""The federation's controllers: cluster health, placement, propagation and status.

:class:`ControllerManager` runs them all over the federation's storage (``fedctl up`` beside the
API server, or ``federation-controller`` alone); each controller is one module with one reconcile
entry point (``health``, ``placing``, ``propagation``, ``status``).

Names are loaded on first use (PEP 562), so that ``federation-controller --help`` and its refusals
of bad settings do not import the controllers (and the Kubernetes client) first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from federation.apimachinery import lazy_exports

if TYPE_CHECKING:
    from federation.controllers.leadership import Leadership
    from federation.controllers.manager import ControllerManager

_MODULE_OF = {"ControllerManager": "manager", "Leadership": "leadership"}

__all__ = ["ControllerManager", "Leadership"]


__getattr__ = lazy_exports(__name__, _MODULE_OF)
