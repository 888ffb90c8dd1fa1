"""Retained state topics (object counts, motion): the newest value of each topic, published by
one thread.

State is not an alert: only its newest value matters, so it skips the durable outbox. Values
are kept per topic; the ``mqtt-state`` thread publishes the ones that changed (retained, QoS 1)
while the broker is connected, and all of them again after every reconnect, so the broker's
retained copy is current whenever a subscriber (re)connects. One thread does all publishing, so
an older value can never overtake a newer one, and callers (the inference thread) never block on
the network.
"""

from __future__ import annotations

import logging
import threading
import time

from monitor.mqtt.client import PublishError
from monitor.mqtt.outbox import MessageSink
from monitor.mqtt.topics import state_messages
from monitor.types import CameraState

log = logging.getLogger(__name__)


class RetainedState:
    """Publishes the newest value of each state topic, retained.

    Args:
        client: the connection (``MqttClient``).
        prefix: topic prefix.
        retry_s: after a failed publish (paho's queue full), try again this much later.
    """

    def __init__(self, client: MessageSink, prefix: str, *, retry_s: float = 1.0) -> None:
        self._client = client
        self._prefix = prefix
        self._retry_s = retry_s
        self._cond = threading.Condition()
        self._values: dict[str, str | bytes] = {}  # topic -> newest payload
        self._dirty: dict[str, None] = {}  # topics whose newest value the broker has not had
        self._publishing = False  # a batch is being handed to the client
        self._stopping = False
        self._thread: threading.Thread | None = None

    def publish_state(self, state: CameraState) -> None:
        """Take a camera's new state (any thread; never blocks on the network)."""
        with self._cond:
            for topic, payload in state_messages(self._prefix, state):
                if self._values.get(topic) != payload:
                    self._values[topic] = payload
                    self._dirty[topic] = None
            self._cond.notify_all()

    def publish_value(self, topic: str, payload: str | bytes) -> None:
        """Take the newest value of one other retained topic (a camera's status, a snapshot, a
        discovery config; an empty payload deletes the broker's retained copy)."""
        with self._cond:
            if self._values.get(topic) != payload:
                self._values[topic] = payload
                self._dirty[topic] = None
                self._cond.notify_all()

    def republish(self) -> None:
        """Give the broker every value again (Home Assistant restarted and wants them)."""
        with self._cond:
            self._dirty = dict.fromkeys(self._values)
            self._cond.notify_all()

    def connection_changed(self, connected: bool) -> None:
        """After a (re)connect the broker gets every value again (paho's network thread)."""
        if connected:
            with self._cond:
                self._dirty = dict.fromkeys(self._values)
                self._cond.notify_all()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mqtt-state", daemon=True)
        self._thread.start()

    def flush(self, timeout_s: float) -> bool:
        """Wait until every value was handed to the client (False: not connected in time)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._dirty or self._publishing:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.notify_all()
                self._cond.wait(min(left, 0.05))
            return True

    def stop(self, timeout_s: float) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and not (self._dirty and self._client.is_connected):
                    self._cond.wait(self._retry_s)
                if self._stopping:
                    return
                batch = [(topic, self._values[topic]) for topic in self._dirty]
                self._dirty.clear()
                self._publishing = True
            failed = self._publish(batch)
            with self._cond:
                self._publishing = False
                for topic in failed:
                    self._dirty.setdefault(topic, None)
                self._cond.notify_all()  # flush() waiters
                if failed:
                    self._cond.wait(self._retry_s)

    def _publish(self, batch: list[tuple[str, str | bytes]]) -> list[str]:
        """Publish outside the lock (paho calls back into the client under its own locks)."""
        failed: list[str] = []
        for topic, payload in batch:
            try:
                self._client.publish(topic, payload, qos=1, retain=True)
            except PublishError as exc:
                log.debug("state %s not taken yet: %s", topic, exc)
                failed.append(topic)
            except ValueError as exc:  # can never be published: say so once, drop it
                log.error("state topic %s cannot be published: %s", topic, exc)
        return failed
