"""The Service kind's own checks, beyond the official schema."""

from __future__ import annotations

from federation.apimachinery.services import condition_causes


def test_status_conditions_are_checked_as_kubernetes_checks_them() -> None:
    # The fuzzer stored a condition without lastTransitionTime through PUT .../status, and every
    # read of the Service then broke the published schema.
    good = {"type": "Ready", "status": "True", "reason": "Up", "lastTransitionTime": "2026-01-01T00:00:00Z"}
    assert condition_causes([good]) == []
    fields = {c.field for c in condition_causes([{"type": "x"}, {**good, "reason": "not camel case!"}, good])}
    assert fields == {
        "status.conditions[0].status",
        "status.conditions[0].lastTransitionTime",
        "status.conditions[0].reason",
        "status.conditions[1].reason",
        "status.conditions[2].type",  # Ready twice
    }
