"""monitor.mqtt: topics and payloads (pure), the outbox publisher (fake client), and both against a
real Mosquitto (tests/fixtures/broker.py), including a broker that is down, restarted or hung."""

from __future__ import annotations

import itertools
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from monitor.config import MqttConfig
from monitor.mqtt.client import MqttClient
from monitor.mqtt.outbox import OutboxPublisher
from monitor.mqtt.topics import (
    alert_payload,
    availability_topic,
    event_topic,
    outbox_message,
)
from monitor.types import Alert, AlertType, Box, EndReason, Event, EventKind, OutboxMessage
from tests.fixtures.broker import Broker, Received, Subscriber

CAMERAS = ("cam-a", "cam-b", "cam-c")
T0 = datetime(2024, 5, 1, 12, 0, 0, 250_000, tzinfo=UTC)


def wait_until(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture(autouse=True)
def _no_credentials_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MONITOR_MQTT_USERNAME", raising=False)
    monkeypatch.delenv("MONITOR_MQTT_PASSWORD", raising=False)


# --- topics and payloads ----------------------------------------------------------------------


def make_event(**overrides: Any) -> Event:
    values: dict[str, Any] = dict(
        id="ev-1",
        camera="gate",
        kind=EventKind.INTRUSION,
        label="person",
        track_id=7,
        start_time=T0,
        end_time=None,
        score=0.87349,
        box=Box(10.04, 20.0, 110.26, 220.0),
        zone="yard",
        snapshot="/var/snap/ev-1.jpg",
    )
    values.update(overrides)
    return Event(**values)


@pytest.mark.parametrize(
    ("prefix", "camera", "kind", "expected"),
    [
        ("monitor", "gate", EventKind.INTRUSION, "monitor/events/gate/intrusion"),
        ("home/cams", "cam_1", EventKind.PRESENCE, "home/cams/events/cam_1/presence"),
        ("monitor", "yard-2", "loitering", "monitor/events/yard-2/loitering"),
    ],
)
def test_event_topic(prefix: str, camera: str, kind: EventKind | str, expected: str) -> None:
    assert event_topic(prefix, camera, kind) == expected


@pytest.mark.parametrize(
    ("camera", "kind"), [("a/b", "presence"), ("gate", "#"), ("", "presence"), ("c+", "x")]
)
def test_event_topic_rejects_level_breaking_names(camera: str, kind: str) -> None:
    with pytest.raises(ValueError, match="must be non-empty"):
        event_topic("monitor", camera, kind)


def test_availability_topic() -> None:
    assert availability_topic("home/monitor", "nvr-1") == "home/monitor/available/nvr-1"


@pytest.mark.parametrize(
    ("alert_type", "overrides", "expected"),
    [
        (AlertType.START, {}, {"type": "start", "end_time": None, "zone": "yard"}),
        (
            AlertType.END,
            {"end_time": T0 + timedelta(seconds=12, microseconds=345_678)},
            {"type": "end", "end_time": "2024-05-01T12:00:12.595Z"},
        ),
        (
            AlertType.UPDATE,
            {"kind": EventKind.PRESENCE, "zone": None, "snapshot": None, "score": 0.5},
            {"type": "update", "kind": "presence", "zone": None, "snapshot": None, "score": 0.5},
        ),
        (  # non-UTC aware times are converted to UTC
            AlertType.START,
            {"start_time": datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))},
            {"start_time": "2024-05-01T12:00:00.000Z"},
        ),
    ],
)
def test_alert_payload(
    alert_type: AlertType, overrides: dict[str, Any], expected: dict[str, Any]
) -> None:
    body = json.loads(alert_payload(Alert(alert_type, make_event(**overrides))))
    assert list(body) == [
        "type",
        "id",
        "camera",
        "kind",
        "label",
        "track_id",
        "start_time",
        "end_time",
        "score",
        "top_score",
        "box",
        "zone",
        "zones",
        "dwell_s",
        "stationary",
        "end_reason",
        "snapshot",
        "seen_at",
        "seq",
    ]
    defaults = {
        "type": alert_type.value,
        "id": "ev-1",
        "camera": "gate",
        "kind": "intrusion",
        "label": "person",
        "track_id": 7,
        "start_time": "2024-05-01T12:00:00.250Z",
        "end_time": None,
        "score": 0.873,
        "top_score": 0.873,
        "box": [10.0, 20.0, 110.3, 220.0],
        "zone": "yard",
        "zones": [],
        "dwell_s": None,
        "stationary": False,
        "end_reason": None,
        "snapshot": "/var/snap/ev-1.jpg",
        "seen_at": None,  # make_event carries no sighting
        "seq": 0,
    }
    if "score" in expected:
        defaults["top_score"] = expected["score"]
    assert body == {**defaults, **expected}


def test_alert_payload_says_which_sighting_it_is_based_on() -> None:
    event = make_event(
        seen_at=T0 + timedelta(milliseconds=600, microseconds=123), seen_score=0.6123,
        seq=4, zones=("yard",), dwell_s=3.25, end_reason=EndReason.LEFT_ZONE,
    )
    body = json.loads(alert_payload(Alert(AlertType.END, event)))
    assert body["seen_at"] == "2024-05-01T12:00:00.850Z"   # the one format: ms and Z
    assert (body["score"], body["top_score"]) == (0.612, 0.873)
    assert (body["seq"], body["zones"], body["dwell_s"]) == (4, ["yard"], 3.25)
    assert body["end_reason"] == "left_zone"


def test_alert_payload_rejects_naive_time() -> None:
    with pytest.raises(ValueError, match="naive"):
        alert_payload(Alert(AlertType.START, make_event(start_time=datetime(2024, 5, 1))))


def test_outbox_message() -> None:
    alert = Alert(AlertType.START, make_event())
    assert outbox_message("monitor", alert) == OutboxMessage(
        id=None, camera="gate", topic="monitor/events/gate/intrusion", payload=alert_payload(alert)
    )


# --- an in-memory outbox and a fake client ----------------------------------------------------


class MemoryOutbox:
    """The store's outbox contract (pending/mark_sent) over a dict; ids assigned in add order."""

    def __init__(self, prefix: str = "test") -> None:
        self._prefix = prefix
        self._lock = threading.Lock()
        self._rows: dict[int, OutboxMessage] = {}
        self._sent: set[int] = set()
        self.mark_calls: list[list[int]] = []

    def add(self, camera: str, topic: str | None = None) -> int:
        with self._lock:
            row_id = len(self._rows) + 1
            topic = topic or event_topic(self._prefix, camera, EventKind.PRESENCE)
            payload = json.dumps({"id": row_id, "camera": camera})
            self._rows[row_id] = OutboxMessage(row_id, camera, topic, payload)
            return row_id

    def pending(self, after_id: int, limit: int) -> list[OutboxMessage]:
        with self._lock:
            ids = sorted(i for i in self._rows if i > after_id and i not in self._sent)
            return [self._rows[i] for i in ids[:limit]]

    def mark_sent(self, ids: list[int]) -> None:
        with self._lock:
            self.mark_calls.append(list(ids))
            self._sent.update(ids)

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)

    @property
    def sent_count(self) -> int:
        with self._lock:
            return len(self._sent)

    def unsent(self) -> list[int]:
        with self._lock:
            return sorted(set(self._rows) - self._sent)


class FakeSink:
    """A MessageSink that records publishes; the test acknowledges mids by hand."""

    def __init__(self, connected: bool = True) -> None:
        self.is_connected = connected
        self._lock = threading.Lock()
        self.sent: list[tuple[int, int]] = []  # (mid, outbox id from the payload)

    def publish(self, topic: str, payload: str, *, qos: int = 1, retain: bool = False) -> int:
        if "#" in topic:
            raise ValueError("wildcards are not allowed in a topic name")
        with self._lock:
            mid = len(self.sent) + 1
            self.sent.append((mid, json.loads(payload)["id"]))
            return mid

    def snapshot(self) -> list[tuple[int, int]]:
        with self._lock:
            return list(self.sent)


@pytest.fixture
def fake_rig() -> Iterator[tuple[FakeSink, MemoryOutbox, OutboxPublisher]]:
    sink, outbox = FakeSink(connected=False), MemoryOutbox()
    publisher = OutboxPublisher(
        sink, outbox.pending, outbox.mark_sent, max_inflight=3, poll_interval_s=0.02
    )
    publisher.start()
    yield sink, outbox, publisher
    publisher.stop(1.0)


def test_publisher_waits_for_connection_and_bounds_inflight(fake_rig: Any) -> None:
    sink, outbox, publisher = fake_rig
    for i in range(7):
        outbox.add(CAMERAS[i % 3])
    publisher.wake()
    time.sleep(0.1)
    assert sink.snapshot() == [] and not publisher.flush(0.05)
    sink.is_connected = True
    assert wait_until(lambda: len(sink.snapshot()) == 3, 1.0)
    time.sleep(0.1)
    assert len(sink.snapshot()) == 3, "more than max_inflight unacknowledged"
    for acked in range(1, 8):  # each ack lets exactly one more row go
        expected = min(acked + 2, 7)
        assert wait_until(lambda n=expected: len(sink.snapshot()) >= n, 1.0)  # type: ignore[misc]
        assert len(sink.snapshot()) == expected
        publisher.delivered(acked)
    assert publisher.flush(1.0)
    assert [row_id for _, row_id in sink.snapshot()] == list(range(1, 8))
    assert [i for call in outbox.mark_calls for i in call] == list(range(1, 8))
    assert publisher.stats().published == publisher.stats().delivered == 7


def test_publisher_does_not_republish_after_a_drop(fake_rig: Any) -> None:
    sink, outbox, publisher = fake_rig
    sink.is_connected = True
    for i in range(3):
        outbox.add(CAMERAS[i])
    publisher.wake()
    assert wait_until(lambda: len(sink.snapshot()) == 3, 1.0)
    sink.is_connected = False  # paho keeps the 3 unacknowledged messages and re-sends them itself
    time.sleep(0.1)
    sink.is_connected = True
    outbox.add("cam-a")
    publisher.wake()
    time.sleep(0.1)
    for mid in (1, 2, 3):
        publisher.delivered(mid)
    assert wait_until(lambda: len(sink.snapshot()) == 4, 1.0)
    publisher.delivered(4)
    assert publisher.flush(1.0)
    assert [row_id for _, row_id in sink.snapshot()] == [1, 2, 3, 4]
    assert outbox.unsent() == []


def test_unpublishable_row_does_not_block_the_rest(
    fake_rig: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sink, outbox, publisher = fake_rig
    sink.is_connected = True
    outbox.add("cam-a", topic="test/#")
    outbox.add("cam-a")
    publisher.wake()
    assert wait_until(lambda: len(sink.snapshot()) == 1, 1.0)
    publisher.delivered(1)
    assert publisher.flush(1.0)
    assert sink.snapshot() == [(1, 2)] and outbox.unsent() == []
    assert "can never be published" in caplog.text


def test_outbox_read_failures_are_logged_once_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    sink, outbox = FakeSink(), MemoryOutbox()
    outbox.add("cam-a")
    failures = [OSError("database is locked")] * 5

    def flaky_pending(after_id: int, limit: int) -> list[OutboxMessage]:
        if failures:
            raise failures.pop()
        return outbox.pending(after_id, limit)

    publisher = OutboxPublisher(sink, flaky_pending, outbox.mark_sent, poll_interval_s=0.01)
    publisher.start()
    try:
        assert wait_until(lambda: len(sink.snapshot()) == 1, 1.0)
        publisher.delivered(1)
        assert publisher.flush(1.0) and outbox.unsent() == []
    finally:
        publisher.stop(1.0)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "database is locked" in warnings[0].getMessage()


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"max_inflight": 0}, "max_inflight"), ({"poll_interval_s": 0}, "poll")]
)
def test_publisher_rejects_bad_parameters(kwargs: dict[str, Any], message: str) -> None:
    outbox = MemoryOutbox()
    with pytest.raises(ValueError, match=message):
        OutboxPublisher(FakeSink(), outbox.pending, outbox.mark_sent, **kwargs)


# --- against a real Mosquitto -----------------------------------------------------------------


def mqtt_config(port: int, **overrides: Any) -> MqttConfig:
    values: dict[str, Any] = dict(
        host="127.0.0.1",
        port=port,
        prefix="test",
        client_id=f"monitor-test-{os.getpid()}",
        keepalive_s=5,
        reconnect_max_s=0.2,
    )
    values.update(overrides)
    return MqttConfig(**values)


@dataclass
class Rig:
    """A real MqttClient wired to an OutboxPublisher over a MemoryOutbox, like the daemon does."""

    client: MqttClient
    publisher: OutboxPublisher
    outbox: MemoryOutbox
    changes: list[bool] = field(default_factory=list)

    def stop(self) -> None:
        self.publisher.stop(1.0)
        self.client.stop(1.0)


@pytest.fixture
def make_rig() -> Iterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(port: int, *, max_inflight: int = 20) -> Rig:
        outbox, changes = MemoryOutbox(), []
        holder: list[OutboxPublisher] = []

        def connection_changed(up: bool) -> None:
            changes.append(up)
            holder[0].wake()

        client = MqttClient(
            mqtt_config(port, max_inflight=max_inflight),
            on_delivered=lambda mid: holder[0].delivered(mid),
            on_connection_change=connection_changed,
        )
        publisher = OutboxPublisher(
            client, outbox.pending, outbox.mark_sent, max_inflight=max_inflight, poll_interval_s=0.1
        )
        holder.append(publisher)
        rigs.append(Rig(client, publisher, outbox, changes))
        return rigs[-1]

    yield make
    for rig in rigs:
        rig.stop()


def first_deliveries(messages: list[Received]) -> list[tuple[str, int]]:
    """(camera, id) of each event message the first time its id arrived, in arrival order."""
    seen: set[int] = set()
    firsts = []
    for msg in messages:
        if "/events/" not in msg.topic:
            continue
        body = json.loads(msg.payload)
        if body["id"] not in seen:
            seen.add(body["id"])
            firsts.append((body["camera"], body["id"]))
    return firsts


def assert_in_order_per_camera(firsts: list[tuple[str, int]]) -> None:
    for camera in CAMERAS:
        ids = [row_id for cam, row_id in firsts if cam == camera]
        assert ids == sorted(ids), f"{camera}: first deliveries out of order: {ids}"


def client_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "monitor.mqtt.client" and r.levelno >= logging.WARNING
    ]


@pytest.mark.integration
def test_client_announces_online_then_offline_on_stop(broker: Broker) -> None:
    changes: list[bool] = []
    client = MqttClient(mqtt_config(broker.port), on_connection_change=changes.append)
    topic = client.availability_topic
    client.start()
    try:
        assert wait_until(lambda: client.is_connected, 5.0), broker.log_tail()
        with Subscriber(broker.port, [topic]) as late:  # retained: a late subscriber still sees it
            assert late.wait_for(lambda m: Received(topic, "online", True) in m, 2.0), late.messages
        started = time.monotonic()
    finally:
        client.stop(2.0)
    assert time.monotonic() - started < 2.0
    assert not client.is_connected and changes == [True, False]
    with Subscriber(broker.port, [topic]) as late:
        assert late.wait_for(lambda m: Received(topic, "offline", True) in m, 2.0), late.messages


_CRASHING_DAEMON = """
import sys, time
from monitor.config import MqttConfig
from monitor.mqtt.client import MqttClient
config = MqttConfig(host="127.0.0.1", port=int(sys.argv[1]), prefix="test", keepalive_s=5)
client = MqttClient(config)
client.start()
while not client.is_connected:
    time.sleep(0.01)
print("CONNECTED", flush=True)
time.sleep(60)
"""


@pytest.mark.integration
def test_last_will_says_offline_when_the_process_dies(broker: Broker, tmp_path: Path) -> None:
    topic = availability_topic("test", "local")
    proc = subprocess.Popen(
        [sys.executable, "-c", _CRASHING_DAEMON, str(broker.port)],
        stdout=subprocess.PIPE,
        cwd=tmp_path,
    )
    assert proc.stdout is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 15.0)
        assert ready and proc.stdout.readline().strip() == b"CONNECTED"
        with Subscriber(broker.port, [topic]) as sub:
            assert sub.wait_for(lambda m: Received(topic, "online", True) in m, 2.0), sub.messages
            proc.send_signal(signal.SIGKILL)  # no DISCONNECT: the broker publishes the will
            assert sub.wait_for(lambda m: (m[-1].topic, m[-1].payload) == (topic, "offline"), 3.0), sub.messages
    finally:
        proc.kill()
        proc.wait()
    with Subscriber(broker.port, [topic]) as late:
        assert late.wait_for(lambda m: Received(topic, "offline", True) in m, 2.0), late.messages


@pytest.mark.integration
def test_outbox_delivers_200_in_order(broker: Broker, make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(broker.port)
    with Subscriber(broker.port, ["test/events/#"]) as sub:
        for i in range(200):
            rig.outbox.add(CAMERAS[i % 3])
        rig.client.start()
        rig.publisher.start()
        assert rig.publisher.flush(10.0), rig.publisher.stats()
        assert sub.wait_for(lambda m: len(m) >= 200, 5.0), len(sub.messages)
        time.sleep(0.1)  # a duplicate would arrive now
        assert [json.loads(m.payload)["id"] for m in sub.messages] == list(range(1, 201))
    assert rig.outbox.unsent() == []
    marked = [i for call in rig.outbox.mark_calls for i in call]
    assert marked == list(range(1, 201))
    stats = rig.publisher.stats()
    assert (stats.published, stats.delivered, stats.in_flight) == (200, 200, 0)


@pytest.fixture
def persistent_broker(broker_factory: Callable[..., Broker]) -> Iterator[tuple[Broker, Subscriber]]:
    """A broker with persistence and a subscriber whose session and queue survive its restarts."""
    persistent = broker_factory(persistence=True)
    persistent.start()
    sub = Subscriber(persistent.port, ["test/events/#"], persistent=True).start()
    yield persistent, sub
    sub.stop()


@pytest.mark.integration
def test_broker_down_at_start(
    persistent_broker: tuple[Broker, Subscriber],
    make_rig: Callable[..., Rig],
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker, sub = persistent_broker
    broker.stop()  # the subscriber's session (and its subscription) is saved in the broker's db
    caplog.set_level(logging.DEBUG, logger="monitor")
    rig = make_rig(broker.port)
    rig.client.start()
    rig.publisher.start()
    for i in range(50):
        rig.outbox.add(CAMERAS[i % 3])
        rig.publisher.wake()
    time.sleep(1.0)  # ~5 retries at reconnect_max_s=0.2
    assert not rig.client.is_connected and rig.publisher.stats().published == 0
    warnings = client_warnings(caplog)
    assert len(warnings) == 1 and f"127.0.0.1:{broker.port} unreachable" in warnings[0], warnings
    assert "Traceback" not in caplog.text

    broker.start()
    assert rig.publisher.flush(10.0), (rig.publisher.stats(), broker.log_tail())
    assert sub.wait_for(lambda m: len(first_deliveries(m)) >= 50, 5.0), len(sub.messages)
    assert [row_id for _, row_id in first_deliveries(sub.messages)] == list(range(1, 51))
    assert rig.outbox.unsent() == [] and rig.changes == [True]
    assert len(client_warnings(caplog)) == 1


@pytest.mark.integration
@pytest.mark.parametrize("in_flight_at_drop", [10, 4], ids=["window-full", "window-partly-used"])
def test_broker_restart_mid_stream(
    persistent_broker: tuple[Broker, Subscriber],
    make_rig: Callable[..., Rig],
    in_flight_at_drop: int,
) -> None:
    """The broker crashes with ``in_flight_at_drop`` messages unacknowledged while rows keep coming.

    The broker is frozen, so the next rows stay in flight, then killed, so it never reads them:
    nothing else can acknowledge them. It comes back with the database saved just before the
    freeze, which holds the subscriber's persistent session and everything published so far.
    With the window only partly used, new rows could overtake paho's re-sends after the
    reconnect; the subscriber's persistent session catches every message, even those published
    before it is back.
    """
    broker, sub = persistent_broker
    total, window = 300, 10
    rig = make_rig(broker.port, max_inflight=window)
    rig.client.start()
    rig.publisher.start()
    assert wait_until(lambda: rig.client.is_connected, 5.0)
    paused = threading.Lock()

    def produce() -> None:
        for i in itertools.count():
            with paused:
                if len(rig.outbox) >= total:
                    return
                rig.outbox.add(CAMERAS[i % 3])
                rig.publisher.wake()
            time.sleep(0.003)

    producer = threading.Thread(target=produce, name="test-producer")
    producer.start()
    try:
        assert wait_until(lambda: rig.outbox.sent_count >= 60, 5.0)
        with paused:
            assert rig.publisher.flush(2.0), rig.publisher.stats()
            # Acknowledged rows are marked sent and never published again: they must reach the
            # subscriber, and be in the saved database, before the crash.
            sent = set(range(1, len(rig.outbox) + 1))
            assert sub.wait_for(lambda m: {i for _, i in first_deliveries(m)} == sent, 5.0)
            broker.save()
            broker.freeze()  # acks stop: exactly the next rows stay in flight
            for i in range(in_flight_at_drop):
                rig.outbox.add(CAMERAS[i % 3])
            rig.publisher.wake()
            assert wait_until(lambda: rig.publisher.stats().in_flight == in_flight_at_drop, 2.0)
            broker.kill()  # dies frozen: the in-flight rows are never read, let alone acked
            # No new rows until the client has noticed: nothing can slip in before that.
            assert wait_until(lambda: not rig.client.is_connected, 2.0)
        marked_at_stop = rig.outbox.sent_count
        time.sleep(0.2)
        published_early = rig.publisher.stats().published
        time.sleep(0.3)  # the producer goes on: rows pile up in the outbox
        assert rig.publisher.stats().published == published_early, "published while disconnected"
        assert rig.outbox.sent_count == marked_at_stop < total, "the outage hit no traffic"
        assert rig.publisher.stats().in_flight == in_flight_at_drop
        broker.start()
    finally:
        producer.join()
    assert rig.publisher.flush(10.0), (rig.publisher.stats(), broker.log_tail())
    all_ids = set(range(1, total + 1))
    assert sub.wait_for(lambda m: {i for _, i in first_deliveries(m)} >= all_ids, 10.0), sorted(
        all_ids - {i for _, i in first_deliveries(sub.messages)}
    )[:20]
    assert_in_order_per_camera(first_deliveries(sub.messages))
    assert rig.outbox.unsent() == []
    assert rig.publisher.stats().published == total, (
        "the publisher re-published rows paho still held"
    )
    assert rig.changes == [True, False, True]


@pytest.mark.integration
def test_wrong_password_logs_one_warning(
    broker_factory: Callable[..., Broker], caplog: pytest.LogCaptureFixture
) -> None:
    secret = "Wrong-Secret-42"
    protected = broker_factory(users={"monitor": "right-pass"})
    protected.start()
    caplog.set_level(logging.DEBUG, logger="monitor")
    client = MqttClient(mqtt_config(protected.port, username="monitor", password=secret))
    client.start()
    try:
        assert wait_until(lambda: protected.log_text().count("not authorised") >= 3, 5.0), (
            protected.log_tail()
        )
        assert not client.is_connected
    finally:
        client.stop(1.0)
    warnings = client_warnings(caplog)
    assert len(warnings) == 1, warnings
    assert f"127.0.0.1:{protected.port}" in warnings[0] and "not authorized" in warnings[0].lower()
    assert secret not in caplog.text and "Traceback" not in caplog.text

    good = MqttClient(
        mqtt_config(protected.port, username="monitor", password="right-pass", client_id="ok")
    )
    good.start()
    try:
        assert wait_until(lambda: good.is_connected, 5.0), protected.log_tail()
    finally:
        good.stop(1.0)


@pytest.mark.integration
def test_stop_is_bounded_when_the_broker_hangs(broker: Broker) -> None:
    client = MqttClient(mqtt_config(broker.port))
    client.start()
    assert wait_until(lambda: client.is_connected, 5.0)
    broker.freeze()
    try:
        started = time.monotonic()
        client.stop(1.0)
        assert time.monotonic() - started < 1.3
    finally:
        broker.thaw()
