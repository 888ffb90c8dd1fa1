"""A database that stops taking writes delays marking alerts sent, never their delivery.

The probe of issue 11 filled the disk: the writer queue filled with retried records, the MQTT
publisher blocked in ``mark_sent`` on that full queue, and 5 of 40 committed alerts reached the
broker in 5 s. Here a second connection holds SQLite's write lock (what a full disk or a long
foreign transaction looks like to the writer), the writer's queue is full of records it cannot
commit, and every committed alert must still reach a real Mosquitto at once.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import make_url

from monitor.config import MqttConfig
from monitor.mqtt.client import MqttClient
from monitor.mqtt.outbox import OutboxPublisher
from monitor.store import EventWriter, count_unsent, open_database, pending_messages
from monitor.store.writer import BATCH_MAX
from monitor.types import Alert, AlertType, OutboxMessage
from tests.fixtures.broker import Broker, Subscriber
from tests.test_store import make_event

pytestmark = pytest.mark.integration

COMMITTED = 40


def test_committed_alerts_are_delivered_while_the_writer_is_stuck(
    broker: Broker, sqlite_url: str
) -> None:
    engine = open_database(sqlite_url, busy_timeout_ms=50)
    writer = EventWriter(engine, queue_size=10, retry_initial_s=0.05, retry_max_s=0.2)
    writer.start()
    for n in range(COMMITTED):
        event = make_event(camera=f"cam{n % 2}")
        writer.record(Alert(AlertType.START, event),
                      OutboxMessage(None, event.camera, f"t/events/{event.camera}/presence",
                                    json.dumps({"n": n})))
    assert writer.flush(10.0)

    # Someone else takes the write lock and keeps it: every commit of the writer now fails.
    path = make_url(sqlite_url).database
    assert path is not None
    blocker = sqlite3.connect(path, isolation_level=None, timeout=5)
    blocker.execute("BEGIN IMMEDIATE")
    # Fill the queue; none of them can be committed. The writer holds the batch it is retrying
    # outside the queue, and how many it took depends on when it woke: record until full.
    for _ in range(10 + BATCH_MAX):
        if writer.backlogged():
            break
        event = make_event()
        writer.record(Alert(AlertType.START, event), None, timeout_s=1.0)
    assert writer.backlogged()

    publisher: list[OutboxPublisher] = []
    client = MqttClient(
        MqttConfig(host="127.0.0.1", port=broker.port, prefix="t", client_id="stuck-store"),
        on_delivered=lambda mid: publisher[0].delivered(mid),
        on_connection_change=lambda up: publisher[0].wake(),
    )
    publisher.append(OutboxPublisher(
        client, lambda after, limit: pending_messages(engine, after_id=after, limit=limit),
        writer.mark_sent, max_inflight=5, poll_interval_s=0.05,
    ))
    try:
        with Subscriber(broker.port, ["t/events/#"]) as sub:
            client.start()
            publisher[0].start()
            assert sub.wait_for(lambda m: len(m) >= COMMITTED, 10.0), len(sub.messages)
            assert sorted(json.loads(m.payload)["n"] for m in sub.messages) == list(range(COMMITTED))
            assert count_unsent(engine) == COMMITTED  # marking waits for the database

            blocker.execute("ROLLBACK")  # the database is back: the marks and records commit
            deadline = time.monotonic() + 10
            while count_unsent(engine) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert count_unsent(engine) == 0
            assert len(sub.messages) == COMMITTED  # and nothing was published twice
    finally:
        publisher[0].stop(2.0)
        client.stop(2.0)
        writer.stop(5.0)
        blocker.close()
        engine.dispose()
    assert Path(path).exists()


def test_marks_collected_over_a_long_outage_still_commit(sqlite_url: str) -> None:
    # Found in review: the marks of a long outage were one IN list. Past the bound-parameter
    # limit (SQLite: 250 000 in Debian's build; PostgreSQL: 65 535) the statement failed, "too
    # many SQL variables", which the writer took for a passing fault and retried forever, and
    # the alerts queued behind it with it.
    engine = open_database(sqlite_url)
    writer = EventWriter(engine, retry_initial_s=0.05, retry_max_s=0.2)
    writer.start()
    try:
        for n in range(3):
            event = make_event()
            writer.record(Alert(AlertType.START, event),
                          OutboxMessage(None, event.camera, "t/events", json.dumps({"n": n})))
        assert writer.flush(10.0)
        ids = [m.id for m in pending_messages(engine, after_id=0, limit=10)]
        writer.mark_sent(list(range(1_000_000, 1_260_000)) + ids)  # 260 000 marks in one item
        event = make_event()
        writer.record(Alert(AlertType.START, event), None)
        assert writer.flush(10.0), "the writer is stuck on the marks"
        assert count_unsent(engine) == 0
    finally:
        writer.stop(5.0)
