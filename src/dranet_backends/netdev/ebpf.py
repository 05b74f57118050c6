"""Detaching eBPF programs from a device in a pod netns (``disableEbpfPrograms``).

TC programs attached through the clsact qdisc are ``bpf`` filters under the ingress
(``ffff:fff2``) and egress (``ffff:fff3``) pseudo-parents; each is deleted over rtnetlink by
its parent, priority, protocol and handle. Other filter kinds are left alone.

Not done: TCX-attached programs (``bpf_link`` / ``BPF_PROG_QUERY`` with ``BPF_TCX_*``) and
host-side pinned links; see docs/mover.md.
"""

from __future__ import annotations

from typing import Final

from dranet_backends.netdev.nsutil import Rtnl

__all__ = ["CLSACT_EGRESS", "CLSACT_INGRESS", "detach_tc_programs"]

CLSACT_INGRESS: Final = 0xFFFFFFF2
CLSACT_EGRESS: Final = 0xFFFFFFF3


async def detach_tc_programs(rtnl: Rtnl, index: int) -> int:
    """Delete every ``bpf`` TC filter on clsact ingress and egress of ``index``; returns how many."""
    removed = 0
    for parent in (CLSACT_INGRESS, CLSACT_EGRESS):
        seen: set[tuple[int, int]] = set()
        for f in await rtnl.tc_filters(index, parent):
            if f.get("kind") != "bpf":
                continue
            key = (int(f["info"]), int(f["handle"]))
            if key in seen:
                continue
            seen.add(key)
            # deleting by (parent, prio/protocol) and handle 0 removes the whole chain of
            # that priority, which is what a program attachment is
            await rtnl.tc_filter_del(index, parent, 0, int(f["info"]))
            removed += 1
    return removed
