"""``fedctl spread``'s table from the API's lists: cells, health, traffic, totals, a failover."""

from __future__ import annotations

from typing import Any

from federation.cli.spread import render_rich, render_text, spread_of


def cluster(name: str, *, ready: bool = True, cordoned: bool = False) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"server": "https://x", "unschedulable": cordoned},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def replicaset(name: str, replicas: int, ready: int, namespace: str = "shop") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": replicas},
        "status": {"readyReplicas": ready},
    }


def placement(
    name: str,
    kind: str,
    plan: dict[str, int],
    seen: dict[str, dict[str, Any]],
    *,
    namespace: str = "shop",
    unschedulable: int = 0,
) -> dict[str, Any]:
    return {
        "metadata": {"name": f"{name}-{kind.lower()}", "namespace": namespace},
        "spec": {
            "resource": {"kind": kind, "namespace": namespace, "name": name},
            "clusters": [{"name": c, "replicas": n} for c, n in plan.items()],
            "unschedulable": unschedulable,
        },
        "status": {"clusters": [{"name": c, **v} for c, v in seen.items()]},
    }


def ready(n: int, desired: int) -> dict[str, Any]:
    return {"state": "Ready", "readyReplicas": n, "desiredReplicas": desired}


def test_steady_state_with_traffic() -> None:
    spread = spread_of(
        [cluster("b"), cluster("a"), cluster("c", cordoned=True)],
        [replicaset("web", 6, 6)],
        [
            placement("web", "ReplicaSet", {"a": 3, "b": 3}, {"a": ready(3, 3), "b": ready(3, 3)}),
            placement(
                "front",
                "Service",
                {},
                {"a": {"trafficShare": "50%"}, "b": {"trafficShare": "50%"}, "c": {"trafficShare": "0%"}},
            ),
        ],
    )
    assert render_text(spread).splitlines() == [
        "REPLICASET           a       b       c                TOTAL",
        "HEALTH               Ready   Ready   Ready,Cordoned",
        "TRAFFIC shop/front   50%     50%     0%",
        "shop/web             3/3     3/3     -                6/6",
        "TOTAL                3/3     3/3     0/0              6/6",
    ]


def test_a_failover_shows_stale_and_the_moved_replicas() -> None:
    spread = spread_of(
        [cluster("a", ready=False), cluster("b"), cluster("c")],
        [replicaset("web", 6, 5), replicaset("api", 2, 0, namespace="api")],
        [
            placement(
                "web",
                "ReplicaSet",
                {"b": 3, "c": 3},
                {
                    "a": {"state": "Stale", "readyReplicas": 2, "desiredReplicas": 0},
                    "b": ready(3, 3),
                    "c": {"state": "Progressing", "readyReplicas": 2, "desiredReplicas": 3},
                },
            ),
            placement("api", "ReplicaSet", {"b": 1, "c": 1}, {}, namespace="api", unschedulable=0),
        ],
    )
    lines = render_text(spread).splitlines()
    assert lines[1].split() == ["HEALTH", "Offline", "Ready", "Ready"]
    assert lines[2].split() == ["api/api", "-", "0/1", "Pending", "0/1", "Pending", "0/2"]
    assert lines[3].split() == ["shop/web", "?/0", "Stale", "3/3", "2/3", "Progressing", "5/6"]
    assert lines[4].split() == ["TOTAL", "0/0", "3/4", "2/4", "5/8"]


def test_unplaced_replicas_and_nothing_at_all() -> None:
    spread = spread_of(
        [cluster("a")],
        [replicaset("web", 4, 2)],
        [placement("web", "ReplicaSet", {"a": 2}, {"a": ready(2, 2)}, unschedulable=2)],
    )
    assert render_text(spread).splitlines()[-2:] == [
        "shop/web     2/2     2/4 (2 unplaced)",
        "TOTAL        2/2     2/4 (2 unplaced)",
    ]
    empty = render_text(spread_of([cluster("a")], [], []))
    assert empty.endswith("(no federated ReplicaSets)")


def test_rich_table_has_the_same_cells() -> None:
    from rich.console import Console

    spread = spread_of(
        [cluster("a"), cluster("b", ready=False)],
        [replicaset("web", 2, 2)],
        [
            placement("web", "ReplicaSet", {"a": 2}, {"a": ready(2, 2)}),
        ],
    )
    console = Console(width=120, record=True, color_system=None)
    console.print(render_rich(spread, title="spread"))
    text = console.export_text()
    assert "Offline" in text
    assert "shop/web" in text
    assert "2/2" in text
