"""The default Allocator: pure claim planning plus the checkpoint.

:func:`plan_claim` is the whole decision, a pure function of its inputs: it takes this
driver's allocation results for this node's pool, finds each device in the inventory,
refuses devices already prepared for another claim, refuses what the Go driver refuses
(more than one pod in ``reservedFor``, non-pod consumers), resolves
the configuration of each device's requests and runs the backends' config validators.

Shared devices: an allocation result with a share ID (the device was published with
``allowMultipleAllocations``) may share its device with other claims' shared results, never
with an exclusive one; its config must have a ``subinterface`` section (a shared device is
never moved into one pod: each claim gets its own child of it). A ``subinterface`` section
on an exclusive result is refused too: the device was not published as shareable.

:class:`ClaimAllocator` implements :class:`~dranet_core.allocation.Allocator` on top of it:
keyed by claim UID (never namespace/name), idempotent (a repeated prepare returns the stored
plan and writes nothing; unprepare of an unknown claim succeeds), calls for the same UID
device reservations taken atomically so two claims racing for one device cannot both win.
It takes no lock and makes no idempotence check of its own: its caller (the
:class:`~dranet_core.dra.preparer.DefaultPreparer`) holds the one per-UID lock and asks
:meth:`ClaimAllocator.get` once (the prepare path has one lock and one check).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import attrs

from dranet_core.capabilities import ResolvesConfig, ValidatesConfig
from dranet_core.checkpoint import ClaimStore
from dranet_core.config import ConfigMemo, resolve_config
from dranet_core.config.merge import merge_configs
from dranet_core.config.model import NetworkConfig
from dranet_core.errors import ClaimError, ConfigError
from dranet_core.names import adopted_uid
from dranet_core.ownership import owned, section_issues
from dranet_core.plans import ClaimPlan, PreparedDevice
from dranet_core.profiles import ProfileProvider
from dranet_core.types import AllocationResult, Claim, ClaimRef, Device, OpaqueConfig

__all__ = [
    "BaselineConfigs",
    "ClaimAllocator",
    "ConfigResolver",
    "default_resolver",
    "plan_claim",
    "resolve_plan",
]

log = logging.getLogger(__name__)

ConfigResolver = Callable[[Sequence[OpaqueConfig], str, str], NetworkConfig]
"""``(configs, request, driver) -> NetworkConfig``: decode, validate, merge and default the
opaque configs that apply to one request; raises ConfigError with JSON paths."""


def default_resolver(configs: Sequence[OpaqueConfig], request: str, driver: str) -> NetworkConfig:
    """:func:`dranet_core.config.resolve_config`: decode, validate, merge and default."""
    return resolve_config(configs, request, driver)


def _consumers(claim: Claim) -> tuple[str, ...]:
    pods: list[str] = []
    for c in claim.reserved_for:
        if not c.is_pod:
            group = c.api_group or "core"
            raise ClaimError(
                str(claim.ref),
                f"reservedFor {group}/{c.resource} {c.name}: only pods can consume this driver's devices",
            )
        if c.uid not in pods:
            pods.append(c.uid)
    return tuple(pods)


def _group(results: Sequence[AllocationResult]) -> list[tuple[AllocationResult, tuple[str, ...]]]:
    """Results grouped by (pool, device, share id), request names in allocation order."""
    order: list[tuple[str, str, str | None]] = []
    first: dict[tuple[str, str, str | None], AllocationResult] = {}
    names: dict[tuple[str, str, str | None], list[str]] = {}
    for r in results:
        key = (r.pool, r.device, r.share_id)
        if key not in first:
            order.append(key)
            first[key] = r
            names[key] = []
        if r.request not in names[key]:
            names[key].append(r.request)
    return [(first[k], tuple(names[k])) for k in order]


def plan_claim(
    claim: Claim,
    inventory: Mapping[str, Device],
    *,
    driver: str,
    pool: str,
    taken: Mapping[str, str],
    shared: Mapping[str, str] | None = None,
    resolve: ConfigResolver = default_resolver,
    validators: Sequence[tuple[str, ValidatesConfig]] = (),
) -> ClaimPlan:
    """Plan ``claim`` against this node's ``inventory`` (device name -> Device).

    ``taken`` maps device names to the UID of the claim they are prepared for exclusively,
    ``shared`` to the UID of a claim they are prepared for with a share ID. Only
    allocation results of ``driver`` in ``pool`` (the node) are considered; a claim with
    none gets a plan with no devices. The configuration of a device is resolved for its
    first request name (a device allocated to several requests gets the configs that apply
    to that one). ``PreparedDevice.facets`` are the inventory device's facets.

    A backend section of the config (``sriov``, ``rdma``) on a device that backend does not own
    is refused here; each validator is asked only for the devices its backend owns.

    Raises ClaimError (device unknown or taken, unsupported consumers) or ConfigError (with
    the JSON path prefixed by the device); never mutates anything.
    """
    uid = claim.ref.uid
    pods = _consumers(claim)
    mine = [r for r in claim.results if r.driver == driver and r.pool == pool]
    grouped = _group(mine)
    exclusive = any(r.share_id is None for r, _ in grouped)
    if grouped and len(pods) > 1:
        raise ClaimError(
            str(claim.ref),
            f"reserved for {len(pods)} pods; "
            + (
                "an exclusive network device can be used by only one pod"
                if exclusive
                else "a subinterface of a shared device lives in one pod: give each pod its own claim"
            ),
        )
    devices: list[PreparedDevice] = []
    for result, requests in grouped:
        dev = inventory.get(result.device)
        if dev is None:
            raise ClaimError(
                str(claim.ref), f"device {result.device} (pool {result.pool}) is not on this node"
            )
        owner = taken.get(result.device)
        if owner is not None and owner != uid:
            raise ClaimError(str(claim.ref), f"device {result.device} is already prepared for claim {owner}")
        sharer = (shared or {}).get(result.device)
        if result.share_id is None and sharer is not None and sharer != uid:
            raise ClaimError(
                str(claim.ref),
                f"device {result.device} is shared with claim {sharer}; it cannot be prepared exclusively",
            )
        try:
            config = resolve(claim.configs, requests[0], driver)
            _check_sharing(result, config)
            issues = section_issues(dev.name, dev.facets, config)
            if issues:
                raise ConfigError(issues)
            for _name, v in owned(validators, dev):
                v.validate_config(dev, config)
        except ConfigError as exc:
            raise exc.prefixed(f"device {result.device}") from exc
        devices.append(
            PreparedDevice(
                pool=result.pool,
                device=result.device,
                request_names=requests,
                config=config,
                facets=dict(dev.facets),
                share_id=result.share_id,
            )
        )
    return ClaimPlan(claim=claim.ref, pods=pods, devices=tuple(devices))


def _check_sharing(result: AllocationResult, config: NetworkConfig) -> None:
    """A shared result needs a ``subinterface``; an exclusive one may not have it."""
    if result.share_id is not None and config.subinterface is None:
        raise ConfigError(
            f"is required for a shared device (allocated with shareID {result.share_id}): "
            "a shared device stays on the host and each claim gets its own child of it",
            path="subinterface",
        )
    if result.share_id is None and config.subinterface is not None:
        raise ConfigError(
            "needs a device published as shareable (allowMultipleAllocations, see the netdev "
            "backend option subinterface_parents); this device was allocated exclusively",
            path="subinterface",
        )


class BaselineConfigs(Protocol):
    """Where a device's baseline config comes from (the webhook cloud provider's
    ``GetDeviceConfig``)."""

    def baseline(self, device: str) -> NetworkConfig | None:
        """The baseline config of ``device``, or None."""
        ...


async def resolve_plan(
    plan: ClaimPlan,
    inventory: Mapping[str, Device],
    resolvers: Sequence[tuple[str, ResolvesConfig]],
    profiles: ProfileProvider | None = None,
    baselines: BaselineConfigs | None = None,
) -> ClaimPlan:
    """``plan`` with each device's config laid over the device's baseline config (when
    ``baselines`` has one: the claim's settings win, its lists come after the baseline's),
    then passed through the profile provider (when the config sets ``profile``) and then the
    resolvers that own the device.

    A ``profile`` without a profile provider fails the claim: a field the driver cannot honour
    is an error naming it, never silently ignored.
    """
    devices = []
    for d in plan.devices:
        dev = inventory.get(d.device)
        config = d.config
        baseline = baselines.baseline(d.device) if baselines is not None else None
        if baseline is not None:
            config = merge_configs([baseline, config])
        if config.profile and profiles is not None and dev is not None:
            config = await profiles.resolve(dev, plan.claim.uid, config)
        elif config.profile:
            raise ConfigError(
                f"profile {config.profile!r} needs a profile provider, and none is configured on this node",
                path=f"device {d.device}.profile",
            )
        if dev is not None:
            for _name, r in owned(resolvers, dev):
                config = await r.resolve_config(dev, config)
        devices.append(d if config is d.config else attrs.evolve(d, config=config))
    return attrs.evolve(plan, devices=tuple(devices))


class ClaimAllocator:
    """The core Allocator: :func:`plan_claim` plus a :class:`ClaimStore` checkpoint.

    ``pool`` is this node's pool name (the node name). ``validators`` and ``resolvers`` are
    ``(backend name, capability)`` pairs, asked only for the devices their backend owns.
    ``resolve`` turns a request's opaque configs into its config; by default
    :func:`~dranet_core.config.resolve_config` behind a :class:`~dranet_core.config.ConfigMemo`
    (claims made from one template resolve their shared config once).
    """

    def __init__(
        self,
        driver_name: str,
        pool: str,
        store: ClaimStore,
        *,
        validators: Sequence[tuple[str, ValidatesConfig]] = (),
        resolve: ConfigResolver | None = None,
        resolvers: Sequence[tuple[str, ResolvesConfig]] = (),
        profiles: ProfileProvider | None = None,
        baselines: BaselineConfigs | None = None,
    ) -> None:
        self.driver_name = driver_name
        self.pool = pool
        self.store = store
        self._validators = tuple(validators)
        self._resolve: ConfigResolver = ConfigMemo(resolve_config) if resolve is None else resolve
        self._resolvers = tuple(resolvers)
        self._profiles = profiles
        self.baselines = baselines
        """Where baseline configs come from (set at start once the cloud provider is known)."""
        # (device, claim uid) -> shared?, for plans not yet in the store
        self._reserved: dict[tuple[str, str], bool] = {}

    def taken(self) -> dict[str, str]:
        """Device name -> UID of the claim it is prepared (or being prepared) for exclusively."""
        return self._holders(shared=False)

    def shared(self) -> dict[str, str]:
        """Device name -> UID of a claim it is prepared (or being prepared) for with a share ID."""
        return self._holders(shared=True)

    def _holders(self, *, shared: bool) -> dict[str, str]:
        out = {
            d.device: uid
            for uid, pc in self.store.claims().items()
            for d in pc.plan.devices
            if (d.share_id is not None) == shared
        }
        out.update({dev: uid for (dev, uid), sh in self._reserved.items() if sh == shared})
        return out

    def get(self, uid: str) -> ClaimPlan | None:
        """The plan of prepared claim ``uid``, or None (one dict lookup)."""
        pc = self.store.get(uid)
        return None if pc is None else pc.plan

    async def prepare(self, claim: Claim, inventory: Mapping[str, Device]) -> ClaimPlan:
        """Plan and record ``claim``. The caller serialises calls for one UID and answers a
        repeat from :meth:`get` (a prepare of a recorded UID plans it again and replaces it)."""
        uid = claim.ref.uid
        # No await between planning and reserving: two claims cannot both take a device.
        plan = plan_claim(
            claim,
            inventory,
            driver=self.driver_name,
            pool=self.pool,
            taken=self.taken(),
            shared=self.shared(),
            resolve=self._resolve,
            validators=self._validators,
        )
        for d in plan.devices:
            self._reserved[(d.device, uid)] = d.share_id is not None
        try:
            plan = await resolve_plan(plan, inventory, self._resolvers, self._profiles, self.baselines)
            await self.store.put_plan(plan)
        finally:
            for d in plan.devices:
                self._reserved.pop((d.device, uid), None)
        if log.isEnabledFor(logging.INFO):  # the lists are built only when logged
            log.info(
                "claim %s prepared: devices %s for pods %s",
                claim.ref,
                [d.device for d in plan.devices],
                list(plan.pods),
            )
        return plan

    async def unprepare(self, claim: ClaimRef) -> ClaimPlan | None:
        """Forget ``claim`` (by UID); returns its plan, or None if it was not prepared.

        A claim this driver did not prepare may have been adopted from the Go driver's
        checkpoint, which recorded no UID: it is then forgotten by namespace and name.
        """
        old = await self.store.remove(claim.uid)
        if old is None:
            old = await self.store.remove(adopted_uid(claim.namespace, claim.name))
        if old is not None:
            log.info("claim %s unprepared", claim)
        return None if old is None else old.plan
