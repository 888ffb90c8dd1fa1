"""Per-camera multi-object tracking: an adapter over supervision's ByteTrack.

supervision's ByteTrack keeps its id counters per instance (ultralytics' BYTETracker keeps a
class-level counter that every new tracker resets, so ids collide across cameras in one process);
one instance per camera therefore gives each camera its own id sequence.

Matching uses buffered boxes (each side pushed out by ``box_buffer`` of the box's size, as in
C-BIoU, Yang et al. 2023): ByteTrack's IoU gates assume video-rate detections, and at the few
detections per second a shared CPU detector affords, a runner's consecutive boxes barely overlap
and a new track needs IoU x score > 0.3 with its second detection to be confirmed at all.
Tracks still carry the detector's own boxes.
"""

from __future__ import annotations

import numpy as np
import supervision as sv

from monitor.config import TrackerConfig
from monitor.track.stitch import TrackStitcher
from monitor.types import Detections, Track, Tracks

# ByteTrack measures "lost" in frames of a nominal 30 fps stream: max_time_lost =
# frame_rate / 30 * lost_track_buffer. We state it in seconds and convert.
_BYTETRACK_NOMINAL_FPS = 30.0


class ByteTracker:
    """Assigns persistent ids to one camera's detections.

    Args:
        camera: camera name stamped on every track.
        config: the ``[tracker]`` section.
        detect_fps: how often this camera's frames reach the tracker.
    """

    def __init__(self, camera: str, config: TrackerConfig, detect_fps: float) -> None:
        self._camera = camera
        self._buffer = config.box_buffer
        self._stitcher = TrackStitcher(config.stitch_s, config.stitch_radius, config.lost_track_s)
        frame_rate = max(1, round(detect_fps))
        self._tracker = sv.ByteTrack(
            track_activation_threshold=config.activation_score,
            lost_track_buffer=max(1, round(config.lost_track_s * _BYTETRACK_NOMINAL_FPS)),
            minimum_matching_threshold=config.match_threshold,
            frame_rate=frame_rate,
            minimum_consecutive_frames=1,
        )

    def update(self, detections: Detections) -> Tracks:
        """Associate one frame's detections with tracks; unmatched new detections may start tracks.

        Returns:
            The tracks seen in this frame (a subset of the detections, each with its id).
        """
        items = detections.items
        if items:
            xyxy = np.array([[d.box.x1, d.box.y1, d.box.x2, d.box.y2] for d in items], dtype=float)
            size = np.concatenate([xyxy[:, 2:] - xyxy[:, :2]] * 2, axis=1)
            xyxy = xyxy + size * self._buffer * np.array([-1.0, -1.0, 1.0, 1.0])
            confidence = np.array([d.score for d in items], dtype=float)
        else:
            xyxy = np.empty((0, 4), dtype=float)
            confidence = np.empty((0,), dtype=float)
        sv_detections = sv.Detections(
            xyxy=xyxy,
            confidence=confidence,
            class_id=np.zeros(len(items), dtype=int),
            data={"index": np.arange(len(items))},
        )
        tracked = self._tracker.update_with_detections(sv_detections)
        tracks = []
        if len(tracked) and tracked.tracker_id is not None:
            for index, track_id in zip(tracked.data["index"], tracked.tracker_id, strict=True):
                tracks.append(Track(self._camera, int(track_id), items[int(index)]))
        return self._stitcher.update(Tracks(frame=detections.frame, items=tuple(tracks)))
