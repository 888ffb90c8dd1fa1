"""Moves durable outbox rows to the broker: at-least-once, in id order.

Delivery contract (at-least-once):
    * Rows are published with QoS 1 in id order, at most ``max_inflight`` unacknowledged at once,
      and only while the client is connected.
    * A row is marked sent only after the broker acknowledged it (PUBACK -> ``delivered(mid)``).
    * A row handed to paho is never published again by this process: when the connection drops,
      paho keeps its unacknowledged QoS 1 messages and re-sends them, in order, after the
      reconnect. Only after a process restart are rows that were never marked sent published
      again (from ``after_id=0``), so subscribers may see an alert twice, never zero times.
    * Order: ids must become visible to ``pending()`` in increasing order (one store writer
      thread commits them), because rows are fetched with ``id > last published id``.

Threading: one thread ("mqtt-outbox") calls ``pending``, ``publish`` and ``mark_sent``.
``delivered()`` runs in paho's network thread and only puts the mid on a queue; ``wake()`` runs in
the store writer. No lock is ever held while calling ``publish()``.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from monitor.types import OutboxMessage

log = logging.getLogger(__name__)


class MessageSink(Protocol):
    """What the publisher needs from the MQTT client (`monitor.mqtt.client.MqttClient`)."""

    @property
    def is_connected(self) -> bool: ...

    def publish(
        self, topic: str, payload: str | bytes, *, qos: int = 1, retain: bool = False
    ) -> int:
        """Queue one message; return its mid. ValueError means it can never be published."""
        ...


class PendingRows(Protocol):
    """``(after_id, limit) -> unsent rows with id > after_id``, in id order, at most ``limit``."""

    def __call__(self, after_id: int, limit: int) -> list[OutboxMessage]: ...


class MarkSent(Protocol):
    """Record that the rows with these ids (ascending) were acknowledged by the broker."""

    def __call__(self, ids: Sequence[int], /) -> None: ...


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """Counters since start: rows handed to paho, rows acknowledged, rows awaiting their ack,
    rows that could never be published (an invalid topic; logged and dropped)."""

    published: int
    delivered: int
    in_flight: int
    dropped: int = 0


class OutboxPublisher:
    """A thread that publishes outbox rows and marks them sent once the broker acknowledged them.

    Args:
        client: the connection to publish on.
        pending: reads unsent rows (see `PendingRows`); called only from the publisher thread.
        mark_sent: marks acknowledged rows sent (see `MarkSent`); called only from that thread.
        max_inflight: unacknowledged messages at once, >= 1.
        poll_interval_s: how often to look for rows and for a reconnect without a `wake()`, > 0.

    Example:
        >>> publisher = OutboxPublisher(client, store.pending, store.mark_sent)  # doctest: +SKIP
        >>> publisher.start()                                                    # doctest: +SKIP
        >>> publisher.flush(timeout_s=2.0); publisher.stop(timeout_s=1.0)        # doctest: +SKIP
    """

    def __init__(
        self,
        client: MessageSink,
        pending: PendingRows,
        mark_sent: MarkSent,
        *,
        max_inflight: int = 20,
        poll_interval_s: float = 0.5,
    ) -> None:
        if max_inflight < 1:
            raise ValueError(f"max_inflight must be >= 1, got {max_inflight}")
        if poll_interval_s <= 0:
            raise ValueError(f"poll_interval_s must be > 0, got {poll_interval_s}")
        self._client = client
        self._pending = pending
        self._mark_sent = mark_sent
        self._max_inflight = max_inflight
        self._poll_interval_s = poll_interval_s
        self._delivered_mids: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._thread: threading.Thread | None = None
        # Owned by the publisher thread.
        self._last_id = 0
        self._in_flight: dict[int, int] = {}  # mid -> outbox id
        self._unmarked: list[int] = []  # acknowledged, mark_sent() not yet succeeded
        self._pending_failing = False
        # Shared with other threads; guarded by _lock (never held around publish()).
        self._lock = threading.Lock()
        self._wake_generation = 0
        self._published = 0
        self._dropped = 0
        self._delivered = 0

    # --- called from other threads ------------------------------------------------------------

    def delivered(self, mid: int) -> None:
        """The broker acknowledged ``mid``; called in paho's network thread, so it never blocks."""
        self._delivered_mids.put(mid)
        self._wake.set()

    def wake(self) -> None:
        """New rows were committed: look for them now instead of at the next poll."""
        with self._lock:
            self._wake_generation += 1
            self._idle.clear()
        self._wake.set()

    def flush(self, timeout_s: float) -> bool:
        """Wait until no row is pending and none is in flight; False if ``timeout_s`` ran out."""
        self._wake.set()
        return self._idle.wait(timeout_s)

    def stats(self) -> OutboxStats:
        with self._lock:
            return OutboxStats(self._published, self._delivered, self._published - self._delivered,
                               self._dropped)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("OutboxPublisher.start() called twice")
        self._thread = threading.Thread(target=self._run, name="mqtt-outbox", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float) -> None:
        """End the thread after it recorded the acknowledgements received; waits ``timeout_s``."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("outbox publisher did not stop within %.1fs", timeout_s)

    # --- the publisher thread -----------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                generation = self._wake_generation
            self._wake.clear()
            try:
                idle = self._step()
            except Exception:  # a store or client bug must not end delivery for good
                log.exception(
                    "outbox publisher step failed; retrying in %.1fs", self._poll_interval_s
                )
                idle = False
            self._update_idle(generation, idle)
            self._wake.wait(self._poll_interval_s)
        self._collect_delivered()
        self._mark_unmarked()

    def _step(self) -> bool | None:
        """One pass: record acks, publish what fits. Returns idle True/False, None if unknown."""
        self._collect_delivered()
        self._mark_unmarked()
        if not self._client.is_connected:
            return False if self._in_flight or self._unmarked else None
        room = self._max_inflight - len(self._in_flight)
        if room <= 0:
            return False
        try:
            rows = self._pending(self._last_id, room)
        except Exception as exc:  # the database is away: say so once, keep polling
            if not self._pending_failing:
                log.warning(
                    "reading the outbox failed (%s); retrying every %.1fs",
                    exc,
                    self._poll_interval_s,
                )
            self._pending_failing = True
            return False
        self._pending_failing = False
        for row in rows:
            if not self._client.is_connected or not self._publish(row):
                return False
        return not rows and not self._in_flight and not self._unmarked

    def _publish(self, row: OutboxMessage) -> bool:
        """Hand one row to the client; False if it should be retried at the next pass."""
        if row.id is None or row.id <= self._last_id:
            log.error(
                "outbox row %s is out of order (last published id %d); skipping it",
                row.id,
                self._last_id,
            )
            return True
        try:
            mid = self._client.publish(row.topic, row.payload, qos=1)
        except ValueError as exc:
            # Retrying can never succeed and would block every later alert: drop it loudly.
            log.error("outbox row %d can never be published (%s); dropping it", row.id, exc)
            self._last_id = row.id
            self._unmarked.append(row.id)
            with self._lock:
                self._dropped += 1
            return True
        except Exception as exc:
            log.warning("publishing outbox row %d failed (%s); retrying", row.id, exc)
            return False
        self._in_flight[mid] = row.id
        self._last_id = row.id
        with self._lock:
            self._published += 1
        return True

    def _collect_delivered(self) -> None:
        acked = 0
        while True:
            try:
                mid = self._delivered_mids.get_nowait()
            except queue.Empty:
                break
            row_id = self._in_flight.pop(mid, None)
            if row_id is not None:  # other mids are the client's own (availability) messages
                self._unmarked.append(row_id)
                acked += 1
        if acked:
            with self._lock:
                self._delivered += acked

    def _mark_unmarked(self) -> None:
        if not self._unmarked:
            return
        ids = sorted(self._unmarked)
        try:
            self._mark_sent(ids)
        except Exception as exc:  # keep them; a restart would merely publish them again
            log.warning("marking %d outbox rows sent failed (%s); retrying", len(ids), exc)
            return
        self._unmarked = []

    def _update_idle(self, generation: int, idle: bool | None) -> None:
        with self._lock:
            if idle is False:
                self._idle.clear()
            elif idle is True and generation == self._wake_generation:
                self._idle.set()
