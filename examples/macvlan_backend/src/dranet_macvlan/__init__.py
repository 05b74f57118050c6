"""An example dranet backend: offers the node's macvlan interfaces to pods.

It discovers macvlan links in the host network namespace and moves one into a pod's
namespace (renamed, addressed and sized as the claim's config asks), and back. It talks to
the kernel through iproute2's ``ip`` command to stay short and readable; the built-in netdev
backend does the same over rtnetlink.

``create`` is the entry point (see ``pyproject.toml``); it declares one option,
``macvlan.mode`` (only offer macvlans of that mode: ``bridge``, ``private``, ``vepa``,
``passthru``, ``source`` or ``any``).
"""

from __future__ import annotations

from dranet_core import BackendContext, BackendOption, backend_options, parse_choice

from .backend import MacvlanBackend

__all__ = ["MODE", "MacvlanBackend", "create"]

MODE = BackendOption(
    "macvlan",
    "mode",
    parse_choice("any", "bridge", "private", "vepa", "passthru", "source"),
    "any",
    "only offer macvlans of this mode",
)


@backend_options(MODE)
def create(context: BackendContext) -> MacvlanBackend:
    """The ``dranet.backends`` entry point: a macvlan backend for ``context``."""
    return MacvlanBackend(host_netns=context.host_netns, mode=context.option(MODE))
