"""The plugin's modules on their own: cgroup parsing, the pod model, the configuration, backoff."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from falco_plugin import ConfigError
from k8s_parse.cgroups import PodCgroup, parse_cgroup, pod_of_cgroups
from k8s_parse.config import K8sParseConfig, resolve
from k8s_parse.pods import KEEP_ALL, KeyFilter, Pod, PodError, decode_change, encode_change
from k8s_parse.watcher import backoff_delay
from k8sparse_kit import container_id, pod_object

UID = "0f6e2c3a-1b2d-4c5e-8f90-123456789abc"
UND = UID.replace("-", "_")
CID = "3f1c0e5e8a9b4d2c7f6e5d4c3b2a19081726354453627180a9b8c7d6e5f40312"
STATIC = "8f1d4b0c2e3a4f5b6c7d8e9fa0b1c2d3"


# -- cgroups -----------------------------------------------------------------------------------

LAYOUTS = {
    # cgroupfs driver, cgroup v1 (one entry per controller, as libsinsp stores them)
    "cgroupfs v1 burstable": f"cpu,cpuacct=/kubepods/burstable/pod{UID}/{CID}",
    "cgroupfs v1 besteffort": f"memory=/kubepods/besteffort/pod{UID}/{CID}",
    "cgroupfs v1 guaranteed": f"pids=/kubepods/pod{UID}/{CID}",
    # cgroupfs driver, cgroup v2 (one unified hierarchy)
    "cgroupfs v2 burstable": f"=/kubepods/burstable/pod{UID}/{CID}",
    "cgroupfs v2 /proc format": f"0::/kubepods/besteffort/pod{UID}/{CID}",
    # systemd driver, v1 and v2, every runtime's scope name
    "systemd v1 containerd": (
        f"cpu=/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UND}.slice/cri-containerd-{CID}.scope"
    ),
    "systemd v2 crio": (
        f"=/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UND}.slice/crio-{CID}.scope"
    ),
    "systemd v2 guaranteed docker": f"=/kubepods.slice/kubepods-pod{UND}.slice/docker-{CID}.scope",
    "systemd /proc v1 format": f"4:memory:/kubepods.slice/kubepods-pod{UND}.slice/cri-containerd-{CID}.scope",
    # nested: kind, or a kubelet in a container
    "kind systemd": (
        f"=/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/"
        f"kubelet-kubepods-burstable-pod{UND}.slice/cri-containerd-{CID}.scope"
    ),
    "kubelet in docker": f"cpu=/docker/{'a' * 64}/kubepods/burstable/pod{UID}/{CID}",
}


@pytest.mark.parametrize("entry", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_every_kubelet_layout_gives_the_pod_uid_with_dashes_and_the_container(entry: str) -> None:
    assert parse_cgroup(entry) == PodCgroup(UID, CID)


def test_the_pod_cgroup_itself_gives_the_pod_without_a_container() -> None:
    assert parse_cgroup(f"=/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UND}.slice") == PodCgroup(
        UID
    )
    assert parse_cgroup(f"cpu=/kubepods/pod{UID}") == PodCgroup(UID)


def test_crio_conmon_is_in_the_pod_but_is_no_container() -> None:
    entry = f"=/kubepods.slice/kubepods-pod{UND}.slice/crio-conmon-{CID}.scope"
    assert parse_cgroup(entry) == PodCgroup(UID, "")


def test_a_static_pod_hash_is_a_pod_uid() -> None:
    assert parse_cgroup(f"=/kubepods/burstable/pod{STATIC}/{CID}") == PodCgroup(STATIC, CID)


@pytest.mark.parametrize(
    "entry",
    [
        "=/",
        "cpu=/user.slice/user-1000.slice/session-2.scope",
        f"=/system.slice/docker-{CID}.scope",
        f"cpu=/docker/{CID}",
        f"=/home/pod{UID}/{CID}",  # a pod-like name outside any kubepods hierarchy
        "=/kubepods/burstable",  # the QoS level, no pod
        f"=/kubepods/burstable/pod{UID[:-1]}/{CID}",  # one digit short
        "",
    ],
)
def test_processes_outside_pods_have_none(entry: str) -> None:
    assert parse_cgroup(entry) is None


def test_of_all_entries_one_naming_the_container_wins() -> None:
    entries = [
        "cpuset=/",
        f"cpu=/kubepods/burstable/pod{UID}",
        f"memory=/kubepods/burstable/pod{UID}/{CID}",
    ]
    assert pod_of_cgroups(entries) == PodCgroup(UID, CID)
    assert pod_of_cgroups(entries[:2]) == PodCgroup(UID)
    assert pod_of_cgroups(["cpu=/", "memory=/user.slice"]) is None
    assert pod_of_cgroups([]) is None


# -- the pod model -------------------------------------------------------------------------------


def test_a_pod_keeps_what_the_fields_show() -> None:
    obj = pod_object(
        "web-1",
        "shop",
        uid=UID,
        labels={"app": "web", "team": "a", "pod-template-hash": "5d9c"},
        annotations={"note": "x", "kubernetes.io/config.mirror": STATIC},
        containers={"nginx": CID, "sidecar": container_id(7)},
    )
    obj["metadata"]["ownerReferences"].insert(0, {"kind": "Other", "name": "not-the-controller"})
    pod = Pod.from_api(obj, KeyFilter(("app", "te*")), KeyFilter(("note",)))
    assert (pod.uid, pod.name, pod.namespace, pod.node, pod.phase) == (UID, "web-1", "shop", "node-1", "Running")
    assert pod.labels == {"app": "web", "team": "a"}
    assert pod.annotations == {"note": "x"}
    assert (pod.owner_kind, pod.owner_name) == ("ReplicaSet", "web-5d9c")
    assert pod.ip == "10.0.0.5" and pod.mirror_uid == STATIC
    assert pod.container_name(CID) == "nginx"
    assert pod.container_name(CID[:12]) == "nginx"  # docker's short ids
    assert pod.container_name(container_id(7)) == "sidecar"
    assert pod.container_name("abc") is None and pod.container_name("f" * 64) is None
    assert Pod.from_json(json.loads(json.dumps(pod.to_json()))) == pod


def test_a_pending_pod_has_no_ip_and_no_container_ids() -> None:
    obj = pod_object("new", owner=None)
    obj["status"] = {"phase": "Pending"}
    pod = Pod.from_api(obj)
    assert pod.ips == () and pod.ip == "" and pod.containers == () and pod.owner_kind == ""


@pytest.mark.parametrize(
    "obj",
    [[], {"metadata": {"name": "x"}}, {"metadata": {"uid": "u"}}, {"metadata": {"uid": 3, "name": "x"}}],
)
def test_a_pod_without_uid_or_name_is_refused(obj: object) -> None:
    with pytest.raises(PodError):
        Pod.from_api(obj)  # type: ignore[arg-type]


def test_changes_round_trip_and_bad_payloads_say_why() -> None:
    pod = Pod.from_api(pod_object("a", uid=UID), KEEP_ALL)
    assert decode_change(encode_change("deleted", pod)).pod == pod
    for payload, message in [
        (b"{", "not JSON"),
        (b'{"action": "exploded", "pod": {}}', "action must be one of"),
        (b'{"action": "added", "pod": {"uid": "", "name": "x"}}', "uid must be a non-empty string"),
        (b'{"action": "added", "pod": {"uid": "u", "name": "x", "labels": {"a": 1}}}', "labels must map"),
        (b'{"action": "added", "pod": {"uid": "u", "name": "x", "containers": [3]}}', "pod"),
        (b'{"action": "added", "pod": []}', "expected an object"),
    ]:
        with pytest.raises(PodError, match=message):
            decode_change(payload)


# -- configuration and backoff ---------------------------------------------------------------


def test_in_cluster_defaults_come_from_the_environment_and_the_service_account(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t0k\n")
    (tmp_path / "ca.crt").write_text("pem")
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "6443"}
    s = resolve(K8sParseConfig.parse(""), env, tmp_path)
    assert (s.api_server, s.token_file, s.ca_bundle) == (
        "https://10.96.0.1:6443",
        str(tmp_path / "token"),
        str(tmp_path / "ca.crt"),
    )
    assert resolve(K8sParseConfig.parse(""), {"KUBERNETES_SERVICE_HOST": "fd00::1"}, tmp_path).api_server == (
        "https://[fd00::1]:443"
    )
    nothing = resolve(K8sParseConfig.parse(""), {}, tmp_path / "absent")
    assert (nothing.api_server, nothing.token_file, nothing.ca_bundle) == ("", "", "")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"api_server": "ftp://x"}, "api_server: expected an http"),
        ({"api_server": "https://"}, "api_server: expected an http"),
        ({"api_server": "https://h:99999"}, "api_server: Port out of range"),
        ({"api_server": "https://h/?x=1"}, "without query"),
        ({"token_file": "/nonexistent/token"}, "token_file: /nonexistent/token is not a readable file"),
        ({"ca_bundle": "/nonexistent/ca.pem"}, "ca_bundle: /nonexistent/ca.pem is not a readable file"),
        ({"backoff_initial": 5, "backoff_max": 1}, "backoff_max: must be >= backoff_initial"),
    ],
)
def test_bad_configuration_is_a_clear_error(config: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve(K8sParseConfig.parse(json.dumps(config)), {})


def test_the_schema_rejects_what_the_types_forbid() -> None:
    with pytest.raises(ConfigError, match="verbosity"):
        K8sParseConfig.parse('{"verbosity": "loud"}')
    with pytest.raises(ConfigError, match="resync_period"):
        K8sParseConfig.parse('{"resync_period": -1}')


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    lo, hi = (lambda: 0.0), (lambda: 1.0)
    assert [backoff_delay(n, 0.5, 4.0, hi) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert [backoff_delay(n, 0.5, 4.0, lo) for n in range(1, 5)] == [0.25, 0.5, 1.0, 2.0]
    assert backoff_delay(10_000, 0.5, 30.0, hi) == 30.0  # no overflow on a very long outage
