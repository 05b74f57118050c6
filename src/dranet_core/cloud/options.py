"""``--cloud-provider-options``: ``<provider>.<option>=<value>`` pairs, checked before anything starts.

Each flag occurrence is one pair; the value may contain ``=`` and ``,``. Spaces around the key
and the value are dropped and empty occurrences skipped, as the Go driver does. The provider
part is lower case and must be a provider that defines options; the option must be one of
that provider's, with a valid value. :func:`parse_provider_options` raises
:class:`~dranet_core.errors.SettingsError` (one line, naming the flag) otherwise, and
:func:`check_hint` refuses options for a provider other than an explicit
``--cloud-provider-hint``.

The options defined, with the Go driver's names and rules:

* ``oke.rdma-child-ipv4-cidr``: the IPv4 range of the Go driver's ``oke-rdma`` profile
  children; a network address with a prefix length from 8 to 30 that overlaps none of
  ``0.0.0.0/8``, loopback, link-local, multicast or the reserved ``240.0.0.0/4``. This
  driver has no ``oke-rdma`` profile, so the option is checked and then only reported
  (:func:`warn_unused_options`): it changes nothing.

When auto-detection picks another provider than options are set for, those options are
ignored with one warning, as in the Go driver.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterable, Mapping

from dranet_core.errors import SettingsError

__all__ = ["OPTION_RULES", "check_hint", "parse_provider_options", "warn_unused_options"]

ProviderOptions = dict[str, dict[str, str]]
"""Lower-case provider (``oke``) -> option name -> value."""

log = logging.getLogger("dranet_core.cloud")

_FLAG = "--cloud-provider-options"
_FORBIDDEN = tuple(
    ipaddress.IPv4Network(n)
    for n in ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4")
)


def _child_cidr(value: str) -> None:
    try:
        net = ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"want an IPv4 network such as 10.208.0.0/12, got {value!r} ({exc})") from None
    if not 8 <= net.prefixlen <= 30:
        raise ValueError(f"the prefix length must be from 8 to 30, got {value!r}")
    for bad in _FORBIDDEN:
        if net.overlaps(bad):
            raise ValueError(f"{value} overlaps the reserved range {bad}")


OPTION_RULES: Mapping[str, Mapping[str, Callable[[str], None]]] = {
    "oke": {"rdma-child-ipv4-cidr": _child_cidr},
}
"""Provider -> option -> a check that raises ValueError with the reason."""


def _split(pairs: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        if pair == "":
            continue
        key, sep, value = pair.partition("=")
        if not sep:
            raise SettingsError(f"{_FLAG}: {pair!r} is not a <provider>.<option>=<value> pair")
        key, value = key.strip(), value.strip()
        provider, dot, name = key.partition(".")
        if not dot or not provider or not name:
            raise SettingsError(f"{_FLAG}: the key {key!r} must have the form <provider>.<option>")
        if key in out:
            raise SettingsError(f"{_FLAG}: {key} is given twice")
        out[key] = value
    return out


def parse_provider_options(pairs: Iterable[str]) -> ProviderOptions:
    """The checked options, by provider; SettingsError naming the first bad pair (sorted)."""
    result: ProviderOptions = {}
    for key, value in sorted(_split(pairs).items()):
        provider, _, name = key.partition(".")
        rules = OPTION_RULES.get(provider)
        if rules is None:
            known = ", ".join(f"{p}.{o}" for p in sorted(OPTION_RULES) for o in sorted(OPTION_RULES[p]))
            raise SettingsError(
                f"{_FLAG}: provider {provider} defines no options, got {key!r} (known: {known})"
            )
        rule = rules.get(name)
        if rule is None:
            raise SettingsError(
                f"{_FLAG}: {provider} has no option {name!r} (options: {', '.join(sorted(rules))})"
            )
        try:
            rule(value)
        except ValueError as exc:
            raise SettingsError(f"{_FLAG}: {key}: {exc}") from None
        result.setdefault(provider, {})[name] = value
    return result


def check_hint(options: Mapping[str, Mapping[str, str]], hint: str) -> None:
    """SettingsError when an explicit ``hint`` names another provider than options are set for
    (those options would configure nothing); an empty hint (auto-detection) passes."""
    if not hint.strip():
        return
    for provider in sorted(options):
        if provider != hint.strip().lower():
            raise SettingsError(f"{_FLAG}: sets {provider}.* options, but --cloud-provider-hint is {hint!r}")


NOT_IMPLEMENTED: Mapping[str, str] = {
    "oke.rdma-child-ipv4-cidr": "it sets the range of the oke-rdma profile, which this driver does not have",
}
"""Options accepted and checked for compatibility that configure nothing here, and why."""


def warn_unused_options(options: Mapping[str, Mapping[str, str]], hint: str) -> None:
    """One warning per provider whose options configure nothing with provider ``hint``, and
    one per option of ``hint`` this driver accepts but does not implement."""
    running = hint.strip().lower()
    for provider in sorted(options):
        if provider != running:
            log.warning(
                "%s: ignoring the %s.* options, because the cloud provider is %s", _FLAG, provider, hint
            )
            continue
        for name, value in sorted(options[provider].items()):
            why = NOT_IMPLEMENTED.get(f"{provider}.{name}")
            if why:
                log.warning("%s: %s.%s=%s is accepted but ignored: %s", _FLAG, provider, name, value, why)
