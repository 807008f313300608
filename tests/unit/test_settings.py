"""Settings read from ``FEDERATION_*`` variables: the worker count."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from federation.settings import ServerSettings, describe_error


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, 1), ("1", 1), ("4", 4)],
    ids=["default", "one", "four"],
)
def test_workers_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: int
) -> None:
    if value is None:
        monkeypatch.delenv("FEDERATION_WORKERS", raising=False)
    else:
        monkeypatch.setenv("FEDERATION_WORKERS", value)
    assert ServerSettings().workers == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", "FEDERATION_WORKERS must be at least 1"),
        ("-2", "FEDERATION_WORKERS must be at least 1"),
        ("two", "FEDERATION_WORKERS: Input should be a valid integer"),
    ],
    ids=["zero", "negative", "not-a-number"],
)
def test_a_bad_worker_count_is_named(monkeypatch: pytest.MonkeyPatch, value: str, expected: str) -> None:
    monkeypatch.setenv("FEDERATION_WORKERS", value)
    with pytest.raises(ValidationError) as refused:
        ServerSettings()
    assert describe_error(refused.value).startswith(expected)


def test_an_override_is_validated_like_the_variable() -> None:
    """``fedctl up --workers N`` overrides the variable the same way (init arguments win)."""
    assert ServerSettings(workers=3).workers == 3
    with pytest.raises(ValidationError):
        ServerSettings(workers=0)
