"""Object-metadata validation shared by every kind, with Kubernetes' rules and messages.

Names are DNS-1123 subdomains (or labels, for kinds that need them), label keys are qualified
names, label values are at most 63 characters, and annotations together at most 256 KiB. Every
check returns :class:`~federation.apimachinery.errors.Cause` objects naming the field, so one
invalid request reports all of its problems at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from federation.apimachinery.errors import Cause

# Kubernetes' patterns (k8s.io/apimachinery/pkg/util/validation), the one copy: selectors use them too.
# ``\Z``, not ``$``: Python's ``$`` also matches before a final newline, Go's does not.
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL = re.compile(rf"^{_LABEL}\Z")
DNS1123_SUBDOMAIN = re.compile(rf"^{_LABEL}(\.{_LABEL})*\Z")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]\Z")
"""The name part of a qualified name (a label or annotation key without its prefix)."""
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?\Z")
TOTAL_ANNOTATION_LIMIT = 256 * 1024


def dns1123_label(value: str, field: str) -> list[Cause]:
    if len(value) > 63:
        return [Cause(field, f'Invalid value: "{value}": must be no more than 63 characters')]
    if not DNS1123_LABEL.match(value):
        return [
            Cause(
                field,
                f'Invalid value: "{value}": a lowercase RFC 1123 label must consist of lower case '
                "alphanumeric characters or '-', and must start and end with an alphanumeric character",
            )
        ]
    return []


def dns1123_subdomain(value: str, field: str) -> list[Cause]:
    if len(value) > 253:
        return [Cause(field, f'Invalid value: "{value}": must be no more than 253 characters')]
    if not DNS1123_SUBDOMAIN.match(value):
        return [
            Cause(
                field,
                f'Invalid value: "{value}": a lowercase RFC 1123 subdomain must consist of lower case '
                "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
                "character",
            )
        ]
    return []


def qualified_name(key: str, field: str) -> list[Cause]:
    prefix, slash, name = key.rpartition("/")
    causes: list[Cause] = []
    if slash:
        if not prefix:
            causes.append(Cause(field, f'Invalid value: "{key}": prefix part must be non-empty'))
        else:
            causes += dns1123_subdomain(prefix, field)
    if not name or len(name) > 63 or not QUALIFIED_NAME.match(name):
        causes.append(
            Cause(
                field,
                f'Invalid value: "{key}": name part must consist of alphanumeric characters, '
                "'-', '_' or '.', must start and end with an alphanumeric character, "
                "and be at most 63 characters",
            )
        )
    return causes


def check_labels(value: Any, field: str) -> list[Cause]:
    if value is None:
        return []
    if not isinstance(value, Mapping):
        return [Cause(field, "Invalid value: must be a map of strings")]
    causes: list[Cause] = []
    for k, v in value.items():
        causes += qualified_name(str(k), field)
        if not isinstance(v, str) or len(v) > 63 or not LABEL_VALUE.match(v):
            causes.append(
                Cause(
                    f"{field}",
                    f'Invalid value: "{v}": a valid label value must be 63 characters or '
                    "less and be empty or consist of alphanumeric characters, '-', '_' "
                    "or '.', starting and ending with an alphanumeric character",
                )
            )
    return causes


def check_annotations(value: Any, field: str) -> list[Cause]:
    if value is None:
        return []
    if not isinstance(value, Mapping):
        return [Cause(field, "Invalid value: must be a map of strings")]
    causes: list[Cause] = []
    total = 0
    for k, v in value.items():
        causes += qualified_name(str(k), field)
        total += len(str(k)) + len(str(v))
    if total > TOTAL_ANNOTATION_LIMIT:
        causes.append(
            Cause(field, f"Too long: must have at most {TOTAL_ANNOTATION_LIMIT} bytes", "FieldValueTooLong")
        )
    return causes


def object_meta(metadata: Mapping[str, Any], *, label_names: bool = False) -> list[Cause]:
    """Name (subdomain, or label when ``label_names``), labels and annotations of one object."""
    name = metadata.get("name")
    causes: list[Cause] = []
    if not name:
        causes.append(
            Cause("metadata.name", "Required value: name or generateName is required", "FieldValueRequired")
        )
    else:
        check = dns1123_label if label_names else dns1123_subdomain
        causes += check(str(name), "metadata.name")
    causes += check_labels(metadata.get("labels"), "metadata.labels")
    causes += check_annotations(metadata.get("annotations"), "metadata.annotations")
    return causes
