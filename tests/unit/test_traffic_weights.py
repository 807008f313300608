"""Traffic weights: worked examples and hypothesis properties."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.scheduling import Region, traffic_weights


@pytest.mark.parametrize(
    ("regions", "weights", "reasons"),
    [
        (
            [Region("taiwan", 4, address="127.0.0.1:1"), Region("tokyo", 2, address="127.0.0.1:2")],
            {"taiwan": 4, "tokyo": 2},
            {},
        ),
        (
            [
                Region("taiwan", 4, cluster_ready=False, address="127.0.0.1:1"),
                Region("tokyo", 2, address="127.0.0.1:2"),
            ],
            {"taiwan": 0, "tokyo": 2},
            {"taiwan": "Offline"},
        ),
        (
            [
                Region("a", 3, cordoned=True, address="x:1"),
                Region("b", 3, stale=True, address="x:2"),
                Region("c", 3),
                Region("d", 3, address="x:4", answering=False),
                Region("e", 0, address="x:5"),
            ],
            {"a": 0, "b": 0, "c": 0, "d": 0, "e": 0},
            {"a": "Cordoned", "b": "Stale", "c": "NoAddress", "d": "NotAnswering", "e": "NoReadyPods"},
        ),
    ],
    ids=["two-regions-2-to-1", "one-offline", "every-reason"],
)
def test_worked_examples(regions: list[Region], weights: dict[str, int], reasons: dict[str, str]) -> None:
    result = traffic_weights(regions)
    assert dict(result.weights) == weights
    assert dict(result.reasons) == reasons


def test_shares() -> None:
    result = traffic_weights([Region("a", 2, address="x:1"), Region("b", 1, address="x:2")])
    assert result.share("a") == pytest.approx(2 / 3)
    assert result.share("b") == pytest.approx(1 / 3)
    assert traffic_weights([Region("a", 2)]).share("a") == 0.0


regions = st.lists(
    st.builds(
        Region,
        cluster=st.text(alphabet="abcdef", min_size=1, max_size=3),
        ready_pods=st.integers(0, 50),
        cluster_ready=st.booleans(),
        cordoned=st.booleans(),
        stale=st.booleans(),
        address=st.one_of(st.none(), st.just("127.0.0.1:80")),
        answering=st.booleans(),
    ),
    max_size=8,
    unique_by=lambda r: r.cluster,
)


@settings(max_examples=300, deadline=None)
@given(regions=regions, seed=st.integers(0, 1000))
def test_properties(regions: list[Region], seed: int) -> None:
    result = traffic_weights(regions)
    for region in regions:
        weight = result.weights[region.cluster]
        assert weight >= 0
        if region.reason() is None:
            assert weight == region.ready_pods
        else:
            assert weight == 0
            assert result.reasons[region.cluster] == region.reason()
    shares = [result.share(r.cluster) for r in regions]
    assert all(0.0 <= s <= 1.0 for s in shares)
    if any(result.weights.values()):
        assert sum(shares) == pytest.approx(1.0)
    shuffled = list(regions)
    random.Random(seed).shuffle(shuffled)
    assert dict(traffic_weights(shuffled).weights) == dict(result.weights)
