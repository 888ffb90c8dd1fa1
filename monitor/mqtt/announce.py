"""What the daemon says about its cameras on retained topics, beyond their counts: status,
detection switch state, newest snapshot, the stats, and Home Assistant's discovery configs.

All of it goes through ``RetainedState`` (one publishing thread, the newest value per topic,
everything again after a reconnect or when Home Assistant restarts).
"""

from __future__ import annotations

from monitor.config import CameraConfig, Config
from monitor.mqtt.homeassistant import OFF, ON, Discovery, detect_topic, snapshot_topic
from monitor.mqtt.state import RetainedState
from monitor.mqtt.topics import status_topic
from monitor.observe.stats_topic import stats_topic


class Announcer:
    """Publishes one daemon's retained camera topics.

    Args:
        state: the retained-topic publisher.
        config: the running config (prefix, ``[homeassistant]``).
    """

    def __init__(self, state: RetainedState, config: Config) -> None:
        self._state = state
        self._prefix = config.mqtt.prefix
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

    def forget(self, camera: CameraConfig) -> None:
        """A camera no longer watched: its entities leave Home Assistant (empty retained
        configs), its snapshot and switch state are cleared."""
        if self._discovery is not None:
            for topic in self._discovery.camera_messages(camera):
                self._state.publish_value(topic, "")
        for topic in (snapshot_topic(self._prefix, camera.name),
                      detect_topic(self._prefix, camera.name)):
            self._state.publish_value(topic, "")

    def detection(self, camera: str, on: bool) -> None:
        self._state.publish_value(detect_topic(self._prefix, camera), ON if on else OFF)

    def status(self, camera: str, status: str) -> None:
        self._state.publish_value(status_topic(self._prefix, camera), status)

    def snapshot(self, camera: str, jpeg: bytes) -> None:
        self._state.publish_value(snapshot_topic(self._prefix, camera), jpeg)

    def stats(self, payload: str) -> None:
        self._state.publish_value(stats_topic(self._prefix), payload)

    def again(self) -> None:
        """Everything once more (Home Assistant said it started)."""
        self._state.republish()
