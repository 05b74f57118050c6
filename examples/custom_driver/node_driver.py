"""The same composition against a real cluster: what ``dranet run`` does, in a few lines.

Run it on a node as root, with the kubelet and an NRI-enabled runtime; the kubeconfig is
found as kubectl finds it (``$KUBECONFIG``, in-cluster, ``~/.kube/config``)::

    sudo python examples/custom_driver/node_driver.py

Swap any piece: your own backends, your own StatusPublisher, another ClaimSource.
"""

from __future__ import annotations

import asyncio
import os
import socket

from dranet_core import Driver, Settings, load_backends
from dranet_core.app import kube_environment
from dranet_core.backends import context_for
from dranet_core.cli import check_run_environment
from dranet_core.observability import setup_logging
from dranet_core.settings import KubeSettings
from dranet_core.supervisor import ShutdownSignals


async def main() -> None:
    node = os.environ.get("NODE_NAME") or socket.gethostname().lower()
    settings = check_run_environment(Settings(kube=KubeSettings(node_name=node), backends=("netdev",)))
    backends = load_backends(context_for(settings), enabled=settings.backends)
    async with kube_environment(settings) as (publisher, claims):
        driver = Driver(settings, backends=backends, publisher=publisher, claim_source=claims)
        with ShutdownSignals() as signals:  # first SIGTERM: graceful stop; second: exit at once
            await driver.run(stop=signals.requested)


if __name__ == "__main__":
    setup_logging("text", verbosity=0)
    asyncio.run(main())
