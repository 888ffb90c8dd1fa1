"""Scale-out as it is deployed: one config file, several ``monitor run`` processes (instances of
a template unit, told apart by MONITOR_INSTANCE and MONITOR_SHARD), one PostgreSQL database and
one broker. Each runs only its shard's cameras; the events of all land in one table, every alert
is delivered exactly once, and each instance has its own availability topic. A daemon whose
shard holds no camera runs too (availability, outbox, retention) instead of failing.

Real daemons, real RTSP server on real footage, real Mosquitto, real PostgreSQL.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from monitor.config.ownership import camera_shard
from monitor.store import open_database
from monitor.store.models import OutboxRow
from monitor.store.queries import count_unsent, list_events
from tests.fixtures.broker import Broker, Subscriber
from tests.fixtures.rtsp import FOOTAGE_CAPS, RtspServer
from tests.support.daemon import DaemonProcess, write_config
from tests.test_daemon import READY_TIMEOUT_S, alerts

pytestmark = [pytest.mark.slow, pytest.mark.integration]

CAMERAS = ["gate", "yard", "porch", "garage"]
RUN_S = 45.0


def test_two_sharded_daemons_share_one_database_and_broker(
    tmp_path: Path, footage: Path, gst_python: str, broker: Broker, postgres_url: str
) -> None:
    shard_of = {name: camera_shard(name, 2) for name in CAMERAS}
    assert sorted(shard_of.values()) == [0, 0, 1, 1]  # the names were chosen for an even split
    empty_of_four = [i for i in range(4) if all(camera_shard(n, 4) != i for n in CAMERAS)]
    assert empty_of_four, "the names should leave one shard of four empty"
    server = RtspServer({name: footage for name in CAMERAS}, caps=FOOTAGE_CAPS, python=gst_python)
    server.start()
    try:
        config = write_config(tmp_path / "monitor.toml", {
            "daemon": {"watchdog_interval_s": 1.0},  # state_dir: $STATE_DIRECTORY, as under systemd
            "database": {"url": postgres_url},
            "mqtt": {"host": "127.0.0.1", "port": broker.port, "reconnect_max_s": 2.0},
            "detector": {"imgsz": 640, "threads": 1, "accelerate": "none"},
            "source": {"reconnect_max_s": 2.0, "stall_timeout_s": 5.0},
            "events": {"end_after_s": 2.0, "confirm_frames": 3, "update_interval_s": 3.0},
        }, [{"name": name, "url": server.url(name), "detect_fps": 1.0} for name in CAMERAS])

        def daemon(instance: str, shard: str) -> DaemonProcess:
            workdir = tmp_path / instance
            workdir.mkdir()
            return DaemonProcess(config, workdir, env={
                "MONITOR_INSTANCE": instance, "MONITOR_SHARD": shard,
                "STATE_DIRECTORY": str(workdir / "state"),
            })

        with Subscriber(broker.port, ["monitor/#"]) as subscriber:
            daemons = {"a": daemon("a", "0/2"), "b": daemon("b", "1/2"),
                       "idle": daemon("idle", f"{empty_of_four[0]}/4")}
            for process in daemons.values():
                process.start()
            try:
                for name, process in daemons.items():
                    assert process.wait_notified("READY=1", READY_TIMEOUT_S), (
                        f"{name} never sent READY=1:\n{process.log[-3000:]}")
                time.sleep(RUN_S)
            finally:
                codes = {name: process.stop() for name, process in daemons.items()}
            logs = {name: process.log for name, process in daemons.items()}
            assert codes == {"a": 0, "b": 0, "idle": 0}, logs
            assert not any("Traceback" in log for log in logs.values()), logs
            for name, index in (("a", 0), ("b", 1)):
                owned = ", ".join(n for n in CAMERAS if shard_of[n] == index)
                assert (f"watching 2 of the 4 camera(s) in the file (shard {index}/2): {owned}"
                        in logs[name]), logs[name][-3000:]
            assert "watching none of the 4 camera(s) in the file" in logs["idle"]

            # Each instance its own availability: online while it ran, offline at its stop.
            for instance in daemons:
                said = [m.payload for m in subscriber.messages
                        if m.topic == f"monitor/available/{instance}"]
                assert said[:1] == ["online"] and said[-1] == "offline", (instance, said)

            engine = open_database(postgres_url)
            events = list_events(engine, limit=10_000)
            by_camera = Counter(event.camera for event in events)
            # Every camera has people in front of it: both daemons recorded into one table.
            assert set(by_camera) == set(CAMERAS), by_camera
            assert all(event.end_time is not None for event in events)  # a clean stop ends all
            with engine.connect() as connection:
                rows = connection.execute(select(OutboxRow.instance, OutboxRow.topic)).all()
            # Each daemon wrote (and alone published) its own cameras' alerts.
            for instance, topic in rows:
                camera = topic.split("/")[2] if "/events/" in topic else None
                if camera in shard_of:
                    assert instance == "ab"[shard_of[camera]], (instance, topic)
            assert count_unsent(engine) == 0
            engine.dispose()

            # Every alert delivered exactly once, and every announced event's start and end.
            keys = Counter((a["id"], a["type"], a["seq"]) for a in alerts(subscriber.messages))
            assert keys and max(keys.values()) == 1, [k for k, n in keys.items() if n > 1]
            announced = {e.id for e in events if e.announced}
            assert {a["id"] for a in alerts(subscriber.messages, "start")} == announced
            assert {a["id"] for a in alerts(subscriber.messages, "end")} == announced
            published_cameras = {json.loads(m.payload)["camera"] for m in subscriber.messages
                                 if "/events/" in m.topic}
            assert published_cameras == set(CAMERAS)
    finally:
        server.close()
