"""Shared pieces of the config schema: the strict base model, name rules, store limits."""

from __future__ import annotations

import os
import re

from pydantic import BaseModel, ConfigDict


class ConfigError(Exception):
    """A configuration problem; ``str()`` is one line per problem, each naming the key path."""


class _Strict(BaseModel):
    # Every number is bounded on both sides (a test checks), which also refuses NaN and infinity.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


_NAME = re.compile(r"\A[A-Za-z0-9_-]+\Z")


NAME_MAX_LENGTH = 64  # the store's columns for camera, label, zone and line names


SNAPSHOT_PATH_MAX_LENGTH = 1024  # the store's column for an event's snapshot path


# Topic levels under {prefix}/{camera}/ that the daemon itself uses: a zone or label of one of
# these names would share a topic with them.
RESERVED_TOPIC_NAMES = frozenset({"motion", "events", "reviews", "available", "snapshot", "status",
                                  "detect", "stats", "crossings"})


# Topic levels right under {prefix}/: a camera of one of these names would share them.
RESERVED_CAMERA_NAMES = frozenset({"events", "reviews", "available", "stats", "clips"})


def _topic_level_name(value: str, what: str) -> str:
    if len(value) > NAME_MAX_LENGTH:
        raise ValueError(f"{what} is {len(value)} characters long; at most {NAME_MAX_LENGTH}")
    if not _NAME.match(value):
        raise ValueError(
            f"{what} {value!r} must be letters, digits, '-' or '_' (it is part of MQTT topics)"
        )
    if value in RESERVED_TOPIC_NAMES:
        raise ValueError(
            f"{what} {value!r} is reserved: it would share an MQTT topic with the daemon's own "
            f"({', '.join(sorted(RESERVED_TOPIC_NAMES))})"
        )
    return value


MIN_ZONE_AREA = 1e-4  # of the frame: about 8x6 pixels at 768x576


def _normalised_points(
    points: list[tuple[float, float]], what: str
) -> list[tuple[float, float]]:
    for x, y in points:
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(f"{what} [{x}, {y}] is outside 0..1 (coordinates are normalised)")
    return points


# Linux's limits (NAME_MAX, PATH_MAX): a longer path makes every stat() fail with ENAMETOOLONG.
PATH_COMPONENT_MAX_BYTES = 255
PATH_MAX_BYTES = 4096


def path_too_long(path: str) -> str | None:
    """Why the file system cannot hold ``path``, or None: a config error, not a fault at stat()."""
    encoded = os.fsencode(path)
    if len(encoded) >= PATH_MAX_BYTES:
        return f"the path is too long ({len(encoded)} bytes; at most {PATH_MAX_BYTES - 1})"
    longest = max(encoded.split(b"/"), key=len)
    if len(longest) > PATH_COMPONENT_MAX_BYTES:
        return (f"a file name in the path is too long ({len(longest)} bytes; at most "
                f"{PATH_COMPONENT_MAX_BYTES})")
    return None
