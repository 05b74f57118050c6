"""The one error tree of dranet.

Every exception that dranet code raises on purpose is defined here, so that callers match on
*kinds*, never on strings. Foreign exceptions (``OSError``, ``NetlinkError``, aiohttp and
kubernetes-asyncio errors) are translated at the boundary where they enter our code, always
with ``raise ... from exc`` so the cause survives.

The tree::

    DranetError
    ├── ProtocolError                  (abstract: raise Local or Remote)
    │   ├── LocalProtocolError         we were about to break the protocol
    │   └── RemoteProtocolError        the peer broke it (garbled, oversized, out of order)
    ├── RpcError                       a status returned by a peer or to be returned to it
    ├── ConfigError                    a claim configuration is invalid; carries the JSON path
    ├── DeviceError                    a device operation failed; names device and step
    │   └── DeviceNotFoundError
    ├── ClaimError                     a claim cannot be prepared (per claim, never per call)
    ├── CheckpointError                the checkpoint file is unreadable or of unknown version
    ├── BackendError                   a backend failed to load or is unusable
    ├── AlreadyRunningError            another instance holds our sockets / lock
    ├── SettingsError                  an invalid flag or setting
    └── KubeApiError                   a Kubernetes API request failed (HTTP status, temporary?)

Independently of the tree, an error is *temporary* (retrying later may succeed: the API server
is down, a netns is busy) or *permanent* (retrying cannot help: the config is invalid). The
attribute ``temporary`` says which; :class:`TemporaryError` and :class:`PermanentError` are
mix-ins that set it, and ``delay`` on a temporary error is a hint in seconds for the retry.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AlreadyRunningError",
    "BackendError",
    "CheckpointError",
    "ClaimError",
    "ClaimReadError",
    "ConfigError",
    "ConfigIssue",
    "DeviceError",
    "DeviceNotFoundError",
    "DranetError",
    "JobFailed",
    "LocalProtocolError",
    "PermanentError",
    "ProtocolError",
    "RemoteProtocolError",
    "RpcError",
    "SettingsError",
    "KubeApiError",
    "TemporaryError",
]


class DranetError(Exception):
    """Base of every error dranet raises on purpose.

    ``temporary`` tells a retry policy whether trying again later may succeed.
    """

    temporary: bool = False


class TemporaryError(DranetError):
    """Mix-in: retrying after ``delay`` seconds may succeed."""

    temporary = True

    def __init__(self, *args: object, delay: float = 1.0) -> None:
        super().__init__(*args)
        self.delay = delay


class PermanentError(DranetError):
    """Mix-in: retrying cannot succeed without a change of input."""

    temporary = False


class ProtocolError(DranetError):
    """A wire protocol was broken. Abstract: raise one of the two subclasses.

    ``limit`` names the limit that was broken when there is one (e.g. ``"ttrpc max message
    size 4194304"``), so logs and tests can tell which rule fired.
    """

    def __new__(cls, *args: object, **kwargs: object) -> ProtocolError:
        if cls is ProtocolError:
            raise TypeError("ProtocolError is abstract; use LocalProtocolError or RemoteProtocolError")
        return super().__new__(cls, *args)

    def __init__(self, message: str, *, limit: str | None = None) -> None:
        super().__init__(message)
        self.limit = limit


class LocalProtocolError(ProtocolError):
    """We were about to send something the protocol does not allow."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow."""


class RpcError(DranetError):
    """An RPC status: ``code`` is a gRPC status code (0 OK ... 16 UNAUTHENTICATED).

    Raised by a ttrpc client when the peer answers with a non-OK status, and raised by a
    handler to make the server answer with that status.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"rpc error {code}: {message}")
        self.code = code
        self.message = message


class ConfigIssue:
    """One problem in a configuration: the JSON path of the field and the broken rule."""

    __slots__ = ("path", "rule")

    def __init__(self, path: str, rule: str) -> None:
        self.path = path
        self.rule = rule

    def __str__(self) -> str:
        return f"{self.path}: {self.rule}" if self.path else self.rule

    def __repr__(self) -> str:
        return f"ConfigIssue(path={self.path!r}, rule={self.rule!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConfigIssue) and (self.path, self.rule) == (other.path, other.rule)

    def __hash__(self) -> int:
        return hash((self.path, self.rule))


class ConfigError(PermanentError):
    """A claim configuration is invalid. Carries every issue found, each with its JSON path.

    ``str(err)`` joins them, e.g. ``interface.mtu: must be >= 68, got 40``.
    """

    def __init__(self, issues: Sequence[ConfigIssue] | str, *, path: str = "") -> None:
        if isinstance(issues, str):
            issues = [ConfigIssue(path, issues)]
        self.issues: tuple[ConfigIssue, ...] = tuple(issues)
        super().__init__("; ".join(str(i) for i in self.issues))

    def prefixed(self, prefix: str) -> ConfigError:
        """The same issues with ``prefix`` prepended to every path (e.g. ``config[1]``)."""
        return ConfigError(
            [ConfigIssue(f"{prefix}.{i.path}" if i.path else prefix, i.rule) for i in self.issues]
        )


class DeviceError(DranetError):
    """A device operation failed. Names the device and the step, and keeps the cause."""

    def __init__(self, device: str, step: str, reason: str, *, temporary: bool = False) -> None:
        super().__init__(f"device {device}: {step}: {reason}")
        self.device = device
        self.step = step
        self.reason = reason
        self.temporary = temporary


class DeviceNotFoundError(DeviceError):
    """The device is not (or no longer) on this node."""


class ClaimError(PermanentError):
    """A claim cannot be prepared; reported in that claim's entry of the kubelet response."""

    def __init__(self, claim: str, reason: str) -> None:
        super().__init__(f"claim {claim}: {reason}")
        self.claim = claim
        self.reason = reason


class ClaimReadError(ClaimError):
    """The claim could not be read from the API server; the message names the claim by
    namespace/name (``reading claim ns/name: <reason>``)."""

    def __init__(self, namespace: str, name: str, reason: str) -> None:
        super().__init__(f"{namespace}/{name}", reason)
        self.args = (f"reading claim {namespace}/{name}: {reason}",)


class CheckpointError(DranetError):
    """The checkpoint is corrupt, truncated or of a version this code does not know."""


class BackendError(DranetError):
    """A backend failed to load or cannot run here; names the backend."""

    def __init__(self, backend: str, reason: str) -> None:
        super().__init__(f"backend {backend}: {reason}")
        self.backend = backend
        self.reason = reason


class SettingsError(PermanentError):
    """An invalid setting or flag value; names the setting."""


class AlreadyRunningError(PermanentError):
    """Another instance of the driver is running on this node (holds the socket lock)."""


class KubeApiError(DranetError):
    """A Kubernetes API request failed. ``status`` is the HTTP status (0: no response, the
    server is unreachable); ``temporary`` says whether retrying later may succeed (5xx, 429,
    timeouts, connection errors) or not (422 Invalid, 400)."""

    def __init__(self, operation: str, status: int, reason: str, *, temporary: bool) -> None:
        super().__init__(f"{operation}: {status or 'unreachable'}: {reason}")
        self.operation = operation
        self.status = status
        self.reason = reason
        self.temporary = temporary


class JobFailed(DranetError):
    """A supervised job failed with an error that retrying cannot fix; the driver stops with it."""

    def __init__(self, job: str, cause: BaseException) -> None:
        super().__init__(f"{job}: {type(cause).__name__}: {cause}")
        self.job = job
        self.cause = cause
