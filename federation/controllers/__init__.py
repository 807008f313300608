"""The federation's controllers: cluster health, placement, propagation and status.

:class:`ControllerManager` runs them all over the federation's storage (``fedctl up`` beside the
API server, or ``federation-controller`` alone); each controller is one module with one reconcile
entry point (``health``, ``placing``, ``propagation``, ``status``).
"""

from __future__ import annotations

from federation.controllers.leadership import Leadership
from federation.controllers.manager import ControllerManager

__all__ = ["ControllerManager", "Leadership"]
