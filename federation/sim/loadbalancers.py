"""The service load-balancer controller: the regional address a cloud gives a LoadBalancer Service.

For every Service of type LoadBalancer, the simulated cluster's service controller opens a loopback
HTTP port of its own and writes it into the Service's status, as GKE writes the address of the
regional load balancer it created::

    status:
      loadBalancer:
        ingress:
        - ip: 127.0.0.1
          ipMode: VIP
          ports:
          - port: 41234        # the regional address is http://127.0.0.1:41234
            protocol: TCP

The choice: the IP alone cannot tell Services apart on loopback, so the port that serves the address is
the one in ``ingress[0].ports[0].port`` (``PortStatus``, core/v1 since 1.24), whatever ``spec.ports``
says; every request to it, any method and path, is one request to the Service.

An address answers ``200`` with JSON naming who served it (``cluster``, ``region``, ``namespace``,
``service``, ``pod``, ``node``, ``podIP``, ``path``; also the ``X-Sim-Cluster`` and ``X-Sim-Pod`` headers)
while at least one Running, Ready pod of the Service's namespace matches its selector, taking those pods
in turn; and ``503`` with a JSON ``error`` while none does. It shares its cluster's faults: it refuses
connections while the cluster is down, never answers while it is black-holed, answers with the error
code or after the latency otherwise. The port stays the same across outages; it is released when the
Service is deleted or stops being of type LoadBalancer (whose ingress is then cleared).

Each Service is one key (namespace, name) of this controller's queue. Its one write changes
``status.loadBalancer`` only, straight to the storage and conditional on the version read: that is
what Kubernetes' service controller writes through ``/status``, and all the registry would add is
decoding the whole Service again.
"""

from __future__ import annotations

import json
from typing import Any

from federation.apimachinery import (
    EventRecorder,
    NotFound,
    Obj,
    ResourceType,
    Result,
    Storage,
    WatchEvent,
    copy_json,
    labels_of,
    meta,
    name_of,
    namespace_of,
    rv_of,
)
from federation.sim.faults import FaultInjector, FaultState, Message, Receive, Scope, Send, text_error
from federation.sim.listening import HOST, Listener, server_config
from federation.sim.network import ClusterNetwork
from federation.sim.pods import PODS, pod_ready

ServiceKey = tuple[str, str]
"""(namespace, name) of a Service."""


def ingress_for(port: int) -> list[dict[str, Any]]:
    return [{"ip": HOST, "ipMode": "VIP", "ports": [{"port": port, "protocol": "TCP"}]}]


def address_of(service: Obj) -> str | None:
    """``http://127.0.0.1:PORT`` of a Service's regional address, from its status (None: none yet)."""
    for ingress in ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
        ports = ingress.get("ports") or []
        if ingress.get("ip") and ports:
            return f"http://{ingress['ip']}:{ports[0]['port']}"
    return None


class LoadBalancers:
    """The service controller of one simulated cluster and the addresses it serves."""

    def __init__(
        self,
        storage: Storage,
        *,
        cluster: str,
        region: str,
        services: ResourceType,
        network: ClusterNetwork,
        recorder: EventRecorder,
        faults: FaultState,
    ) -> None:
        self.storage = storage
        self.cluster = cluster
        self.region = region
        self.services = services
        self.network = network
        self.recorder = recorder
        self._config = server_config(FaultInjector(self._serve, faults, render=text_error))
        self._listeners: dict[ServiceKey, Listener] = {}
        self._by_port: dict[int, ServiceKey] = {}
        self._turn: dict[ServiceKey, int] = {}
        self._serving = True

    # ------------------------------------------------------------------ controller

    @staticmethod
    def keys_for_service(event: WatchEvent) -> list[ServiceKey]:
        return [(namespace_of(event.object), name_of(event.object))]

    async def all_keys(self) -> list[ServiceKey]:
        page = await self.storage.list(self.services, None)
        keys = {(namespace_of(s), name_of(s)) for s in page.items}
        return sorted(keys | set(self._listeners))

    async def reconcile(self, key: ServiceKey) -> Result:
        namespace, name = key
        try:
            svc: Obj | None = await self.storage.get(self.services, namespace, name)
        except NotFound:
            svc = None
        if svc is None:
            await self._release(key)
            self.network.repair((await self.storage.list(self.services, None)).items)
            return Result()
        wants_address = (svc.get("spec") or {}).get("type") == "LoadBalancer" and not meta(svc).get(
            "deletionTimestamp"
        )
        if not wants_address:
            managed = key in self._listeners
            await self._release(key)
            if managed and ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress"):
                await self._write_ingress(svc, None)  # no longer a load balancer: its address is gone
            return Result()
        listener = self._listeners.get(key)
        if listener is None:
            listener = Listener(self._config)
            await listener.start(serving=self._serving)
            self._listeners[key] = listener
            self._by_port[listener.port] = key
        wanted = ingress_for(listener.port)
        current = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress")
        if current != wanted:
            if not current:
                await self.recorder.record(
                    svc,
                    type="Normal",
                    reason="EnsuringLoadBalancer",
                    message="Ensuring load balancer",
                    component="service-controller",
                )
            await self._write_ingress(svc, wanted)
            await self.recorder.record(
                svc,
                type="Normal",
                reason="EnsuredLoadBalancer",
                message="Ensured load balancer",
                component="service-controller",
            )
        return Result()

    async def _write_ingress(self, svc: Obj, ingress: list[dict[str, Any]] | None) -> None:
        updated: Obj = copy_json(svc)
        current = updated.get("status")
        status: dict[str, Any] = current if isinstance(current, dict) else {}
        status["loadBalancer"] = {"ingress": ingress} if ingress else {}
        updated["status"] = status
        await self.storage.update(self.services, updated, precondition_rv=rv_of(svc))

    async def _release(self, key: ServiceKey) -> None:
        listener = self._listeners.pop(key, None)
        self._turn.pop(key, None)
        if listener is not None:
            self._by_port.pop(listener.port, None)
            await listener.close()

    # ------------------------------------------------------------------ outages

    async def suspend(self) -> None:
        self._serving = False
        for listener in list(self._listeners.values()):
            await listener.suspend()

    async def resume(self) -> None:
        self._serving = True
        for listener in list(self._listeners.values()):
            await listener.resume()

    async def close(self) -> None:
        for key in list(self._listeners):
            await self._release(key)

    def addresses(self) -> dict[ServiceKey, str]:
        return {key: listener.url for key, listener in self._listeners.items()}

    # ------------------------------------------------------------------ serving

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        while True:  # the request body is not needed; drain it so the connection stays usable
            message: Message = await receive()
            if message.get("type") != "http.request" or not message.get("more_body"):
                break
        server = scope.get("server") or (HOST, 0)
        key = self._by_port.get(int(server[1] or 0))
        code, body, headers = await self._answer(key, str(scope.get("path", "/")))
        await send({"type": "http.response.start", "status": code, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _answer(
        self, key: ServiceKey | None, path: str
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        base: dict[str, Any] = {"cluster": self.cluster, "region": self.region}
        headers = [(b"content-type", b"application/json"), (b"x-sim-cluster", self.cluster.encode())]
        if key is None:
            return 503, _json({**base, "error": "no service behind this address"}), headers
        namespace, name = key
        base.update(namespace=namespace, service=name)
        try:
            svc = await self.storage.get(self.services, namespace, name)
        except NotFound:
            return 503, _json({**base, "error": "the service is gone"}), headers
        selector = (svc.get("spec") or {}).get("selector") or {}
        ready: list[Obj] = []
        if selector:
            page = await self.storage.list(
                PODS,
                namespace,
                label_equals=dict(selector),
                match=lambda p: (
                    all(labels_of(p).get(k) == v for k, v in selector.items())
                    and (p.get("status") or {}).get("phase") == "Running"
                    and pod_ready(p)
                    and not meta(p).get("deletionTimestamp")
                ),
            )
            ready = page.items
        if not ready:
            return 503, _json({**base, "error": "no ready pods match the service selector"}), headers
        turn = self._turn.get(key, 0)
        self._turn[key] = turn + 1
        pod = ready[turn % len(ready)]
        body = {
            **base,
            "pod": name_of(pod),
            "node": (pod.get("spec") or {}).get("nodeName"),
            "podIP": (pod.get("status") or {}).get("podIP"),
            "path": path,
        }
        return 200, _json(body), [*headers, (b"x-sim-pod", name_of(pod).encode())]


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode() + b"\n"
