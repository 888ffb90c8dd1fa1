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


_FIRST_FRESH_ID = 1_000_000  # ids of re-found tracks whose own id went to a stitched track


@dataclass(frozen=True, slots=True)
class _Sighting:
    monotonic: float
    box: Box


class TrackStitcher:
    """Renames new tracker ids to recently lost ones of the same camera.

    Args:
        stitch_s: longest gap between the old track's last sighting and the new track's first.
        stitch_radius: largest foot-point distance, in the old box's heights.
        keep_s: how long ids are remembered; at least ByteTrack's own lost-track time, so a track
            ByteTrack re-finds still comes back under the id it had.
    """

    def __init__(self, stitch_s: float, stitch_radius: float, keep_s: float = 0.0) -> None:
        self._stitch_s = stitch_s
        self._radius = stitch_radius
        self._keep_s = max(stitch_s, keep_s)
        self._alias: dict[int, int] = {}  # tracker id -> id we report
        self._alias_seen: dict[int, float] = {}  # tracker id -> when it was last seen
        self._last: dict[int, _Sighting] = {}  # reported id -> its newest sighting
        self._next_fresh = _FIRST_FRESH_ID

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
            if track_id in reported:  # cannot happen after _stitch's re-aliasing; never report
                track_id = self._fresh(track.track_id)  # two people under one id regardless
            reported.add(track_id)
            self._alias_seen[track.track_id] = now
            self._last[track_id] = _Sighting(now, track.detection.box)
            out.append(Track(track.camera, track_id, track.detection))
        self._forget(now)
        return Tracks(tracks.frame, tuple(out))

    def _fresh(self, tracker_id: int) -> int:
        fresh = self._alias[tracker_id] = self._next_fresh
        self._next_fresh += 1
        return fresh

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
            # The id moves to the new track for good: should ByteTrack re-find the track that
            # had it (in this frame or a later one), that one is someone else now.
            for tracker_id in [k for k, v in self._alias.items() if v == old_id]:
                self._fresh(tracker_id)
            self._alias[new_id] = old_id
            used_new.add(new_id)
            taken.add(old_id)

    def _forget(self, now: float) -> None:
        for track_id in [i for i, s in self._last.items() if now - s.monotonic > self._keep_s]:
            del self._last[track_id]
        for tracker_id in [k for k, t in self._alias_seen.items() if now - t > self._keep_s]:
            del self._alias_seen[tracker_id]
            self._alias.pop(tracker_id, None)
