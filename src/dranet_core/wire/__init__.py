"""Sans-IO protocol codecs: ttrpc frames and envelopes, the NRI multiplexer.

Bytes in, events out; events in, bytes out. No asyncio, no sockets (import-linter enforces
it), so every rule can be tested with byte vectors and fuzzed without an event loop.
"""
