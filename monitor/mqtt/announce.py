"""What the daemon says about its cameras on retained topics, beyond their counts: status,
detection switch state, newest snapshot, the stats, and Home Assistant's discovery configs.

All of it goes through ``RetainedState`` (one publishing thread, the newest value per topic,
everything again after a reconnect or when Home Assistant restarts).
"""

from __future__ import annotations

import cv2
import numpy as np

from monitor.config import CameraConfig, Config
from monitor.mqtt.homeassistant import OFF, ON, Discovery, detect_topic, snapshot_topic
from monitor.mqtt.state import RetainedState
from monitor.mqtt.topics import status_topic
from monitor.observe.stats_topic import stats_topic


_SNAPSHOT_QUALITY = 80  # a preview: about 40 KB at 640x480


class Announcer:
    """Publishes one daemon's retained camera topics.

    Args:
        state: the retained-topic publisher.
        config: the running config (prefix, ``[homeassistant]``).
    """

    def __init__(self, state: RetainedState, config: Config) -> None:
        self._state = state
        self._prefix = config.mqtt.prefix
        self._instance = config.daemon.instance
        self._snapshot_width = config.mqtt.snapshot_width
        self._discovery = Discovery(config) if config.homeassistant.enabled else None
        if self._discovery is not None:
            for topic, payload in self._discovery.daemon_messages().items():
                state.publish_value(topic, payload)

    def camera(self, camera: CameraConfig, *, detection_on: bool) -> None:
        """A camera that is watched: its discovery configs and its switch's state."""
        if self._discovery is not None:
            for topic, payload in self._discovery.camera_messages(camera).items():
                self._state.publish_value(topic, payload)
        self.detection(camera.name, detection_on)

    def forget(self, camera: CameraConfig, *, keeping: CameraConfig | None = None) -> None:
        """A camera no longer watched: its entities leave Home Assistant (empty retained
        configs), its snapshot, switch and status topics are cleared.

        ``keeping``: the camera's new config when it was changed, not removed: then only the
        entities the new config no longer has go (Home Assistant would otherwise delete and
        recreate the rest, losing what the user set on them), and its topics stay.
        """
        kept = set() if keeping is None or self._discovery is None else set(
            self._discovery.camera_messages(keeping))
        if self._discovery is not None:
            for topic in self._discovery.camera_messages(camera):
                if topic not in kept:
                    self._state.publish_value(topic, "")
        if keeping is None:
            for topic in (snapshot_topic(self._prefix, camera.name),
                          detect_topic(self._prefix, camera.name),
                          status_topic(self._prefix, camera.name)):
                self._state.publish_value(topic, "")

    def detection(self, camera: str, on: bool) -> None:
        self._state.publish_value(detect_topic(self._prefix, camera), ON if on else OFF)

    def status(self, camera: str, status: str) -> None:
        self._state.publish_value(status_topic(self._prefix, camera), status)

    def snapshot(self, camera: str, image: np.ndarray) -> None:
        """The newest event's picture, at most ``[mqtt] snapshot_width`` wide (0: never): a
        broker may refuse large messages (128 KB on some clouds), and every subscriber of
        ``#`` gets it."""
        width = self._snapshot_width
        if width == 0:
            return
        height, wide = image.shape[:2]
        if wide > width:
            image = cv2.resize(image, (width, max(1, round(height * width / wide))),
                               interpolation=cv2.INTER_AREA)
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, _SNAPSHOT_QUALITY])
        if ok:
            self._state.publish_value(snapshot_topic(self._prefix, camera), data.tobytes())

    def stats(self, payload: str) -> None:
        self._state.publish_value(stats_topic(self._prefix, self._instance), payload)

    def again(self) -> None:
        """Everything once more (Home Assistant said it started)."""
        self._state.republish()
