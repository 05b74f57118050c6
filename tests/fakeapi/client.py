"""Re-export of :mod:`dranet_core.testing.fakeapi.client`."""

from dranet_core.testing.fakeapi.client import *  # noqa: F403
