"""Fuzz the NRI decoders (ttrpc frames and envelopes, mux frames, NRI requests).

Like h11's ``fuzz/afl-server.py``: every input is fed whole and then byte by byte; the only
exception allowed out of a decoder is our ``ProtocolError``. Two ways to run it:

* ``python fuzz/fuzz_nri_decoders.py < input`` — one input from stdin (for AFL-style drivers);
* ``python fuzz/fuzz_nri_decoders.py --seconds 30`` — random and mutated inputs from a seed
  corpus of valid messages for that long (a smoke run; prints the count).
"""

from __future__ import annotations

import argparse
import contextlib
import pathlib
import random
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "src"))

from dranet_core.errors import ProtocolError
from dranet_core.nri._decode import (
    decode_container_request,
    decode_pod_request,
    decode_state_change,
    decode_synchronize,
)
from dranet_core.wire.mux import MuxDecoder, frames_for_message
from dranet_core.wire.ttrpc import (
    Frame,
    FrameDecoder,
    Request,
    decode_request,
    decode_response,
    encode_frame,
    encode_request,
)

DECODERS = (
    decode_request,
    decode_response,
    decode_pod_request,
    decode_container_request,
    decode_synchronize,
    decode_state_change,
)


def one(data: bytes) -> None:
    for fn in DECODERS:
        with contextlib.suppress(ProtocolError):
            fn(data)
    for chunks in ([data], [data[i : i + 1] for i in range(len(data))]):
        for dec in (FrameDecoder(), MuxDecoder()):
            try:
                for c in chunks:
                    for f in dec.feed(c):
                        if isinstance(f, Frame):
                            for fn in DECODERS:
                                with contextlib.suppress(ProtocolError):
                                    fn(f.data)
            except ProtocolError:
                pass


def seeds() -> list[bytes]:
    pod = b"\x0a\x01s\x1a\x01u\x42\x0f\x2a\x0d\x0a\x07network\x12\x02/n\x52\x0810.0.0.1"
    req = b"\x0a" + bytes([len(pod)]) + pod
    env = encode_request(Request("nri.pkg.api.v1alpha1.Plugin", "RunPodSandbox", req, 2_000_000_000))
    frame = encode_frame(Frame(1, 1, 0, env))
    return [pod, req, env, frame, frames_for_message(1, frame), frames_for_message(1, frame + bytes(5000))]


def mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(4)
        if op == 0 and b:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op == 1:
            b.insert(rng.randrange(len(b) + 1), rng.randrange(256))
        elif op == 2 and b:
            del b[rng.randrange(len(b))]
        else:
            b += rng.randbytes(rng.randint(0, 16))
    return bytes(b)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.seconds is None:
        one(sys.stdin.buffer.read())
        return 0
    rng = random.Random(args.seed)
    corpus = seeds()
    n = 0
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        data = mutate(rng, rng.choice(corpus)) if rng.random() < 0.8 else rng.randbytes(rng.randint(0, 200))
        one(data)
        n += 1
    print(f"{n} inputs, no unexpected exception")
    return 0


if __name__ == "__main__":
    sys.exit(main())
