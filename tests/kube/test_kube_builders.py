"""Pure builders: claim status bodies (limits, transition times) and the event limiter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fakeapi import validate_claim_status

from dranet_core.kube.claimstatus import TransitionTimes, claim_status_body, normalize_ip
from dranet_core.kube.events import EventLimiter
from dranet_core.status import EventRecord
from dranet_core.types import ClaimRef, Condition, DeviceStatus, NetworkData

CLAIM = ClaimRef(namespace="ns", name="c", uid="u1")


class Clock:
    def __init__(self) -> None:
        self.t = datetime(2026, 1, 1, tzinfo=UTC)
        self.mono = 0.0

    def now(self) -> datetime:
        return self.t

    def monotonic(self) -> float:
        return self.mono


def status(ready: str = "True", **nd: object) -> DeviceStatus:
    return DeviceStatus(
        driver="dra.net",
        pool="node-a",
        device="eth1",
        conditions=(Condition(type="Ready", status=ready, reason="NetworkDeviceReady"),),
        network_data=NetworkData(**nd) if nd else None,
    )  # type: ignore[arg-type]


def test_transition_time_changes_only_with_status() -> None:
    clock = Clock()
    times = TransitionTimes(now=clock.now)
    first, _ = claim_status_body(CLAIM, [status()], times=times)
    clock.t += timedelta(minutes=5)
    same, _ = claim_status_body(CLAIM, [status()], times=times)
    flipped, _ = claim_status_body(CLAIM, [status("False")], times=times)

    def stamp(body: dict) -> object:  # type: ignore[type-arg]
        return body["status"]["devices"][0]["conditions"][0]["lastTransitionTime"]

    assert stamp(first) == stamp(same) == datetime(2026, 1, 1, tzinfo=UTC).isoformat()
    assert stamp(flipped) == (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=5)).isoformat()
    times.forget("u1")
    clock.t += timedelta(minutes=1)
    again, _ = claim_status_body(CLAIM, [status("False")], times=times)
    assert stamp(again) != stamp(flipped)


def test_limits_are_enforced_with_notes() -> None:
    conds = tuple(Condition(type=f"T{i}", status="True", reason="Ok") for i in range(10))
    bad = (
        Condition(type="Ready", status="Maybe", reason="Ok"),
        Condition(type="X", status="True", reason="no spaces"),
    )
    d = DeviceStatus(
        driver="dra.net",
        pool="node-a",
        device="eth1",
        conditions=bad + conds,
        network_data=NetworkData(
            interface_name="x" * 300,
            hardware_address="aa:bb",
            ips=("10.0.0.1", "10.0.0.1/32", "fe80::1", "junk"),
        ),
        data={"blob": "y" * 20000},
    )
    body, notes = claim_status_body(CLAIM, [d], times=TransitionTimes())
    entry = body["status"]["devices"][0]
    assert [c["type"] for c in entry["conditions"]] == [f"T{i}" for i in range(8)]
    assert entry["networkData"] == {"hardwareAddress": "aa:bb", "ips": ["10.0.0.1/32", "fe80::1/128"]}
    assert "data" not in entry
    assert len(notes) == 7 and any("junk" in n for n in notes) and any("interfaceName" in n for n in notes)
    claim = {
        "status": {
            "allocation": {
                "devices": {
                    "results": [{"driver": "dra.net", "pool": "node-a", "device": "eth1", "request": "r"}]
                }
            },
            **body["status"],
        }
    }
    assert validate_claim_status(claim) == []


def test_normalize_ip() -> None:
    assert normalize_ip("192.0.2.5/24") == "192.0.2.5/24"
    assert normalize_ip("192.0.2.5") == "192.0.2.5/32"
    assert normalize_ip("2001:db8::5") == "2001:db8::5/128"
    assert normalize_ip("300.1.1.1") is None and normalize_ip("") is None


def test_event_limiter_refills_and_dedupes() -> None:
    clock = Clock()
    lim = EventLimiter(burst=2, refill_seconds=10, dedupe_seconds=100, clock=clock.monotonic)

    def ev(msg: str, uid: str = "p1") -> EventRecord:
        return EventRecord(
            kind="Pod", namespace="n", name="p", uid=uid, type="Warning", reason="R", message=msg
        )

    assert [lim.allow(ev(f"m{i}")) for i in range(4)] == [True, True, False, False]
    assert lim.allow(ev("other", uid="p2"))  # buckets are per object
    clock.mono += 10
    assert lim.allow(ev("m9")) and not lim.allow(ev("m10"))
    assert not lim.allow(ev("m0"))  # identical to one sent 10 s ago: de-duplicated
    clock.mono += 1000
    assert lim.allow(ev("m0"))
    assert lim.dropped == 4


def test_transition_times_forget_the_oldest_claims() -> None:
    times = TransitionTimes(max_claims=3)
    cond = Condition(type="Ready", status="True", reason="R")
    for uid in ("a", "b", "c", "d"):
        times.time_for(uid, "dev", cond)
    assert list(times._seen) == ["b", "c", "d"]
