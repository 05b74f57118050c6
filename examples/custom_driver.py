"""A node driver composed from the library in a dozen lines: what ``dranet run`` does.

Run it on a node (as root, with the kubelet and an NRI-enabled runtime), e.g.::

    NODE_NAME=$(hostname) python examples/custom_driver.py

Swap any piece: pass your own backends (objects implementing Discovery / NamespaceMover /
ValidatesConfig ...), your own StatusPublisher, or a different ClaimSource.
"""

from __future__ import annotations

import asyncio
import os

from dranet_core.app import Driver, kube_environment, load_backends_for
from dranet_core.settings import KubeSettings, Settings
from dranet_core.supervisor import ShutdownSignals


async def main() -> None:
    settings = Settings(kube=KubeSettings(node_name=os.environ["NODE_NAME"]), backends=("netdev",))
    async with kube_environment(settings) as (publisher, claims):
        driver = Driver(
            settings, backends=load_backends_for(settings), publisher=publisher, claim_source=claims
        )
        with ShutdownSignals() as signals:  # first SIGTERM: graceful stop; second: exit at once
            await driver.run(stop=signals.requested)


if __name__ == "__main__":
    asyncio.run(main())
