"""Cluster selectors: the ``federation.alpha.kubernetes.io/cluster-selector`` annotation.

It exists to say which member clusters a federated object may go to, by their labels (for example
``topology.kubernetes.io/region``), with the operators of a Kubernetes node selector::

    [{"key": "topology.kubernetes.io/region", "operator": "In", "values": ["asia-east1"]}]

Guarantees:

* No annotation (``None``, ``""`` or only whitespace) and ``[]`` are the empty selector, which
  matches every cluster.
* Validation is Kubernetes' (``NodeSelectorRequirement`` and ``labels.NewRequirement``): the key is
  a qualified name (optional DNS-subdomain prefix and ``/``); ``operator`` is exactly one of
  ``In``, ``NotIn``, ``Exists``, ``DoesNotExist``, ``Gt``, ``Lt``; ``In``/``NotIn`` need at least one
  value, each a valid label value; ``Exists``/``DoesNotExist`` take none; ``Gt``/``Lt`` exactly one,
  a base-10 64-bit integer. The first problem raises :class:`PlacementError` naming the field
  (``[0].values``).
* :attr:`Requirement.values` is sorted and de-duplicated, so equal selectors compare equal.
* :func:`selector_matches` is a conjunction: every requirement must hold. ``NotIn`` and
  ``DoesNotExist`` hold when the label is absent; ``Gt``/``Lt`` are false when the label is absent
  or not an integer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from federation.apis import CLUSTER_SELECTOR
from federation.scheduling.errors import INT64_MAX, PlacementError, decode, json_object, shown

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")

_INTEGER = re.compile(r"^[-+]?[0-9]+\Z")
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*\Z")
_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]\Z")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?\Z")
_FIELDS = ("key", "operator", "values")


@dataclass(frozen=True)
class Requirement:
    """One ``key operator values`` term of a cluster selector."""

    key: str
    operator: str
    values: tuple[str, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.operator == "Exists":
            return value is not None
        if self.operator == "DoesNotExist":
            return value is None
        if self.operator == "In":
            return value is not None and value in self.values
        if self.operator == "NotIn":
            return value is None or value not in self.values
        if value is None or not _INTEGER.match(value):
            return False
        have, bound = int(value), int(self.values[0])
        return have > bound if self.operator == "Gt" else have < bound


def _key_error(key: str) -> str | None:
    prefix, slash, name = key.rpartition("/")
    if slash and not (prefix and len(prefix) <= 253 and _DNS_SUBDOMAIN.match(prefix)):
        return "prefix part must be a lowercase DNS subdomain of at most 253 characters"
    if not name or len(name) > 63 or not _NAME.match(name):
        return (
            "name part must be 1-63 characters of alphanumerics, '-', '_' or '.', "
            "starting and ending with an alphanumeric"
        )
    return None


def _error(field: str, message: str) -> PlacementError:
    return PlacementError(CLUSTER_SELECTOR, field, message)


def _requirement(index: int, raw: Any) -> Requirement:
    at = f"[{index}]"
    item = json_object(CLUSTER_SELECTOR, at, raw, allowed=_FIELDS)
    key = item.get("key")
    if not isinstance(key, str) or not key:
        raise _error(f"{at}.key", "must be a non-empty string")
    why = _key_error(key)
    if why is not None:
        raise _error(f"{at}.key", f"invalid label key {shown(key)}: {why}")
    operator = item.get("operator")
    if operator not in OPERATORS:
        raise _error(
            f"{at}.operator", f"unsupported value {shown(operator)}: must be one of {', '.join(OPERATORS)}"
        )
    raw_values = item.get("values")
    raw_values = [] if raw_values is None else raw_values
    if not isinstance(raw_values, list):
        raise _error(f"{at}.values", "must be a list of strings")
    for position, value in enumerate(raw_values):
        if not isinstance(value, str):
            raise _error(f"{at}.values[{position}]", "must be a string")
    if operator in ("In", "NotIn"):
        if not raw_values:
            raise _error(f"{at}.values", f"must be specified when operator is {operator}")
        for position, value in enumerate(raw_values):
            if len(value) > 63 or not _LABEL_VALUE.match(value):
                raise _error(
                    f"{at}.values[{position}]",
                    f"invalid label value {shown(value)}: at most 63 characters of alphanumerics, "
                    "'-', '_' or '.', starting and ending with an alphanumeric",
                )
    elif operator in ("Exists", "DoesNotExist"):
        if raw_values:
            raise _error(f"{at}.values", f"may not be specified when operator is {operator}")
    else:
        if len(raw_values) != 1:
            raise _error(f"{at}.values", f"must be specified single value when operator is {operator}")
        if not _INTEGER.match(raw_values[0]) or not -INT64_MAX - 1 <= int(raw_values[0]) <= INT64_MAX:
            raise _error(
                f"{at}.values[0]", f"must be an integer for operator {operator}: {shown(raw_values[0])}"
            )
    return Requirement(key=key, operator=str(operator), values=tuple(sorted(set(raw_values))))


def parse_cluster_selector(text: str | None) -> tuple[Requirement, ...]:
    """The requirements an annotation value asks for; raises :class:`PlacementError` when invalid."""
    if text is None or not text.strip():
        return ()
    raw = decode(CLUSTER_SELECTOR, text)
    if not isinstance(raw, list):
        raise _error("", 'must be a JSON list of {"key", "operator", "values"} requirements')
    return tuple(_requirement(index, item) for index, item in enumerate(raw))


def selector_matches(requirements: Sequence[Requirement], labels: Mapping[str, str]) -> bool:
    """Whether a cluster with ``labels`` satisfies every requirement (the empty selector: always)."""
    return all(requirement.matches(labels) for requirement in requirements)
