"""Blocking file operations on the metadata files and CDI specs (run them in a worker thread).

Every write is atomic: a temporary file in the same directory (a hidden name ending in
``.tmp``, so a runtime scanning the CDI directory for ``*.json`` never sees it), then a
rename over the target; a reader sees the old file or the new one, never half of one.
Files are 0644 and directories 0755 whatever the umask (the runtime and the containers
read them). No fsync: the files are rebuilt from the checkpoint after a crash, and a node
reboot restarts every pod anyway.

Removal (:func:`remove_claim`, :func:`sweep`) touches only what this driver wrote: request
directories whose file names the claim's UID (or is unreadable), CDI specs named with this
driver's prefix (the start-up sweep only those that mount a file of this instance's metadata
directory), and leftover temporary files.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Set
from pathlib import Path
from typing import Any

from dranet_core.metadata.document import METADATA_FILE, MetadataLayout
from dranet_core.metadata.reader import parse_device_metadata
from dranet_core.types import JSON, ClaimRef

__all__ = ["read_current", "remove_claim", "sweep", "write_atomic", "write_json_atomic"]

FILE_MODE = 0o644
DIR_MODE = 0o755


def make_dirs(path: Path) -> None:
    """Create ``path`` and missing parents with mode 0755 (existing ones are left alone)."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            d.mkdir(mode=DIR_MODE)
            os.chmod(d, DIR_MODE)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (temp file in the same directory, rename)."""
    make_dirs(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json_atomic(path: Path, value: JSON) -> None:
    """:func:`write_atomic` of ``value`` as indented JSON (the CDI specs)."""
    write_atomic(path, (json.dumps(value, indent=2) + "\n").encode())


def read_json(path: Path) -> Any:
    """The JSON in ``path``; None if it is missing or not JSON."""
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except ValueError:
        return None


def read_current(path: Path) -> dict[str, Any] | None:
    """The first object of the metadata stream at ``path``; None if missing or unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        doc = parse_device_metadata(text)
    except ValueError:
        return None
    meta = doc.get("metadata")
    if not isinstance(meta, dict) or not isinstance(doc.get("requests"), list):
        return None
    return doc


def owner_uid(doc: Mapping[str, Any] | None) -> str | None:
    """The claim UID a metadata object names (None for None)."""
    if doc is None:
        return None
    uid = doc["metadata"].get("uid")
    return uid if isinstance(uid, str) else None


def _remove(path: Path, removed: list[Path]) -> None:
    """Remove a file, a symlink or a directory tree; missing is fine."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        return
    removed.append(path)


def _rmdir_if_empty(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError, OSError):
        path.rmdir()


def _is_temp(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def remove_claim(layout: MetadataLayout, ref: ClaimRef, requests: Set[str] | None = None) -> list[Path]:
    """Remove the claim's request directories and CDI specs; returns what was removed.

    A request directory holding the file of another claim of the same namespace/name (a
    claim deleted and re-created) is left alone; one without a readable file is removed
    only if it is one of ``requests`` (the claim's base requests; None: any). Raises OSError
    when removal fails.
    """
    removed: list[Path] = []
    cdir = layout.claim_dir(ref)
    if cdir.is_dir() and not cdir.is_symlink():
        for sub in cdir.iterdir():
            if sub.is_dir() and not sub.is_symlink():
                uid = owner_uid(read_current(sub / METADATA_FILE))
                if uid != ref.uid and (
                    uid is not None or (requests is not None and sub.name not in requests)
                ):
                    continue
            _remove(sub, removed)
        _rmdir_if_empty(cdir)
    elif cdir.is_symlink():
        _remove(cdir, removed)
    if layout.cdi_dir.is_dir():
        mine = f"{layout.cdi_prefix}{ref.uid}_"
        for spec in layout.cdi_dir.iterdir():
            if spec.name.startswith(mine) or spec.name.startswith("." + mine):
                _remove(spec, removed)
    return removed


def sweep(layout: MetadataLayout, keep: Mapping[str, tuple[ClaimRef, Set[str]]]) -> list[Path]:
    """Remove every file of this driver that no claim in ``keep`` owns; returns what was removed.

    ``keep`` maps claim UID -> (claim, its base request names). Kept: a request directory
    whose file names a kept claim and one of its requests, and the CDI spec of such a
    request. Removed: everything else below the metadata directory, this driver's other
    metadata CDI specs, and leftover temporary files.
    """
    removed: list[Path] = []
    by_name: dict[tuple[str, str], dict[str, Set[str]]] = {}
    for uid, (ref, requests) in keep.items():
        by_name.setdefault((ref.namespace, ref.name), {})[uid] = requests
    if layout.data_dir.is_dir():
        for entry in layout.data_dir.iterdir():
            ns, _, name = entry.name.partition("_")
            owners = by_name.get((ns, name))
            if owners is None or not entry.is_dir() or entry.is_symlink():
                _remove(entry, removed)
                continue
            for sub in entry.iterdir():
                _sweep_request(sub, owners, removed)
            _rmdir_if_empty(entry)
    if layout.cdi_dir.is_dir():
        prefix = layout.cdi_prefix
        for spec in layout.cdi_dir.iterdir():
            if not spec.name.startswith((prefix, "." + prefix)) or not _mounts_from(spec, layout.data_dir):
                continue  # not ours, or another instance's (another kubelet root)
            if _is_temp(spec.name):
                _remove(spec, removed)
            elif spec.name.endswith(".json"):
                uid, _, request = spec.name[len(prefix) : -len(".json")].partition("_")
                if uid not in keep or request not in keep[uid][1]:
                    _remove(spec, removed)
    return removed


def _mounts_from(spec: Path, data_dir: Path) -> bool:
    """Whether the CDI spec at ``spec`` mounts a file below ``data_dir`` (so this instance
    wrote it). A driver with another kubelet root (a test, ``dranet demo``) may share the CDI
    directory; its specs are not ours to remove. An unreadable spec is not ours either."""
    doc = read_json(spec)
    if not isinstance(doc, dict):
        return False
    for dev in doc.get("devices") or []:
        edits = dev.get("containerEdits") if isinstance(dev, dict) else None
        for mount in (edits or {}).get("mounts") or []:
            host = mount.get("hostPath") if isinstance(mount, dict) else None
            if isinstance(host, str) and Path(host).is_relative_to(data_dir):
                return True
    return False


def _sweep_request(sub: Path, owners: Mapping[str, Set[str]], removed: list[Path]) -> None:
    if not sub.is_dir() or sub.is_symlink():
        _remove(sub, removed)
        return
    uid = owner_uid(read_current(sub / METADATA_FILE))
    if uid is None or uid not in owners or sub.name not in owners[uid]:
        _remove(sub, removed)
        return
    for f in sub.iterdir():
        if f.name != METADATA_FILE:
            _remove(f, removed)
