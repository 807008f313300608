"""Node, Pod and Service strategies of a simulated cluster: allocation, defaults, checks and columns."""

from __future__ import annotations

from typing import Any

import pytest

from federation.apimachinery import service_external_ip, service_ports_cell
from federation.apimachinery.errors import ApiError
from federation.apimachinery.kinds import pull_policy
from federation.apimachinery.resources import Obj
from federation.apimachinery.tables import columns_of
from federation.sim.kinds import cluster_scheme
from federation.sim.network import REPAIR_GRACE_SECONDS, ClusterNetwork
from federation.sim.pods import PodStrategy, pod_status_reason
from federation.sim.services import ClusterServiceStrategy as ServiceStrategy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def service(name: str = "web", **spec: Any) -> Obj:
    return {"metadata": {"name": name}, "spec": {"selector": {"app": name}, "ports": [{"port": 80}], **spec}}


def test_cluster_ips_come_from_the_cluster_range_in_order() -> None:
    net = ClusterNetwork("10.130.0.0/16")
    assert [net.allocate_ip() for _ in range(3)] == ["10.130.0.2", "10.130.0.3", "10.130.0.4"]


@pytest.mark.parametrize(
    ("requested", "message"),
    [
        ("10.0.0.5", "not in the valid range"),
        ("nonsense", "must be a valid IP"),
        ("10.130.255.255", "valid range"),
    ],
    ids=["outside", "garbage", "broadcast"],
)
def test_requested_cluster_ips_are_checked(requested: str, message: str) -> None:
    net = ClusterNetwork("10.130.0.0/16")
    with pytest.raises(ApiError, match=message) as caught:
        net.allocate_ip(requested, owner="web")
    assert caught.value.code == 422
    assert caught.value.causes[0].field == "spec.clusterIPs[0]"


def test_a_taken_cluster_ip_cannot_be_requested_again() -> None:
    net = ClusterNetwork("10.130.0.0/16")
    assert net.allocate_ip("10.130.0.9") == "10.130.0.9"
    with pytest.raises(ApiError, match="already allocated"):
        net.allocate_ip("10.130.0.9")


def test_repair_frees_what_no_service_holds_after_the_grace() -> None:
    clock = Clock()
    net = ClusterNetwork("10.130.0.0/16", clock=clock)
    kept, leaked = net.allocate_ip(), net.allocate_ip()
    port = net.allocate_node_port()
    net.repair([{"spec": {"clusterIP": kept, "ports": [{"nodePort": port}]}}])
    assert net.ip_in_use(leaked)  # young: its create may still be in flight
    clock.now += REPAIR_GRACE_SECONDS + 1
    net.repair([{"spec": {"clusterIP": kept, "ports": [{"nodePort": port}]}}])
    assert net.ip_in_use(kept)
    assert not net.ip_in_use(leaked)
    assert net.allocate_node_port(30123) == 30123


def test_node_ports_come_from_30000_32767() -> None:
    net = ClusterNetwork("10.130.0.0/16")
    assert net.allocate_node_port() == 30000
    with pytest.raises(ApiError, match="30000-32767"):
        net.allocate_node_port(80)


def test_a_clusterip_service_gets_defaults_an_ip_and_empty_status() -> None:
    strategy = ServiceStrategy(ClusterNetwork("10.130.0.0/16"))
    svc = service()
    strategy.prepare_for_create(svc)
    spec = svc["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["clusterIP"] == "10.130.0.2"
    assert spec["clusterIPs"] == ["10.130.0.2"]
    assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    assert spec["sessionAffinity"] == "None"
    assert svc["status"] == {"loadBalancer": {}}
    assert strategy.validate(svc) == []


def test_a_loadbalancer_service_gets_node_ports_that_survive_updates() -> None:
    strategy = ServiceStrategy(ClusterNetwork("10.130.0.0/16"))
    old = service(type="LoadBalancer")
    strategy.prepare_for_create(old)
    node_port = old["spec"]["ports"][0]["nodePort"]
    assert old["spec"]["externalTrafficPolicy"] == "Cluster"
    new = service(type="LoadBalancer")  # as kubectl apply sends it: no clusterIP, no nodePort
    strategy.prepare_for_update(new, old)
    assert new["spec"]["clusterIP"] == old["spec"]["clusterIP"]
    assert new["spec"]["ports"][0]["nodePort"] == node_port
    assert strategy.validate_update(new, old) == []
    back = service(type="ClusterIP")
    strategy.prepare_for_update(back, new)
    assert "nodePort" not in back["spec"]["ports"][0]


def test_cluster_ip_is_immutable() -> None:
    strategy = ServiceStrategy(ClusterNetwork("10.130.0.0/16"))
    old = service()
    strategy.prepare_for_create(old)
    new = service(clusterIP="10.130.0.99")
    strategy.prepare_for_update(new, old)
    causes = strategy.validate_update(new, old)
    assert [c.field for c in causes] == ["spec.clusterIPs[0]"]


def test_headless_and_external_name_services() -> None:
    strategy = ServiceStrategy(ClusterNetwork("10.130.0.0/16"))
    headless = service(clusterIP="None")
    strategy.prepare_for_create(headless)
    assert headless["spec"]["clusterIPs"] == ["None"]
    assert strategy.validate(headless) == []
    external = {
        "metadata": {"name": "db"},
        "spec": {"type": "ExternalName", "externalName": "db.example.com"},
    }
    strategy.prepare_for_create(external)
    assert "clusterIP" not in external["spec"]
    assert strategy.validate(external) == []
    assert service_external_ip(external) == "db.example.com"


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"type": "Balanced"}, "spec.type"),
        ({"ports": []}, "spec.ports"),
        ({"ports": [{"port": 70000}]}, "spec.ports[0].port"),
        ({"ports": [{"port": 80, "protocol": "ICMP"}]}, "spec.ports[0].protocol"),
        ({"ports": [{"port": 80}, {"port": 81}]}, "spec.ports[0].name"),
        ({"ports": [{"port": 80, "name": "a"}, {"port": 81, "name": "a"}]}, "spec.ports[1].name"),
        ({"type": "ExternalName"}, "spec.externalName"),
    ],
    ids=["type", "no-ports", "port-range", "protocol", "unnamed-ports", "duplicate-names", "external-name"],
)
def test_invalid_services_name_the_field(spec: dict[str, Any], field: str) -> None:
    strategy = ServiceStrategy(ClusterNetwork("10.130.0.0/16"))
    svc = service(**spec)
    strategy.prepare_for_create(svc)
    causes = strategy.validate(svc)
    assert field in [c.field for c in causes]


@pytest.mark.parametrize(
    ("obj", "external", "ports"),
    [
        (service(), "<none>", "80/TCP"),
        (
            {"spec": {"type": "LoadBalancer", "ports": [{"port": 80, "nodePort": 30001, "protocol": "TCP"}]}},
            "<pending>",
            "80:30001/TCP",
        ),
        (
            {
                "spec": {
                    "type": "LoadBalancer",
                    "ports": [{"port": 443, "nodePort": 30002, "protocol": "TCP"}],
                },
                "status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}},
            },
            "127.0.0.1",
            "443:30002/TCP",
        ),
    ],
    ids=["cluster-ip", "lb-pending", "lb-ready"],
)
def test_service_columns_print_like_kubectl(obj: Obj, external: str, ports: str) -> None:
    assert service_external_ip(obj) == external
    assert service_ports_cell(obj) == ports


def test_pod_defaults_and_node_name_immutability() -> None:
    strategy = PodStrategy()
    pod: Obj = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    strategy.prepare_for_create(pod)
    assert pod["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    assert pod["spec"]["restartPolicy"] == "Always"
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "Always"
    bound = {**pod, "spec": {**pod["spec"], "nodeName": "n1"}}
    moved = {**pod, "spec": {**pod["spec"], "nodeName": "n2"}}
    assert [c.field for c in strategy.validate_update(moved, bound)] == ["spec.nodeName"]
    assert [c.field for c in strategy.validate({"spec": {}})] == ["spec.containers"]


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.27", "IfNotPresent"),
        ("reg:5000/team/app", "Always"),
        ("app@sha256:abc", "IfNotPresent"),
    ],
    ids=["untagged", "latest", "tagged", "registry-port", "digest"],
)
def test_pull_policy_defaults_like_kubernetes(image: str, policy: str) -> None:
    assert pull_policy(image) == policy


@pytest.mark.parametrize(
    ("status", "deleting", "shown"),
    [
        ({"phase": "Pending"}, False, "Pending"),
        (
            {
                "phase": "Pending",
                "containerStatuses": [{"state": {"waiting": {"reason": "ContainerCreating"}}}],
            },
            False,
            "ContainerCreating",
        ),
        ({"phase": "Running", "containerStatuses": [{"state": {"running": {}}}]}, False, "Running"),
        ({"phase": "Running"}, True, "Terminating"),
    ],
    ids=["pending", "creating", "running", "terminating"],
)
def test_pod_status_column(status: dict[str, Any], deleting: bool, shown: str) -> None:
    pod: Obj = {"metadata": {"deletionTimestamp": "x"} if deleting else {}, "status": status}
    assert pod_status_reason(pod) == shown


def test_table_columns_follow_kubectl() -> None:
    scheme = cluster_scheme(ClusterNetwork("10.130.0.0/16"))

    def printed(plural: str) -> list[str]:
        rt = scheme.lookup("", "v1", plural)
        assert rt is not None
        return [c.name for c in columns_of(rt)]

    assert printed("pods") == ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node"]
    assert printed("nodes")[:5] == ["Name", "Status", "Roles", "Age", "Version"]
    assert printed("services") == ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector"]
    assert printed("events") == ["Last Seen", "Type", "Reason", "Object", "Message", "Name"]


def test_cluster_scheme_serves_the_shared_and_the_simulated_kinds() -> None:
    scheme = cluster_scheme(ClusterNetwork("10.130.0.0/16"))
    kinds = {t.kind for t in scheme.types}
    assert kinds == {"Namespace", "Secret", "Event", "ReplicaSet", "Node", "Pod", "Service"}
    assert scheme.lookup("", "v1", "nodes").namespaced is False  # type: ignore[union-attr]
    assert scheme.lookup("", "v1", "services").schema_ref == "io.k8s.api.core.v1.Service"  # type: ignore[union-attr]
