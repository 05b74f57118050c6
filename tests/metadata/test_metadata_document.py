"""The metadata file and CDI spec as values: paths, IDs, the stream, and the reader."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from schemas import validate_cdi_spec, validate_metadata

from dranet_core.metadata import reader
from dranet_core.metadata.document import (
    MetadataLayout,
    attribute_json,
    cdi_spec,
    device_entry,
    encode_stream,
    metadata_object,
    requests_of,
)
from dranet_core.plans import ClaimPlan, PreparedDevice
from dranet_core.types import ClaimRef, NetworkData, Version

REF = ClaimRef(namespace="default", name="net-claim", uid="3f2a9c1e-0d1b-4c8e-9a52-7c1d2e3f4a5b")
LAYOUT = MetadataLayout.for_plugin_dir(
    "dra.net", Path("/var/lib/kubelet/plugins/dra.net"), Path("/var/run/cdi")
)


def _doc(generation: int = 1, nd: NetworkData | None = None, pod_claim: str | None = None) -> dict:
    entry = device_entry(
        driver="dra.net",
        pool="worker-1",
        name="eth1",
        attributes={
            "dra.net/ifName": "eth1",
            "dra.net/mtu": 1500,
            "dra.net/virtual": False,
            "dra.net/kernel": Version("6.1.0"),
            "resource.kubernetes.io/pciBusID": "0000:3b:02.1",
        },
        network_data=nd,
    )
    return metadata_object(REF, generation=generation, requests=[("nic", [entry])], pod_claim_name=pod_claim)


def test_paths_and_ids_follow_the_layout() -> None:
    assert LAYOUT.metadata_file(REF, "nic") == Path(
        "/var/lib/kubelet/plugins/dra.net/dra-device-metadata/default_net-claim/nic/metadata.json"
    )
    # a prioritized-list subrequest uses its base name in every path and ID
    assert LAYOUT.metadata_file(REF, "nic/fast") == LAYOUT.metadata_file(REF, "nic")
    assert LAYOUT.cdi_spec_file(REF.uid, "nic/fast") == Path(
        f"/var/run/cdi/dra.net_metadata_{REF.uid}_nic.json"
    )
    assert LAYOUT.cdi_device_id(REF.uid, "nic") == f"dra.net/metadata={REF.uid}_nic"
    assert LAYOUT.container_path(REF, "nic", None) == (
        "/var/run/kubernetes.io/dra-device-attributes/resourceclaims/net-claim/nic/dra.net-metadata.json"
    )
    assert LAYOUT.container_path(REF, "nic", "my-net") == (
        "/var/run/kubernetes.io/dra-device-attributes/resourceclaimtemplates/my-net/nic/dra.net-metadata.json"
    )


def test_requests_of_groups_devices_by_base_request_in_plan_order() -> None:
    plan = ClaimPlan(
        claim=REF,
        pods=(),
        devices=(
            PreparedDevice(pool="p", device="a", request_names=("nic/fast",)),
            PreparedDevice(pool="p", device="b", request_names=("rdma",)),
            PreparedDevice(pool="p", device="c", request_names=("nic/fast",)),
        ),
    )
    got = [(r.base, r.names, [d.device for d in r.devices]) for r in requests_of(plan)]
    assert got == [("nic", ("nic/fast",), ["a", "c"]), ("rdma", ("rdma",), ["b"])]


def test_attributes_use_the_resourceslice_form() -> None:
    assert attribute_json(True) == {"bool": True}
    assert attribute_json(7) == {"int": 7}
    assert attribute_json("x") == {"string": "x"}
    assert attribute_json(Version("1.2.3")) == {"version": "1.2.3"}


def test_stream_has_each_version_in_order_and_validates() -> None:
    doc = _doc(
        2, NetworkData(interface_name="net1", ips=("192.0.2.10/24",), hardware_address="8a:1c:2e:00:00:01")
    )
    text = encode_stream(doc, ("v1beta1", "v1alpha1")).decode()
    lines = text.splitlines()
    assert text.endswith("\n") and len(lines) == 2
    objs = [json.loads(line) for line in lines]
    assert [o["apiVersion"] for o in objs] == [
        "metadata.resource.k8s.io/v1beta1",
        "metadata.resource.k8s.io/v1alpha1",
    ]
    for o in objs:
        validate_metadata(o)
        assert {k: v for k, v in o.items() if k != "apiVersion"} == doc
    dev = objs[0]["requests"][0]["devices"][0]
    assert dev["networkData"] == {
        "interfaceName": "net1",
        "ips": ["192.0.2.10/24"],
        "hardwareAddress": "8a:1c:2e:00:00:01",
    }
    assert dev["attributes"]["resource.kubernetes.io/pciBusID"] == {"string": "0000:3b:02.1"}


def test_schema_rejects_what_the_field_table_forbids() -> None:
    good = json.loads(encode_stream(_doc(), ("v1beta1",)).splitlines()[0])
    validate_metadata(good)
    bad_meta = json.loads(json.dumps(good))
    bad_meta["metadata"]["labels"] = {}
    bad_attr = json.loads(json.dumps(good))
    bad_attr["requests"][0]["devices"][0]["attributes"]["dra.net/mtu"] = {"int": 1, "string": "x"}
    bad_ip = json.loads(json.dumps(good))
    bad_ip["requests"][0]["devices"][0]["networkData"] = {"ips": ["192.0.2.10"]}
    for bad in (bad_meta, bad_attr, bad_ip):
        with pytest.raises(jsonschema.ValidationError):
            validate_metadata(bad)


def test_reader_takes_the_first_version_it_knows() -> None:
    text = encode_stream(_doc(), ("v1beta1", "v1alpha1")).decode()
    assert reader.parse_device_metadata(text)["apiVersion"].endswith("/v1beta1")
    # a reader that knows only v1alpha1 (Kubernetes 1.36) skips the v1beta1 object
    old = reader.parse_device_metadata(text, versions=("v1alpha1",))
    assert old["apiVersion"] == "metadata.resource.k8s.io/v1alpha1"
    assert old["requests"] == _doc()["requests"]
    # a future version first is skipped without being looked at
    future = '{"apiVersion": "metadata.resource.k8s.io/v2", "whatever": [1]}\n' + text
    assert reader.parse_device_metadata(future)["apiVersion"].endswith("/v1beta1")
    with pytest.raises(ValueError, match="no object of a known apiVersion"):
        reader.parse_device_metadata(text, versions=("v9",))
    with pytest.raises(ValueError):
        reader.parse_device_metadata(text[:40])


def test_read_device_metadata_finds_direct_then_template_claims(tmp_path: Path) -> None:
    direct = Path(reader.container_path("c1", "nic", root=str(tmp_path)))
    direct.parent.mkdir(parents=True)
    direct.write_bytes(encode_stream(_doc(), ("v1beta1", "v1alpha1")))
    assert reader.read_device_metadata("c1", "nic", root=str(tmp_path))["metadata"]["uid"] == REF.uid
    templ = Path(reader.container_path("my-net", "nic/fast", template=True, root=str(tmp_path)))
    templ.parent.mkdir(parents=True)
    templ.write_bytes(encode_stream(_doc(pod_claim="my-net"), ("v1alpha1",)))
    got = reader.read_device_metadata("my-net", "nic/fast", root=str(tmp_path))
    assert got["podClaimName"] == "my-net"
    with pytest.raises(FileNotFoundError, match="claim 'nope' request 'nic'"):
        reader.read_device_metadata("nope", "nic", root=str(tmp_path))


def test_reader_script_prints_interface_ips_and_pci(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    nd = NetworkData(
        interface_name="net1", ips=("192.0.2.10/24", "2001:db8::a/64"), hardware_address="8a:1c:2e:00:00:01"
    )
    path = Path(reader.container_path("c1", "nic", root=str(tmp_path)))
    path.parent.mkdir(parents=True)
    path.write_bytes(encode_stream(_doc(2, nd), ("v1beta1", "v1alpha1")))
    monkeypatch.setenv("DRA_DEVICE_METADATA_ROOT", str(tmp_path))
    assert reader.main(["c1", "nic"]) == 0
    assert reader.main(["c2", "nic"]) == 1
    out, err = capsys.readouterr()
    assert out == (
        "nic eth1: interface net1 ips 192.0.2.10/24,2001:db8::a/64 mac 8a:1c:2e:00:00:01 pci 0000:3b:02.1\n"
    )
    assert "no device metadata for claim 'c2'" in err


def test_reader_module_needs_only_the_standard_library() -> None:
    import ast
    import sys

    tree = ast.parse(Path(reader.__file__).read_text())
    imported = {
        (n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in (n.names if isinstance(n, ast.Import) else [n])
    }
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


@pytest.mark.parametrize("pod_claim", [None, "my-net"])
def test_cdi_spec_is_valid_cdi_and_mounts_the_file_read_only(pod_claim: str | None) -> None:
    spec = cdi_spec(LAYOUT, REF, "nic/fast", pod_claim)
    validate_cdi_spec(spec)
    assert spec["cdiVersion"] == "0.5.0"
    assert spec["kind"] == "dra.net/metadata"
    (dev,) = spec["devices"]
    assert f"{spec['kind']}={dev['name']}" == LAYOUT.cdi_device_id(REF.uid, "nic")
    (mount,) = dev["containerEdits"]["mounts"]
    assert mount == {
        "hostPath": str(LAYOUT.metadata_file(REF, "nic")),
        "containerPath": LAYOUT.container_path(REF, "nic", pod_claim),
        "options": ["ro", "bind"],
    }


def test_cdi_checker_rejects_bad_specs() -> None:
    spec = cdi_spec(LAYOUT, REF, "nic", None)
    with pytest.raises(jsonschema.ValidationError):
        validate_cdi_spec({**spec, "extra": 1})
    with pytest.raises(AssertionError):
        validate_cdi_spec({**spec, "kind": "dra.net"})
    no_path = json.loads(json.dumps(spec))
    del no_path["devices"][0]["containerEdits"]["mounts"][0]["containerPath"]
    with pytest.raises(jsonschema.ValidationError):
        validate_cdi_spec(no_path)


def test_settings_know_the_versions_the_reader_knows() -> None:
    from dranet_core.settings import METADATA_VERSIONS

    assert METADATA_VERSIONS == reader.KNOWN_VERSIONS
