"""The checkpoint's filesystem read-only or full at every journal write; a checkpoint file
that is hostile (deeply nested, wrong types, symlinks planted where the driver writes).

The journal writes of one pod's life: (1) prepare, (2) ``attaching`` before the move into
the pod, (3) ``attached`` after it, (4) ``detaching`` before the move home, (5) ``prepared``
after it, (6) unprepare. A failing write is one clear error; no device is left in a failed
sandbox, none is stranded, no claim is forgotten while a device is out, and once the disk
is writable again everything proceeds.
"""

from __future__ import annotations

import json
import os
import stat

import pytest
from e2e.faultlib import assert_sound, journal_settled, smoke
from e2e.harness import Cluster, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.socket, pytest.mark.slow]

CONFIG = {"interface": {"name": "net1", "addresses": ["192.168.41.2/24"]}}


def _phase(c: Cluster, device: str) -> str | None:
    phase: str | None = c.driver.journal().get(device, {}).get("phase")
    return phase


@pytest.mark.parametrize("fault", ["ro", "full"])
def test_checkpoint_unwritable_at_the_writes_of_an_attach(fresh_cluster: Cluster, fault: str) -> None:
    c = fresh_cluster
    c.private_state()
    c.start("--debug-hold-after=attaching:3s")
    dev = c.node.veth(addrs=["10.94.0.2/24"])

    # (1) prepare
    claim = c.claim([dev], config=CONFIG)
    pod = c.new_pod([claim])
    c.state_fault(fault)
    res = c.prepare(claim)
    assert res.error != "", "prepare succeeded without a checkpoint write"
    assert "checkpoint" in res.error.lower(), res.error
    c.state_fault("ok")
    assert c.prepare(claim).error == "", c.log()

    # (2) attaching: nothing is moved
    c.state_fault(fault)
    res = c.run_sandbox(pod)
    assert res.code != 0
    assert pod.links() == ["lo"]
    c.assert_home(dev)
    c.state_fault("ok")

    # (3) attached: the move happened, the write after it fails -> rolled back home
    run = c.loop.run_later(c.session.run_pod_sandbox(pod.sandbox))
    wait_for("attaching", lambda: _phase(c, claim.devices[0]) == "attaching", log=c.log)
    c.state_fault(fault)
    res = run.result(60)
    assert res.code != 0, "RunPodSandbox succeeded without its journal write"
    assert pod.links() == ["lo"], f"device left in the failed sandbox\n{c.log()}"
    c.assert_home(dev)
    c.state_fault("ok")
    assert c.run_sandbox(pod).code == 0, c.log()  # the retry works
    assert pod.link("net1") is not None

    # (6) unprepare of another, idle claim: refused while the write fails, kept
    spare = c.node.veth()
    idle = c.claim([spare])
    c.new_pod([idle])
    assert c.prepare(idle).error == ""
    c.state_fault(fault)
    res = c.unprepare(idle)
    assert res.error != ""
    c.state_fault("ok")
    assert idle.uid in c.driver.claim_uids()
    assert c.unprepare(idle).error == ""
    c.assert_forgotten(idle)

    c.delete_pod(pod)
    assert_sound(c, dev)


@pytest.mark.parametrize("fault", ["ro", "full"])
def test_checkpoint_unwritable_at_the_writes_of_a_detach(fresh_cluster: Cluster, fault: str) -> None:
    c = fresh_cluster
    c.private_state()
    c.start("--debug-hold-after=detaching:3s")
    dev = c.node.veth(addrs=["10.95.0.2/24"])
    claim = c.claim([dev], config=CONFIG)
    pod = c.create_pod([claim])

    # (4) detaching: nothing is moved, the device stays in the running pod
    c.state_fault(fault)
    res = c.stop_sandbox(pod)
    c.state_fault("ok")
    if res.code != 0:
        assert pod.link("net1") is not None
        assert _phase(c, claim.devices[0]) == "attached"
        res = c.stop_sandbox(pod)  # the runtime's retry
    assert res.code == 0, c.log()
    c.assert_home(dev)

    # (5) prepared after the move home: the device is home, the journal catches up
    assert c.run_sandbox(pod).code == 0, c.log()
    stop = c.loop.run_later(c.session.stop_pod_sandbox(pod.sandbox))
    wait_for("detaching", lambda: _phase(c, claim.devices[0]) == "detaching", log=c.log)
    c.state_fault(fault)
    stop.result(60)
    c.state_fault("ok")
    c.assert_home(dev)
    assert claim.uid in c.driver.claim_uids()  # not forgotten
    assert c.remove_sandbox(pod).code == 0
    res = c.unprepare(claim)
    assert res.error == "", c.log()
    c.assert_forgotten(claim)
    c.forget_pod(pod)
    journal_settled(c)
    smoke(c)


def test_a_deeply_nested_checkpoint_is_set_aside_and_the_driver_starts(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    c.driver.db.parent.mkdir(parents=True)
    c.driver.db.write_text("[" * 100000 + "]" * 100000)
    c.start()
    aside = [p.name for p in c.driver.db.parent.iterdir() if p.name.startswith("dranet.db.corrupt")]
    assert len(aside) == 1, (aside, c.log())
    assert "Traceback" not in c.driver.log_all()
    assert_sound(c)


def test_a_checkpoint_entry_of_the_wrong_shape_is_set_aside_alone(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    c.start()
    good_dev = c.node.veth()
    bad_dev = c.node.veth()
    good = c.claim([good_dev])
    bad = c.claim([bad_dev])
    pod_good = c.new_pod([good])
    pod_bad = c.create_pod([bad])
    assert c.prepare(good).error == ""
    c.crash()
    doc = json.loads(c.driver.db.read_text())
    entry = doc["claims"][bad.uid]["devices"][bad.devices[0]]
    entry["phase"] = "detaching"
    entry["snapshot"] = "not a snapshot"
    c.driver.db.write_text(json.dumps(doc))
    c.runtime.sync_pods = []
    c.start()
    journal_settled(c)  # nothing stuck in detaching forever
    assert good.uid in c.driver.claim_uids(), "the sound claim was thrown away with the bad one"
    assert "Traceback" not in c.driver.log_all()
    assert "missing 1 required keyword-only argument" not in c.driver.log_all()
    c.forget_pod(pod_bad)
    pod_good = c.new_sandbox(pod_good)
    assert c.run_sandbox(pod_good).code == 0, c.log()
    c.delete_pod(pod_good)
    assert_sound(c, good_dev)


def test_a_symlink_at_the_instance_lock_is_replaced_and_not_followed(fresh_cluster: Cluster) -> None:
    """A symlink planted at instance.lock is never written through: the driver replaces it
    with its own lock file (the directory is its own), says so in one line, and serves."""
    c = fresh_cluster
    victim = c.tmp / "victim-lock"
    victim.write_text("untouched\n")
    lock = c.driver.root / "plugins" / "dra.net" / "instance.lock"
    lock.parent.mkdir(parents=True)
    lock.symlink_to(victim)
    c.start()
    assert victim.read_text() == "untouched\n"
    assert lock.exists() and not lock.is_symlink()
    text = c.driver.log_all()
    assert "instance.lock is a symbolic link" in text and "Traceback" not in text, text
    c.assert_serving()


def test_a_symlink_at_the_checkpoint_temp_file_is_not_followed(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    victim = c.tmp / "victim-db"
    victim.write_text("untouched\n")
    c.start()
    assert c.driver.proc is not None
    tmp = c.driver.db.parent / f".{c.driver.db.name}.tmp-{c.driver.proc.pid}"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.symlink_to(victim)
    dev = c.node.veth()
    claim = c.claim([dev])
    c.new_pod([claim])
    c.prepare(claim)  # a journal write
    assert victim.read_text() == "untouched\n"
    assert not c.driver.db.is_symlink()
    c.assert_serving()


def test_a_missing_checkpoint_directory_is_not_created_world_writable(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    c.driver.db = c.tmp / "new" / "deeper" / "dranet.db"
    c.driver.wrap = ["sh", "-c", 'umask 0 && exec "$@"', "sh"]
    c.start()
    dev = c.node.veth()
    claim = c.claim([dev])
    c.new_pod([claim])
    assert c.prepare(claim).error == ""
    for d in (c.driver.db.parent, c.driver.db.parent.parent):
        mode = stat.S_IMODE(os.stat(d).st_mode)
        assert not mode & stat.S_IWOTH, f"{d} is {oct(mode)}"
    mode = stat.S_IMODE(os.stat(c.driver.db).st_mode)
    assert not mode & stat.S_IWOTH, f"{c.driver.db} is {oct(mode)}"
