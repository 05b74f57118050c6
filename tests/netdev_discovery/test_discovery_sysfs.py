"""PCI, SR-IOV, NUMA and pci.ids attributes from fake sysfs trees (real layout, in tmp_path).

The netdevs themselves are real veths in a throwaway namespace (``dnt-disc-<random>``);
the fake tree says which PCI function each one sits on.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path

import pytest

from dranet_backends.netdev import NetdevBackend
from dranet_backends.netdev.sysfs import netdev_sysfs
from dranet_backends.pci import PciIds, pci_function
from dranet_core.types import AttributeList, Device

ScanWith = Callable[..., Awaitable[dict[str, Device]]]

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CAP_NET_ADMIN) for network namespaces")

PCI_IDS = """\
# a tiny pci.ids in the real format
15b3  Mellanox Technologies
\t101b  MT28908 Family [ConnectX-6]
\t\t15b3 0006  ConnectX-6 VPI adapter card
\t101c  MT28908 Family [ConnectX-6 Virtual Function]
8086  Intel Corporation
\t1572  Ethernet Controller X710 for 10GbE SFP+
C 02  Network controller
\t00  Ethernet controller
"""


class FakeSysfs:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "devices" / "virtual" / "net").mkdir(parents=True)
        (root / "class" / "net").mkdir(parents=True)
        (root / "bus" / "pci" / "devices").mkdir(parents=True)

    def pci(
        self,
        bdf: str,
        *,
        vendor: str = "0x15b3",
        device: str = "0x101b",
        subsystem: tuple[str, str] = ("0x15b3", "0x0006"),
        pci_class: str = "0x020000",
        numa: str = "1",
        driver: str | None = "mlx5_core",
        bus_root: str = "pci0000:3a",
        totalvfs: int | None = None,
        numvfs: int | None = None,
        physfn: str | None = None,
    ) -> Path:
        d = self.root / "devices" / bus_root / bdf
        d.mkdir(parents=True)
        for name, value in (
            ("vendor", vendor),
            ("device", device),
            ("subsystem_vendor", subsystem[0]),
            ("subsystem_device", subsystem[1]),
            ("class", pci_class),
            ("numa_node", numa),
        ):
            (d / name).write_text(value + "\n")
        if totalvfs is not None:
            (d / "sriov_totalvfs").write_text(f"{totalvfs}\n")
            (d / "sriov_numvfs").write_text(f"{numvfs or 0}\n")
        if physfn is not None:
            (d / "physfn").symlink_to(f"../{physfn}")
        if driver is not None:
            drv = self.root / "bus" / "pci" / "drivers" / driver
            drv.mkdir(parents=True, exist_ok=True)
            (d / "driver").symlink_to(os.path.relpath(drv, d))
        (self.root / "bus" / "pci" / "devices" / bdf).symlink_to(
            os.path.relpath(d, self.root / "bus" / "pci" / "devices")
        )
        return d

    def netdev(self, pci_dir: Path, ifname: str, ifindex: int | None = None) -> None:
        nd = pci_dir / "net" / ifname
        nd.mkdir(parents=True)
        (nd / "device").symlink_to("../../")
        if ifindex is not None:
            (nd / "ifindex").write_text(f"{ifindex}\n")
        (self.root / "class" / "net" / ifname).symlink_to(os.path.relpath(nd, self.root / "class" / "net"))

    def virtual(self, ifname: str) -> None:
        nd = self.root / "devices" / "virtual" / "net" / ifname
        nd.mkdir(parents=True)
        (self.root / "class" / "net" / ifname).symlink_to(os.path.relpath(nd, self.root / "class" / "net"))


@pytest.fixture
def fake(tmp_path: Path) -> FakeSysfs:
    return FakeSysfs(tmp_path / "sys")


@pytest.fixture
def pci_ids(tmp_path: Path) -> PciIds:
    p = tmp_path / "pci.ids"
    p.write_text(PCI_IDS)
    return PciIds([tmp_path / "missing.ids", p])


def sh(*args: str, check: bool = True) -> str:
    res = subprocess.run(args, capture_output=True, text=True, check=False)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed: {res.stderr.strip()}")
    return res.stdout


@pytest.fixture
def ns() -> Iterator[str]:
    name = f"dnt-disc-{secrets.token_hex(4)}"
    sh("ip", "netns", "add", name)
    try:
        yield name
    finally:
        sh("ip", "netns", "del", name, check=False)


def ifindex(ns: str, ifname: str) -> int:
    out = sh("ip", "-n", ns, "-o", "link", "show", ifname)
    return int(out.split(":", 1)[0])


@pytest.fixture
async def scan_with(ns: str) -> AsyncIterator[ScanWith]:
    made: list[NetdevBackend] = []

    async def _scan(sysfs: Path, ids: PciIds | None = None) -> dict[str, Device]:
        b = NetdevBackend(sysfs=sysfs, netns=f"/run/netns/{ns}", pci_ids=ids or PciIds([]))
        made.append(b)
        return {d.name: d for d in await b.scan()}

    yield _scan
    for b in made:
        b.close()


def veth(ns: str, a: str, b: str) -> None:
    sh("ip", "-n", ns, "link", "add", a, "type", "veth", "peer", "name", b)


@pytest.mark.netns
@root_only
async def test_pci_pf_attributes_with_pci_ids(
    ns: str, fake: FakeSysfs, pci_ids: PciIds, scan_with: ScanWith
) -> None:
    veth(ns, "dpf0", "dpf0p")
    pf = fake.pci("0000:3b:00.0", totalvfs=8, numvfs=2)
    fake.netdev(pf, "dpf0", ifindex(ns, "dpf0"))
    fake.virtual("dpf0p")
    devs = await scan_with(fake.root, pci_ids)
    d = devs["pci-0000-3b-00-0"]
    a = d.attributes
    assert a["dra.net/ifName"] == "dpf0"
    assert a["dra.net/pciAddress"] == "0000:3b:00.0"
    assert a["dra.net/pciVendor"] == "Mellanox Technologies"
    assert a["dra.net/pciDevice"] == "MT28908 Family [ConnectX-6]"
    # the subsystem id, not pci.ids' name for it, as the Go driver publishes it
    assert a["dra.net/pciSubsystem"] == "0006"
    assert a["dra.net/numaNode"] == 1
    assert a["resource.kubernetes.io/numaNode"] == AttributeList((1,))  # no distance table: the node alone
    assert a["resource.kubernetes.io/pcieRoot"] == "pci0000:3a"
    assert a["dra.net/virtual"] is False
    assert a["dra.net/sriov"] is True
    assert a["dra.net/sriovVfs"] == 2
    assert "dra.net/isSriovVf" not in a
    assert d.facets["netdev"]["pci_address"] == "0000:3b:00.0"
    assert d.facets["netdev"]["virtual"] is False
    # the peer is virtual in sysfs and named by interface name
    assert devs["dpf0p"].attributes["dra.net/virtual"] is True
    assert "dra.net/pciAddress" not in devs["dpf0p"].attributes


@pytest.mark.netns
@root_only
async def test_vf_and_hex_ids_without_pci_ids(ns: str, fake: FakeSysfs, scan_with: ScanWith) -> None:
    veth(ns, "dvf0", "dvf0p")
    fake.pci("0000:3b:00.0", totalvfs=8, numvfs=1)
    vf = fake.pci(
        "0000:3b:00.2", device="0x101c", subsystem=("0x15b3", "0x0009"), numa="-1", physfn="0000:3b:00.0"
    )
    fake.netdev(vf, "dvf0", ifindex(ns, "dvf0"))
    devs = await scan_with(fake.root)
    a = devs["pci-0000-3b-00-2"].attributes
    assert a["dra.net/isSriovVf"] is True
    assert a["dra.net/sriov"] is False and "dra.net/sriovVfs" not in a
    assert a["dra.net/pciVendor"] == "15b3"
    assert a["dra.net/pciDevice"] == "101c"
    assert a["dra.net/pciSubsystem"] == "0009"
    assert "dra.net/numaNode" not in a and "resource.kubernetes.io/numaNode" not in a  # numa_node -1
    # the PF has no netdev here: published from sysfs with its PCI identity only
    pf = devs["pci-0000-3b-00-0"].attributes
    assert pf["dra.net/pciAddress"] == "0000:3b:00.0" and "dra.net/ifName" not in pf


@pytest.mark.netns
@root_only
async def test_pci_identity_survives_netdev_leaving(
    ns: str, fake: FakeSysfs, pci_ids: PciIds, scan_with: ScanWith
) -> None:
    veth(ns, "dmv0", "dmv0p")
    nic = fake.pci("0000:5e:00.0")
    fake.netdev(nic, "dmv0", ifindex(ns, "dmv0"))
    before = await scan_with(fake.root, pci_ids)
    assert before["pci-0000-5e-00-0"].attributes["dra.net/ifName"] == "dmv0"
    sh("ip", "-n", ns, "link", "del", "dmv0")  # as if moved into a pod
    after = await scan_with(fake.root, pci_ids)
    a = after["pci-0000-5e-00-0"].attributes
    assert "dra.net/ifName" not in a
    assert a["dra.net/pciVendor"] == "Mellanox Technologies"
    assert "netdev" not in after["pci-0000-5e-00-0"].facets


@pytest.mark.netns
@root_only
async def test_userspace_and_unbound_nics_excluded(ns: str, fake: FakeSysfs, scan_with: ScanWith) -> None:
    fake.pci("0000:60:00.0", driver="vfio-pci")
    fake.pci("0000:60:00.1", driver="igb_uio")
    fake.pci("0000:60:00.2", driver=None)
    fake.pci("0000:60:00.3", driver="ixgbe", vendor="0x8086", device="0x1572")
    fake.pci("0000:60:00.4", driver="nvme", pci_class="0x010802")  # not a network controller
    devs = await scan_with(fake.root)
    pci = {n for n in devs if n.startswith("pci-")}
    assert pci == {"pci-0000-60-00-3"}


@pytest.mark.netns
@root_only
async def test_uplink_pci_nic_not_published(ns: str, fake: FakeSysfs, scan_with: ScanWith) -> None:
    veth(ns, "dup0", "dup0p")
    nic = fake.pci("0000:70:00.0")
    fake.netdev(nic, "dup0", ifindex(ns, "dup0"))
    for args in (
        ("link", "set", "dup0", "up"),
        ("link", "set", "dup0p", "up"),
        ("addr", "add", "10.5.0.1/24", "dev", "dup0"),
        ("route", "add", "default", "via", "10.5.0.254", "dev", "dup0"),
    ):
        sh("ip", "-n", ns, *args)
    devs = await scan_with(fake.root)
    assert "pci-0000-70-00-0" not in devs


@pytest.mark.netns
@root_only
async def test_namesake_in_another_netns_is_ignored(ns: str, fake: FakeSysfs, scan_with: ScanWith) -> None:
    veth(ns, "dns0", "dns0p")
    nic = fake.pci("0000:71:00.0")
    fake.netdev(nic, "dns0", ifindex(ns, "dns0") + 1000)  # sysfs shows another dns0
    devs = await scan_with(fake.root)
    assert devs["dns0"].attributes["dra.net/virtual"] is True
    assert "dra.net/ifName" not in devs["pci-0000-71-00-0"].attributes


def test_netdev_sysfs_absent_and_virtual(fake: FakeSysfs) -> None:
    fake.virtual("v0")
    assert netdev_sysfs(fake.root, "nope").present is False
    assert netdev_sysfs(fake.root, "nope").virtual is True
    v = netdev_sysfs(fake.root, "v0")
    assert v.present and v.virtual and v.pci_address is None
    assert netdev_sysfs(fake.root, "../etc").present is False


def test_pci_function_facts(fake: FakeSysfs) -> None:
    fake.pci("0000:3b:00.0", numa="0")
    fn = pci_function(fake.root, "0000:3b:00.0")
    assert (fn.vendor, fn.device, fn.subsystem_vendor, fn.subsystem_device) == (
        "15b3",
        "101b",
        "15b3",
        "0006",
    )
    assert fn.numa_node == 0 and fn.pcie_root == "pci0000:3a" and fn.driver == "mlx5_core"
    missing = pci_function(fake.root, "0000:99:00.0")
    assert missing.vendor is None and missing.pcie_root is None


def test_pci_ids_parser(tmp_path: Path) -> None:
    p = tmp_path / "pci.ids"
    p.write_text(PCI_IDS)
    ids = PciIds([p])
    assert ids.vendor("15B3") == "Mellanox Technologies"
    assert ids.device("15b3", "101c") == "MT28908 Family [ConnectX-6 Virtual Function]"
    assert ids.device("8086", "1572") == "Ethernet Controller X710 for 10GbE SFP+"
    assert ids.vendor("02") is None  # the class section is not read as vendors
    assert ids.source == p


def test_pci_ids_vendor_blocks(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A vendor on the first line, comments and blank lines inside a block, subsystem lines,
    upper-case ids, and a vendor id that only the class section has."""
    p = tmp_path / "pci.ids"
    p.write_text(
        "1af4  Red Hat, Inc.\n\t1000  Virtio network device\n# a comment\n\n\t1041  Virtio 1.0 network\n"
        "\t\t1af4 1100  QEMU Virtual Machine\n10EC  Realtek\n\t8139  RTL-8100\n"
        "C 0200  Not a vendor\n\t0001  Not a device\n"
    )
    ids = PciIds([p])
    with caplog.at_level("INFO", logger="dranet_backends.pci"):
        assert ids.vendor("1AF4") == "Red Hat, Inc."
    assert [r.getMessage() for r in caplog.records] == [f"pci.ids: 2 vendors from {p}"]
    assert ids.device("1af4", "1000") == "Virtio network device"
    assert ids.device("1af4", "1041") == "Virtio 1.0 network"  # past a comment and a blank line
    assert ids.device("1af4", "1100") is None  # a subsystem id is not a device
    assert ids.vendor("10ec") == "Realtek" and ids.device("10ec", "8139") == "RTL-8100"
    assert ids.vendor("0200") is None and ids.device("0200", "0001") is None
    assert ids.vendor("ffff") is None


def test_pci_ids_load_reads_the_named_vendors_at_once(tmp_path: Path) -> None:
    """Discovery names its functions' vendors when it loads: their lookups need no more
    reads; a vendor asked for later is read then."""
    p = tmp_path / "pci.ids"
    p.write_text(PCI_IDS)
    ids = PciIds([p])
    ids.load({"15B3"})
    p.write_text("15b3  Renamed\n8086  Intel, read later\n")
    assert ids.vendor("15b3") == "Mellanox Technologies"  # from the first read
    assert ids.device("15b3", "101b") == "MT28908 Family [ConnectX-6]"
    assert ids.vendor("8086") == "Intel, read later"
    p.unlink()
    assert ids.vendor("1af4") is None and ids.source == p


def test_pci_ids_gzip_and_missing(tmp_path: Path) -> None:
    import gzip

    gz = tmp_path / "pci.ids.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write(PCI_IDS)
    assert PciIds([gz]).vendor("8086") == "Intel Corporation"
    none = PciIds([tmp_path / "absent"])
    assert none.vendor("8086") is None and none.source is None


def _names(devs: Sequence[Device]) -> set[str]:
    return {d.name for d in devs}
