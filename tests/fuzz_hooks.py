"""Schemathesis hooks for the API fuzz test (``tests/fuzzing.py`` names this module in SCHEMATHESIS_HOOKS).

Loaded into the ``st`` process, not into pytest's. It adds what the built-in checks cannot say:

* ``kubernetes_status``: every error answer (4xx, 5xx) is a ``metav1.Status`` whose ``code`` is the
  HTTP status, as every Kubernetes client expects to read it;
* a list with ``watch`` set streams by design (until its timeout): the fuzzer would take it for a
  hang and its body for a list that breaks the schema, so fuzzed lists are sent with ``watch=false``
  (watches have tests of their own, and the server ends every stream: docs/api.md);
* most generated cases are made usable (seeded names in the path, no random ``dryRun``, creates
  and updates naming their object as the path does), so they reach the logic behind those first
  checks (:func:`_make_usable`); deletes of collections take only what is labelled to go;
* each call is written to the file named by ``FEDERATION_FUZZ_LOG`` (method, path template,
  status, the start of an error's message; tab-separated), which is how the test counts the
  operations covered, the cases and the 5xx.
"""

from __future__ import annotations

import json
import os
import zlib
from typing import Any

import schemathesis
from schemathesis import CheckContext, HookContext

from tests.fuzzing import DOOMED, NAME, NAMESPACE


def _truthy(value: Any) -> bool:
    """A query flag as the server reads it: anything but absent, ``0`` or ``false`` is true."""
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return False
    return str(value).lower() not in ("0", "false")


def _make_usable(case: schemathesis.Case) -> None:
    """Make three in four generated cases usable, so they reach the logic behind the first checks:

    * the path names what was seeded (``tests/fuzzing.py``): namespace :data:`NAMESPACE`, object
      :data:`NAME`, or :data:`DOOMED` for a delete, so a delete never takes what the others use;
    * a ``dryRun`` of ``All`` or none (schemathesis fills it with random text, an empty one most
      often, which the server refuses with 400 before anything else);
    * a create or an update names its object as the path does (a valid name for a create; the
      URL's for an update), without a namespace, uid or resourceVersion of its own.

    The fourth case (chosen by a digest of the case, so the seed still decides everything) is sent
    as generated. A delete of a collection, whichever case, deletes only what is labelled
    ``fuzz=doomed``."""
    method = case.method.upper()
    params = case.path_parameters if isinstance(case.path_parameters, dict) else {}
    if method == "DELETE" and "name" not in params:
        case.query = {**(case.query or {}), "labelSelector": "fuzz=doomed"}
    text = json.dumps([method, params, case.body, case.query], sort_keys=True, default=str)
    digest = zlib.crc32(text.encode())
    if digest % 4 == 0:
        return
    if "namespace" in params:
        params["namespace"] = NAMESPACE
    if "name" in params:
        params["name"] = DOOMED if method == "DELETE" else NAME
    if isinstance(case.query, dict) and "dryRun" in case.query:
        if digest % 4 == 1:
            case.query["dryRun"] = "All"
        else:
            del case.query["dryRun"]
    body = case.body
    if method not in ("POST", "PUT") or not isinstance(body, dict):
        return
    metadata = body.get("metadata")
    if not isinstance(metadata, dict):
        metadata = body["metadata"] = {}
    for key in ("namespace", "uid", "resourceVersion", "generateName"):
        metadata.pop(key, None)
    metadata["name"] = params.get("name") if method == "PUT" else f"fuzz-{digest:08x}"


@schemathesis.hook
def before_call(context: HookContext, case: schemathesis.Case, kwargs: dict[str, Any]) -> None:
    if case.method.upper() == "GET" and isinstance(case.query, dict) and _truthy(case.query.get("watch")):
        case.query["watch"] = "false"
    _make_usable(case)


@schemathesis.hook
def after_call(context: HookContext, case: schemathesis.Case, response: schemathesis.Response) -> None:
    log = os.environ.get("FEDERATION_FUZZ_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as out:
            message = ""
            if response.status_code >= 400:
                try:
                    message = str(json.loads(response.content).get("message", ""))[:160]
                except (ValueError, AttributeError):
                    message = repr(response.content[:160])
            message = json.dumps(message)[1:-1]  # ASCII, no line or tab breaks
            line = "\t".join((case.method.upper(), case.operation.path, str(response.status_code), message))
            out.write(line + "\n")


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
