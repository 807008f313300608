"""The three PATCH flavours of the Kubernetes API: JSON merge, JSON patch and strategic merge.

``kubectl label``/``annotate``/``scale`` send merge or strategic patches, ``kubectl apply``
(client-side) sends a three-way strategic merge patch with ``$setElementOrder``, ``$retainKeys``
and ``$patch: delete`` directives, and scripts send RFC 6902 JSON patches. This module applies them
exactly as the apiserver would, driven by the official schemas' ``x-kubernetes-patch-strategy`` and
``x-kubernetes-patch-merge-key`` (through :class:`~federation.apimachinery.schema.SchemaSet`).

Guarantees:

* Pure: no I/O. Neither ``target`` nor the patch is modified; the result shares no mutable value
  with either (``target`` is copied once, patch values are copied as they are inserted).
* :func:`merge_patch` is RFC 7386 (``null`` deletes; objects merge; everything else replaces).
* :func:`strategic_merge_patch` follows ``k8s.io/apimachinery/pkg/util/strategicpatch``
  (``StrategicMergeMapPatch``) for merge lists, primitive lists, list ordering and every directive;
  paths the schema does not know fall back to merge-patch semantics; no directive ever remains in
  the result (also inside added or replaced values).
* Errors are :class:`~federation.apimachinery.errors.ApiError` as Kubernetes reports them: a
  malformed patch document is 400 BadRequest; a well-formed JSON patch that cannot be applied
  (a failed ``test``, a missing path) is 422 Invalid ("the server rejected our request due to an
  error in our request: ..."), as is a strategic patch of a list of lists.

Where Kubernetes is accidental we choose the sensible reading and say so: ``$patch: delete`` of a
field that does not exist leaves it absent (Kubernetes would store the directive), and a
``$deleteFromPrimitiveList`` of a missing list is a no-op.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonpatch
import jsonpointer

from federation.apimachinery.errors import ApiError, bad_request
from federation.apimachinery.objects import copy_json
from federation.apimachinery.schema import SchemaSet
from federation.apimachinery.schematree import ARRAY, NO_PATCH_META, PatchMeta, SchemaNode

MAX_JSON_PATCH_OPERATIONS = 10000
"""Kubernetes refuses JSON patches with more operations than this."""

_PATCH = "$patch"
_RETAIN_KEYS = "$retainKeys"
_SET_ORDER = "$setElementOrder/"
_DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"


def _rejected(detail: str) -> ApiError:
    return ApiError(
        422, "Invalid", f"the server rejected our request due to an error in our request: {detail}"
    )


# --------------------------------------------------------------------------------------------------
# RFC 7386 JSON merge patch


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch: ``null`` deletes a key, objects merge, anything else replaces."""
    if not isinstance(patch, dict):
        return copy_json(patch)
    result: dict[str, Any] = copy_json(target) if isinstance(target, dict) else {}
    _merge_into(result, patch)
    return result


def _merge_into(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict):
            current = target.get(key)
            if not isinstance(current, dict):
                current = {}
                target[key] = current
            _merge_into(current, value)
        else:
            target[key] = copy_json(value)


# --------------------------------------------------------------------------------------------------
# RFC 6902 JSON patch


def json_patch(target: dict[str, Any], ops: Any) -> dict[str, Any]:
    """Apply an RFC 6902 JSON patch (a list of operations).

    A patch that is not a list of well-formed operations is 400 BadRequest; one that cannot be
    applied (failed ``test``, missing path, index out of range) is 422 Invalid, as in Kubernetes.
    More than :data:`MAX_JSON_PATCH_OPERATIONS` operations is 413."""
    if not isinstance(ops, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    if len(ops) > MAX_JSON_PATCH_OPERATIONS:
        raise ApiError(
            413,
            "RequestEntityTooLarge",
            f"The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {len(ops)}",
        )
    try:
        patch = jsonpatch.JsonPatch(copy_json(ops))
    except (jsonpatch.InvalidJsonPatch, jsonpointer.JsonPointerException) as exc:
        raise bad_request(f"invalid JSON patch: {exc}") from None
    try:
        result = patch.apply(copy_json(target), in_place=True)
    except jsonpatch.InvalidJsonPatch as exc:
        raise bad_request(f"invalid JSON patch: {exc}") from None
    except jsonpatch.JsonPatchTestFailed:
        # the library's message quotes the stored value (a Secret's data, say): name the op only
        raise _rejected("a test operation failed: the value at its path differs") from None
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        raise _rejected(str(exc)) from None
    except (KeyError, IndexError, TypeError, ValueError) as exc:  # malformed pointers into odd documents
        raise _rejected(f"{type(exc).__name__}: {exc}") from None
    if not isinstance(result, dict):
        raise _rejected("the patched document is not a JSON object")
    return result


# --------------------------------------------------------------------------------------------------
# Strategic merge patch


def strategic_merge_patch(
    target: dict[str, Any], patch: dict[str, Any], schemas: SchemaSet, ref: str
) -> dict[str, Any]:
    """Apply a Kubernetes strategic merge patch to ``target``, an object of definition ``ref``."""
    if not isinstance(patch, dict):
        raise bad_request("a strategic merge patch must be a JSON object")
    node = schemas.node(ref)
    original: dict[str, Any] = copy_json(target) if isinstance(target, dict) else {}
    return _merge_map(original, patch, node)


def _hkey(value: Any) -> Any:
    """A hashable identity for a merge-key value or a list scalar (True is not 1)."""
    if isinstance(value, (str, int, float)) or value is None:
        return (type(value) is bool, value)
    return None


class _Positions:
    """First index of each key in a list of keys; unhashable keys are searched linearly."""

    __slots__ = ("by_hash", "keys")

    def __init__(self, keys: list[Any]) -> None:
        self.keys = keys
        self.by_hash: dict[Any, int] = {}
        for i, k in enumerate(keys):
            h = _hkey(k)
            if h is not None:
                self.by_hash.setdefault(h, i)

    def add(self, key: Any, at: int) -> None:
        h = _hkey(key)
        if h is not None:
            self.by_hash.setdefault(h, at)
        else:
            self.keys.extend([None] * (at - len(self.keys)))
            self.keys.append(key)

    def find(self, key: Any) -> int:
        h = _hkey(key)
        if h is not None:
            return self.by_hash.get(h, -1)
        for i, k in enumerate(self.keys):
            if k == key:
                return i
        return -1


def _no_merge_key(element: Any, merge_key: str) -> ApiError:
    return bad_request(f"map: {element} does not contain declared merge key: {merge_key}")


def _merge_map(original: dict[str, Any], patch: dict[str, Any], node: SchemaNode | None) -> dict[str, Any]:
    """Merge ``patch`` into ``original`` (owned by us, changed in place) and return the result."""
    directive = patch.get(_PATCH)
    if directive is not None:
        if directive == "replace":
            return _merge_map({}, {k: v for k, v in patch.items() if k != _PATCH}, node)
        if directive == "delete":
            return {}
        raise bad_request(f"Unknown patch type: {directive} in map: {patch}")

    retain = patch.get(_RETAIN_KEYS)
    if retain is not None or _RETAIN_KEYS in patch:
        if not isinstance(retain, list) or not all(isinstance(k, str) for k in retain):
            raise bad_request("invalid patch format of retainKeys")
        keep = set(retain)
        for key, value in patch.items():
            if value is None or key == _RETAIN_KEYS or key.startswith((_SET_ORDER, _DELETE_PRIMITIVE)):
                continue
            if key not in keep:
                raise bad_request("invalid patch format of retainKeys")
        for key in [k for k in original if k not in keep]:
            del original[key]

    ordered: set[str] = set()
    for key, value in patch.items():
        if key.startswith(_SET_ORDER):
            field = key[len(_SET_ORDER) :]
            if not field:
                raise bad_request("invalid patch format of setElementOrder list")
            _apply_set_element_order(original, patch, field, value, node)
            ordered.add(field)

    for key, value in patch.items():
        if key in (_RETAIN_KEYS, _PATCH) or key.startswith(_SET_ORDER):
            continue
        if key.startswith(_DELETE_PRIMITIVE):
            field = key[len(_DELETE_PRIMITIVE) :]
            if not field or not isinstance(value, list):
                raise bad_request("invalid patch format of primitive list")
            current = original.get(field)
            if isinstance(current, list):
                doomed = _Positions(value)
                original[field] = [v for v in current if doomed.find(v) < 0]
            continue
        if key in ordered and value is not None:
            continue  # merged together with its $setElementOrder list
        if value is None:
            original.pop(key, None)
            continue
        child, meta = node.child(key) if node is not None else (None, NO_PATCH_META)
        if key not in original:
            if isinstance(value, dict) and value.get(_PATCH) == "delete":
                continue
            original[key] = _fresh(value, child, meta)
            continue
        current = original[key]
        if isinstance(value, dict) and isinstance(current, dict):
            if meta.replace:
                original[key] = _fresh(value, child, NO_PATCH_META)
            else:
                original[key] = _merge_map(current, value, child)
        elif isinstance(value, list) and isinstance(current, list) and meta.merge:
            original[key] = _merge_list(current, value, _item(child), meta.merge_key)
        else:
            original[key] = _fresh(value, child, meta)
    return original


def _item(node: SchemaNode | None) -> SchemaNode | None:
    return node.elem if node is not None and node.kind == ARRAY else None


def _fresh(value: Any, node: SchemaNode | None, meta: PatchMeta) -> Any:
    """A patch value inserted where nothing (of its type) was: directives applied to emptiness."""
    if isinstance(value, dict):
        return _merge_map({}, value, node)
    if isinstance(value, list):
        if meta.merge:
            return _merge_list([], value, _item(node), meta.merge_key)
        return _without_directives(value)
    return value


def _without_directives(value: Any) -> Any:
    """A copy of a value that replaces wholesale, with directive keys (and deleted items) removed.

    ``null`` members are kept: a replaced list is taken as given, as in a JSON merge patch."""
    if isinstance(value, dict):
        return {
            k: _without_directives(v)
            for k, v in value.items()
            if not (k in (_PATCH, _RETAIN_KEYS) or k.startswith((_SET_ORDER, _DELETE_PRIMITIVE)))
        }
    if isinstance(value, list):
        return [
            _without_directives(v) for v in value if not (isinstance(v, dict) and v.get(_PATCH) == "delete")
        ]
    return value


def _element_kind(*lists: list[Any]) -> str:
    """``map`` or ``scalar``: all elements must agree (Kubernetes has no lists of lists)."""
    kind = ""
    for lst in lists:
        for v in lst:
            if isinstance(v, list):
                raise _rejected("lists of lists are not supported")
            this = "map" if isinstance(v, dict) else "scalar"
            if kind and this != kind:
                raise bad_request(f"list element types are not identical: {lists}")
            kind = this
    return kind


def _merge_list(
    original: list[Any], patch: list[Any], item: SchemaNode | None, merge_key: str | None
) -> list[Any]:
    """Merge a patch list into a list whose strategy is ``merge`` (``original`` is ours to change)."""
    if not original and not patch:
        return original
    kind = _element_kind(original, patch)
    if kind != "map":
        merged = _dedupe([*original, *patch])
        in_patch = _Positions(patch)
        patch_items = [v for v in merged if in_patch.find(v) >= 0]
        server_only = [v for v in merged if in_patch.find(v) < 0]
        return _interleave(patch_items, server_only, patch, original, _identity)

    if not merge_key:
        raise bad_request("cannot merge lists without merge key for type map")
    plain: list[dict[str, Any]] = []
    replace = False
    for element in patch:
        directive = element.get(_PATCH)
        if directive is None:
            plain.append(element)
        elif directive == "delete":
            if merge_key not in element:
                raise _no_merge_key(element, merge_key)
            gone = _hkey(element[merge_key])
            original = [
                o for o in original if not (merge_key in o and _same(o[merge_key], element[merge_key], gone))
            ]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise bad_request("merging lists cannot yet be specified in the patch")
        else:
            raise bad_request(f"Unknown patch type: {directive} in map: {element}")
    if replace:
        return [_merge_map({}, e, item) for e in plain]

    key_of = _key_getter(merge_key)
    server_order = list(original)
    positions = _Positions([key_of(o) for o in original])
    merged = list(original)
    for element in plain:
        if merge_key not in element:
            raise _no_merge_key(element, merge_key)
        at = positions.find(element[merge_key])
        if at >= 0:
            merged[at] = _merge_map(merged[at], element, item)
        else:
            positions.add(element[merge_key], len(merged))
            merged.append(_merge_map({}, element, item))
    in_patch = _Positions([e[merge_key] for e in plain])
    patch_items = [m for m in merged if in_patch.find(key_of(m)) >= 0]
    server_only = [m for m in merged if in_patch.find(key_of(m)) < 0]
    return _interleave(patch_items, server_only, plain, server_order, key_of)


def _dedupe(values: list[Any]) -> list[Any]:
    """Scalars without repeats, first occurrence kept."""
    seen = _Positions([])
    out: list[Any] = []
    for v in values:
        if seen.find(v) < 0:
            seen.add(v, len(out))
            out.append(v)
    return out


def _identity(value: Any) -> Any:
    return value


def _key_getter(merge_key: str) -> Callable[[Any], Any]:
    def key_of(element: Any) -> Any:
        return element.get(merge_key) if isinstance(element, dict) else None

    return key_of


def _same(a: Any, b: Any, hb: Any) -> bool:
    ha = _hkey(a)
    return ha == hb if ha is not None and hb is not None else bool(a == b)


def _sorted_by(items: list[Any], order: list[Any], key_of: Callable[[Any], Any]) -> list[Any]:
    """``items`` stably sorted by where their keys appear in ``order`` (unknown ones last)."""
    positions = _Positions([key_of(o) for o in order])
    big = len(order)

    def rank(element: Any) -> int:
        at = positions.find(key_of(element))
        return at if at >= 0 else big

    return sorted(items, key=rank)


def _interleave(
    patch_items: list[Any],
    server_only: list[Any],
    patch_order: list[Any],
    server_order: list[Any],
    key_of: Callable[[Any], Any],
) -> list[Any]:
    """Kubernetes' ``normalizeElementOrder``: patch items in patch order, server-only items in
    server order, then merged so that a server-only item goes before a patch item only when both
    were in the server list and it came first there (so new items lead, as in Kubernetes)."""
    right = _sorted_by(patch_items, patch_order, key_of)
    left = _sorted_by(server_only, server_order, key_of)
    positions = _Positions([key_of(o) for o in server_order])
    out: list[Any] = []
    i = j = 0
    while i < len(left) and j < len(right):
        li = positions.find(key_of(left[i]))
        ri = positions.find(key_of(right[j]))
        if li >= 0 and ri >= 0 and li < ri:
            out.append(left[i])
            i += 1
        else:
            out.append(right[j])
            j += 1
    out.extend(left[i:])
    out.extend(right[j:])
    return out


def _apply_set_element_order(
    original: dict[str, Any], patch: dict[str, Any], field: str, order: Any, node: SchemaNode | None
) -> None:
    """Merge ``patch[field]`` into ``original[field]`` and order the result by ``order``."""
    if not isinstance(order, list):
        raise bad_request("invalid patch format of setElementOrder list")
    child, meta = node.child(field) if node is not None else (None, NO_PATCH_META)
    current = original.get(field)
    incoming = patch.get(field)
    if current is not None and not isinstance(current, list):
        current = None  # the patch's list replaces whatever was there
    if incoming is not None and not isinstance(incoming, list):
        raise bad_request(f"invalid patch format of setElementOrder list: {field} is not a list")
    merge_key = meta.merge_key if meta.merge else None
    kind = _element_kind(order, incoming or [], current or [])
    if kind == "map" and not merge_key:
        merge_key = meta.merge_key
    key_of: Callable[[Any], Any] = _key_getter(merge_key) if kind == "map" and merge_key else _identity
    if kind == "map" and merge_key:
        for element in order:
            if merge_key not in element:
                raise _no_merge_key(element, merge_key)
    _check_order(incoming or [], order, key_of)

    if current is not None and incoming is not None:
        if meta.merge:
            merged = _merge_list(current, incoming, _item(child), meta.merge_key)
        else:
            merged = _fresh(incoming, child, meta)
    elif incoming is not None:
        merged = _fresh(incoming, child, meta)
    elif current is not None:
        merged = current
    else:
        return
    in_order = _Positions([key_of(o) for o in order])
    patch_items = [m for m in merged if in_order.find(key_of(m)) >= 0]
    server_only = [m for m in merged if in_order.find(key_of(m)) < 0]
    original[field] = _interleave(patch_items, server_only, order, current or [], key_of)


def _check_order(incoming: list[Any], order: list[Any], key_of: Callable[[Any], Any]) -> None:
    """The items of the patch list (deletions aside) must appear in ``order``, in the same order."""
    if not incoming or not order:
        return
    keys = [key_of(o) for o in order]
    at = 0
    for element in incoming:
        if isinstance(element, dict) and _PATCH in element:
            continue
        want = key_of(element)
        hw = _hkey(want)
        while at < len(keys) and not _same(keys[at], want, hw):
            at += 1
        if at >= len(keys):
            raise bad_request(
                f"The order in patch list: {incoming} doesn't match $setElementOrder list: {order}"
            )
        at += 1
