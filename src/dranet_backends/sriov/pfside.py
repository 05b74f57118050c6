"""PF-side VF settings: read a VF's state, apply a claim's ``sriov`` section, restore the snapshot.

The steps, in order (restore runs them in reverse): ``mac``, ``vlan`` (VLAN ID, QoS and
protocol together), ``spoofChk``, ``trust``, ``linkState``, ``txRate`` (min and max
together: a claim setting only one keeps the other as it was). Only the settings a claim
asks for are applied, and only those are restored, each to its value in the snapshot
taken before the first one was applied.

:func:`steps` is pure (config + snapshot -> what to set and what to restore);
:class:`PfClient` sends the messages of :mod:`.vfnl` through a :class:`Transport` (the
real one is a ``NETLINK_ROUTE`` socket in the driver's network namespace, where the PFs
are; tests pass a fake kernel that keeps VF state); :func:`apply` and :func:`restore` run
the steps transactionally: if step *k* fails, steps *k-1..0* are restored before the
error goes up, so a failed attach leaves the VF as the snapshot says.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
from collections.abc import Sequence
from typing import Final, Protocol

import attrs

from dranet_backends.netns import call_in_netns_at
from dranet_core.config.model import SriovConfig

from .vfnl import VfSetting, VfState, get_request, no_such_vf, parse_reply, set_request

__all__ = ["NetlinkRoute", "PfClient", "Step", "Transport", "apply", "restore", "steps"]

log = logging.getLogger(__name__)

NETLINK_ROUTE: Final = 0
_RECV_SIZE: Final = 1 << 20


class Transport(Protocol):
    """Sends one rtnetlink request and returns the reply datagram(s) (blocking)."""

    def exchange(self, request: bytes) -> bytes:
        """Send ``request``; return what the kernel answered (raise OSError on socket errors)."""
        ...


def _route_socket() -> socket.socket:
    return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)


class NetlinkRoute:
    """The real transport: a fresh ``NETLINK_ROUTE`` socket per request (PF-side steps are rare),
    made in network namespace ``netns`` (a path; default: this thread's), where the PFs are."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns

    def exchange(self, request: bytes) -> bytes:
        (seq,) = _seq_of(request)
        made = _route_socket() if self.netns is None else call_in_netns_at(self.netns, _route_socket)
        with made as sock:
            sock.settimeout(5.0)
            sock.bind((0, 0))
            sock.send(request)
            out = b""
            while True:
                data = sock.recv(_RECV_SIZE)
                out += data
                if _has_seq(data, seq):
                    return out


def _seq_of(request: bytes) -> tuple[int]:
    return (int.from_bytes(request[8:12], "little"),)


def _has_seq(data: bytes, seq: int) -> bool:
    off = 0
    while off + 16 <= len(data):
        length = int.from_bytes(data[off : off + 4], "little")
        if int.from_bytes(data[off + 8 : off + 12], "little") == seq:
            return True
        if length < 16:
            return False
        off += (length + 3) & ~3
    return False


class PfClient:
    """Reads and sets VF state through the PF, one request at a time, off the event loop."""

    def __init__(self, transport: Transport | None = None) -> None:
        self.transport: Transport = transport if transport is not None else NetlinkRoute()
        self._seq = itertools.count(1)

    def _get(self, pf: str, vf: int) -> VfState:
        seq = next(self._seq)
        vfs = parse_reply(self.transport.exchange(get_request(seq, pf)), seq) or {}
        if vf not in vfs:
            raise no_such_vf(pf, vf)
        return vfs[vf]

    def _set(self, pf: str, setting: VfSetting) -> None:
        seq = next(self._seq)
        parse_reply(self.transport.exchange(set_request(seq, pf, setting)), seq)

    async def get(self, pf: str, vf: int) -> VfState:
        """The state of VF ``vf`` of PF ``pf`` (OSError from the kernel, ENODEV if no such VF)."""
        return await asyncio.to_thread(self._get, pf, vf)

    async def set(self, pf: str, setting: VfSetting) -> None:
        """Apply one setting (OSError from the kernel)."""
        await asyncio.to_thread(self._set, pf, setting)


@attrs.frozen
class Step:
    """One PF-side setting: what attach sets and what detach (or a rollback) sets back."""

    name: str
    apply: VfSetting
    restore: VfSetting


def steps(config: SriovConfig, before: VfState) -> list[Step]:
    """The steps ``config`` asks for on the VF whose state before attach is ``before``."""
    vf = before.vf
    out: list[Step] = []
    if config.mac is not None:
        out.append(Step("mac", VfSetting.mac(vf, config.mac), VfSetting.mac(vf, before.mac)))
    if config.vlan is not None or config.vlan_qos is not None or config.vlan_proto is not None:
        want = VfSetting.vlan(vf, config.vlan or 0, config.vlan_qos or 0, config.vlan_proto or "802.1Q")
        out.append(Step("vlan", want, VfSetting.vlan(vf, before.vlan, before.qos, before.vlan_proto)))
    if config.spoof_chk is not None:
        old = before.spoof_chk if before.spoof_chk is not None else config.spoof_chk
        out.append(Step("spoofChk", VfSetting.spoof_chk(vf, config.spoof_chk), VfSetting.spoof_chk(vf, old)))
    if config.trust is not None:
        old = before.trust if before.trust is not None else config.trust
        out.append(Step("trust", VfSetting.trust(vf, config.trust), VfSetting.trust(vf, old)))
    if config.link_state is not None:
        out.append(
            Step(
                "linkState",
                VfSetting.link_state(vf, config.link_state),
                VfSetting.link_state(vf, before.link_state),
            )
        )
    if config.min_tx_rate is not None or config.max_tx_rate is not None:
        lo = before.min_tx_rate if config.min_tx_rate is None else config.min_tx_rate
        hi = before.max_tx_rate if config.max_tx_rate is None else config.max_tx_rate
        out.append(
            Step(
                "txRate",
                VfSetting.rate(vf, lo, hi),
                VfSetting.rate(vf, before.min_tx_rate, before.max_tx_rate),
            )
        )
    return out


class StepFailed(Exception):
    """A PF-side step failed; ``step`` names it, ``cause`` is the kernel's error."""

    def __init__(self, step: str, cause: OSError) -> None:
        super().__init__(f"{step}: {cause.strerror or cause}")
        self.step = step
        self.cause = cause


async def apply(client: PfClient, pf: str, todo: Sequence[Step]) -> None:
    """Apply ``todo`` in order; on a failure restore the applied ones in reverse and raise StepFailed."""
    done: list[Step] = []
    for step in todo:
        try:
            await client.set(pf, step.apply)
        except OSError as exc:
            failed = await restore(client, pf, done)
            if failed:
                log.error("sriov: %s: rollback left %s not restored", pf, ", ".join(failed))
            raise StepFailed(step.name, exc) from exc
        done.append(step)


async def restore(client: PfClient, pf: str, todo: Sequence[Step]) -> list[str]:
    """Set back every step of ``todo`` in reverse order; the names of those that failed."""
    failed: list[str] = []
    for step in reversed(todo):
        try:
            await client.set(pf, step.restore)
        except OSError as exc:
            log.warning("sriov: %s: cannot restore %s: %s", pf, step.name, exc.strerror or exc)
            failed.append(step.name)
    return failed
