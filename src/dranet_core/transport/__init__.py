"""asyncio transports: the NRI mux trunk over a unix socket, and ttrpc client/server on it.

The protocol rules live in :mod:`dranet_core.wire`; this package only moves bytes, owns the
one reader task per trunk, and turns frames into awaited calls.
"""
