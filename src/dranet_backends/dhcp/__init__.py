"""DHCPv4 for ``interface.dhcp: true``: a lease on the host interface at prepare time.

:func:`dhcp_config` is what a backend's ``resolve_config`` calls: it leases an address on the
device's host interface and returns the claim config with ``interface.addresses`` set to the
lease and the lease's classless static routes (option 121) appended to ``routes``, as the Go
driver does. Option 3 (router) and option 33 are not used, as in the Go driver.
"""

from __future__ import annotations

import attrs

from dranet_core.config.model import InterfaceConfig, NetworkConfig, RouteConfig
from dranet_core.errors import DeviceError

from .client import DhcpError, Lease, obtain_lease

__all__ = ["DhcpError", "Lease", "dhcp_config", "obtain_lease"]

LINK_SCOPE = 253


def _route(r: object) -> RouteConfig:
    dest, router = getattr(r, "destination"), getattr(r, "router")  # noqa: B009
    if router == "0.0.0.0":
        return RouteConfig(destination=dest, scope=LINK_SCOPE)  # on-link (RFC 3442)
    return RouteConfig(destination=dest, gateway=router)


async def dhcp_config(
    config: NetworkConfig, device: str, ifname: str, *, netns: str | None = None, give_up_after: float = 5.0
) -> NetworkConfig:
    """``config`` with the lease of ``ifname`` in it; unchanged unless ``interface.dhcp`` is true.

    Raises a temporary :class:`DeviceError` naming ``device`` when no lease comes (the
    kubelet retries the prepare).
    """
    iface = config.interface
    if iface is None or iface.dhcp is not True:
        return config
    try:
        lease = await obtain_lease(ifname, netns=netns, give_up_after=give_up_after)
    except DhcpError as exc:
        raise DeviceError(device, "interface.dhcp", str(exc), temporary=True) from exc
    routes = tuple(config.routes or ()) + tuple(_route(r) for r in lease.routes)
    new_iface: InterfaceConfig = attrs.evolve(iface, addresses=(lease.address,))
    return attrs.evolve(config, interface=new_iface, routes=routes or None)
