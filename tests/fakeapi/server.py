"""Re-export of :mod:`dranet_core.testing.fakeapi.server`."""

from dranet_core.testing.fakeapi.server import *  # noqa: F403
