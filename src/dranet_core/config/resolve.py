"""From a claim's allocation configs to the one config of a device request.

``status.allocation.devices.config`` lists opaque configs in API order (DeviceClass
configs first, then the claim's), each for a driver and for some or all requests.
:func:`configs_for_request` keeps those for this driver and request, decodes and validates
each (issue paths ``config[i].parameters...`` with ``i`` the index in the given list), and
:func:`resolve_config` goes on to merge them (later wins), apply the defaults, and validate
the result, which may break a rule that relates fields set by different entries (``dhcp``
from the class, ``addresses`` from the claim). With a single entry that validation is skipped
(the prepare path's common case): merging one valid config only drops duplicate list entries
and the defaults only fill unset fields with valid values, so the result is valid already
(``tests/config/test_config_resolve.py`` holds every valid example config to that).

:class:`ConfigMemo` is :func:`resolve_config` remembering its answers: claims made from one
ResourceClaimTemplate or DeviceClass carry the same configs, so a node resolves a handful of
distinct configs over and over. It keys an answer by the JSON text of the entries that apply
and hands back the same immutable :class:`NetworkConfig`; a config that fails is resolved
(and reported) again every time.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Sequence

from dranet_core.config.codec import decode_config
from dranet_core.config.defaults import apply_defaults
from dranet_core.config.merge import merge_configs
from dranet_core.config.model import NetworkConfig
from dranet_core.config.validation import config_issues
from dranet_core.errors import ConfigError, ConfigIssue
from dranet_core.types import OpaqueConfig

__all__ = ["ConfigMemo", "configs_for_request", "resolve_config"]


def configs_for_request(
    configs: Sequence[OpaqueConfig], request: str, driver: str
) -> list[tuple[str, NetworkConfig]]:
    """The decoded, validated configs for ``driver`` that apply to ``request``, in API order.

    Each entry is ``(path, config)`` where ``path`` is ``config[i].parameters``, naming the
    entry in the claim's ``status.allocation.devices.config`` list. Entries of other
    drivers, for other requests, or without parameters are skipped. Raises one
    :class:`ConfigError` with the issues of *every* invalid entry.
    """
    out: list[tuple[str, NetworkConfig]] = []
    issues: list[ConfigIssue] = []
    for i, opaque in enumerate(configs):
        if opaque.driver != driver or not opaque.applies_to(request) or opaque.parameters is None:
            continue
        path = f"config[{i}].parameters"
        try:
            cfg = decode_config(opaque.parameters, path=path)
        except ConfigError as exc:
            issues.extend(exc.issues)
            continue
        found = config_issues(cfg, path=path)
        if found:
            issues.extend(found)
        else:
            out.append((path, cfg))
    if issues:
        raise ConfigError(issues)
    return out


def resolve_config(configs: Sequence[OpaqueConfig], request: str, driver: str) -> NetworkConfig:
    """The one effective config of ``request``: select, decode, validate, merge, default, validate.

    An issue found only after merging carries the path inside the merged config with
    ``(after merging config[i], config[j])`` appended to its rule.
    """
    selected = configs_for_request(configs, request, driver)
    merged = apply_defaults(merge_configs([cfg for _, cfg in selected]))
    if len(selected) <= 1:
        return merged  # one valid config (or none) stays valid: see the module doc
    issues = config_issues(merged)
    if issues:
        sources = ", ".join(path.removesuffix(".parameters") for path, _ in selected)
        raise ConfigError([ConfigIssue(i.path, f"{i.rule} (after merging {sources})") for i in issues])
    return merged


class ConfigMemo:
    """``resolve(configs, request, driver)`` with a bounded memo of its successful answers.

    The key is the ordered JSON text of the ``parameters`` of the entries that apply to the
    request for the driver (:func:`configs_for_request`'s selection): two requests whose
    applying entries carry equal parameters in the same order get the same answer, the
    very :class:`NetworkConfig` object (immutable; callers must not mutate its mappings).
    Equal JSON text means equal input to :func:`resolve_config`: it reads parameters as
    JSON (a tuple as a list; a non-string key, which JSON text would turn into a string, is
    refused wherever it appears, so it can never match a field). Parameters given as JSON
    text (``str``/``bytes``) are keyed by that text. A parameter value JSON cannot encode
    bypasses the memo. Errors are not remembered: every call with a bad config raises anew.

    The memo keeps the ``size`` most recently used answers (least recently used dropped
    first). ``resolve`` must be a pure function of the selected entries' parameters and
    their order, as :func:`resolve_config` is. :attr:`hits` and :attr:`misses` count calls.
    """

    def __init__(
        self,
        resolve: Callable[[Sequence[OpaqueConfig], str, str], NetworkConfig] = resolve_config,
        *,
        size: int = 256,
    ) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self._resolve = resolve
        self.size = size
        self._memo: OrderedDict[tuple[object, ...], NetworkConfig] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._memo)

    def __call__(self, configs: Sequence[OpaqueConfig], request: str, driver: str) -> NetworkConfig:
        key = _memo_key(configs, request, driver)
        if key is None:
            return self._resolve(configs, request, driver)
        memo = self._memo
        found = memo.get(key)
        if found is not None:
            memo.move_to_end(key)
            self.hits += 1
            return found
        self.misses += 1
        config = self._resolve(configs, request, driver)
        memo[key] = config
        if len(memo) > self.size:
            memo.popitem(last=False)
        return config


def _memo_key(configs: Sequence[OpaqueConfig], request: str, driver: str) -> tuple[object, ...] | None:
    """The applying entries' parameters as text, in order; None when one cannot be encoded."""
    parts: list[object] = []
    for opaque in configs:
        params = opaque.parameters
        if params is None or opaque.driver != driver or not opaque.applies_to(request):
            continue
        if isinstance(params, str | bytes | bytearray):
            parts.append((type(params).__name__, bytes(params) if isinstance(params, bytearray) else params))
            continue
        try:
            parts.append(json.dumps(params, ensure_ascii=False))
        except (TypeError, ValueError):  # not JSON (a set, an object, a cycle): no memo
            return None
    return tuple(parts)
