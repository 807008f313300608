"""The placement annotations: what parses, what does not, and the one line a user reads."""

from __future__ import annotations

import pytest

from federation.apis import CLUSTER_SELECTOR, REPLICA_SET_PREFERENCES
from federation.scheduling import (
    DEFAULT_PREFERENCES,
    ClusterPreference,
    PlacementError,
    Preferences,
    Requirement,
    parse_cluster_selector,
    parse_preferences,
    selector_matches,
)

STAR = ("*", ClusterPreference())

GOOD_PREFERENCES = [
    ("none", None, DEFAULT_PREFERENCES),
    ("empty", "", DEFAULT_PREFERENCES),
    ("blank", "  \n", DEFAULT_PREFERENCES),
    ("empty-object", "{}", DEFAULT_PREFERENCES),
    ("rebalance-only", '{"rebalance": true}', Preferences(rebalance=True, clusters=(STAR,))),
    ("empty-clusters", '{"clusters": {}}', DEFAULT_PREFERENCES),
    ("null-clusters", '{"clusters": null}', DEFAULT_PREFERENCES),
    (
        "issue-example",
        '{"rebalance": false, "clusters": {"c": {"minReplicas": 1, "maxReplicas": 2},'
        ' "b": {"weight": 1}, "a": {"weight": 2}}}',
        Preferences(
            clusters=(
                ("a", ClusterPreference(weight=2)),
                ("b", ClusterPreference(weight=1)),
                ("c", ClusterPreference(weight=1, min_replicas=1, max_replicas=2)),
            )
        ),
    ),
    (
        "star-and-null-max",
        '{"clusters": {"*": {"weight": 0, "maxReplicas": null}, "tokyo.example": {}}}',
        Preferences(clusters=(("*", ClusterPreference(weight=0)), ("tokyo.example", ClusterPreference()))),
    ),
    (
        "min-equals-max",
        '{"clusters": {"a": {"minReplicas": 3, "maxReplicas": 3}}}',
        Preferences(clusters=(("a", ClusterPreference(min_replicas=3, max_replicas=3)),)),
    ),
    (
        "int64-max",
        '{"clusters": {"a": {"weight": 9223372036854775807}}}',
        Preferences(clusters=(("a", ClusterPreference(weight=2**63 - 1)),)),
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [case[1:] for case in GOOD_PREFERENCES], ids=[case[0] for case in GOOD_PREFERENCES]
)
def test_parse_preferences(text: str | None, expected: Preferences) -> None:
    assert parse_preferences(text) == expected


P = REPLICA_SET_PREFERENCES

BAD_PREFERENCES = [
    (
        "weight-negative",
        '{"clusters": {"a": {"weight": -1}}}',
        f"{P}: clusters.a.weight: must be a non-negative integer",
    ),
    (
        "weight-float",
        '{"clusters": {"a": {"weight": 1.0}}}',
        f"{P}: clusters.a.weight: must be a non-negative integer",
    ),
    (
        "weight-bool",
        '{"clusters": {"a": {"weight": true}}}',
        f"{P}: clusters.a.weight: must be a non-negative integer",
    ),
    (
        "weight-string",
        '{"clusters": {"a": {"weight": "2"}}}',
        f"{P}: clusters.a.weight: must be a non-negative integer",
    ),
    (
        "weight-too-big",
        '{"clusters": {"a": {"weight": 9223372036854775808}}}',
        f"{P}: clusters.a.weight: must be at most 9223372036854775807",
    ),
    (
        "min-negative",
        '{"clusters": {"a": {"minReplicas": -2}}}',
        f"{P}: clusters.a.minReplicas: must be a non-negative integer",
    ),
    (
        "max-negative",
        '{"clusters": {"a": {"maxReplicas": -2}}}',
        f"{P}: clusters.a.maxReplicas: must be a non-negative integer",
    ),
    (
        "min-above-max",
        '{"clusters": {"a": {"minReplicas": 3, "maxReplicas": 2}}}',
        f"{P}: clusters.a.minReplicas: must be less than or equal to maxReplicas (3 > 2)",
    ),
    (
        "unknown-field",
        '{"clusters": {"a": {"minreplicas": 3}}}',
        f'{P}: clusters.a.minreplicas: unknown field "minreplicas": '
        "expected one of maxReplicas, minReplicas, weight",
    ),
    (
        "unknown-top-field",
        '{"rebalanced": true}',
        f'{P}: rebalanced: unknown field "rebalanced": expected one of clusters, rebalance',
    ),
    (
        "dotted-name",
        '{"clusters": {"a.b": {"weight": -1}}}',
        f"{P}: clusters[a.b].weight: must be a non-negative integer",
    ),
    (
        "star-entry",
        '{"clusters": {"*": {"weight": -1}}}',
        f"{P}: clusters.*.weight: must be a non-negative integer",
    ),
    ("entry-not-object", '{"clusters": {"a": 3}}', f"{P}: clusters.a: must be a JSON object"),
    ("empty-name", '{"clusters": {"": {}}}', f"{P}: clusters[]: cluster name must not be empty"),
    ("rebalance-string", '{"rebalance": "yes"}', f"{P}: rebalance: must be a boolean"),
    (
        "clusters-list",
        '{"clusters": ["a"]}',
        f'{P}: clusters: must be a JSON object of cluster name (or "*") to preferences',
    ),
    ("not-an-object", "[1]", f"{P}: must be a JSON object"),
    ("null", "null", f"{P}: must be a JSON object"),
    ("invalid-json", '{"clusters": ', f"{P}: invalid JSON: Expecting value (line 1 column 14)"),
    ("trailing-garbage", "{} x", f"{P}: invalid JSON: Extra data (line 1 column 4)"),
]


@pytest.mark.parametrize(
    ("text", "message"), [case[1:] for case in BAD_PREFERENCES], ids=[case[0] for case in BAD_PREFERENCES]
)
def test_parse_preferences_refuses(text: str, message: str) -> None:
    with pytest.raises(PlacementError) as caught:
        parse_preferences(text)
    assert str(caught.value) == message
    assert "\n" not in str(caught.value)
    assert caught.value.annotation == REPLICA_SET_PREFERENCES
    assert isinstance(caught.value, ValueError)


def test_placement_error_parts() -> None:
    with pytest.raises(PlacementError) as caught:
        parse_preferences('{"clusters": {"a": {"weight": -1}}}')
    assert (caught.value.field, caught.value.message) == (
        "clusters.a.weight",
        "must be a non-negative integer",
    )


def test_for_cluster() -> None:
    own = ClusterPreference(weight=3)
    star = ClusterPreference(weight=0, min_replicas=1)
    assert Preferences(clusters=(("a", own), ("*", star))).for_cluster("a") == own
    assert Preferences(clusters=(("a", own), ("*", star))).for_cluster("b") == star
    assert Preferences(clusters=(("a", own),)).for_cluster("b") is None
    assert DEFAULT_PREFERENCES.for_cluster("anything") == ClusterPreference(weight=1)


def test_preferences_sorted_and_unique() -> None:
    one = ClusterPreference()
    assert Preferences(clusters=(("b", one), ("a", one))).clusters == (("a", one), ("b", one))
    with pytest.raises(ValueError, match="twice"):
        Preferences(clusters=(("a", one), ("a", one)))
    with pytest.raises(ValueError, match="at least min_replicas"):
        ClusterPreference(min_replicas=2, max_replicas=1)


# -- cluster selector ------------------------------------------------------------------------------

REGION = "topology.kubernetes.io/region"

GOOD_SELECTORS = [
    ("none", None, ()),
    ("empty", "", ()),
    ("empty-list", "[]", ()),
    (
        "in-sorted-deduplicated",
        f'[{{"key": "{REGION}", "operator": "In", "values": ["b", "a", "b"]}}]',
        (Requirement(REGION, "In", ("a", "b")),),
    ),
    ("exists-no-values", '[{"key": "gpu", "operator": "Exists"}]', (Requirement("gpu", "Exists", ()),)),
    (
        "does-not-exist-null-values",
        '[{"key": "gpu", "operator": "DoesNotExist", "values": null}]',
        (Requirement("gpu", "DoesNotExist", ()),),
    ),
    ("gt", '[{"key": "tier", "operator": "Gt", "values": ["-3"]}]', (Requirement("tier", "Gt", ("-3",)),)),
    (
        "two",
        '[{"key": "a", "operator": "NotIn", "values": [""]},'
        ' {"key": "n", "operator": "Lt", "values": ["10"]}]',
        (Requirement("a", "NotIn", ("",)), Requirement("n", "Lt", ("10",))),
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [case[1:] for case in GOOD_SELECTORS], ids=[case[0] for case in GOOD_SELECTORS]
)
def test_parse_cluster_selector(text: str | None, expected: tuple[Requirement, ...]) -> None:
    assert parse_cluster_selector(text) == expected


S = CLUSTER_SELECTOR

BAD_SELECTORS = [
    (
        "not-a-list",
        '{"key": "a"}',
        f'{S}: must be a JSON list of {{"key", "operator", "values"}} requirements',
    ),
    ("item-not-object", '["a"]', f"{S}: [0]: must be a JSON object"),
    ("missing-key", '[{"operator": "Exists"}]', f"{S}: [0].key: must be a non-empty string"),
    (
        "bad-key",
        '[{"key": "-a", "operator": "Exists"}]',
        f'{S}: [0].key: invalid label key "-a": name part must be 1-63 characters of alphanumerics, '
        "'-', '_' or '.', starting and ending with an alphanumeric",
    ),
    (
        "bad-prefix",
        '[{"key": "Example.com/a", "operator": "Exists"}]',
        f'{S}: [0].key: invalid label key "Example.com/a": prefix part must be a lowercase DNS subdomain '
        "of at most 253 characters",
    ),
    (
        "operator-lowercase",
        '[{"key": "a", "operator": "in", "values": ["x"]}]',
        f'{S}: [0].operator: unsupported value "in": must be one of In, NotIn, Exists, DoesNotExist, Gt, Lt',
    ),
    (
        "operator-missing",
        '[{"key": "a"}]',
        f"{S}: [0].operator: unsupported value null: must be one of In, NotIn, Exists, DoesNotExist, Gt, Lt",
    ),
    (
        "in-no-values",
        '[{"key": "a", "operator": "In", "values": []}]',
        f"{S}: [0].values: must be specified when operator is In",
    ),
    (
        "notin-no-values",
        '[{"key": "a", "operator": "NotIn"}]',
        f"{S}: [0].values: must be specified when operator is NotIn",
    ),
    (
        "exists-with-values",
        '[{"key": "a", "operator": "Exists", "values": ["x"]}]',
        f"{S}: [0].values: may not be specified when operator is Exists",
    ),
    (
        "gt-two-values",
        '[{"key": "a", "operator": "Gt", "values": ["1", "2"]}]',
        f"{S}: [0].values: must be specified single value when operator is Gt",
    ),
    (
        "lt-not-integer",
        '[{"key": "a", "operator": "Lt", "values": ["1.5"]}]',
        f'{S}: [0].values[0]: must be an integer for operator Lt: "1.5"',
    ),
    (
        "values-not-list",
        '[{"key": "a", "operator": "In", "values": "x"}]',
        f"{S}: [0].values: must be a list of strings",
    ),
    (
        "value-not-string",
        '[{"key": "a", "operator": "In", "values": ["x", 1]}]',
        f"{S}: [0].values[1]: must be a string",
    ),
    (
        "bad-label-value",
        '[{"key": "a", "operator": "In", "values": ["ok", "not ok"]}]',
        f'{S}: [0].values[1]: invalid label value "not ok": at most 63 characters of alphanumerics, '
        "'-', '_' or '.', starting and ending with an alphanumeric",
    ),
    (
        "unknown-field",
        '[{"key": "a", "operator": "Exists", "value": "x"}]',
        f'{S}: [0].value: unknown field "value": expected one of key, operator, values',
    ),
    (
        "second-item",
        '[{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Gt"}]',
        f"{S}: [1].values: must be specified single value when operator is Gt",
    ),
    ("invalid-json", "[", f"{S}: invalid JSON: Expecting value (line 1 column 2)"),
]


@pytest.mark.parametrize(
    ("text", "message"), [case[1:] for case in BAD_SELECTORS], ids=[case[0] for case in BAD_SELECTORS]
)
def test_parse_cluster_selector_refuses(text: str, message: str) -> None:
    with pytest.raises(PlacementError) as caught:
        parse_cluster_selector(text)
    assert str(caught.value) == message
    assert "\n" not in str(caught.value)


LABELS = {REGION: "asia-east1", "gpu": "true", "tier": "3", "name": "x3"}

MATCHES = [
    ("empty", [], True),
    ("in", [Requirement(REGION, "In", ("asia-east1", "asia-northeast1"))], True),
    ("in-other", [Requirement(REGION, "In", ("us-central1",))], False),
    ("in-absent", [Requirement("zone", "In", ("a",))], False),
    ("notin", [Requirement(REGION, "NotIn", ("us-central1",))], True),
    ("notin-own", [Requirement(REGION, "NotIn", ("asia-east1",))], False),
    ("notin-absent", [Requirement("zone", "NotIn", ("a",))], True),
    ("exists", [Requirement("gpu", "Exists", ())], True),
    ("exists-absent", [Requirement("zone", "Exists", ())], False),
    ("does-not-exist", [Requirement("zone", "DoesNotExist", ())], True),
    ("does-not-exist-present", [Requirement("gpu", "DoesNotExist", ())], False),
    ("gt", [Requirement("tier", "Gt", ("2",))], True),
    ("gt-equal", [Requirement("tier", "Gt", ("3",))], False),
    ("lt", [Requirement("tier", "Lt", ("4",))], True),
    ("lt-negative", [Requirement("tier", "Lt", ("-4",))], False),
    ("gt-absent", [Requirement("zone", "Gt", ("0",))], False),
    ("lt-absent", [Requirement("zone", "Lt", ("9",))], False),
    ("gt-not-integer", [Requirement("name", "Gt", ("0",))], False),
    ("lt-not-integer", [Requirement("name", "Lt", ("9",))], False),
    ("all-must-hold", [Requirement("gpu", "Exists", ()), Requirement("tier", "Gt", ("5",))], False),
]


@pytest.mark.parametrize(
    ("requirements", "matches"), [case[1:] for case in MATCHES], ids=[case[0] for case in MATCHES]
)
def test_selector_matches(requirements: list[Requirement], matches: bool) -> None:
    assert selector_matches(requirements, LABELS) is matches
