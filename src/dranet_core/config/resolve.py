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
"""

from __future__ import annotations

from collections.abc import Sequence

from dranet_core.config.codec import decode_config
from dranet_core.config.defaults import apply_defaults
from dranet_core.config.merge import merge_configs
from dranet_core.config.model import NetworkConfig
from dranet_core.config.validation import config_issues
from dranet_core.errors import ConfigError, ConfigIssue
from dranet_core.types import OpaqueConfig

__all__ = ["configs_for_request", "resolve_config"]


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
