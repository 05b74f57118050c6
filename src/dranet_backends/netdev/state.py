"""The kernel's network state as discovery sees it, kept current from rtnetlink events.

:class:`KernelView` holds the links, their addresses, the main-table default routes, and
which links carry a clsact/ingress qdisc and which BPF filters, and the TCX programs
(read by :mod:`.tcx`, which has no events). A full dump fills it;
events (RTM_NEW*/DEL* for links, addresses, routes, qdiscs and filters) update it in
place, recording what became dirty:

* ``dirty``: link indexes whose device must be rebuilt;
* ``routes_dirty``: a default route changed: the route table is re-read (only then);
* ``tc_dirty``: link indexes whose tc filters must be re-read (two small dumps each);
* ``links_changed``: a link appeared or vanished (the PCI list is re-read).

:func:`uplinks` computes the excluded uplink set as the Go driver does (§2.5): per address
family, the main-table default routes with the lowest metric (ECMP ties all kept, multipath
next hops expanded), plus every link below them through master indexes (bond slaves,
bridge ports, an accelerated-networking VF enslaved to the uplink). Unlike the Go driver, it
is recomputed whenever routes or links change.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from .rtnl import (
    RT_TABLE_MAIN,
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_DELQDISC,
    RTM_DELROUTE,
    RTM_DELTFILTER,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWQDISC,
    RTM_NEWROUTE,
    RTM_NEWTFILTER,
    Addr,
    Link,
    Message,
    Qdisc,
    Route,
    TcFilter,
)

__all__ = ["KernelView", "uplinks"]

TC_INGRESS_KINDS = frozenset({"clsact", "ingress"})


def uplinks(routes: Iterable[Route], links: Mapping[int, Link]) -> frozenset[int]:
    """Indexes of the default-route interfaces and all links below them (see the module doc)."""
    best: dict[int, tuple[int, set[int]]] = {}
    for r in routes:
        if not r.is_default or r.table != RT_TABLE_MAIN or not r.oifs:
            continue
        cur = best.get(r.family)
        if cur is None or r.priority < cur[0]:
            best[r.family] = (r.priority, set(r.oifs))
        elif r.priority == cur[0]:
            cur[1].update(r.oifs)
    roots: set[int] = set()
    for _, oifs in best.values():
        roots |= oifs
    children: dict[int, list[int]] = defaultdict(list)
    for link in links.values():
        if link.master:
            children[link.master].append(link.index)
    out: set[int] = set()
    todo = list(roots)
    while todo:
        idx = todo.pop()
        if idx in out:
            continue
        out.add(idx)
        todo.extend(children.get(idx, ()))
    return frozenset(out)


class KernelView:
    """Links, addresses, default routes and tc state of one network namespace."""

    def __init__(self) -> None:
        self.links: dict[int, Link] = {}
        self.addrs: dict[int, dict[tuple[int, str], Addr]] = defaultdict(dict)
        self.routes: list[Route] = []
        self.tc_parents: dict[int, set[str]] = defaultdict(set)
        self.tc_names: dict[int, tuple[str, ...]] = {}
        self.tcx_names: dict[int, tuple[str, ...]] = {}
        self.dirty: set[int] = set()
        self.tc_dirty: set[int] = set()
        self.routes_dirty = False
        self.links_changed = False

    # -- full loads ------------------------------------------------------------------------

    def load_links(self, links: Iterable[Link]) -> None:
        """Replace every link (a full dump)."""
        self.links = {link.index: link for link in links}
        for gone in set(self.addrs) - self.links.keys():
            del self.addrs[gone]
        self.links_changed = True

    def load_addrs(self, addrs: Iterable[Addr]) -> None:
        """Replace every address (a full dump)."""
        self.addrs = defaultdict(dict)
        for a in addrs:
            self.addrs[a.index][(a.family, a.cidr)] = a

    def load_routes(self, routes: Iterable[Route]) -> None:
        """Replace the default routes (from a full dump; other routes are dropped)."""
        self.routes = [r for r in routes if r.is_default and r.table == RT_TABLE_MAIN]
        self.routes_dirty = False

    def load_qdiscs(self, qdiscs: Iterable[Qdisc]) -> None:
        """Replace the qdisc view: which links have a clsact/ingress qdisc."""
        self.tc_parents = defaultdict(set)
        for q in qdiscs:
            if q.kind in TC_INGRESS_KINDS:
                self.tc_parents[q.index].add(q.kind)
        self.tc_names = {i: n for i, n in self.tc_names.items() if i in self.tc_parents}

    def set_tc_names(self, index: int, filters: Iterable[TcFilter]) -> None:
        """Record the BPF filter names found on link ``index``."""
        names = tuple(f.bpf_name for f in filters if f.kind == "bpf" and f.bpf_name)
        if names:
            self.tc_names[index] = names
        else:
            self.tc_names.pop(index, None)

    # -- events ----------------------------------------------------------------------------

    def apply(self, mtype: int, rec: Message) -> bool:
        """Apply one event; return whether anything that discovery publishes may have changed."""
        if isinstance(rec, Link):
            return self._apply_link(mtype, rec)
        if isinstance(rec, Addr):
            key = (rec.family, rec.cidr)
            if mtype == RTM_NEWADDR:
                self.addrs[rec.index][key] = rec
            elif mtype == RTM_DELADDR:
                self.addrs.get(rec.index, {}).pop(key, None)
            self.dirty.add(rec.index)
            return True
        if isinstance(rec, Route):
            if rec.is_default and rec.table == RT_TABLE_MAIN and mtype in (RTM_NEWROUTE, RTM_DELROUTE):
                self.routes_dirty = True
                return True
            return False
        if isinstance(rec, Qdisc):
            if rec.kind in TC_INGRESS_KINDS:
                if mtype == RTM_NEWQDISC:
                    self.tc_parents[rec.index].add(rec.kind)
                elif mtype == RTM_DELQDISC:
                    self.tc_parents.get(rec.index, set()).discard(rec.kind)
                self.tc_dirty.add(rec.index)
                return True
            return False
        if isinstance(rec, TcFilter) and mtype in (RTM_NEWTFILTER, RTM_DELTFILTER):
            self.tc_dirty.add(rec.index)
            return True
        return False

    def _apply_link(self, mtype: int, link: Link) -> bool:
        if mtype == RTM_DELLINK:
            if self.links.pop(link.index, None) is None:
                return False
            self.addrs.pop(link.index, None)
            self.tc_names.pop(link.index, None)
            self.tcx_names.pop(link.index, None)
            self.tc_parents.pop(link.index, None)
            self.dirty.add(link.index)
            self.links_changed = True
            return True
        if mtype != RTM_NEWLINK:
            return False
        old = self.links.get(link.index)
        if old is not None and old.same(link):
            return False
        self.links[link.index] = link
        self.dirty.add(link.index)
        if old is None or old.master != link.master or old.name != link.name:
            self.links_changed = True
        return True

    def addresses(self, index: int) -> list[Addr]:
        """The addresses of link ``index``."""
        return list(self.addrs.get(index, {}).values())
