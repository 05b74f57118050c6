"""The Helm chart (deploy/helm/dranet) renders the objects of deploy/ with its defaults, takes
the Go chart's values, and every flag it renders is one ``dranet run`` accepts.

No helm binary is installable from the package registries this project uses, so the chart is
rendered by ``gotemplate.py`` (the Go template subset the chart uses; anything else fails)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from gotemplate import Template

from dranet_core.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "dranet"


def render(overrides: dict[str, Any] | None = None, namespace: str = "kube-system") -> list[dict[str, Any]]:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    _merge(values, overrides or {})
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    context = {
        "Values": values,
        "Release": {"Namespace": namespace, "Name": "dranet"},
        "Chart": {"AppVersion": chart["appVersion"], "Name": chart["name"]},
    }
    objects: list[dict[str, Any]] = []
    for path in sorted((CHART / "templates").glob("*.yaml")):
        text = Template(path.read_text()).render(context)
        objects += [o for o in yaml.safe_load_all(text) if o]
    return objects


def _merge(base: dict[str, Any], over: dict[str, Any]) -> None:
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = copy.deepcopy(v)


def _key(o: dict[str, Any]) -> tuple[str, str]:
    return o["kind"], o["metadata"]["name"]


def deploy_objects() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name in yaml.safe_load((REPO / "deploy" / "kustomization.yaml").read_text())["resources"]:
        out += [o for o in yaml.safe_load_all((REPO / "deploy" / name).read_text()) if o]
    return out


def _daemonset(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (ds,) = [o for o in objects if o["kind"] == "DaemonSet"]
    return ds


def test_defaults_render_the_objects_of_deploy() -> None:
    rendered = {_key(o): o for o in render({"image": {"tag": "dev"}})}
    expected = {_key(o): o for o in deploy_objects()}
    assert rendered.keys() == expected.keys()
    for key, obj in expected.items():
        assert rendered[key] == obj, key


def test_go_chart_values_reach_the_daemonset() -> None:
    objects = render(
        {
            "image": {"repository": "registry.example/dranet", "tag": "1.2.3", "pullPolicy": "Always"},
            "nodeSelector": {"dranet": "yes"},
            "tolerations": [{"key": "gpu", "operator": "Exists"}],
            "resources": {"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}},
            "logVerbosity": 2,
            "metricsPort": 9200,
            "kubeletRootDir": "/data/kubelet",
            "podLabels": {"team": "net"},
            "args": {
                "filter": 'attributes["dra.net/type"].StringValue != "veth"',
                "dbPath": "",
                "inventoryMinPollInterval": "1s",
                "inventoryMaxPollInterval": "30s",
                "inventoryPollBurst": 3,
                "moveIBInterfaces": False,
                "cloudProviderHint": "NONE",
                "profileProvider": "none",
                "featureGates": "",
            },
            "extraArgs": ["--backends=netdev,rdma"],
            "rbac": {"create": False},
            "deviceClass": {"create": False},
        },
        namespace="dranet",
    )
    assert [o["kind"] for o in objects] == ["DaemonSet"]
    ds = _daemonset(objects)
    assert ds["metadata"]["namespace"] == "dranet"
    spec = ds["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"dranet": "yes"}
    assert spec["tolerations"] == [{"key": "gpu", "operator": "Exists"}]
    assert ds["spec"]["template"]["metadata"]["labels"]["team"] == "net"
    (c,) = spec["containers"]
    assert (c["image"], c["imagePullPolicy"]) == ("registry.example/dranet:1.2.3", "Always")
    # maps merge with the chart's defaults, as helm merges values
    assert c["resources"] == {"requests": {"cpu": "1", "memory": "100Mi"}, "limits": {"memory": "1Gi"}}
    assert c["readinessProbe"]["httpGet"]["port"] == 9200
    assert {v["hostPath"]["path"] for v in spec["volumes"]} >= {
        "/data/kubelet/plugins",
        "/data/kubelet/plugins_registry",
    }
    assert c["args"] == [
        "run",
        "--v=2",
        "--hostname-override=$(NODE_NAME)",
        "--bind-address=:9200",
        '--filter=attributes["dra.net/type"].StringValue != "veth"',
        "--db-path=",
        "--inventory-min-poll-interval=1s",
        "--inventory-max-poll-interval=30s",
        "--inventory-poll-burst=3",
        "--move-ib-interfaces=false",
        "--cloud-provider-hint=NONE",
        "--profile-provider=none",
        "--feature-gates=",
        "--kubelet-root-dir=/data/kubelet",
        "--backends=netdev,rdma",
    ]
    # every flag the chart renders is one `dranet run` accepts
    parsed = build_parser().parse_args(c["args"])
    assert parsed.db_path == "" and parsed.move_ib_interfaces is False
    assert parsed.kubelet_root_dir == "/data/kubelet"


def test_the_renderer_rejects_what_it_does_not_know() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        Template('{{ include "x" . }}').render({})
