"""Read the DRA device metadata file inside a container: standard library only.

A container that uses a ResourceClaim with dranet's devices finds, when the driver runs
with ``--enable-device-metadata``, one JSON file per request at::

    /var/run/kubernetes.io/dra-device-attributes/resourceclaims/<claim>/<request>/dra.net-metadata.json
    /var/run/kubernetes.io/dra-device-attributes/resourceclaimtemplates/<podClaim>/<request>/dra.net-metadata.json

(the first for a claim the pod names with ``resourceClaimName``, the second for one made from a
ResourceClaimTemplate, by the name the pod spec gives it). The file is a stream of the same
object encoded once per API version, newest first; :func:`read_device_metadata` finds the file
and returns the first object whose ``apiVersion`` it knows.

This module imports nothing outside the Python standard library, so a workload image can use
it without dranet and its dependencies: copy this one file into the image. Run as a script, it
prints the devices of one request::

    python3 reader.py <claim> <request>            # the copied file
    python3 -m dranet_core.metadata.reader <claim> <request>   # with dranet installed
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any, Final

__all__ = [
    "API_GROUP",
    "CONTAINER_ROOT",
    "KNOWN_VERSIONS",
    "container_path",
    "device_network",
    "iter_documents",
    "parse_device_metadata",
    "read_device_metadata",
]

API_GROUP: Final = "metadata.resource.k8s.io"
"""The API group of the ``DeviceMetadata`` kind."""

KNOWN_VERSIONS: Final = ("v1beta1", "v1alpha1")
"""Versions this reader (and dranet's writer) knows, newest first; the two are field-for-field equal."""

CONTAINER_ROOT: Final = "/var/run/kubernetes.io/dra-device-attributes"
"""Where the files are mounted in a container."""

KIND: Final = "DeviceMetadata"


def container_path(
    claim: str, request: str, *, driver: str = "dra.net", template: bool = False, root: str = CONTAINER_ROOT
) -> str:
    """The path of one request's file: ``template`` for a claim made from a ResourceClaimTemplate.

    ``claim`` is the claim's name (or, for a template, the name in the pod spec); ``request``
    is the request's name (for a prioritized-list request, the part before ``/``).
    """
    kind = "resourceclaimtemplates" if template else "resourceclaims"
    return f"{root}/{kind}/{claim}/{request.split('/', 1)[0]}/{driver}-metadata.json"


def iter_documents(text: str) -> Iterator[Any]:
    """The JSON values of a stream (values separated by whitespace), in order.

    Raises ValueError (a ``json.JSONDecodeError``) at the first value that is not JSON.
    """
    decoder = json.JSONDecoder()
    pos = 0
    end = len(text)
    while True:
        while pos < end and text[pos] in " \t\r\n":
            pos += 1
        if pos >= end:
            return
        value, pos = decoder.raw_decode(text, pos)
        yield value


def parse_device_metadata(text: str, *, versions: Sequence[str] = KNOWN_VERSIONS) -> dict[str, Any]:
    """The first object of the stream ``text`` whose ``apiVersion`` is one of ``versions``.

    Objects of other versions before it are skipped without being validated, so a newer
    writer's stream stays readable. Raises ValueError when no object has a known version or
    the stream is not JSON.
    """
    wanted = {f"{API_GROUP}/{v}" for v in versions}
    seen: list[str] = []
    for doc in iter_documents(text):
        version = doc.get("apiVersion") if isinstance(doc, dict) else None
        if version in wanted and doc.get("kind") == KIND:
            found: dict[str, Any] = doc
            return found
        seen.append(str(version))
    raise ValueError(f"device metadata: no object of a known apiVersion {sorted(wanted)} (found {seen})")


def read_device_metadata(
    claim: str,
    request: str,
    *,
    driver: str = "dra.net",
    root: str = CONTAINER_ROOT,
    versions: Sequence[str] = KNOWN_VERSIONS,
) -> dict[str, Any]:
    """Find and parse the metadata of ``request`` of ``claim`` (direct claim, then template).

    Returns the ``DeviceMetadata`` object as a dict (``metadata``, ``requests[].devices[]``
    with ``attributes`` and ``networkData``). Raises FileNotFoundError naming both paths when
    neither exists (the driver runs without ``--enable-device-metadata``, or the container
    does not use this claim), ValueError when the file has no object of a known version.
    """
    paths = [container_path(claim, request, driver=driver, template=t, root=root) for t in (False, True)]
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            continue
        return parse_device_metadata(text, versions=versions)
    raise FileNotFoundError(
        f"no device metadata for claim {claim!r} request {request!r}: {' or '.join(paths)}"
    )


def device_network(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per device of ``doc``: ``request``, ``device``, ``interfaceName``, ``ips``,
    ``hardwareAddress`` and ``pciBusID`` (empty when unknown)."""
    out = []
    for req in doc.get("requests") or []:
        for dev in req.get("devices") or []:
            net = dev.get("networkData") or {}
            pci = (dev.get("attributes") or {}).get("resource.kubernetes.io/pciBusID") or {}
            out.append(
                {
                    "request": req.get("name", ""),
                    "device": dev.get("name", ""),
                    "interfaceName": net.get("interfaceName", ""),
                    "ips": list(net.get("ips") or []),
                    "hardwareAddress": net.get("hardwareAddress", ""),
                    "pciBusID": pci.get("string", ""),
                }
            )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python3 -m dranet_core.metadata.reader CLAIM REQUEST [DRIVER]``: print each device."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) not in (2, 3):
        print("usage: reader.py CLAIM REQUEST [DRIVER]", file=sys.stderr)
        return 2
    driver = args[2] if len(args) == 3 else "dra.net"
    root = os.environ.get("DRA_DEVICE_METADATA_ROOT", CONTAINER_ROOT)
    try:
        doc = read_device_metadata(args[0], args[1], driver=driver, root=root)
    except (OSError, ValueError) as exc:
        print(f"reader: {exc}", file=sys.stderr)
        return 1
    for d in device_network(doc):
        ips = ",".join(d["ips"]) or "-"
        print(
            f"{d['request']} {d['device']}: interface {d['interfaceName'] or '-'} ips {ips} "
            f"mac {d['hardwareAddress'] or '-'} pci {d['pciBusID'] or '-'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
