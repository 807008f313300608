"""The member-cluster simulator: regions that speak the real Kubernetes API on loopback.

Public surface (everything else in this package is private to it):

* :class:`Simulator` (background thread, blocking API), :class:`SimulatorRuntime` (on your loop),
  :class:`SimulatorProcess` (a child process) and :func:`serve_until_signalled` (``fedctl sim up``);
* :class:`ClusterSpec` and :func:`cluster_specs` to describe the clusters;
* :class:`Fault` / :data:`FAULT_MODES` and :class:`ControlClient` to break and heal a running simulator;
* :func:`address_of` to read a LoadBalancer Service's regional address from its status.

Names are loaded on first use (PEP 562), so a client of a running simulator (``fedctl sim fail``)
does not import the server machinery. See ``docs/simulator.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from federation.apimachinery import lazy_exports

if TYPE_CHECKING:
    from federation.sim.cluster import VERSION_INFO, ClusterSpec, SimulatedCluster
    from federation.sim.control import CONTROL_EXTENSION, ControlClient, ControlError
    from federation.sim.faults import ERROR_CODES, FAULT_MODES, Fault, FaultMode
    from federation.sim.loadbalancers import address_of
    from federation.sim.simulator import (
        READY_LINE,
        Simulator,
        SimulatorError,
        SimulatorProcess,
        SimulatorRuntime,
        UnknownCluster,
        cluster_specs,
        serve_until_signalled,
    )

_WHERE = {
    "cluster": ("VERSION_INFO", "ClusterSpec", "SimulatedCluster"),
    "control": ("CONTROL_EXTENSION", "ControlClient", "ControlError"),
    "faults": ("ERROR_CODES", "FAULT_MODES", "Fault", "FaultMode"),
    "loadbalancers": ("address_of",),
    "simulator": (
        "READY_LINE",
        "Simulator",
        "SimulatorError",
        "SimulatorProcess",
        "SimulatorRuntime",
        "UnknownCluster",
        "cluster_specs",
        "serve_until_signalled",
    ),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}

__all__ = [
    "CONTROL_EXTENSION",
    "ERROR_CODES",
    "FAULT_MODES",
    "READY_LINE",
    "VERSION_INFO",
    "ClusterSpec",
    "ControlClient",
    "ControlError",
    "Fault",
    "FaultMode",
    "SimulatedCluster",
    "Simulator",
    "SimulatorError",
    "SimulatorProcess",
    "SimulatorRuntime",
    "UnknownCluster",
    "address_of",
    "cluster_specs",
    "serve_until_signalled",
]


__getattr__ = lazy_exports(__name__, _MODULE_OF)
