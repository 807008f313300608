"""Schemathesis hooks for the API fuzz test (``tests/fuzzing.py`` names this module in SCHEMATHESIS_HOOKS).

Loaded into the ``st`` process, not into pytest's. It adds what the built-in checks cannot say:

* ``kubernetes_status``: every error answer (4xx, 5xx) is a ``metav1.Status`` whose ``code`` is the
  HTTP status, as every Kubernetes client expects to read it;
* a list with ``watch`` set streams by design (until its timeout): the fuzzer would take it for a
  hang and its body for a list that breaks the schema, so fuzzed lists are sent with ``watch=false``
  (watches have tests of their own, and the server ends every stream: docs/api.md);
* each call is written to the file named by ``FEDERATION_FUZZ_LOG`` (method, path template,
  status), which is how the test counts the operations covered, the cases and the 5xx.
"""

from __future__ import annotations

import json
import os
from typing import Any

import schemathesis
from schemathesis import CheckContext, HookContext


def _truthy(value: Any) -> bool:
    """A query flag as the server reads it: anything but absent, ``0`` or ``false`` is true."""
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return False
    return str(value).lower() not in ("0", "false")


@schemathesis.hook
def before_call(context: HookContext, case: schemathesis.Case, kwargs: dict[str, Any]) -> None:
    if case.method.upper() == "GET" and isinstance(case.query, dict) and _truthy(case.query.get("watch")):
        case.query["watch"] = "false"


@schemathesis.hook
def after_call(context: HookContext, case: schemathesis.Case, response: schemathesis.Response) -> None:
    log = os.environ.get("FEDERATION_FUZZ_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"{case.method.upper()} {case.operation.path} {response.status_code}\n")


@schemathesis.check
def kubernetes_status(
    ctx: CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    if response.status_code < 400:
        return None
    label = case.operation.label
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"{label}: error body is not JSON: {response.content[:200]!r}") from None
    if not isinstance(body, dict) or body.get("kind") != "Status" or body.get("apiVersion") != "v1":
        raise AssertionError(f"{label}: error body is not a metav1.Status: {str(body)[:200]}")
    if body.get("code") != response.status_code or body.get("status") != "Failure":
        raise AssertionError(
            f"{label}: HTTP {response.status_code} but Status code {body.get('code')!r}, "
            f"status {body.get('status')!r}"
        )
    if not body.get("reason") or not body.get("message"):
        raise AssertionError(f"{label}: Status without reason or message: {str(body)[:200]}")
    return True
