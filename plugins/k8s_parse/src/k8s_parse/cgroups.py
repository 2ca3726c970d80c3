"""Finding the pod (and container) of a process from its cgroups.

The kubelet puts every container of a pod under a cgroup named after the pod
uid; the name depends on the cgroup driver, not on the cgroup version::

    cgroupfs:  /kubepods/burstable/pod0f6e2c3a-1b2d-4c5e-8f90-123456789abc/<container id>
               /kubepods/pod0f6e...  (Guaranteed: no QoS level)
    systemd:   /kubepods.slice/kubepods-besteffort.slice/
                   kubepods-besteffort-pod0f6e2c3a_1b2d_4c5e_8f90_123456789abc.slice/
                   cri-containerd-<container id>.scope

cgroup v1 lists one such path per controller (``cpu,cpuacct=/kubepods/...``),
v2 one unified path (``0::/kubepods/...``, libsinsp calls its controller
``""``, and the host's table may hold any of them). Nested setups
(kind, a kubelet in a container) put a prefix before ``kubepods``
(``/kubelet.slice/kubelet-kubepods.slice/...``). Static
pods use a 32-digit hash instead of a UUID; it is what the kubelet's mirror
pod carries in its ``kubernetes.io/config.mirror`` annotation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["PodCgroup", "normalize_uid", "parse_cgroup", "pod_of_cgroups"]

_HEX = "[0-9a-f]"
_UID = rf"{_HEX}{{8}}[-_]{_HEX}{{4}}[-_]{_HEX}{{4}}[-_]{_HEX}{{4}}[-_]{_HEX}{{12}}|{_HEX}{{32}}"
# The pod's own cgroup: "pod<uid>" (cgroupfs) or "kubepods[-qos]-pod<uid>.slice" (systemd).
_POD_COMPONENT = re.compile(rf"^(?:[a-z]+-)*pod(?P<uid>{_UID})(?:\.slice)?$")
# A container's cgroup below it: a bare id (cgroupfs) or "<runtime>-<id>.scope" (systemd).
_CONTAINER_COMPONENT = re.compile(rf"^(?:(?P<runtime>[a-z][a-z-]*?)-)?(?P<id>{_HEX}{{12,64}})(?:\.scope)?$")
_NOT_CONTAINERS = ("crio-conmon", "conmon")  # CRI-O's monitor process sits beside the container


@dataclass(frozen=True)
class PodCgroup:
    """The pod uid (with dashes, as the API server spells it) and, when the
    path goes down to a container, the container id."""

    pod_uid: str
    container_id: str = ""


def normalize_uid(uid: str) -> str:
    """``0f6e2c3a_1b2d_...`` (systemd) -> ``0f6e2c3a-1b2d-...`` (the API's spelling)."""
    return uid.replace("_", "-")


@lru_cache(maxsize=8192)
def parse_cgroup(entry: str) -> PodCgroup | None:
    """The pod of one cgroup entry (a path, or ``controllers=path`` as libsinsp
    stores them); ``None`` when the path is not a pod's.

    Memoized (bounded): every clone and execve of a container's processes
    asks again about the same few paths, and the answer never changes."""
    path = entry
    if not entry.startswith("/"):  # "cpu,cpuacct=/..." (libsinsp), "4:cpu:/..." or "0::/..." (/proc/PID/cgroup)
        path = entry.partition("=")[2] if "=" in entry else entry.split(":", 2)[-1]
    if "kubepods" not in path:
        return None
    parts = [p for p in path.split("/") if p]
    for i, part in enumerate(parts):
        m = _POD_COMPONENT.match(part)
        if m is None:
            continue
        # The pod cgroup must be under a kubepods hierarchy (and not, say, a user's directory named pod<hex>).
        if not any("kubepods" in p for p in parts[: i + 1]):
            continue
        container = ""
        if i + 1 < len(parts):
            c = _CONTAINER_COMPONENT.match(parts[i + 1])
            if c is not None and (c.group("runtime") or "") not in _NOT_CONTAINERS:
                container = c.group("id")
        return PodCgroup(normalize_uid(m.group("uid")), container)
    return None


def pod_of_cgroups(entries: Iterable[str]) -> PodCgroup | None:
    """The pod of a thread from all its cgroup entries: the first that names
    a pod, preferring one that also names the container."""
    found: PodCgroup | None = None
    for entry in entries:
        pod = parse_cgroup(entry)
        if pod is not None:
            if pod.container_id:
                return pod
            found = found or pod
    return found
