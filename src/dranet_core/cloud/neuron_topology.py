"""Which EFA adapter serves which Neuron device on AWS Trainium instances (facts, no I/O).

On the EFA-enabled Trainium instance types each Neuron device ``i`` (0..15) is served by the
EFA adapter at the PCI address ``EFA_OF_NEURON[family][i]``; on trn1 two Neuron devices share
one adapter. These are the published AWS Neuron topology facts the Go driver gets from the
``connected-device-maps-over-efa-for-neuron`` library; :func:`efa_device_groups` derives the
same ``resource.aws.com/devicegroup{1,4,8,16}_id`` values from them.
"""

from __future__ import annotations

import hashlib
from typing import Final

__all__ = ["DEVICE_GROUP_SIZES", "EFA_OF_NEURON", "FAMILY_OF_INSTANCE_TYPE", "efa_device_groups"]

DEVICE_GROUP_SIZES: Final = (1, 4, 8, 16)

FAMILY_OF_INSTANCE_TYPE: Final[dict[str, str]] = {
    "trn1.32xlarge": "trn1",
    "trn1n.32xlarge": "trn1n",
    "trn2.48xlarge": "trn2",
    "trn2e.48xlarge": "trn2",
    "trn2u.48xlarge": "trn2",
    "trn3.48xlarge": "trn3",
    "trn3p.48xlarge": "trn3",
    "trn3pd98.48xlarge": "trn3",
    "trn3s.48xlarge": "trn3",
    "trn3-dev0.48xlarge": "trn3pds",
    "trn3-dev1.48xlarge": "trn3pds",
}
"""The EFA-enabled Neuron instance types and the topology family each belongs to."""


def _bdfs(bus_devfn: str) -> tuple[str, ...]:
    return tuple(f"0000:{x}" for x in bus_devfn.split())


EFA_OF_NEURON: Final[dict[str, tuple[str, ...]]] = {
    "trn1": _bdfs(
        "10:1a.0 10:1a.0 a0:1a.0 a0:1a.0 20:19.0 20:19.0 90:19.0 90:19.0 "
        "20:1a.0 20:1a.0 90:1a.0 90:1a.0 10:19.0 10:19.0 a0:19.0 a0:19.0"
    ),
    "trn1n": _bdfs(
        "10:17.0 10:1a.0 a0:17.0 a0:1a.0 20:19.0 20:18.0 90:19.0 90:18.0 "
        "20:17.0 20:1a.0 90:17.0 90:1a.0 10:19.0 10:18.0 a0:19.0 a0:18.0"
    ),
    "trn2": _bdfs(
        "c9:00.0 b4:00.0 b3:00.0 ca:00.0 6c:00.0 57:00.0 56:00.0 6d:00.0 "
        "98:00.0 83:00.0 82:00.0 99:00.0 f5:00.0 e0:00.0 df:00.0 f6:00.0"
    ),
    "trn3": _bdfs(
        "be:00.0 a9:00.0 a8:00.0 bf:00.0 61:00.0 4c:00.0 4b:00.0 62:00.0 "
        "8d:00.0 78:00.0 77:00.0 8e:00.0 ea:00.0 d5:00.0 d4:00.0 eb:00.0"
    ),
    "trn3pds": _bdfs(
        "a9:00.0 a8:00.0 bf:00.0 be:00.0 d5:00.0 d4:00.0 eb:00.0 ea:00.0 "
        "4c:00.0 4b:00.0 62:00.0 61:00.0 78:00.0 77:00.0 8e:00.0 8d:00.0"
    ),
}
"""Family -> the EFA PCI address of Neuron device 0, 1, ... 15."""


def _group_id(efas: tuple[str, ...], neuron: int, size: int) -> str:
    first = neuron // size * size
    members = sorted(set(efas[first : first + size]))
    return hashlib.sha256(",".join(members).encode()).hexdigest()[:16]


def efa_device_groups(family: str) -> dict[str, dict[str, str]]:
    """EFA PCI address -> its ``resource.aws.com/devicegroup<N>_id`` attributes.

    ``devicegroup1_id`` is the adapter's own PCI address; ``devicegroup<N>_id`` for N = 4, 8,
    16 is the first 16 hex digits of the SHA-256 of the comma-joined, sorted, de-duplicated
    PCI addresses of the adapters serving the N Neuron devices of the adapter's group (Neuron
    devices ``k*N .. k*N+N-1``), so the adapters of one group share the value.
    """
    efas = EFA_OF_NEURON[family]
    out: dict[str, dict[str, str]] = {}
    for neuron, bdf in enumerate(efas):
        attrs = {"resource.aws.com/devicegroup1_id": bdf}
        for size in DEVICE_GROUP_SIZES[1:]:
            attrs[f"resource.aws.com/devicegroup{size}_id"] = _group_id(efas, neuron, size)
        out[bdf] = attrs
    return out
