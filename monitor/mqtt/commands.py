"""Messages the daemon takes from the broker: detection switches and Home Assistant's birth.

paho hands them over in its network thread; they are parsed there into small frozen commands
and queued, and the daemon's main loop acts on them (so no stage is touched from paho's thread).
A payload that means nothing is logged, naming the topic, and dropped.
"""

from __future__ import annotations

import logging
import queue
from dataclasses import dataclass

from monitor.mqtt.homeassistant import BIRTH_PAYLOAD, OFF, ON, birth_topic

log = logging.getLogger(__name__)

# A command payload longer than this is not a command (and is not echoed whole into the log).
_MAX_PAYLOAD = 64
# Nonsense is logged once per topic, up to this many topics (a flood must not fill the journal).
_WARN_TOPICS_MAX = 100


@dataclass(frozen=True, slots=True)
class SwitchDetection:
    """Turn the detector on or off for one camera."""

    camera: str
    on: bool


@dataclass(frozen=True, slots=True)
class HomeAssistantStarted:
    """Home Assistant (re)started: it wants discovery and every state again."""


Command = SwitchDetection | HomeAssistantStarted


class CommandInbox:
    """Parses and queues commands.

    Args:
        prefix: the daemon's topic prefix.
        discovery_prefix: Home Assistant's (None: Home Assistant discovery is off).
        cameras: the camera names commands may name (replaced on reload).
    """

    def __init__(self, prefix: str, discovery_prefix: str | None, cameras: set[str]) -> None:
        self._prefix = prefix
        self._birth = None if discovery_prefix is None else birth_topic(discovery_prefix)
        self._cameras = frozenset(cameras)
        self._queue: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self._warned: set[str] = set()

    def subscriptions(self) -> list[str]:
        topics = [f"{self._prefix}/+/detect/set"]
        return topics if self._birth is None else [*topics, self._birth]

    def set_cameras(self, cameras: set[str]) -> None:
        self._cameras = frozenset(cameras)  # one reference swap: read by paho's thread

    def receive(self, topic: str, payload: bytes, retained: bool = False) -> None:
        """paho's network thread: parse and queue, never block.

        A retained command is ignored: it would be applied again at every reconnect and restart
        (Home Assistant never retains one; a stale or planted one must not blind a camera)."""
        text = payload[:_MAX_PAYLOAD].decode("utf-8", "replace").strip()
        if topic == self._birth:
            if text == BIRTH_PAYLOAD:
                self._queue.put(HomeAssistantStarted())
            return
        camera = topic.removeprefix(f"{self._prefix}/").removesuffix("/detect/set")
        if retained:
            self._warn(topic, "a retained command is ignored (publish it without retain)")
        elif camera not in self._cameras:
            self._warn(topic, f"no camera {camera!r} here; command ignored")
        elif text.upper() in (ON, OFF) and len(payload) <= _MAX_PAYLOAD:
            self._queue.put(SwitchDetection(camera, text.upper() == ON))
        else:
            self._warn(topic, f"payload {text!r} is not ON or OFF; ignored")

    def _warn(self, topic: str, problem: str) -> None:
        if topic in self._warned or len(self._warned) >= _WARN_TOPICS_MAX:
            log.debug("%r: %s", topic, problem)
            return
        self._warned.add(topic)
        log.warning("%r: %s", topic, problem)

    def take(self) -> list[Command]:
        """Everything queued so far (the main loop)."""
        taken: list[Command] = []
        while True:
            try:
                taken.append(self._queue.get_nowait())
            except queue.Empty:
                return taken
