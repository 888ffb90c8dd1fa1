"""The retained counts against the truth: a labelled clip (``monitor synth``: real people cut from
vtest.avi, walking and loitering, with the number of people whose feet are in the zone at every
frame) served over a real RTSP server to the real daemon, read back from a real Mosquitto.

The clip's line crossings must arrive as the retained crossing totals and be in the store.

At every check (4 a second, over one pass of the clip) the retained count of people in the zone
must equal the truth at some moment of the last ``LAG_S`` seconds: the count may trail a change by
confirmation (3 sightings) and ``end_after_s`` (2 s), nothing else. A stable truth therefore has
to be matched exactly.
"""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from monitor.config import DetectorConfig
from monitor.detect.yolo import YoloDetector
from monitor.store import open_database
from monitor.store.queries import crossing_counts, list_events, list_reviews
from monitor.synth import SynthSettings, generate_clips
from monitor.types import Frame
from tests.fixtures.broker import Broker, Subscriber
from tests.fixtures.rtsp import GST_PYTHON, RtspServer
from tests.test_daemon import config_for, start_daemon

pytestmark = [pytest.mark.slow, pytest.mark.integration]

END_AFTER_S = 2.0
LAG_S = 3.5           # confirmation + end_after_s + decode/inference latency, with margin
CHECK_EVERY_S = 0.25


@pytest.fixture(scope="module")
def loitering_clip(footage: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    detector = YoloDetector(DetectorConfig())

    def detect(image: np.ndarray) -> list[tuple[float, float, float, float, float]]:
        frame = Frame(camera="synth", index=0, image=image, captured_at=datetime.now(UTC),
                      monotonic=0.0)
        return [(d.box.x1, d.box.y1, d.box.x2, d.box.y2, d.score)
                for d in detector.detect([frame])[0].items]

    out = tmp_path_factory.mktemp("clips")
    paths = generate_clips(footage, out, seed=2000, per_kind=1, detect=detect)
    return next(p for p in paths if p.name.startswith("loitering"))


def latest(messages: list, topic: str) -> str | None:  # type: ignore[type-arg]
    values = [m.payload for m in messages if m.topic == topic]
    return values[-1] if values else None


def test_retained_zone_count_follows_the_people_in_the_zone(
    tmp_path: Path, loitering_clip: Path, broker: Broker
) -> None:
    truth = json.loads(loitering_clip.with_suffix(".people.json").read_text())
    in_zone, fps = truth["in_zone"], truth["fps"]
    clip_s = len(in_zone) / fps
    assert max(in_zone) >= 1
    # The server plays the file like a camera, from its start, independently of clients. Start
    # it once for a port, stop it, start the daemon (it retries the camera), then start the
    # server again: clip time 0 is that start, and the daemon catches up within its reconnect.
    server = RtspServer({"clip": loitering_clip}, python=GST_PYTHON)
    server.start()
    server.stop()
    try:
        cameras = [{"name": "yard", "url": server.url("clip"), "detect_fps": 5.0,
                    "zones": [{"name": "synth", "polygon": truth["zone"]}],
                    "lines": [{"name": "path", "points": truth["line"]}]}]
        config = config_for(tmp_path, broker.port, cameras,
                            events={"end_after_s": END_AFTER_S, "update_interval_s": 5.0},
                            source={"reconnect_max_s": 1.0, "reconnect_initial_s": 0.2})
        zone_topic, camera_topic = "monitor/yard/synth/person", "monitor/yard/person"
        with Subscriber(broker.port, ["monitor/#"]) as subscriber:
            daemon = start_daemon(config, tmp_path)
            try:
                server.start()
                started = time.monotonic()   # clip time 0
                deadline = started + 15
                while "camera yard: streaming" not in daemon.log and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert "camera yard: streaming" in daemon.log, daemon.log[-3000:]
                checks = []
                # One pass of the clip (the server's rewind at the end is not frame-exact).
                while time.monotonic() - started < clip_s - CHECK_EVERY_S:
                    time.sleep(CHECK_EVERY_S)
                    t = time.monotonic() - started
                    count = latest(subscriber.messages, zone_topic)
                    whole = latest(subscriber.messages, camera_topic)
                    checks.append((t, None if count is None else int(count),
                                   None if whole is None else int(whole)))
            finally:
                rc = daemon.stop()
            assert rc == 0, daemon.log[-3000:]
            assert latest(subscriber.messages, zone_topic) == "0"   # reset at stop
            crossed = {d: latest(subscriber.messages, f"monitor/yard/crossings/path/person/{d}")
                       for d in ("in", "out")}
    finally:
        server.stop()
        server.close()

    def truth_at(t: float) -> int:
        return int(in_zone[min(len(in_zone) - 1, max(0, math.floor(t * fps)))])

    wrong = []
    for t, count, whole in checks:
        allowed = {truth_at(max(0.0, t - lag)) for lag in np.arange(0.0, LAG_S + 1e-9, 0.1)}
        if count not in allowed:
            wrong.append((round(t, 2), count, sorted(allowed)))
        assert whole is None or count is None or whole >= count
    assert len(checks) >= 4 * (clip_s - 5.0)      # the daemon was watching for most of it
    series = " ".join(f"{t:.1f}:{c}/{truth_at(t)}" for t, c, _ in checks)
    print("clip time:count/truth", series)
    assert wrong == [], f"{len(wrong)} of {len(checks)} checks wrong: {wrong[:10]}\n{series}"
    # The stay in the zone was seen: the count was 1 or more at checks, not only 0.
    assert max(c for _, c, _ in checks if c is not None) >= 1
    engine = open_database(f"sqlite:///{tmp_path / 'events.db'}")
    # The line's retained totals: what the clip's people did, and what the store counts (the
    # next start continues from there). The clip's crossings are well after its start.
    assert {d: int(v or -1) for d, v in crossed.items()} == truth["crossings"], crossed
    stored = crossing_counts(engine, "yard")
    assert {d.value: n for (_, _, d), n in stored.items()} == {
        d: n for d, n in truth["crossings"].items() if n
    }
    reviews = list_reviews(engine)
    members = {i for r in reviews for i in r.event_ids}
    assert members == {e.id for e in list_events(engine, limit=1000) if e.announced}
