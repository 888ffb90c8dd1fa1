"""Event clips from the real daemon: real footage (vtest.avi) over a real RTSP server, the real
detector, a private Mosquitto and SQLite; each clip read back as a browser would need it."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.store import open_database
from monitor.store.queries import list_events
from monitor.types import EndReason
from tests.fixtures.broker import Broker, Subscriber, free_port
from tests.fixtures.rtsp import RtspServer
from tests.support.mp4 import probe, top_level_boxes
from tests.test_daemon import config_for, scrape, start_daemon

pytestmark = [pytest.mark.slow, pytest.mark.integration]

PRE_ROLL_S, POST_ROLL_S, CLIP_FPS = 2.0, 2.0, 5.0
FRAME_S = 1.0 / CLIP_FPS
# Read jitter of the sampled frames and the millisecond rounding of stored times.
JITTER_S = 0.3


def test_every_event_gets_a_playable_clip_of_its_time_span(
    tmp_path: Path, rtsp_server: RtspServer, broker: Broker
) -> None:
    clips_dir = tmp_path / "clips"
    metrics_port = free_port()
    config = config_for(
        tmp_path, broker.port,
        [{"name": "cam1", "url": rtsp_server.url("cam1"), "detect_fps": 3.0}],
        clips={"pre_roll_s": PRE_ROLL_S, "post_roll_s": POST_ROLL_S, "fps": CLIP_FPS,
               "max_width_px": 640, "dir": str(clips_dir)},
        metrics={"enabled": True, "port": metrics_port},
    )
    with Subscriber(broker.port, ["monitor/#"]) as subscriber:
        daemon = start_daemon(config, tmp_path)
        ready = datetime.now(UTC)
        time.sleep(35)
        scraped = scrape(metrics_port)
        rc = daemon.stop()
        stopped = datetime.now(UTC)
        assert rc == 0 and "Traceback" not in daemon.log, daemon.log[-3000:]
        assert daemon.stop_seconds is not None and daemon.stop_seconds < 5.0
        engine = open_database(f"sqlite:///{tmp_path / 'events.db'}")
        events = [e for e in list_events(engine, limit=10_000) if e.announced]
        engine.dispose()
        with_clips = [e for e in events if e.clip is not None]
        # Every event that ended with its post-roll filmed before the stop has its clip, and
        # its message was published (those the stop wrote may wait in the outbox).
        finished = [e for e in events if e.end_time is not None
                    and e.end_time + timedelta(seconds=POST_ROLL_S + 1) < stopped]
        assert len(finished) >= 3, [(e.kind, e.start_time, e.end_time) for e in events]
        assert all(e.clip is not None for e in finished), [e for e in finished if e.clip is None]

        def clip_messages() -> dict[str, dict[str, object]]:
            return {json.loads(m.payload)["id"]: json.loads(m.payload)
                    for m in subscriber.messages if m.topic == "monitor/clips/cam1"}

        assert subscriber.wait_for(lambda _: {e.id for e in finished} <= set(clip_messages()), 10)
        messages = clip_messages()
    assert set(messages) <= {e.id for e in with_clips}

    measured = 0
    sizes: list[int] = []
    for event in with_clips:
        assert event.end_time is not None and event.clip is not None
        path = Path(event.clip)
        assert path == clips_dir / "cam1" / event.start_time.strftime("%Y-%m-%d") / f"{event.id}.mp4"
        boxes = top_level_boxes(path)
        assert boxes.index("moov") < boxes.index("mdat"), boxes  # +faststart
        clip = probe(path)
        assert (clip.codec, clip.pix_fmt, clip.width, clip.height) == ("h264", "yuv420p", 640, 480)
        assert clip.frames_decoded == clip.frames_declared > 0  # OpenCV plays every frame
        assert clip.duration_s == pytest.approx(clip.frames_declared * FRAME_S, abs=0.01)
        message = messages.get(event.id)
        if message is None:
            assert event not in finished
            continue
        assert (message["type"], message["camera"], message["kind"], message["clip"]) == (
            "clip", "cam1", event.kind.value, event.clip)
        assert message["duration_s"] == pytest.approx(clip.duration_s, abs=0.01)
        assert message["size_bytes"] == path.stat().st_size
        sizes.append(message["size_bytes"])
        clip_start = datetime.fromisoformat(message["clip_start"])
        window_start = event.start_time - timedelta(seconds=PRE_ROLL_S)
        # Never footage from before the pre-roll; later only when the stream had not begun.
        assert clip_start >= window_start - timedelta(seconds=FRAME_S + JITTER_S)
        if window_start < ready + timedelta(seconds=2):
            continue
        assert clip_start <= window_start + timedelta(seconds=FRAME_S + JITTER_S), message
        if event.end_reason is EndReason.SHUTDOWN:
            # Cut at the stop: no post-roll came.
            expected_s = (stopped - window_start).total_seconds()
            assert clip.duration_s <= expected_s + JITTER_S
            continue
        expected_s = (event.end_time - event.start_time).total_seconds() + PRE_ROLL_S + POST_ROLL_S
        assert clip.duration_s == pytest.approx(expected_s, abs=FRAME_S + JITTER_S), (
            event, clip, message)
        measured += 1
    assert measured >= 2, "too few events with their whole time span to check the durations"

    def metric(name: str) -> float:
        return scraped[(name, ())]

    written_at_scrape = metric("monitor_clips_written_total")
    assert 0 < written_at_scrape <= len(with_clips)
    assert metric("monitor_clips_failed_total") == metric("monitor_clips_dropped_total") == 0
    assert metric("monitor_clip_encode_seconds_count") == written_at_scrape
    encode_s = metric("monitor_clip_encode_seconds_sum") / written_at_scrape
    assert 0 < encode_s < 5.0
    assert 0 < scraped[("monitor_clip_buffer_bytes", (("camera", "cam1"),))] <= 64_000_000
    print(f"\n{len(with_clips)} clips, {min(sizes)}..{max(sizes)} bytes "
          f"(mean {sum(sizes) / len(sizes):.0f}), {encode_s:.3f} s to encode on average")
