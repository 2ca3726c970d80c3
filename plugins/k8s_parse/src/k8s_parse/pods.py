"""The pod model: what the plugin keeps of a Kubernetes pod, and its wire format.

A :class:`Pod` is built from a pod object of the API server
(:meth:`Pod.from_api`), keeping only what the fields need and the labels and
annotations the configuration lets through. It travels from the watcher to
the parser as the payload of a ``k8s_pod`` async event (:func:`encode_change`,
:func:`decode_change`): JSON, so that a capture file carrying those events
stays readable by any later version of the plugin.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Literal

__all__ = ["ACTIONS", "Action", "Change", "Container", "KeyFilter", "Pod", "PodError", "decode_change", "encode_change"]

Action = Literal["added", "modified", "deleted", "state"]
"""What happened to a pod: the watch event types, and ``state`` for the pods
a capture dump carries (the state when the capture started)."""
ACTIONS: tuple[Action, ...] = ("added", "modified", "deleted", "state")

RUNTIME_PREFIXES = ("containerd://", "docker://", "cri-o://", "crio://")


class PodError(ValueError):
    """A pod object or a change payload that does not have the expected shape."""


@dataclass(frozen=True)
class KeyFilter:
    """Which label (or annotation) keys to keep: shell-style patterns, ``*`` for all."""

    patterns: tuple[str, ...]

    def keep(self, values: Mapping[str, str]) -> dict[str, str]:
        if not self.patterns:
            return {}
        return {k: v for k, v in values.items() if any(fnmatchcase(k, p) for p in self.patterns)}


KEEP_ALL = KeyFilter(("*",))
KEEP_NONE = KeyFilter(())


@dataclass(frozen=True)
class Container:
    """One container of a pod: its name and its id without the runtime prefix
    (the 64 hex digits that also name its cgroup)."""

    name: str
    id: str


@dataclass(frozen=True)
class Pod:
    uid: str
    name: str
    namespace: str
    resource_version: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    ips: tuple[str, ...] = ()
    node: str = ""
    owner_kind: str = ""
    owner_name: str = ""
    containers: tuple[Container, ...] = ()
    phase: str = ""
    mirror_uid: str = ""
    """For the mirror of a static pod: the uid the kubelet uses on the node
    (annotation ``kubernetes.io/config.mirror``), which its cgroups carry."""

    def same_as(self, other: Pod) -> bool:
        """Whether the two differ at most in their resourceVersion (nothing the fields show has changed)."""
        return dataclasses.replace(self, resource_version="") == dataclasses.replace(other, resource_version="")

    @property
    def ip(self) -> str:
        return self.ips[0] if self.ips else ""

    def container_name(self, container_id: str) -> str | None:
        """The name of the container with this id; a short (12+ digit) id matches its full id."""
        if len(container_id) < 12:
            return None
        for c in self.containers:
            if len(c.id) >= 12 and (c.id.startswith(container_id) or container_id.startswith(c.id)):
                return c.name
        return None

    @classmethod
    def from_api(cls, obj: Mapping[str, Any], labels: KeyFilter = KEEP_ALL, annotations: KeyFilter = KEEP_NONE) -> Pod:
        """A pod from an API server pod object (v1 ``Pod``).

        :class:`PodError` names the first thing of the wrong shape: no uid or name, or a field the
        plugin reads that has another JSON type than the API defines (``podIPs: 7``). Absent and
        ``null`` fields are empty, as the API server omits them."""
        if not isinstance(obj, Mapping):
            raise PodError(f"a pod is a JSON object, not {type(obj).__name__}")
        meta = _api_obj(obj, "metadata")
        spec = _api_obj(obj, "spec")
        status = _api_obj(obj, "status")
        uid, name = meta.get("uid"), meta.get("name")
        if not isinstance(uid, str) or not uid or not isinstance(name, str) or not name:
            raise PodError("a pod object needs metadata.uid and metadata.name")
        where = f"pod {name} ({uid})"
        all_annotations = _api_strings(meta, "metadata.annotations", where)
        owner_kind = owner_name = ""
        owners = "metadata.ownerReferences"
        refs = [_api_item(o, owners, where) for o in _api_list(meta, owners, where)]
        ref = next((o for o in refs if o.get("controller") is True), refs[0] if refs else None)
        if ref is not None:
            owner_kind = _api_text(ref, f"{owners}[].kind", where)
            owner_name = _api_text(ref, f"{owners}[].name", where)
        ips = []
        for i in _api_list(status, "status.podIPs", where):
            ip = _api_text(_api_item(i, "status.podIPs", where), "status.podIPs[].ip", where)
            if ip:
                ips.append(ip)
        if not ips and _api_text(status, "status.podIP", where):
            ips = [status["podIP"]]
        containers = []
        for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
            for item in _api_list(status, f"status.{key}", where):
                c = _api_item(item, f"status.{key}", where)
                cname = _api_text(c, f"status.{key}[].name", where)
                cid = _api_text(c, f"status.{key}[].containerID", where)
                if cname:
                    containers.append(Container(cname, _bare_id(cid)))
        return cls(
            uid=uid,
            name=name,
            namespace=_api_text(meta, "metadata.namespace", where),
            resource_version=_api_text(meta, "metadata.resourceVersion", where),
            labels=labels.keep(_api_strings(meta, "metadata.labels", where)),
            annotations=annotations.keep(all_annotations),
            ips=tuple(ips),
            node=_api_text(spec, "spec.nodeName", where),
            owner_kind=owner_kind,
            owner_name=owner_name,
            containers=tuple(containers),
            phase=_api_text(status, "status.phase", where),
            mirror_uid=all_annotations.get("kubernetes.io/config.mirror", ""),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "name": self.name,
            "namespace": self.namespace,
            "resourceVersion": self.resource_version,
            "labels": self.labels,
            "annotations": self.annotations,
            "ips": list(self.ips),
            "node": self.node,
            "owner": {"kind": self.owner_kind, "name": self.owner_name},
            "containers": [{"name": c.name, "id": c.id} for c in self.containers],
            "phase": self.phase,
            "mirrorUid": self.mirror_uid,
        }

    @classmethod
    def from_json(cls, d: Any) -> Pod:
        """The inverse of :meth:`to_json`; :class:`PodError` names what is wrong."""
        if not isinstance(d, Mapping):
            raise PodError("pod: expected an object")
        try:
            owner = d.get("owner") or {}
            pod = cls(
                uid=_text(d, "uid", required=True),
                name=_text(d, "name", required=True),
                namespace=_text(d, "namespace"),
                resource_version=_text(d, "resourceVersion"),
                labels=_string_map(d.get("labels"), "labels"),
                annotations=_string_map(d.get("annotations"), "annotations"),
                ips=tuple(_string_list(d.get("ips"), "ips")),
                node=_text(d, "node"),
                owner_kind=_text(owner, "kind"),
                owner_name=_text(owner, "name"),
                containers=tuple(Container(_text(c, "name"), _text(c, "id")) for c in _list(d.get("containers"))),
                phase=_text(d, "phase"),
                mirror_uid=_text(d, "mirrorUid"),
            )
        except (AttributeError, TypeError) as exc:
            raise PodError(f"pod: {exc}") from None
        return pod


@dataclass(frozen=True)
class Change:
    """One ``k8s_pod`` async event: a pod and what happened to it."""

    action: Action
    pod: Pod


def encode_change(action: Action, pod: Pod) -> bytes:
    return json.dumps({"action": action, "pod": pod.to_json()}, separators=(",", ":"), sort_keys=True).encode()


def decode_change(payload: bytes) -> Change:
    """Parse a ``k8s_pod`` payload; :class:`PodError` when it is not one."""
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PodError(f"k8s_pod payload is not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("action") not in ACTIONS:
        raise PodError(f"k8s_pod payload: action must be one of {', '.join(ACTIONS)}")
    return Change(doc["action"], Pod.from_json(doc.get("pod")))


# -- helpers -------------------------------------------------------------------


def _bare_id(container_id: str) -> str:
    for prefix in RUNTIME_PREFIXES:
        if container_id.startswith(prefix):
            return container_id[len(prefix) :]
    return container_id.partition("://")[2] or container_id


# The API object readers: absent or null is empty (the API server omits empty fields), any other
# JSON type than the API's is a PodError naming the field, so that one malformed pod is skipped
# on its own instead of raising TypeError out of the watcher.


def _api_obj(d: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = d.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PodError(f"a pod's {key} must be an object, not {type(value).__name__}")
    return value


def _api_item(value: Any, path: str, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PodError(f"{where}: the items of {path} must be objects, not {type(value).__name__}")
    return value


def _api_get(d: Mapping[str, Any], path: str) -> Any:
    """The value at the last name of ``path`` (``status.podIPs`` reads ``podIPs`` of ``status``)."""
    return d.get(path.rpartition(".")[2])


def _api_list(d: Mapping[str, Any], path: str, where: str) -> list[Any]:
    value = _api_get(d, path)
    if value is None:
        return []
    if not isinstance(value, list):
        raise PodError(f"{where}: {path} must be a list, not {type(value).__name__}")
    return value


def _api_text(d: Mapping[str, Any], path: str, where: str) -> str:
    value = _api_get(d, path)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PodError(f"{where}: {path} must be a string, not {type(value).__name__}")
    return value


def _api_strings(d: Mapping[str, Any], path: str, where: str) -> dict[str, str]:
    value = _api_get(d, path)
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise PodError(f"{where}: {path} must map strings to strings")
    return dict(value)


def _text(d: Any, key: str, required: bool = False) -> str:
    value = d.get(key, "")
    if not isinstance(value, str) or (required and not value):
        raise PodError(f"pod: {key} must be {'a non-empty' if required else 'a'} string")
    return value


def _list(value: Any) -> Sequence[Any]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise PodError("pod: expected a list")
    return value


def _string_list(value: Any, what: str) -> list[str]:
    items = _list(value)
    if not all(isinstance(i, str) for i in items):
        raise PodError(f"pod: {what} must be strings")
    return list(items)


def _string_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise PodError(f"pod: {what} must map strings to strings")
    return dict(value)
