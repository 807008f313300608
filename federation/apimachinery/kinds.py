"""The kinds both API servers serve: Namespace, Secret, Event (core/v1) and ReplicaSet (apps/v1).

Each kind is a :class:`~federation.apimachinery.resources.ResourceType` with a strategy that
applies the defaults and checks Kubernetes applies and its schema cannot express: Secret
``stringData`` folded into base64 ``data``, a ReplicaSet's selector matching its template, and so on.
Simulator-only kinds (Node, Pod, Service) live with the simulator; the federation's own kinds with
the federation API.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from typing import Any

from federation.apimachinery.errors import Cause, bad_request
from federation.apimachinery.objects import age, dig, meta
from federation.apimachinery.resources import Column, Obj, ResourceType, Strategy
from federation.apimachinery.selectors import label_selector_from_object
from federation.apimachinery.validation import dns1123_label

SECRET_SIZE_LIMIT = 1024 * 1024
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
"""Where client-side ``kubectl apply`` keeps the applied manifest (for a Secret: with its data)."""
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


class NamespaceStrategy(Strategy):
    has_status = True

    def prepare_for_create(self, obj: Obj) -> None:
        m = meta(obj)
        labels = m.setdefault("labels", {})
        labels["kubernetes.io/metadata.name"] = str(m.get("name", ""))
        obj["spec"] = {"finalizers": ["kubernetes"]}
        obj["status"] = {"phase": "Active"}

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        meta(new).setdefault("labels", {})["kubernetes.io/metadata.name"] = meta(old)["name"]
        new["spec"] = old.get("spec", {})

    def validate(self, obj: Obj) -> list[Cause]:
        return dns1123_label(str(meta(obj).get("name", "")), "metadata.name")

    def columns(self) -> list[Column]:
        return [Column("Status", "string", lambda o: dig(o, "status", "phase") or "")]

    def field_labels(self) -> Mapping[str, Callable[[Obj], str | None]]:
        return {"status.phase": lambda o: dig(o, "status", "phase")}


class SecretStrategy(Strategy):
    def _fold(self, obj: Obj) -> None:
        data = obj.get("data") or {}
        if not isinstance(data, dict):
            raise bad_request('Secret in version "v1" cannot be handled as a Secret: data must be a map')
        for key, value in data.items():
            if not isinstance(value, str):
                raise bad_request(
                    f'Secret in version "v1" cannot be handled as a Secret: data[{key}] must be a string'
                )
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                why = f"illegal base64 data in data[{key}]"
                raise bad_request(f'Secret in version "v1" cannot be handled as a Secret: {why}') from None
        string_data = obj.pop("stringData", None) or {}
        if not isinstance(string_data, dict):
            raise bad_request(
                'Secret in version "v1" cannot be handled as a Secret: stringData must be a map'
            )
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        if data:
            obj["data"] = data
        else:
            obj.pop("data", None)
        obj.setdefault("type", "Opaque")

    def prepare_for_create(self, obj: Obj) -> None:
        self._fold(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        self._fold(new)

    def validate(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        total = 0
        for key, value in (obj.get("data") or {}).items():
            if not _SECRET_KEY.match(key):
                causes.append(
                    Cause(
                        f"data[{key}]",
                        f'Invalid value: "{key}": a valid config key must consist of '
                        "alphanumeric characters, '-', '_' or '.'",
                    )
                )
            total += len(base64.b64decode(value))
        if total > SECRET_SIZE_LIMIT:
            causes.append(
                Cause("data", f"Too long: must have at most {SECRET_SIZE_LIMIT} bytes", "FieldValueTooLong")
            )
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes = self.validate(new)
        if old.get("type") != new.get("type"):
            causes.append(Cause("type", "Invalid value: field is immutable"))
        if old.get("immutable") and new.get("immutable") is not True:
            causes.append(
                Cause(
                    "immutable",
                    "Forbidden: field is immutable when `immutable` is set",
                    "FieldValueForbidden",
                )
            )
        if old.get("immutable") and new.get("data") != old.get("data"):
            causes.append(
                Cause("data", "Forbidden: field is immutable when `immutable` is set", "FieldValueForbidden")
            )
        return causes

    def redact(self, obj: Obj) -> Obj:
        obj.pop("data", None)
        obj.pop("stringData", None)
        annotations = meta(obj).get("annotations")
        if isinstance(annotations, dict):
            annotations.pop(LAST_APPLIED, None)
        return obj

    def columns(self) -> list[Column]:
        return [
            Column("Type", "string", lambda o: o.get("type", "")),
            Column("Data", "string", lambda o: str(len(o.get("data") or {}))),
        ]

    def field_labels(self) -> Mapping[str, Callable[[Obj], str | None]]:
        return {"type": lambda o: o.get("type")}


class EventStrategy(Strategy):
    show_age = False
    show_name = False

    def columns(self) -> list[Column]:
        def last_seen(o: Obj) -> str:
            return age(o.get("lastTimestamp") or o.get("eventTime") or meta(o).get("creationTimestamp"))

        def involved(o: Obj) -> str:
            io = o.get("involvedObject") or {}
            return f"{str(io.get('kind', '')).lower()}/{io.get('name', '')}"

        return [
            Column("Last Seen", "string", last_seen),
            Column("Type", "string", lambda o: o.get("type", "")),
            Column("Reason", "string", lambda o: o.get("reason", "")),
            Column("Object", "string", involved),
            Column("Message", "string", lambda o: o.get("message", "")),
        ]

    def field_labels(self) -> Mapping[str, Callable[[Obj], str | None]]:
        def io(field: str) -> Callable[[Obj], str | None]:
            return lambda o: _str_or_none(dig(o, "involvedObject", field))

        return {
            "involvedObject.kind": io("kind"),
            "involvedObject.name": io("name"),
            "involvedObject.namespace": io("namespace"),
            "involvedObject.uid": io("uid"),
            "involvedObject.apiVersion": io("apiVersion"),
            "reason": lambda o: _str_or_none(o.get("reason")),
            "type": lambda o: _str_or_none(o.get("type")),
            "source": lambda o: _str_or_none(dig(o, "source", "component")),
        }


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def pull_policy(image: str) -> str:
    """Kubernetes' default ``imagePullPolicy``: Always for ``:latest`` or no tag, else IfNotPresent."""
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def default_pod_template_spec(spec: Any) -> None:
    """The defaults the Kubernetes API server gives a pod spec (in a template or a Pod), in place."""
    if not isinstance(spec, dict):
        return
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if not isinstance(container, dict):
            continue
        container.setdefault("imagePullPolicy", pull_policy(str(container.get("image", ""))))
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})
        for port in container.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")


class ReplicaSetStrategy(Strategy):
    has_generation = True
    has_status = True

    def prepare_for_create(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if spec.get("replicas") is None:
            spec["replicas"] = 1
        spec.setdefault("minReadySeconds", 0)
        default_pod_template_spec(dig(spec, "template", "spec"))
        m = meta(obj)
        if not m.get("labels"):
            template_labels = dig(spec, "template", "metadata", "labels")
            if template_labels:
                m["labels"] = dict(template_labels)
        obj["status"] = {"replicas": 0}

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        spec = new.setdefault("spec", {})
        if spec.get("replicas") is None:
            spec["replicas"] = 1
        spec.setdefault("minReadySeconds", 0)
        default_pod_template_spec(dig(spec, "template", "spec"))

    def validate(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        causes: list[Cause] = []
        replicas = spec.get("replicas")
        if isinstance(replicas, int) and replicas < 0:
            causes.append(
                Cause("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0")
            )
        selector = spec.get("selector")
        template_labels = dig(spec, "template", "metadata", "labels") or {}
        if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
            causes.append(Cause("spec.selector", "Required value", "FieldValueRequired"))
        else:
            try:
                parsed = label_selector_from_object(selector)
            except ValueError as err:
                causes.append(Cause("spec.selector", f"Invalid value: {err}"))
            else:
                if not parsed.matches(template_labels):
                    causes.append(
                        Cause(
                            "spec.template.metadata.labels",
                            "Invalid value: `selector` does not match template `labels`",
                        )
                    )
        containers = dig(spec, "template", "spec", "containers")
        if not containers:
            causes.append(Cause("spec.template.spec.containers", "Required value", "FieldValueRequired"))
        else:
            for i, c in enumerate(containers):
                if not c.get("name"):
                    causes.append(
                        Cause(
                            f"spec.template.spec.containers[{i}].name", "Required value", "FieldValueRequired"
                        )
                    )
                if not c.get("image"):
                    causes.append(
                        Cause(
                            f"spec.template.spec.containers[{i}].image",
                            "Required value",
                            "FieldValueRequired",
                        )
                    )
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes = self.validate(new)
        if dig(new, "spec", "selector") != dig(old, "spec", "selector"):
            causes.append(Cause("spec.selector", "Invalid value: field is immutable"))
        return causes

    def columns(self) -> list[Column]:
        return [
            Column("Desired", "integer", lambda o: dig(o, "spec", "replicas") or 0),
            Column("Current", "integer", lambda o: dig(o, "status", "replicas") or 0),
            Column("Ready", "integer", lambda o: dig(o, "status", "readyReplicas") or 0),
        ]


NAMESPACES = ResourceType(
    "",
    "v1",
    "Namespace",
    "namespaces",
    "namespace",
    False,
    "io.k8s.api.core.v1.Namespace",
    NamespaceStrategy(),
    short_names=("ns",),
    subresources=frozenset({"status"}),
)
SECRETS = ResourceType(
    "",
    "v1",
    "Secret",
    "secrets",
    "secret",
    True,
    "io.k8s.api.core.v1.Secret",
    SecretStrategy(),
    sealed_fields=("data", "stringData"),
    sealed_annotations=(LAST_APPLIED,),
)
EVENTS = ResourceType(
    "",
    "v1",
    "Event",
    "events",
    "event",
    True,
    "io.k8s.api.core.v1.Event",
    EventStrategy(),
    short_names=("ev",),
)
REPLICASETS = ResourceType(
    "apps",
    "v1",
    "ReplicaSet",
    "replicasets",
    "replicaset",
    True,
    "io.k8s.api.apps.v1.ReplicaSet",
    ReplicaSetStrategy(),
    short_names=("rs",),
    subresources=frozenset({"status", "scale"}),
    categories=("all",),
)

CORE_KINDS: tuple[ResourceType, ...] = (NAMESPACES, SECRETS, EVENTS, REPLICASETS)
