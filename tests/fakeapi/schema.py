"""Re-export of :mod:`dranet_core.testing.fakeapi.schema`."""

from dranet_core.testing.fakeapi.schema import *  # noqa: F403
