"""Benchmark: sriov discovery over fake sysfs trees of 64, 256 and 1024 VFs, against a same-run floor.

Run: ``.venv/bin/python benchmarks/bench_sriov.py [--vfs 64,256,1024] [--repeat 7]``.

Each tree (in a temporary directory, the real layout of ``tests/sriov/sriov_fakes.py``) has
PFs with 64 VFs each; every other VF is bound to vfio-pci (its own IOMMU group), the rest to
the kernel VF driver. Rows (median of ``--repeat`` runs, milliseconds):

* floor ``walk``: list ``bus/pci/devices`` and, per function, read ``class`` and the
  ``driver`` link: the least any discovery of userspace-bound NICs has to read;
* ``fingerprint``: :func:`dranet_backends.sriov.sysfs.fingerprint`, what one ``watch`` poll
  and a scan of an unchanged tree read;
* ``facts``: :func:`dranet_backends.sriov.sysfs.userspace_functions` (the sysfs part);
* ``scan cold``: a fresh backend's ``scan()`` (facts in a worker thread + building the
  Devices with their attributes and facets);
* ``scan warm``: a second ``scan()`` of the unchanged tree (fingerprint only, Devices reused);
* ``device_nodes``: per call, the nodes of one vfio device (real ``stat`` of real char
  nodes when the process may ``mknod``, else the stat seam), in microseconds;
* ``vf mtu check``: per call, ``validate_config`` of a kernel VF with an MTU (reads the PF's
  MTU from sysfs), in microseconds;
* ``pf-side round trip``: per VF, ``snapshot`` + ``attach`` + ``detach`` of a claim setting
  all six PF-side settings (13 rtnetlink messages) against the fake kernel of
  ``tests/sriov/fake_pf.py``, in microseconds, against the floor ``pf exchange``: the same
  13 prebuilt messages sent through the same transport and worker-thread hop, with no
  codec, planning or rollback bookkeeping.

Targets (the process exits 1 when one is missed): fingerprint <= 6x its floor, warm scan
<= 12x, cold scan <= 60x, PF-side round trip <= 4x its floor. They are loose because the
machine is shared; a regression of the algorithm (a full read on every poll, a message per
VF) misses them by far.

The tree lives on the temporary directory's filesystem, not sysfs, so absolute numbers are
indicative; the ratio to the floor is the point.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import stat
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "sriov"))

from fake_pf import FakePfKernel
from sriov_fakes import FakeSysfs, can_mknod, make_char, sriov_node

from dranet_backends.pci import PciIds
from dranet_backends.sriov import SriovBackend
from dranet_backends.sriov.facet import SriovFacet
from dranet_backends.sriov.pfside import PfClient, steps
from dranet_backends.sriov.sysfs import fingerprint, userspace_functions
from dranet_backends.sriov.vfnl import VfState, get_request, set_request
from dranet_core.config.model import InterfaceConfig, NetworkConfig, SriovConfig
from dranet_core.plans import PreparedDevice
from dranet_core.types import Device, PodSandbox

VFS_PER_PF = 64
TARGETS = {"fingerprint": 6.0, "scan warm": 12.0, "scan cold": 60.0, "pf-side round trip": 4.0}
SRIOV = SriovConfig(
    mac="02:00:00:00:aa:01",
    vlan=100,
    vlan_qos=3,
    spoof_chk=False,
    trust=True,
    link_state="enable",
    max_tx_rate=1000,
)


def build(root: Path, vfs: int) -> FakeSysfs:
    fs = FakeSysfs(root)
    group = 100
    for p in range((vfs + VFS_PER_PF - 1) // VFS_PER_PF):
        pf = f"0000:{0x10 + p:02x}:00.0"
        fs.add(pf, driver="ixgbe", totalvfs=VFS_PER_PF, numvfs=VFS_PER_PF, netdev=f"eth{p}", group=group)
        group += 1
        for i in range(min(VFS_PER_PF, vfs - p * VFS_PER_PF)):
            bdf = f"0000:{0x10 + p:02x}:{1 + i // 8:02x}.{i % 8}"
            fs.add(bdf, driver="vfio-pci" if i % 2 == 0 else "ixgbevf", pf=pf, vf_index=i, group=group)
            group += 1
    return fs


def floor_walk(sysfs: Path) -> int:
    base = sysfs / "bus" / "pci" / "devices"
    n = 0
    for name in os.listdir(base):
        try:
            (base / name / "class").read_text()
            os.readlink(base / name / "driver")
        except OSError:
            continue
        n += 1
    return n


def timed(fn: Callable[[], object], repeat: int) -> float:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def per_call(fn: Callable[[], object], calls: int, repeat: int) -> float:
    def batch() -> None:
        for _ in range(calls):
            fn()

    return timed(batch, repeat) / calls


def _fake_stat(path: str) -> os.stat_result:
    return os.stat_result((stat.S_IFCHR | 0o600, 0, 0, 1, 0, 0, 0, 0, 0, 0), {"st_rdev": os.makedev(243, 1)})


def bench(vfs: int, repeat: int) -> list[tuple[str, float, str]]:
    with tempfile.TemporaryDirectory(prefix="dnt-sriov-bench-") as tmp:
        root = Path(tmp)
        fs = build(root / "sys", vfs)
        dev_root = root / "dev"
        dev_root.mkdir()
        real_nodes = can_mknod(root)
        if real_nodes:
            make_char(dev_root, "vfio/vfio", 10, 196)
        ids = PciIds(paths=())

        floor = timed(lambda: floor_walk(fs.root), repeat)
        facts = timed(lambda: userspace_functions(fs.root), repeat)
        poll = timed(lambda: fingerprint(fs.root), repeat)

        def cold() -> list[Device]:
            b = SriovBackend(sysfs=fs.root, dev_root=dev_root, pci_ids=ids)
            return list(asyncio.run(b.scan()))

        cold_t = timed(cold, repeat)
        warm_b = SriovBackend(sysfs=fs.root, dev_root=dev_root, pci_ids=ids)
        devices = asyncio.run(warm_b.scan())
        warm_t = timed(lambda: asyncio.run(warm_b.scan()), repeat)

        dev = devices[0]
        group = dev.facets["sriov"]["iommu_group"]
        if real_nodes:
            make_char(dev_root, f"vfio/{group}", 243, 1)
            nb = SriovBackend(sysfs=fs.root, dev_root=dev_root, pci_ids=ids)
        else:
            nb = SriovBackend(sysfs=fs.root, dev_root=dev_root, pci_ids=ids, stat_fn=_fake_stat)
        prepared = PreparedDevice(pool="n", device=dev.name, request_names=("r",), facets=dict(dev.facets))
        nodes_t = per_call(lambda: nb.device_nodes(prepared), 1000, repeat)

        # A kernel-bound VF as the driver's inventory holds it: the netdev backend's facet merged
        # with this backend's (the sriov validator is asked only for a device with its facet).
        vf_facet = SriovFacet(
            pci_address="0000:10:01.1", driver="ixgbevf", pf="0000:10:00.0", vf_index=1, pf_ifname="eth0"
        )
        kernel_vf = Device(
            name="pci-0000-10-01-1",
            attributes={"dra.net/pciAddress": "0000:10:01.1", "dra.net/isSriovVf": True},
            facets={"netdev": {"ifname": "eth9", "ifindex": 9}, "sriov": vf_facet.to_json()},
        )
        config = NetworkConfig(interface=InterfaceConfig(mtu=1400))
        mtu_t = per_call(lambda: nb.validate_config(kernel_vf, config), 1000, repeat)

    def ratio(t: float) -> str:
        return f"{t / floor:5.1f}x floor"

    for name, t in (("fingerprint", poll), ("scan warm", warm_t), ("scan cold", cold_t)):
        check(f"{name} ({vfs} VFs)", t / floor, TARGETS[name])
    return [
        (f"floor walk ({vfs + (vfs + VFS_PER_PF - 1) // VFS_PER_PF} functions)", floor * 1e3, "ms"),
        ("fingerprint (one watch poll)", poll * 1e3, "ms  " + ratio(poll)),
        (f"facts ({len(devices)} vfio VFs)", facts * 1e3, "ms  " + ratio(facts)),
        ("scan cold", cold_t * 1e3, "ms  " + ratio(cold_t)),
        ("scan warm", warm_t * 1e3, "ms  " + ratio(warm_t)),
        ("device_nodes" + (" (real stat)" if real_nodes else " (stat seam)"), nodes_t * 1e6, "us/call"),
        ("vf mtu check", mtu_t * 1e6, "us/call"),
    ]


MISSED: list[str] = []


def check(what: str, ratio: float, target: float) -> None:
    if ratio > target:
        MISSED.append(f"{what}: {ratio:.1f}x its floor, target <= {target}x")


def bench_pf_side(repeat: int, rounds: int = 200) -> list[tuple[str, float, str]]:
    """snapshot + attach + detach of one VF through the backend, against raw message exchange."""
    with tempfile.TemporaryDirectory(prefix="dnt-sriov-bench-") as tmp:
        fs = FakeSysfs(Path(tmp) / "sys")
        sriov_node(fs)  # VF 1 of PF eth1 is kernel-bound (eth2)
        kernel = FakePfKernel()
        kernel.add_pf("eth1", 2)
        b = SriovBackend(sysfs=fs.root, pci_ids=PciIds(paths=()), pf_client=PfClient(kernel), uevents=None)
        vf = next(d for d in asyncio.run(b.scan()) if d.facets["sriov"]["driver"] == "ixgbevf")
        dev = PreparedDevice(
            pool="n",
            device=vf.name,
            request_names=("r",),
            config=NetworkConfig(sriov=SRIOV),
            facets={**vf.facets, "netdev": {}},
        )
        pod = PodSandbox(uid="p", name="p", namespace="d", netns="/run/netns/x")
        todo = steps(SRIOV, VfState(vf=1))
        raw = [get_request(1, "eth1")]
        raw += [set_request(2 + i, "eth1", s.apply) for i, s in enumerate(todo)]
        raw += [set_request(20 + i, "eth1", s.restore) for i, s in enumerate(reversed(todo))]

        async def ours() -> None:
            for _ in range(rounds):
                snap = await b.snapshot(dev)
                await b.attach(dev, pod, snap)
                await b.detach(dev, pod, snap)

        async def floor_() -> None:
            for _ in range(rounds):
                for msg in raw:
                    await asyncio.to_thread(kernel.exchange, msg)

        ours_t = timed(lambda: asyncio.run(ours()), repeat) / rounds
        floor_t = timed(lambda: asyncio.run(floor_()), repeat) / rounds
    check("pf-side round trip", ours_t / floor_t, TARGETS["pf-side round trip"])
    return [
        (f"pf exchange floor ({len(raw)} messages)", floor_t * 1e6, "us/VF"),
        ("pf-side round trip", ours_t * 1e6, f"us/VF  {ours_t / floor_t:5.1f}x floor"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--vfs", default="64,256,1024")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print("bench_sriov.py: SR-IOV discovery and PF-side VF settings")
    for vfs in (int(x) for x in args.vfs.split(",")):
        print(f"\n== {vfs} VFs ({(vfs + 63) // 64} PFs), median of {args.repeat} ==")
        for label, value, unit in bench(vfs, args.repeat):
            print(f"  {label:<36} {value:10.2f} {unit}")
    print(f"\n== PF-side VF settings, median of {args.repeat} ==")
    for label, value, unit in bench_pf_side(args.repeat):
        print(f"  {label:<36} {value:10.2f} {unit}")
    if MISSED:
        print("\nMISSED TARGETS:\n  " + "\n  ".join(MISSED))
        raise SystemExit(1)
    print("\nall targets met")


if __name__ == "__main__":
    main()
