from collections.abc import Callable, Sequence

import pytest

from dranet_core.capabilities import handler_table
from dranet_core.config.model import NetworkConfig
from dranet_core.errors import BackendError
from dranet_core.mover import AttachResult
from dranet_core.plans import PreparedDevice
from dranet_core.types import JSON, Device, DeviceNode, PodSandbox


class Finder:
    name = "finder"

    async def scan(self) -> Sequence[Device]:
        return []

    async def watch(self, notify: Callable[[], None]) -> None:
        return None


class Mover(Finder):
    name = "mover"

    async def snapshot(self, device: PreparedDevice) -> JSON:
        return {}

    async def attach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> AttachResult:
        return AttachResult()

    async def detach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> None:
        return None


class Adjuster:
    name = "adjuster"

    def device_nodes(self, device: PreparedDevice) -> Sequence[DeviceNode]:
        return []

    def validate_config(self, device: Device, config: NetworkConfig) -> None:
        return None


class Nothing:
    name = "nothing"


def test_table_lists_each_capability_in_backend_order() -> None:
    f, m, a = Finder(), Mover(), Adjuster()
    table = handler_table([f, m, a])
    assert table.discoverers == (f, m)
    assert [name for name, _ in table.movers] == ["mover"]
    assert table.validators == (("adjuster", a),)
    assert table.adjusters == (("adjuster", a),)
    assert table.capabilities == {
        "finder": ("discover",),
        "mover": ("discover", "move"),
        "adjuster": ("validate", "adjust"),
    }


def test_backend_without_capability_is_rejected() -> None:
    with pytest.raises(BackendError, match="backend nothing: implements no capability"):
        handler_table([Finder(), Nothing()])


def test_duplicate_backend_names_rejected() -> None:
    with pytest.raises(BackendError, match="two backends have this name"):
        handler_table([Finder(), Finder()])


class Looper:
    name = "looper"

    async def run(self) -> None:
        return None


def test_a_backend_with_a_loop_of_its_own_is_listed_for_the_supervisor() -> None:
    f, loop = Finder(), Looper()
    table = handler_table([f, loop])
    assert table.background == (("looper", loop),)
    assert table.capabilities["looper"] == ("background",)
    assert handler_table([f]).background == ()
