"""The whole daemon, end to end, against real components: the GStreamer RTSP server serving real
footage, a private Mosquitto, SQLite / the local PostgreSQL, and the real detector."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from monitor.store import open_database
from monitor.store.models import OutboxRow
from monitor.store.queries import count_unsent, list_events, list_reviews
from monitor.types import Event
from tests.fixtures.broker import Broker, Subscriber, free_port
from tests.fixtures.rtsp import RtspServer
from tests.support.daemon import DaemonProcess, write_config

pytestmark = [pytest.mark.slow, pytest.mark.integration]

WIDTH, HEIGHT = 768, 576
MS = timedelta(milliseconds=1)
READY_TIMEOUT_S = 120.0  # imports torch + loads and warms the model on a busy 2-core machine


def config_for(
    tmp_path: Path, mqtt_port: int, cameras: list[dict[str, Any]], *, db_url: str | None = None,
    **sections: dict[str, Any],
) -> Path:
    tables: dict[str, dict[str, Any]] = {
        "daemon": {"state_dir": str(tmp_path / "state"), "watchdog_interval_s": 1.0},
        "database": {"url": db_url or f"sqlite:///{tmp_path / 'events.db'}"},
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "reconnect_max_s": 2.0},
        "detector": {"imgsz": 640, "threads": 1, "accelerate": "none"},
        "source": {"reconnect_max_s": 2.0, "stall_timeout_s": 5.0},
        "events": {"end_after_s": 2.0, "confirm_frames": 3, "update_interval_s": 3.0},
    }
    for name, values in sections.items():
        tables.setdefault(name, {}).update(values)
    return write_config(tmp_path / "monitor.toml", tables, cameras)


def start_daemon(config: Path, tmp_path: Path) -> DaemonProcess:
    daemon = DaemonProcess(config, tmp_path).start()
    if not daemon.wait_notified("READY=1", READY_TIMEOUT_S):
        daemon.stop()
        pytest.fail(f"daemon never sent READY=1; log:\n{daemon.log[-3000:]}")
    return daemon


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics and parse it: (sample name, sorted labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text) for sample in family.samples
    }


def assert_metrics(
    scraped: dict[tuple[str, tuple[tuple[str, str], ...]], float], cameras: list[str],
    events: Counter[tuple[str, str]],
) -> None:
    def value(name: str, **labels: str) -> float:
        return scraped[(name, tuple(sorted(labels.items())))]

    for camera in cameras:
        read = value("monitor_camera_frames_read_total", camera=camera)
        due = value("monitor_camera_frames_due_total", camera=camera)
        assert read > due > 0 and value("monitor_camera_online", camera=camera) == 1.0
        assert value("monitor_camera_frames_dropped_total", camera=camera) <= due
        answered = sum(v for (n, labels), v in scraped.items()
                       if n == "monitor_camera_frames_processed_total" and ("camera", camera) in labels)
        assert 0 < answered <= due
    calls = value("monitor_inference_seconds_count")
    assert calls > 0 and 0 < value("monitor_inference_seconds_sum") / calls < 10
    assert value("monitor_inference_seconds_bucket", le="+Inf") == calls
    shapes = sum(v for (n, _), v in scraped.items() if n == "monitor_detector_inputs_total")
    assert shapes == calls  # one input shape per detector call
    # Scraped 5 s before the stop: what had started by then, never more than the store holds.
    started = {(dict(labels)["camera"], dict(labels)["kind"]): v for (n, labels), v in
               scraped.items() if n == "monitor_events_total"}
    assert started and all(events[key] >= count for key, count in started.items()), started
    assert value("monitor_store_queue_capacity") > 0
    assert value("monitor_alerts_published_total") >= value("monitor_alerts_delivered_total") > 0
    assert value("monitor_outbox_unsent") >= 0 and value("monitor_uptime_seconds") > 20


def assert_stats_topic(messages: list[Any], cameras: list[str]) -> None:
    stats = [json.loads(m.payload) for m in messages if m.topic.startswith("monitor/stats/")]
    assert len(stats) >= 3, "one every stats_interval_s (5 s) over 30 s"
    last = stats[-1]
    assert last["detector"]["inference_ms"] > 0 and last["detector"]["frames_per_s"] > 0
    assert last["alerts"]["failed"] == 0 and last["store"]["capacity"] > 0
    for camera in cameras:
        entry = last["cameras"][camera]
        assert entry["status"] == "online" and entry["camera_fps"] > entry["detection_fps"] > 0


def alerts(messages: list[Any], kind: str | None = None) -> list[dict[str, Any]]:
    out = []
    for message in messages:
        if "/events/" in message.topic:
            payload = json.loads(message.payload)
            if kind is None or payload["type"] == kind:
                out.append(payload)
    return out


def assert_sane(event: Event, since: datetime, until: datetime) -> None:
    box = event.box
    assert 0 <= box.x1 < box.x2 <= WIDTH and 0 <= box.y1 < box.y2 <= HEIGHT, event
    assert (box.x2 - box.x1) * (box.y2 - box.y1) < WIDTH * HEIGHT / 2, event  # a person, not the scene
    assert event.label == "person"
    assert 0.5 <= event.score <= 1.0
    assert since - timedelta(seconds=5) <= event.start_time <= until, event
    assert event.end_time is not None and event.start_time <= event.end_time <= until, event


def test_two_rtsp_cameras_end_to_end(
    tmp_path: Path, rtsp_server: RtspServer, broker: Broker
) -> None:
    cameras = [
        {"name": "cam1", "url": rtsp_server.url("cam1", "viewer:hunter2"), "detect_fps": 2.0,
         "zones": [{"name": "path", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}]},
        {"name": "cam2", "url": rtsp_server.url("cam2"), "detect_fps": 2.0},
    ]
    metrics_port = free_port()
    config = config_for(tmp_path, broker.port, cameras,
                        metrics={"enabled": True, "port": metrics_port, "stats_interval_s": 5.0})
    with Subscriber(broker.port, ["monitor/#"]) as subscriber:
        began = datetime.now(UTC)
        daemon = start_daemon(config, tmp_path)
        time.sleep(25)
        # Prometheus' view, scraped over HTTP as Prometheus would, and the stats topic.
        scraped = scrape(metrics_port)
        time.sleep(5)
        rc = daemon.stop()
        ended = datetime.now(UTC)
        log = daemon.log
        assert rc == 0, log[-3000:]
        assert daemon.stop_seconds is not None and daemon.stop_seconds < 5.0, daemon.stop_seconds
        assert any("WATCHDOG=1" in n for n in daemon.notifications)
        assert "Traceback" not in log
        assert "hunter2" not in log and "viewer:***@" in log

        engine = open_database(f"sqlite:///{tmp_path / 'events.db'}")
        events = list_events(engine, limit=10_000)
        by_camera = Counter((e.camera, e.kind.value) for e in events)
        assert by_camera[("cam1", "presence")] >= 1 and by_camera[("cam2", "presence")] >= 1, by_camera
        assert by_camera[("cam1", "intrusion")] >= 1, by_camera  # the zone covers the whole frame
        for event in events:
            assert_sane(event, began, ended)
            assert event.snapshot and Path(event.snapshot).read_bytes()[:2] == b"\xff\xd8"
        assert count_unsent(engine) == 0

        assert_metrics(scraped, ["cam1", "cam2"], by_camera)
        assert_stats_topic(subscriber.messages, ["cam1", "cam2"])

        # A stationary object that never moved (vtest's yellow object) is recorded, not alerted.
        ids = {e.id for e in events if e.announced}
        assert all(e.stationary for e in events if not e.announced)
        assert subscriber.wait_for(lambda m: {a["id"] for a in alerts(m, "end")} >= ids, 10)
        starts, ends = alerts(subscriber.messages, "start"), alerts(subscriber.messages, "end")
        assert sorted(a["id"] for a in starts) == sorted(ids)  # one start per event, no strays
        assert sorted(a["id"] for a in ends) == sorted(ids)
        rows = {e.id: e for e in events}
        for payload in ends:
            row = rows[payload["id"]]
            assert (payload["camera"], payload["kind"], payload["track_id"]) == (
                row.camera, row.kind.value, row.track_id)
            # The payload carries milliseconds; the database keeps microseconds.
            assert abs(datetime.fromisoformat(payload["start_time"]) - row.start_time) < MS
            assert row.end_time is not None
            assert abs(datetime.fromisoformat(payload["end_time"]) - row.end_time) < MS
            assert payload["box"] == pytest.approx(row.box.as_list(), abs=0.11)
        # One review per activity period per camera, grouping exactly the announced events.
        reviews = list_reviews(engine, limit=1000)
        members = Counter(i for r in reviews for i in r.event_ids)
        assert set(members) == ids and max(members.values()) == 1
        assert all(rows[i].camera == r.camera for r in reviews for i in r.event_ids)
        assert all(r.end_time is not None for r in reviews)
        assert {r.severity.value for r in reviews if r.camera == "cam1"} == {"alert"}
        review_ends = [json.loads(m.payload) for m in subscriber.messages
                       if m.topic == "monitor/reviews" and json.loads(m.payload)["type"] == "end"]
        assert sorted(m["id"] for m in review_ends) == sorted(r.id for r in reviews)
        availability = [m.payload for m in subscriber.messages if m.topic.startswith("monitor/available/")]
        assert availability[0] == "online" and availability[-1] == "offline"

    # The CLI reads the same rows back.
    result = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "events", "--config", str(config), "--format",
         "json", "--limit", "10000"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert {e["id"] for e in json.loads(result.stdout) if e["announced"]} == ids
    one = next(iter(ids))
    shown = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "events", "show", one, "--config", str(config)],
        capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and one in shown.stdout and "evidence:" in shown.stdout


def unsent_since(engine: Engine, since: datetime) -> int:
    """Outbox messages recorded after ``since`` and not yet acknowledged by a broker."""
    query = (select(func.count()).select_from(OutboxRow)
             .where(OutboxRow.sent_at.is_(None), OutboxRow.created_at > since))
    with Session(engine) as session:
        return int(session.scalar(query) or 0)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_broker_outages_lose_no_alert(
    tmp_path: Path, footage: Path, broker_factory: Any, backend: str, request: pytest.FixtureRequest
) -> None:
    db_url = request.getfixturevalue("postgres_url") if backend == "postgresql" else None
    broker = broker_factory(persistence=True)
    # A subscriber with a persistent session registers once, so the broker queues alerts for it
    # from the moment it comes back, whatever the order in which daemon and subscriber reconnect.
    broker.start()
    Subscriber(broker.port, ["monitor/events/#"], persistent=True).start().stop()
    broker.stop()

    cameras = [{"name": "lobby", "url": str(footage), "detect_fps": 3.0}]
    config = config_for(tmp_path, broker.port, cameras, db_url=db_url)
    daemon = start_daemon(config, tmp_path)
    engine = open_database(db_url or f"sqlite:///{tmp_path / 'events.db'}")
    subscriber: Subscriber | None = None
    try:
        deadline = time.monotonic() + 60
        while count_unsent(engine) < 6 and time.monotonic() < deadline:
            time.sleep(1)
        assert count_unsent(engine) >= 6, "no alerts queued while the broker was down"
        assert "Traceback" not in daemon.log

        broker.start()
        subscriber = Subscriber(broker.port, ["monitor/events/#"], persistent=True).start()
        assert subscriber.wait_for(lambda m: len(alerts(m)) >= 6, 20), "queued alerts never came"
        # A second outage while the daemon is running and recording. Counted from the stop: an
        # alert recorded just before it may still be acknowledged by the broker going down.
        broker.stop()
        stopped_at = datetime.now(UTC)
        deadline = time.monotonic() + 45
        while unsent_since(engine, stopped_at) == 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert unsent_since(engine, stopped_at) > 0, "no alert was recorded during the second outage"
        time.sleep(2)
        broker.start()
        time.sleep(4)
    finally:
        rc = daemon.stop()
    try:
        assert rc == 0, daemon.log[-3000:]
        events = list_events(engine, limit=10_000)
        ids = {e.id for e in events if e.announced}
        assert subscriber.wait_for(lambda m: {a["id"] for a in alerts(m, "end")} >= ids, 15), (
            "not every event's end alert arrived")
        starts = {a["id"] for a in alerts(subscriber.messages, "start")}
        assert starts == ids
        assert count_unsent(engine) == 0
        # In order per camera: each event's start precedes its end.
        seen: list[tuple[str, str]] = [(a["id"], a["type"]) for a in alerts(subscriber.messages)]
        for event_id in ids:
            assert seen.index((event_id, "start")) < seen.index((event_id, "end"))
    finally:
        if subscriber is not None:
            subscriber.stop()


def test_rtsp_server_restart_reconnects_and_events_resume(
    tmp_path: Path, rtsp_server: RtspServer, broker: Broker
) -> None:
    # Also the camera's health: its retained status topic, and a camera_offline event once it
    # has been offline for offline_event_s, ended when frames come back.
    cameras = [{"name": "gate", "url": rtsp_server.url("cam1"), "detect_fps": 3.0}]
    config = config_for(tmp_path, broker.port, cameras, source={"offline_event_s": 2.0})
    status_topic, offline_topic = "monitor/gate/status", "monitor/events/gate/camera_offline"
    subscriber = Subscriber(broker.port, [status_topic, offline_topic]).start()
    daemon = start_daemon(config, tmp_path)
    engine = open_database(f"sqlite:///{tmp_path / 'events.db'}")

    def statuses() -> list[str]:
        return [m.payload for m in subscriber.messages if m.topic == status_topic]

    try:
        deadline = time.monotonic() + 40
        while not list_events(engine) and time.monotonic() < deadline:
            time.sleep(1)
        assert list_events(engine), "no event before the outage"
        assert statuses()[-1:] == ["online"], statuses()
        threads_before = daemon.thread_count()

        log_mark = len(daemon.log)
        rtsp_server.stop()
        assert daemon.wait_for_log("WARNING", 15, after=log_mark), daemon.log[log_mark:]
        assert subscriber.wait_for(lambda _: statuses()[-1:] == ["offline"], 5), statuses()
        time.sleep(4)  # a few failed reconnects; longer than offline_event_s
        restarted_at = datetime.now(UTC)
        rtsp_server.start()

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(e.start_time >= restarted_at for e in list_events(engine)):
                break
            time.sleep(1)
        resumed = [e for e in list_events(engine) if e.start_time >= restarted_at]
        assert resumed, f"no event after the RTSP server came back:\n{daemon.log[log_mark:][-3000:]}"
        assert daemon.thread_count() <= threads_before, "threads leaked over a reconnect"
        assert statuses()[-1:] == ["online"], statuses()
        offline = [json.loads(m.payload) for m in subscriber.messages if m.topic == offline_topic]
        assert [a["type"] for a in offline] == ["start", "end"], offline
        assert offline[1]["end_reason"] == "back_online" and offline[0]["id"] == offline[1]["id"]
        stored = [e for e in list_events(engine) if e.kind.value == "camera_offline"]
        assert len(stored) == 1 and stored[0].end_time is not None
        # It started when the camera went offline, not offline_event_s later.
        assert stored[0].end_time - stored[0].start_time >= timedelta(seconds=4)
    finally:
        rc = daemon.stop()
        stopped_offline = subscriber.wait_for(lambda _: statuses()[-1:] == ["offline"], 5)
        subscriber.stop()
    assert rc == 0
    assert "Traceback" not in daemon.log
    assert stopped_offline, f"a clean stop leaves the status offline: {statuses()}"


def test_unreachable_camera_is_retried_not_fatal(tmp_path: Path, footage: Path, broker: Broker) -> None:
    from tests.fixtures.broker import free_port

    dead = f"rtsp://admin:topsecret@127.0.0.1:{free_port()}/nothing"
    cameras = [
        {"name": "dead", "url": dead, "detect_fps": 2.0},
        {"name": "alive", "url": str(footage), "detect_fps": 2.0},
    ]
    config = config_for(tmp_path, broker.port, cameras)
    daemon = start_daemon(config, tmp_path)
    try:
        assert daemon.wait_for_log("dead", 20)
        time.sleep(6)
        log = daemon.log
        retries = [line for line in log.splitlines() if "WARNING" in line and "nothing" in line]
        assert len(retries) >= 2, log[-3000:]
        assert all("admin:***@" in line for line in retries)
    finally:
        rc = daemon.stop()
    assert rc == 0
    assert "topsecret" not in daemon.log
    assert "Traceback" not in daemon.log


@pytest.mark.parametrize(
    ("section", "values", "expected"),
    [
        ("detector", {"model": "/nonexistent/model.pt"}, "detector.model '/nonexistent/model.pt'"),
        ("database", {"url": "postgresql+psycopg://monitor:pw@127.0.0.1:1/db"}, "monitor:***@"),
        ("detector", {"model": "NOT_A_MODEL"}, "detector.model"),
        ("daemon", {"state_dir": "/proc/monitor-state"}, "daemon.state_dir /proc/monitor-state"),
        ("mqtt", {"tls_ca_file": "NOT_A_CERT"}, "mqtt.tls_ca_file"),
    ],
)
def test_startup_failures_are_one_line(
    tmp_path: Path, footage: Path, section: str, values: dict[str, Any], expected: str
) -> None:
    not_a_file = tmp_path / "garbage.bin"
    not_a_file.write_bytes(b"this is not a model nor a certificate\n" * 10)
    for key, value in values.items():
        if value in {"NOT_A_MODEL", "NOT_A_CERT"}:
            values = {**values, key: str(not_a_file)}
    cameras = [{"name": "a", "url": str(footage)}]
    config = config_for(tmp_path, 1, cameras, **{section: values})
    result = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "run", "--config", str(config)],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("monitor: error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert ":pw@" not in result.stderr
