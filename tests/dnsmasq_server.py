"""A real DHCP server for tests: dnsmasq serving one subnet on a veth end in its own netns.

``serve_dhcp(link_ns, link)`` moves ``link`` (one end of a veth whose other end is the
interface under test) into a new throwaway namespace, addresses it ``10.<n>.0.1/24`` and
runs dnsmasq there with classless static routes (option 121). Everything is removed on
exit, also on failure.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import attrs

DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
ROUTES = (("192.168.50.0/24", "10.{n}.0.254"), ("10.200.0.0/16", "0.0.0.0"))
"""Option 121 routes served: one via a router, one on-link."""


def ip(*args: str, check: bool = True) -> str:
    out = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and out.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout


@attrs.frozen
class DhcpServer:
    netns: str
    subnet: int
    log: Path

    @property
    def prefix(self) -> str:
        return f"10.{self.subnet}.0."

    @property
    def router(self) -> str:
        return f"10.{self.subnet}.0.254"


@contextlib.contextmanager
def serve_dhcp(link_ns: str, link: str) -> Iterator[DhcpServer]:
    """dnsmasq serving on ``link`` (moved out of netns ``link_ns`` into a new one)."""
    n = 100 + secrets.randbelow(100)
    ns = f"dnt-dhcpd-{secrets.token_hex(3)}"
    tmp = Path(tempfile.mkdtemp(prefix="dnt-dhcpd-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        ip("netns", "add", ns)
        ip("-n", link_ns, "link", "set", link, "netns", ns)
        ip("-n", ns, "addr", "add", f"10.{n}.0.1/24", "dev", link)
        ip("-n", ns, "link", "set", link, "up")
        routes = ",".join(f"{d},{r.format(n=n)}" for d, r in ROUTES)
        argv = [
            "ip", "netns", "exec", ns, DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null",
            "--port=0", f"--interface={link}", "--bind-interfaces", "--log-dhcp",
            f"--dhcp-range=10.{n}.0.50,10.{n}.0.60,255.255.255.0,1h",
            f"--dhcp-option=option:classless-static-route,{routes}",
            f"--dhcp-leasefile={tmp / 'leases'}", f"--pid-file={tmp / 'pid'}",
            f"--log-facility={tmp / 'log'}",
        ]  # fmt: skip
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while not (tmp / "log").exists() or "DHCP" not in (tmp / "log").read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dnsmasq did not start: {(tmp / 'log').read_text(errors='replace')}")
            time.sleep(0.02)
        yield DhcpServer(netns=ns, subnet=n, log=tmp / "log")
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        ip("netns", "del", ns, check=False)
        shutil.rmtree(tmp, ignore_errors=True)
