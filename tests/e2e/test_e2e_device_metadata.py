"""DRA device metadata (KEP-5304) on the real ``dranet run`` with ``--enable-device-metadata``.

What a kubelet, a runtime and a container see: the CDI device ID in the prepare reply (DRA
v1 and v1beta1), a CDI spec that is valid CDI 0.5.0 and bind-mounts the request's file at the
well-known path (direct and template claims), the file at generation 2 with the pod's network
data after RunPodSandbox (the same data as the claim status and as ``ip`` in the pod), read
inside a mount namespace through the project's reader; nothing left after unprepare; and
after a SIGKILL at each step and a restart, nothing stale and nothing missing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import json
import shutil
import subprocess
import sys
import tempfile
import types
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from e2e.harness import Claim, Cluster, Dev, Pod, global_addrs, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "metadata"))
from schemas import validate_cdi_spec, validate_metadata

from dranet_core.metadata import reader
from dranet_core.testing.kubelet import compile_kubelet_protos

pytestmark = [pytest.mark.netns, pytest.mark.socket, pytest.mark.slow]

CONFIG = {"interface": {"name": "net1", "addresses": ["192.168.79.2/24"]}}


def _flags(cluster: Cluster, *extra: str) -> tuple[str, ...]:
    return ("--enable-device-metadata", f"--cdi-dir={cluster.tmp / 'cdi'}", *extra)


def _metadata_dir(cluster: Cluster) -> Path:
    return cluster.driver.root / "plugins" / "dra.net" / "dra-device-metadata"


def _ours(cluster: Cluster) -> list[str]:
    """Every file the metadata feature owns: below its data dir and in the CDI dir."""
    out = []
    for root in (_metadata_dir(cluster), cluster.tmp / "cdi"):
        if root.exists():
            out += [str(p.relative_to(cluster.tmp)) for p in root.rglob("*") if p.is_file()]
    return sorted(out)


def _stream(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _spec_for(cluster: Cluster, cdi_id: str) -> dict[str, Any]:
    """The CDI spec file that defines ``cdi_id`` (the runtime's lookup), validated."""
    kind, _, name = cdi_id.partition("=")
    found = []
    for f in (cluster.tmp / "cdi").glob("*.json"):
        spec = json.loads(f.read_text())
        if spec["kind"] == kind and any(d["name"] == name for d in spec["devices"]):
            found.append(spec)
    assert len(found) == 1, f"{cdi_id}: {len(found)} specs define it"
    validate_cdi_spec(found[0])
    assert found[0]["cdiVersion"] == "0.5.0"
    return found[0]


def _mount(cluster: Cluster, cdi_id: str) -> dict[str, Any]:
    spec = _spec_for(cluster, cdi_id)
    (dev,) = [d for d in spec["devices"] if f"{spec['kind']}={d['name']}" == cdi_id]
    (mount,) = dev["containerEdits"]["mounts"]
    assert mount["options"] == ["ro", "bind"]
    return mount


def _set_pod_claim_name(cluster: Cluster, claim: Claim, pod_claim: str) -> None:
    obj = cluster.claim_object(claim)
    obj["metadata"].setdefault("annotations", {})["resource.kubernetes.io/pod-claim-name"] = pod_claim
    cluster.loop.call(cluster.api.put_object, obj)


def _in_container(mounts: list[dict[str, Any]], argv: list[str]) -> str:
    """Run ``argv`` the way a runtime runs a container with these CDI mounts: a private mount
    namespace with a fresh /var/run/kubernetes.io, each file bind-mounted read-only."""
    # a tmpfs over /var/run (the directory it resolves to) inside the private namespace, so
    # nothing is created on the host; the host files (below the test's /tmp) stay reachable
    script = ["set -e", 'mount -t tmpfs none "$(readlink -f /var/run)"']
    for m in mounts:
        target = m["containerPath"]
        script += [
            f"mkdir -p {Path(target).parent}",
            f"touch {target}",
            f"mount --bind {m['hostPath']} {target}",
            f"mount -o remount,bind,ro {target}",
        ]
    script.append(" ".join(argv))
    out = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(script)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr + out.stdout
    return out.stdout


@pytest.fixture(scope="module")
def v1beta1_pb() -> Iterator[types.SimpleNamespace]:
    """The kubelet's DRA v1beta1 messages and stub (grpc_tools, like the v1 ones)."""
    out = Path(tempfile.mkdtemp(prefix="dnt-e2e-pb-"))
    compile_kubelet_protos(out, ("kubelet/dra/v1beta1/api.proto",))
    sys.path.insert(0, str(out))
    try:
        yield types.SimpleNamespace(
            pb=importlib.import_module("kubelet.dra.v1beta1.api_pb2"),
            grpc=importlib.import_module("kubelet.dra.v1beta1.api_pb2_grpc"),
        )
    finally:
        sys.path.remove(str(out))
        shutil.rmtree(out, ignore_errors=True)


def _prepare_v1beta1(cluster: Cluster, pb: types.SimpleNamespace, claim: Claim) -> Any:
    with grpc.insecure_channel(f"unix://{cluster.kubelet.endpoint}") as ch:
        stub = pb.grpc.DRAPluginStub(ch)
        msg = pb.pb.Claim(namespace=claim.namespace, name=claim.name, uid=claim.uid)
        return stub.NodePrepareResources(pb.pb.NodePrepareResourcesRequest(claims=[msg]), timeout=60).claims[
            claim.uid
        ]


def _submit(cluster: Cluster, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
    """Start ``coro`` on the harness loop without waiting for it (a call the crash interrupts)."""
    return asyncio.run_coroutine_threadsafe(coro, cluster.loop.loop)


def _settle(fut: concurrent.futures.Future[Any]) -> None:
    """Wait for an interrupted call to end, however it ends."""
    concurrent.futures.wait([fut], timeout=60)


def _cdi_ids(reply: Any) -> dict[str, list[str]]:
    assert reply.error == "", reply.error
    return {d.device_name: list(d.cdi_device_ids) for d in reply.devices}


def _check_network(
    cluster: Cluster, pod: Pod, claim: Claim, doc: dict[str, Any], device: str, *, status: bool = True
) -> None:
    """The file's networkData of ``device`` = the journal's (the one source) = the kernel in
    the pod, and with ``status`` also = the claim status in the API server."""
    (dev,) = [d for r in doc["requests"] for d in r["devices"] if d["name"] == device]
    nd = dev["networkData"]
    journal = cluster.driver.journal()[device]["networkData"]
    assert nd == {k: v for k, v in journal.items() if v}
    if status:
        by_device = {d["device"]: d for d in cluster.wait_status(claim)}
        assert nd == by_device[device]["networkData"]
    inside = pod.link(nd["interfaceName"])
    assert inside is not None, cluster.log()
    assert nd.get("ips", []) == global_addrs(inside)
    assert nd["hardwareAddress"] == inside["address"]


def test_metadata_through_prepare_attach_and_unprepare(
    fresh_cluster: Cluster, v1beta1_pb: types.SimpleNamespace
) -> None:
    cluster = fresh_cluster
    cluster.start(*_flags(cluster))
    a, b = cluster.node.veth(), cluster.node.veth()
    direct = cluster.claim([a, b], request_configs={"r0": CONFIG})
    templ = cluster.claim([cluster.node.veth()], config={"interface": {"name": "net2"}})
    _set_pod_claim_name(cluster, templ, "my-net")
    pod = cluster.new_pod([direct, templ])
    dev_a, dev_b = direct.devices

    # the prepare reply carries one CDI ID per request, on the request's first device
    ids = _cdi_ids(cluster.prepare(direct))
    assert ids == {
        dev_a: [f"dra.net/metadata={direct.uid}_r0"],
        dev_b: [f"dra.net/metadata={direct.uid}_r1"],
    }
    (templ_id,) = _cdi_ids(cluster.prepare(templ)).values()
    assert templ_id == [f"dra.net/metadata={templ.uid}_r0"]
    # v1beta1 kubelets get the same IDs (a repeated prepare is idempotent)
    assert _cdi_ids(_prepare_v1beta1(cluster, v1beta1_pb, direct)) == ids

    # each CDI spec is valid CDI 0.5.0 and mounts the request's file at the well-known path
    m0 = _mount(cluster, ids[dev_a][0])
    assert m0["containerPath"] == reader.container_path(direct.name, "r0")
    m1 = _mount(cluster, ids[dev_b][0])
    assert m1["containerPath"] == reader.container_path(direct.name, "r1")
    mt = _mount(cluster, templ_id[0])
    assert mt["containerPath"] == reader.container_path("my-net", "r0", template=True)
    before = _stream(Path(m0["hostPath"]))
    assert [o["apiVersion"] for o in before] == [
        "metadata.resource.k8s.io/v1beta1",
        "metadata.resource.k8s.io/v1alpha1",
    ]
    for o in before:
        validate_metadata(o)
    assert before[0]["metadata"]["generation"] == 1
    (dev_entry,) = before[0]["requests"][0]["devices"]
    assert (dev_entry["driver"], dev_entry["pool"], dev_entry["name"]) == ("dra.net", "node-a", dev_a)
    # the attributes are the ones the driver published for the device
    assert dev_entry["attributes"] == cluster.published(a.name)["attributes"]
    assert "networkData" not in dev_entry
    assert _stream(Path(mt["hostPath"]))[0]["podClaimName"] == "my-net"

    # RunPodSandbox: generation 2 with the network data of the device in the pod
    result = cluster.run_sandbox(pod)
    assert result.code == 0, f"{result}\n{cluster.log()}"
    after = _stream(Path(m0["hostPath"]))
    for o in after:
        validate_metadata(o)
        assert o["metadata"]["generation"] == 2
    assert after[0]["requests"][0]["devices"][0]["networkData"]["ips"] == ["192.168.79.2/24"]
    _check_network(cluster, pod, direct, after[0], dev_a)
    _check_network(cluster, pod, templ, _stream(Path(mt["hostPath"]))[0], templ.devices[0])

    # inside a "container" with the CDI mounts: the reader finds and parses both files
    script = Path(reader.__file__)
    printed = _in_container(
        [m0, mt],
        [
            f"{sys.executable} {script} {direct.name} r0 && {sys.executable} {script} my-net r0",
        ],
    )
    lines = printed.splitlines()
    assert lines[0].startswith(f"r0 {dev_a}: interface net1 ips 192.168.79.2/24 mac ")
    assert lines[1].startswith(f"r0 {templ.devices[0]}: interface net2 ")

    # Stop + Remove + unprepare: nothing of the feature remains
    cluster.delete_pod(pod)
    assert _ours(cluster) == [], cluster.log()
    cluster.assert_home(a)


def test_switch_off_writes_nothing_and_returns_no_cdi_id(fresh_cluster: Cluster) -> None:
    cluster = fresh_cluster
    cluster.start(f"--cdi-dir={cluster.tmp / 'cdi'}")
    claim = cluster.claim([cluster.node.veth()], config=CONFIG)
    pod = cluster.create_pod([claim])
    assert _cdi_ids(cluster.prepare(claim)) == {claim.devices[0]: []}
    assert _ours(cluster) == []
    assert not (cluster.tmp / "cdi").exists()
    cluster.delete_pod(pod)


def _started_with_claim(cluster: Cluster) -> tuple[Dev, Claim, Pod, Path, list[str]]:
    """Start with metadata on, one claim prepared for a new pod: (device, claim, pod, host
    file, the CDI IDs of the reply)."""
    cluster.start(*_flags(cluster))
    dev = cluster.node.veth()
    claim = cluster.claim([dev], config=CONFIG)
    pod = cluster.new_pod([claim])
    (cdi_id,) = _cdi_ids(cluster.prepare(claim)).values()
    return dev, claim, pod, Path(_mount(cluster, cdi_id[0])["hostPath"]), cdi_id


def _phase(cluster: Cluster, claim: Claim) -> str | None:
    phase: str | None = cluster.driver.journal().get(claim.devices[0], {}).get("phase")
    return phase


def test_sigkill_around_prepare_leaves_nothing_stale_and_nothing_missing(fresh_cluster: Cluster) -> None:
    cluster = fresh_cluster
    _, claim, _, host, cdi_id = _started_with_claim(cluster)
    md = _metadata_dir(cluster)
    mount = _mount(cluster, cdi_id[0])

    # killed after prepare: the restart keeps the files; a repeated prepare returns the ID
    cluster.restart(*_flags(cluster))
    assert _stream(host)[0]["metadata"]["generation"] == 1
    assert list(_cdi_ids(cluster.prepare(claim)).values()) == [cdi_id]

    # killed between the checkpoint write and the file writes (emulated: the files removed
    # while down), with stale files of claims the checkpoint does not hold and a temporary
    # file of an interrupted write: the restart removes the stale ones, the kubelet's retry
    # writes the missing ones
    cluster.crash()
    spec_file = next((cluster.tmp / "cdi").glob("*.json"))
    stale_spec = spec_file.with_name(
        spec_file.name.replace(claim.uid, "00000000-0000-4000-8000-000000000000")
    )
    shutil.copy(spec_file, stale_spec)
    stale_dir = md / "default_gone" / "r0"
    stale_dir.mkdir(parents=True)
    (stale_dir / "metadata.json").write_bytes(host.read_bytes().replace(claim.uid.encode(), b"deadbeef"))
    (host.parent / ".metadata.json.abc.tmp").write_text("{")
    host.unlink()
    spec_file.unlink()
    cluster.start(*_flags(cluster))
    assert not stale_spec.exists()
    assert not (md / "default_gone").exists()
    assert not (host.parent / ".metadata.json.abc.tmp").exists()
    assert list(_cdi_ids(cluster.prepare(claim)).values()) == [cdi_id]
    assert _stream(host)[0]["metadata"]["generation"] == 1
    assert _mount(cluster, cdi_id[0]) == mount

    # unprepare, killed, restarted: nothing remains
    assert cluster.unprepare(claim).error == ""
    assert _ours(cluster) == [], cluster.log()
    cluster.restart(*_flags(cluster))
    assert _ours(cluster) == []


def test_sigkill_around_attach_and_detach_leaves_nothing_stale_and_nothing_missing(
    fresh_cluster: Cluster,
) -> None:
    cluster = fresh_cluster
    dev, claim, pod, host, _ = _started_with_claim(cluster)
    gen1 = host.read_bytes()

    # killed in the middle of RunPodSandbox (journal: attaching); the pod runs on: the
    # restart finishes the attach and the file gets the pod's network data
    cluster.restart(*_flags(cluster, "--debug-hold-after=attaching:60s"))
    pending = _submit(cluster, cluster.session.run_pod_sandbox(pod.sandbox))
    wait_for("attaching", lambda: _phase(cluster, claim) == "attaching", log=cluster.log)
    cluster.crash()
    _settle(pending)
    cluster.runtime.sync_pods = [pod.sandbox]
    cluster.start(*_flags(cluster))
    doc = wait_for(
        "networkData in the file",
        lambda: (lambda d: d if "networkData" in d["requests"][0]["devices"][0] else None)(_stream(host)[0]),
        log=cluster.log,
    )
    assert doc["metadata"]["generation"] == 2
    _check_network(cluster, pod, claim, doc, claim.devices[0], status=False)

    # killed after the journal said attached, before the file was rewritten (emulated: the
    # generation-1 file put back while down): the restart brings it in line
    cluster.crash()
    host.write_bytes(gen1)
    cluster.start(*_flags(cluster))
    fixed = _stream(host)[0]
    assert fixed["metadata"]["generation"] == 2
    _check_network(cluster, pod, claim, fixed, claim.devices[0], status=False)

    # killed in the middle of StopPodSandbox; the pod is gone at restart: the device comes
    # home and the file no longer claims a network in the pod
    cluster.restart(*_flags(cluster, "--debug-hold-after=detaching:60s"))
    pending = _submit(cluster, cluster.session.stop_pod_sandbox(pod.sandbox))
    wait_for("detaching", lambda: _phase(cluster, claim) == "detaching", log=cluster.log)
    cluster.crash()
    _settle(pending)
    cluster.runtime.sync_pods = []
    cluster.start(*_flags(cluster))
    wait_for("home", lambda: _phase(cluster, claim) == "prepared", log=cluster.log)
    home = wait_for(
        "networkData dropped",
        lambda: (lambda d: d if "networkData" not in d["requests"][0]["devices"][0] else None)(
            _stream(host)[0]
        ),
        log=cluster.log,
    )
    assert home["metadata"]["generation"] == 3
    cluster.assert_home(dev)

    # unprepare: nothing remains, also after another restart
    assert cluster.unprepare(claim).error == ""
    assert _ours(cluster) == [], cluster.log()
    cluster.restart(*_flags(cluster))
    assert _ours(cluster) == []
    cluster.live_pods.clear()
    cluster.node.drop_netns(pod.netns)


def _published_by_pci(cluster: Cluster, address: str) -> dict[str, Any] | None:
    for s in cluster.loop.call(cluster.api.list_objects, "resourceslices"):
        for d in s.get("spec", {}).get("devices", []):
            if d.get("attributes", {}).get("dra.net/pciAddress", {}).get("string") == address:
                found: dict[str, Any] = d
                return found
    return None


def test_vfio_vf_carries_pci_bus_id_into_slice_and_metadata(fresh_cluster: Cluster) -> None:
    """KubeVirt's case: an SR-IOV VF bound to vfio-pci (a fake sysfs tree with the kernel's
    layout) is published with resource.kubernetes.io/pciBusID, and its metadata file has it."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sriov"))
    from sriov_fakes import FakeSysfs, sriov_node

    cluster = fresh_cluster
    fs = FakeSysfs(cluster.tmp / "sys")
    sriov_node(fs)
    cluster.start(*_flags(cluster, "--backends=sriov", f"--sysfs-root={fs.root}"))
    dev = wait_for("the VF in a slice", lambda: _published_by_pci(cluster, "0000:00:03.1"), log=cluster.log)
    assert dev["attributes"]["resource.kubernetes.io/pciBusID"] == {"string": "0000:00:03.1"}
    claim = cluster.claim([dev["name"]])
    cluster.new_pod([claim])
    (cdi_id,) = _cdi_ids(cluster.prepare(claim)).values()
    doc = _stream(Path(_mount(cluster, cdi_id[0])["hostPath"]))[0]
    validate_metadata(doc)
    attrs = doc["requests"][0]["devices"][0]["attributes"]
    assert attrs["resource.kubernetes.io/pciBusID"] == {"string": "0000:00:03.1"}
    assert attrs == dev["attributes"]
    assert cluster.unprepare(claim).error == ""
    assert _ours(cluster) == []
