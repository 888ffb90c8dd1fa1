"""A daemon killed mid-event (SIGKILL: no shutdown code runs) and started again: every event it
left open is ended with end_reason "restart" and its END alert is delivered; the retained counts
it left behind are reset. Real daemon, RTSP server, Mosquitto and SQLite."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from monitor.store import open_database
from monitor.store.queries import count_unsent, list_events, list_reviews
from tests.fixtures.broker import Broker, Subscriber
from tests.fixtures.rtsp import RtspServer
from tests.test_daemon import alerts, config_for, start_daemon

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_sigkill_mid_event_then_restart_ends_every_event(
    tmp_path: Path, rtsp_server: RtspServer, broker: Broker
) -> None:
    cameras = [{"name": "gate", "url": rtsp_server.url("cam1"), "detect_fps": 3.0,
                "zones": [{"name": "path", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}]}]
    # Long end_after_s: events stay open, so the kill certainly catches some.
    config = config_for(tmp_path, broker.port, cameras, events={"end_after_s": 30.0})
    engine = open_database(f"sqlite:///{tmp_path / 'events.db'}")
    (tmp_path / "run1").mkdir()
    (tmp_path / "run2").mkdir()
    with Subscriber(broker.port, ["monitor/#"]) as subscriber:
        first = start_daemon(config, tmp_path / "run1")
        assert first.process is not None
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                open_now = [e for e in list_events(engine, limit=1000)
                            if e.end_time is None and e.announced]
                started = {a["id"] for a in alerts(subscriber.messages, "start")}
                if len(open_now) >= 2 and {e.id for e in open_now} <= started:
                    break
                time.sleep(0.5)
            assert len(open_now) >= 2, first.log[-3000:]
        finally:
            first.process.kill()  # SIGKILL: no END, no "offline" but the broker's last will
            first.process.wait(10)
        left_open = {e.id: e for e in list_events(engine, limit=1000) if e.end_time is None}
        assert len(left_open) >= 2
        reviews_left_open = {r.id for r in list_reviews(engine) if r.end_time is None}
        assert len(reviews_left_open) == 1          # one camera, one activity period

        second = start_daemon(config, tmp_path / "run2")
        try:
            assert second.wait_for_log("left open", 10), second.log[-3000:]

            def restart_ends(messages: list[Any]) -> set[str]:
                return {a["id"] for a in alerts(messages, "end") if a["end_reason"] == "restart"}

            announced = {i for i, e in left_open.items() if e.announced}
            assert subscriber.wait_for(lambda m: restart_ends(m) >= announced, 20), (
                second.log[-3000:])
            time.sleep(3)
        finally:
            rc = second.stop()
        assert rc == 0, second.log[-3000:]
        assert "Traceback" not in first.log + second.log

        events = list_events(engine, limit=10_000)
        assert all(e.end_time is not None for e in events)
        for event_id, before in left_open.items():
            after = next(e for e in events if e.id == event_id)
            assert after.end_reason is not None and after.end_reason.value == "restart"
            assert after.end_time is not None and after.end_time >= after.start_time
            assert after.seq == before.seq + 1          # the END continues the event's numbering
        assert count_unsent(engine) == 0
        # Reviews: every one ended, the killed run's one at its last event's end; reviews and
        # events agree by id, and each announced event belongs to exactly one review.
        reviews = list_reviews(engine, limit=1000)
        assert all(r.end_time is not None for r in reviews)
        by_id = {e.id: e for e in events}
        members = Counter(i for r in reviews for i in r.event_ids)
        assert set(members) == {e.id for e in events if e.announced}
        assert max(members.values()) == 1
        for review in reviews:
            assert review.end_time == max(by_id[i].end_time for i in review.event_ids)  # type: ignore[type-var]
            assert review.severity.value == "alert"   # intrusions into "path"
        review_msgs = [json.loads(m.payload) for m in subscriber.messages
                       if m.topic == "monitor/reviews"]
        assert {m["id"] for m in review_msgs if m["type"] == "end"} == {r.id for r in reviews}
        assert reviews_left_open <= {m["id"] for m in review_msgs if m["type"] == "end"}
        # Each alert once per (id, type, seq); one START per announced event over both runs.
        keys = Counter((a["id"], a["type"], a["seq"]) for a in alerts(subscriber.messages))
        assert max(keys.values()) == 1, [k for k, n in keys.items() if n > 1]
        starts = Counter(a["id"] for a in alerts(subscriber.messages, "start"))
        assert set(starts) == {e.id for e in events if e.announced}
        # The restart reset the counts the killed run left retained, and the stop zeroed them.
        counts = [m for m in subscriber.messages if m.topic == "monitor/gate/person"]
        assert counts and counts[-1].payload == "0"
        assert any(json.loads(m.payload) > 0 for m in counts)
    topics = ["monitor/gate/person", "monitor/gate/path/person", "monitor/gate/motion"]
    with Subscriber(broker.port, topics) as late:   # what a subscriber that connects now reads
        assert late.wait_for(lambda m: len(m) == 3, 5), late.messages
        assert {(m.topic, m.payload, m.retain) for m in late.messages} == {
            ("monitor/gate/person", "0", True), ("monitor/gate/path/person", "0", True),
            ("monitor/gate/motion", "OFF", True)}
