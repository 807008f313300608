"""Label and field selectors: Kubernetes' syntax, semantics and error shapes."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.apimachinery.errors import ApiError
from federation.apimachinery.selectors import (
    FieldSelector,
    LabelSelector,
    Operator,
    Requirement,
    label_selector_from_object,
    parse_field_selector,
    parse_label_selector,
)

LABELS = {"app": "web", "tier": "frontend", "env": "prod", "example.com/team": "a", "gen": "7"}

MATCH_CASES = [
    ("", True),
    ("app=web", True),
    ("app==web", True),
    ("app=db", False),
    ("app!=db", True),
    ("app!=web", False),
    ("missing!=x", True),
    ("tier in (frontend, backend)", True),
    ("tier in (backend)", False),
    ("tier notin (backend)", True),
    ("tier notin (frontend,backend)", False),
    ("missing notin (x)", True),
    ("missing in (x)", False),
    ("app", True),
    ("missing", False),
    ("!missing", True),
    ("!app", False),
    ("example.com/team=a", True),
    ("app=web,tier=frontend", True),
    ("app=web,tier=backend", False),
    ("  app = web ,  env in ( prod ,dev )  ", True),
    ("gen>5", True),
    ("gen<5", False),
    ("app>5", False),
    ("missing=", False),
    ("app in (web,)", True),
]


@pytest.mark.parametrize(("text", "expected"), MATCH_CASES, ids=[c[0] or "<empty>" for c in MATCH_CASES])
def test_label_selector_matches(text: str, expected: bool) -> None:
    assert parse_label_selector(text).matches(LABELS) is expected


CANONICAL_CASES = [
    ("b=2,a=1", "a=1,b=2"),
    ("a==1", "a=1"),
    ("x in (c,a,b,a)", "x in (a,b,c)"),
    ("!z,y,x notin (q)", "x notin (q),y,!z"),
    ("k in (,)", "k in (,)"),
    ("a=", "a="),
    ("n>3", "n>3"),
]


@pytest.mark.parametrize(("text", "canonical"), CANONICAL_CASES, ids=[c[0] for c in CANONICAL_CASES])
def test_label_selector_canonical_string(text: str, canonical: str) -> None:
    sel = parse_label_selector(text)
    assert str(sel) == canonical
    assert parse_label_selector(canonical) == sel


BAD_CASES = [
    ("a=b=c", "unable to parse requirement"),
    ("a in b", "expected: '('"),
    ("a in (b", "unable to parse requirement"),
    ("a in ()", "values set can't be empty"),
    ("a b", "unable to parse requirement"),
    ("=b", "unable to parse requirement"),
    ("a=b,", "unable to parse requirement"),
    ("!a=b", "unable to parse requirement"),
    ("bad key!=x", "unable to parse requirement"),
    ("a=-bad-", "a valid label must be an empty string"),
    ("-a=b", "name part must consist of alphanumeric characters"),
    ("Bad_Prefix/a=b", "prefix part"),
    ("a>b", "must be an integer"),
    ("a=" + "x" * 64, "must be no more than 63 characters"),
]


@pytest.mark.parametrize(("text", "message"), BAD_CASES, ids=[c[0][:20] for c in BAD_CASES])
def test_bad_label_selectors_are_bad_requests(text: str, message: str) -> None:
    with pytest.raises(ApiError) as err:
        parse_label_selector(text)
    assert err.value.code == 400
    assert err.value.reason == "BadRequest"
    assert err.value.message.startswith("unable to parse requirement")
    assert message in err.value.message


def test_equalities_are_the_exact_matches() -> None:
    sel = parse_label_selector("app=web,tier in (a),env in (x,y),gen!=3,x")
    assert sel.equalities() == {"app": "web", "tier": "a"}
    assert not sel.empty
    assert parse_label_selector("").empty


OBJECT_CASES = [
    ({}, "", True),
    ({"matchLabels": {"app": "web"}}, "app=web", True),
    ({"matchLabels": {"app": "db"}}, "app=db", False),
    (
        {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["frontend", "backend"]}]},
        "tier in (backend,frontend)",
        True,
    ),
    (
        {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["frontend"]}]},
        "tier notin (frontend)",
        False,
    ),
    ({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, "app", True),
    ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, "!app", False),
    (
        {
            "matchLabels": {"env": "prod"},
            "matchExpressions": [{"key": "gen", "operator": "Exists", "values": []}],
        },
        "env=prod,gen",
        True,
    ),
]


@pytest.mark.parametrize(
    ("obj", "text", "expected"), OBJECT_CASES, ids=[c[1] or "<empty>" for c in OBJECT_CASES]
)
def test_label_selector_from_object(obj: dict[str, object], text: str, expected: bool) -> None:
    sel = label_selector_from_object(obj)
    assert str(sel) == text
    assert sel == parse_label_selector(text)
    assert sel.matches(LABELS) is expected


BAD_OBJECTS = [
    (
        {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]},
        'operator: Unsupported value: "Gt"',
    ),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}, "values set can't be empty"),
    ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}, "values set must be empty"),
    ({"matchExpressions": [{"operator": "Exists"}]}, "key: Required value"),
    ({"matchLabels": {"bad key": "x"}}, "matchLabels"),
    ({"matchLabels": {"a": "-x-"}}, "a valid label must be an empty string"),
    ({"matchLabels": {"a": 1}}, "must be a string"),
    ({"matchExpressions": "nope"}, "must be a list"),
]


@pytest.mark.parametrize(("obj", "message"), BAD_OBJECTS, ids=[m for _, m in BAD_OBJECTS])
def test_bad_selector_objects_raise_value_error(obj: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        label_selector_from_object(obj)


FIELD_CASES = [
    ("metadata.name=web", {"metadata.name": "web"}, True),
    ("metadata.name==web", {"metadata.name": "web"}, True),
    ("metadata.name!=web", {"metadata.name": "web"}, False),
    (
        "metadata.name=web,metadata.namespace=default",
        {"metadata.name": "web", "metadata.namespace": "dev"},
        False,
    ),
    ("status.phase!=Running", {}, True),
    ("status.phase=", {}, True),
    (r"spec.x=a\,b\=c", {"spec.x": "a,b=c"}, True),
    ("", {}, True),
]


@pytest.mark.parametrize(
    ("text", "fields", "expected"), FIELD_CASES, ids=[c[0] or "<empty>" for c in FIELD_CASES]
)
def test_field_selector_matches(text: str, fields: dict[str, str], expected: bool) -> None:
    sel = parse_field_selector(text)
    assert sel.matches(fields.get) is expected


def test_field_selector_requirements_and_equalities() -> None:
    sel = parse_field_selector("metadata.name=web,status.phase!=Failed")
    assert sel.requirements == [("metadata.name", "=", "web"), ("status.phase", "!=", "Failed")]
    assert sel.equalities() == {"metadata.name": "web"}
    assert str(sel) == "metadata.name=web,status.phase!=Failed"


@pytest.mark.parametrize(
    "text",
    ["metadata.name", "metadata.name<3", "=x", r"a=b\q", "a=b=c"],
    ids=["no-op", "lt", "no-field", "escape", "eq"],
)
def test_bad_field_selectors_are_bad_requests(text: str) -> None:
    with pytest.raises(ApiError) as err:
        parse_field_selector(text)
    assert err.value.code == 400
    assert "selector" in err.value.message


# ------------------------------------------------------------------------------------------------
# Properties

_name = st.from_regex(r"[a-z0-9]([a-z0-9._-]{0,10}[a-z0-9])?", fullmatch=True)
_key = st.one_of(
    _name, st.builds(lambda p, n: f"{p}.io/{n}", st.from_regex(r"[a-z]{1,6}", fullmatch=True), _name)
)
_value = st.one_of(st.just(""), _name)
_values = st.lists(_value, min_size=1, max_size=3)


@st.composite
def requirements(draw: st.DrawFn) -> Requirement:
    key = draw(_key)
    operators: list[Operator] = ["=", "!=", "in", "notin", "exists", "!", "gt", "lt"]
    op = draw(st.sampled_from(operators))
    if op in ("=", "!="):
        return Requirement(key, op, (draw(_value),))
    if op in ("in", "notin"):
        return Requirement(key, op, tuple(sorted(set(draw(_values)))))
    if op in ("gt", "lt"):
        return Requirement(key, op, (str(draw(st.integers(-50, 50))),))
    return Requirement(key, op, ())


selectors = st.builds(lambda rs: LabelSelector(tuple(rs)), st.lists(requirements(), max_size=5))
label_sets = st.dictionaries(_key, st.one_of(_value, st.integers(-60, 60).map(str)), max_size=6)


def reference_match(sel: LabelSelector, labels: dict[str, str]) -> bool:
    """A deliberately plain reading of the Kubernetes semantics."""
    for r in sel.requirements:
        present = r.key in labels
        value = labels.get(r.key)
        if r.operator in ("=", "in"):
            ok = present and value in r.values
        elif r.operator in ("!=", "notin"):
            ok = not present or value not in r.values
        elif r.operator == "exists":
            ok = present
        elif r.operator == "!":
            ok = not present
        else:
            try:
                number = int(value) if value is not None else None
            except ValueError:
                number = None
            bound = int(r.values[0])
            ok = number is not None and (number > bound if r.operator == "gt" else number < bound)
        if not ok:
            return False
    return True


@settings(max_examples=300, deadline=None)
@given(selectors)
def test_parse_of_str_round_trips(sel: LabelSelector) -> None:
    assert parse_label_selector(str(sel)) == sel


@settings(max_examples=300, deadline=None)
@given(selectors, label_sets)
def test_matches_agrees_with_reference(sel: LabelSelector, labels: dict[str, str]) -> None:
    assert sel.matches(labels) is reference_match(sel, labels)


@settings(max_examples=100, deadline=None)
@given(label_sets)
def test_empty_selectors_match_everything(labels: dict[str, str]) -> None:
    assert parse_label_selector("").matches(labels)
    assert label_selector_from_object({}).matches(labels)
    assert parse_field_selector("").matches(labels.get)


_field_value = st.text(st.characters(codec="utf-8"), max_size=8)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.from_regex(r"[a-z]{1,5}(\.[a-z]{1,5}){0,2}", fullmatch=True),
            st.sampled_from(["=", "!="]),
            _field_value,
        ),
        max_size=4,
    )
)
def test_field_selector_round_trips(terms: list[tuple[str, str, str]]) -> None:
    sel = FieldSelector(tuple(terms))  # type: ignore[arg-type]
    assert parse_field_selector(str(sel)) == sel
