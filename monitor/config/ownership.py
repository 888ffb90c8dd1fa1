"""Which cameras this daemon runs, when several daemons share one database and one broker.

Every daemon reads the same camera list; ``[daemon] cameras`` (explicit names) or ``[daemon]
shard = "i/n"`` (a stable hash of each camera's name) says which of them are its own. Neither:
all of them. The hash is SHA-256, not Python's ``hash()`` (salted per process): every daemon,
on every machine and every start, puts a camera in the same shard, so its events, open-event
reconciliation and retained topics stay with one daemon.

The environment can set the three keys that differ between instances of one systemd template
unit (``monitor@.service``), so one config file serves them all: ``MONITOR_INSTANCE``,
``MONITOR_SHARD`` and ``MONITOR_CAMERAS`` (comma-separated names) replace ``[daemon]
instance``, ``shard`` and ``cameras``.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

SHARD_COUNT_MAX = 1024

# Environment variable -> the [daemon] key it replaces.
ENVIRONMENT_KEYS = {
    "MONITOR_INSTANCE": "instance",
    "MONITOR_SHARD": "shard",
    "MONITOR_CAMERAS": "cameras",
}

_SHARD = re.compile(r"^\s*(\d{1,4})\s*/\s*(\d{1,4})\s*$")


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` of ``count``: the cameras whose name hashes to ``index`` modulo ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= SHARD_COUNT_MAX:
            raise ValueError(f"shard count {self.count}: from 1 to {SHARD_COUNT_MAX}")
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard index {self.index}: from 0 to {self.count - 1} of {self.count}")

    def owns(self, camera: str) -> bool:
        return camera_shard(camera, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def camera_shard(camera: str, count: int) -> int:
    """The shard (0 .. count-1) a camera name falls in, the same in every process."""
    digest = hashlib.sha256(camera.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def parse_shard(text: str) -> Shard:
    """``"i/n"`` -> Shard(i, n). Raises ValueError naming what is wrong."""
    match = _SHARD.match(text)
    if match is None:
        raise ValueError(f"{text[:40]!r} is not a shard: write \"i/n\", e.g. \"0/2\" for the "
                         "first of two daemons")
    return Shard(int(match[1]), int(match[2]))


@dataclass(frozen=True, slots=True)
class Ownership:
    """The cameras one daemon runs: ``names`` (explicit), else ``shard``, else every camera."""

    names: frozenset[str] | None = None
    shard: Shard | None = None

    def owns(self, camera: str) -> bool:
        if self.names is not None:
            return camera in self.names
        if self.shard is not None:
            return self.shard.owns(camera)
        return True

    def describe(self) -> str:
        if self.names is not None:
            return "[daemon] cameras"
        if self.shard is not None:
            return f"shard {self.shard}"
        return "every camera"


def apply_environment(data: MutableMapping[str, Any], environ: Mapping[str, str]) -> None:
    """Let ``MONITOR_INSTANCE``/``MONITOR_SHARD``/``MONITOR_CAMERAS`` replace their ``[daemon]``
    keys in a config mapping read from a file (before it is validated, so a bad value gets the
    same error as in the file, naming the key)."""
    daemon = data.get("daemon", {})
    if not isinstance(daemon, MutableMapping):
        return  # the validator says what is wrong with [daemon]
    for variable, key in ENVIRONMENT_KEYS.items():
        value = environ.get(variable)
        if value is None or value == "":
            continue
        if key == "cameras":
            daemon[key] = [name.strip() for name in value.split(",") if name.strip()]
        else:
            daemon[key] = value.strip()
        if key in ("shard", "cameras"):  # one replaces the other: the operator chose this one
            daemon.pop("cameras" if key == "shard" else "shard", None)
    if daemon:
        data["daemon"] = daemon


def environment_overrides(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ownership variables set in the environment (for check-config to show)."""
    environ = os.environ if environ is None else environ
    return {name: environ[name] for name in ENVIRONMENT_KEYS if environ.get(name)}
