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
