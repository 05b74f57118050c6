"""The DaemonSet gives the driver the host directories device metadata writes to."""

from __future__ import annotations

from pathlib import Path

import yaml

from dranet_core.settings import KubeletSettings, MetadataSettings

DAEMONSET = Path(__file__).resolve().parents[2] / "deploy" / "daemonset.yaml"


def _host_mounts() -> dict[str, str]:
    """mountPath -> host path of every hostPath volume the dranet container mounts."""
    pod = yaml.safe_load(DAEMONSET.read_text())["spec"]["template"]["spec"]
    volumes = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    (ctr,) = pod["containers"]
    return {m["mountPath"]: volumes[m["name"]] for m in ctr["volumeMounts"] if m["name"] in volumes}


def test_daemonset_mounts_the_cdi_dir_and_the_plugin_dir_at_their_host_paths() -> None:
    mounts = _host_mounts()
    cdi = str(MetadataSettings().cdi_dir)
    assert mounts.get(cdi) == cdi
    # the metadata files (below the plugin dir) are named in the CDI specs by their host path
    plugins = str(KubeletSettings().root_dir / "plugins")
    assert mounts.get(plugins) == plugins


def test_example_pod_reads_the_file_of_its_claim_and_request() -> None:
    from dranet_core.metadata import reader

    docs = list(yaml.safe_load_all((DAEMONSET.parent / "claims" / "device-metadata.yaml").read_text()))
    template, pod = docs
    (request,) = template["spec"]["spec"]["devices"]["requests"]
    (claim,) = pod["spec"]["resourceClaims"]
    assert claim["resourceClaimTemplateName"] == template["metadata"]["name"]
    command = pod["spec"]["containers"][0]["command"][-1]
    assert f"dranet_core.metadata.reader {claim['name']} {request['name']}" in command
    # the path the comment promises is where the reader looks for a template claim
    path = reader.container_path(claim["name"], request["name"], template=True)
    assert path in (DAEMONSET.parent / "claims" / "device-metadata.yaml").read_text()
    # the container lists the claim, so the kubelet hands it the claim's CDI devices
    assert {"name": claim["name"]} in pod["spec"]["containers"][0]["resources"]["claims"]
