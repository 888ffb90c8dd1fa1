"""Track stitching: a track that reappears under a new id continues its old one.

ByteTrack re-finds a lost track only by box overlap weighted by score. A person who falls changes
box shape completely (tall -> wide) and is often missed while going down; the lying body then
starts a *new* track that was never upright, and no sequence model can see a fall in it. So when
a new track appears within ``stitch_s`` of an unseen track's last sighting, with its foot point
within ``stitch_radius`` of that track's box height from the last foot point, it takes the old
track's id (nearest first, one new track per old track). Trackers such as BoT-SORT do the same
with appearance; position and time are what a CPU budget affords.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from monitor.types import Box, Track, Tracks


_FRESH = 1_000_000  # ids given to re-found tracks whose own id was stitched onto another


@dataclass(frozen=True, slots=True)
class _Sighting:
    monotonic: float
    box: Box


class TrackStitcher:
    """Renames new tracker ids to recently lost ones of the same camera.

    Args:
        stitch_s: longest gap between the old track's last sighting and the new track's first.
        stitch_radius: largest foot-point distance, in the old box's heights.
    """

    def __init__(self, stitch_s: float, stitch_radius: float) -> None:
        self._stitch_s = stitch_s
        self._radius = stitch_radius
        self._alias: dict[int, int] = {}  # tracker id -> id we report
        self._last: dict[int, _Sighting] = {}  # reported id -> its newest sighting

    def update(self, tracks: Tracks) -> Tracks:
        now = tracks.frame.monotonic
        known = [t for t in tracks.items if t.track_id in self._alias]
        new = [t for t in tracks.items if t.track_id not in self._alias]
        taken = {self._alias[t.track_id] for t in known}
        if new and self._stitch_s > 0:
            self._stitch(new, taken, now)
        out = []
        reported: set[int] = set()
        for track in tracks.items:
            track_id = self._alias.setdefault(track.track_id, track.track_id)
            if track_id in reported:
                # ByteTrack re-found a lost track whose id a stitched track carries on by now:
                # the re-found one becomes a new track (ids outside ByteTrack's own range).
                track_id = self._alias[track.track_id] = _FRESH + track.track_id
            reported.add(track_id)
            self._last[track_id] = _Sighting(now, track.detection.box)
            out.append(Track(track.camera, track_id, track.detection))
        self._forget(now)
        return Tracks(tracks.frame, tuple(out))

    def _stitch(self, new: list[Track], taken: set[int], now: float) -> None:
        pairs = []
        for track in new:
            x, y = track.detection.box.foot
            for old_id, seen in self._last.items():
                if old_id in taken or not 0 < now - seen.monotonic <= self._stitch_s:
                    continue
                old_x, old_y = seen.box.foot
                height = max(seen.box.y2 - seen.box.y1, 1.0)
                distance = math.hypot(x - old_x, y - old_y) / height
                if distance <= self._radius:
                    pairs.append((distance, track.track_id, old_id))
        used_new: set[int] = set()
        for _, new_id, old_id in sorted(pairs):
            if new_id in used_new or old_id in taken:
                continue
            self._alias[new_id] = old_id
            used_new.add(new_id)
            taken.add(old_id)

    def _forget(self, now: float) -> None:
        stale = [i for i, s in self._last.items() if now - s.monotonic > self._stitch_s]
        for track_id in stale:
            del self._last[track_id]
        live = set(self._last)
        for tracker_id in [k for k, v in self._alias.items() if v not in live]:
            del self._alias[tracker_id]
