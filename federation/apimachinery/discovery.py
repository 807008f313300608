"""Discovery documents: how kubectl and the clients learn which kinds a server serves.

``/api``, ``/apis``, ``/apis/{group}`` and each group-version's ``APIResourceList``, derived from the
scheme (plain ``APIVersions``/``APIGroupList`` JSON, which kubectl accepts in place of aggregated
discovery). Subresources are listed as ``plural/sub``; ``/scale`` as ``autoscaling/v1`` ``Scale``.
"""

from __future__ import annotations

import base64
from typing import Any

from federation.apimachinery.resources import Scheme


def resource_list(scheme: Scheme, group: str, version: str) -> dict[str, Any] | None:
    """The ``APIResourceList`` of one group-version, or None when the scheme has none of it."""
    kinds = scheme.in_group_version(group, version)
    if not kinds:
        return None
    resources: list[dict[str, Any]] = []
    for rt in kinds:
        entry: dict[str, Any] = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(rt.verbs) + (["deletecollection"] if "delete" in rt.verbs else []),
            "storageVersionHash": base64.b64encode(rt.qualified.encode())[:11].decode(),
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        resources.append(entry)
        for sub in sorted(rt.subresources):
            sub_entry: dict[str, Any] = {
                "name": f"{rt.plural}/{sub}",
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": ["get", "patch", "update"],
            }
            if sub == "scale":
                sub_entry.update(group="autoscaling", version="v1", kind="Scale")
            resources.append(sub_entry)
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}


def api_versions(scheme: Scheme) -> dict[str, Any]:
    """``/api``: the core group's versions."""
    return {
        "kind": "APIVersions",
        "versions": [v for g, v in scheme.group_versions() if g == ""],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    }


def _group_entry(group: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def api_groups(scheme: Scheme) -> dict[str, Any]:
    """``/apis``: every named group with its versions."""
    groups: dict[str, list[str]] = {}
    for g, v in scheme.group_versions():
        if g:
            groups.setdefault(g, []).append(v)
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group_entry(g, vs) for g, vs in groups.items()],
    }


def api_group(scheme: Scheme, group: str) -> dict[str, Any] | None:
    """``/apis/{group}``, or None for a group the scheme lacks."""
    versions = [v for g, v in scheme.group_versions() if g == group]
    if not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(group, versions)}
