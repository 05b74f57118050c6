"""The kubelet of ``benchmarks/bench_dra.py``: a separate process, as on a node.

On a node the kubelet is its own (Go) process. A client in the driver's process, on its event
loop, would count its own Python work in every round trip and compete with the server for the
GIL and the loop; this script is the kubelet instead: synchronous grpcio stubs (compiled by
bench_dra.py into PBDIR) over the plugin's unix socket, each call timed with
``time.perf_counter`` around the stub call, as the kubelet sees it.

Usage (bench_dra.py starts it): ``python kubelet_client.py PBDIR DRA_SOCKET NOOP_SOCKET``.
It prints ``{"ready": true}`` once both channels are connected, then answers each JSON command
read on stdin (one a line) with one JSON line on stdout, sequentially; it exits when stdin
closes. Commands (a claim is ``[name, uid]`` in namespace ``default``):

* ``{"op": "noop", "n": N, "warmup": W}``: W untimed then N timed prepares of a new claim each
  on NOOP_SOCKET -> ``{"ms": [N floats]}``;
* ``{"op": "prepare", "claim": C}``: one timed prepare -> ``{"ms": float, "error": str}``;
* ``{"op": "unprepare", "claim": C}``: one untimed unprepare -> ``{"error": str}``;
* ``{"op": "concurrent", "claims": [C, ...]}``: one prepare call per claim, all in flight at
  once (grpcio futures), timed from the first issued to the last answered ->
  ``{"ms": float, "errors": [str, ...]}`` (the non-empty per-claim errors).

A failed call (an RPC error, a timeout) is not answered: the script exits non-zero with the
traceback on stderr, and bench_dra.py stops on the closed stdout.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from typing import Any

import grpc


class Kubelet:
    def __init__(self, pbdir: str, dra: grpc.Channel, noop: grpc.Channel) -> None:
        sys.path.insert(0, pbdir)
        self.v1 = importlib.import_module("kubelet.dra.v1.api_pb2")
        stubs = importlib.import_module("kubelet.dra.v1.api_pb2_grpc")
        self.dra = stubs.DRAPluginStub(dra)
        self.noop = stubs.DRAPluginStub(noop)

    def claims(self, claims: list[list[str]]) -> list[Any]:
        return [self.v1.Claim(namespace="default", name=name, uid=uid) for name, uid in claims]

    def noop_floor(self, n: int, warmup: int) -> dict[str, Any]:
        out = []
        for i in range(-warmup, n):
            req = self.v1.NodePrepareResourcesRequest(claims=self.claims([["c", f"n{i}"]]))
            t0 = time.perf_counter()
            self.noop.NodePrepareResources(req, timeout=10)
            if i >= 0:
                out.append((time.perf_counter() - t0) * 1000)
        return {"ms": out}

    def prepare(self, claim: list[str]) -> dict[str, Any]:
        req = self.v1.NodePrepareResourcesRequest(claims=self.claims([claim]))
        t0 = time.perf_counter()
        resp = self.dra.NodePrepareResources(req, timeout=10)
        ms = (time.perf_counter() - t0) * 1000
        return {"ms": ms, "error": resp.claims[claim[1]].error}

    def unprepare(self, claim: list[str]) -> dict[str, Any]:
        req = self.v1.NodeUnprepareResourcesRequest(claims=self.claims([claim]))
        resp = self.dra.NodeUnprepareResources(req, timeout=10)
        return {"error": resp.claims[claim[1]].error}

    def concurrent(self, claims: list[list[str]]) -> dict[str, Any]:
        reqs = [self.v1.NodePrepareResourcesRequest(claims=[c]) for c in self.claims(claims)]
        t0 = time.perf_counter()
        futures = [self.dra.NodePrepareResources.future(r, timeout=30) for r in reqs]
        resps = [f.result() for f in futures]
        ms = (time.perf_counter() - t0) * 1000
        errors = [r.claims[uid].error for (_, uid), r in zip(claims, resps, strict=True)]
        return {"ms": ms, "errors": [e for e in errors if e]}

    def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        match cmd["op"]:
            case "noop":
                return self.noop_floor(cmd["n"], cmd["warmup"])
            case "prepare":
                return self.prepare(cmd["claim"])
            case "unprepare":
                return self.unprepare(cmd["claim"])
            case "concurrent":
                return self.concurrent(cmd["claims"])
        raise ValueError(f"unknown command {cmd!r}")


def reply(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(pbdir: str, dra_socket: str, noop_socket: str) -> int:
    dra = grpc.insecure_channel(f"unix://{dra_socket}")
    noop = grpc.insecure_channel(f"unix://{noop_socket}")
    try:
        for ch in (dra, noop):
            grpc.channel_ready_future(ch).result(timeout=20)
        kubelet = Kubelet(pbdir, dra, noop)
        reply({"ready": True})
        while line := sys.stdin.readline():
            reply(kubelet.handle(json.loads(line)))
    finally:
        dra.close()
        noop.close()
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(f"usage: {sys.argv[0]} PBDIR DRA_SOCKET NOOP_SOCKET")
    sys.exit(main(*sys.argv[1:]))
