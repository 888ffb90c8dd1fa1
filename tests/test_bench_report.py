"""The bench's arithmetic on hand-made measurements: when a run counts as real time, what the
naive loop's figure is, and the overhead over the limits."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from monitor.bench.runner import PACED_MAX_GAP_S, BenchSettings, daemon_gap_s, format_table, summarise

SETTINGS = BenchSettings(cameras=2, scene="busy", footage=Path("vtest.avi"), seconds=10.0,
                         config=None, mqtt_host="127.0.0.1", mqtt_port=1883, naive=True,
                         cache_dir=Path("cache"))


def camera(name: str, *, read: int = 100, offered: int = 50, dropped: int = 0) -> dict[str, Any]:
    inferred = offered - dropped
    return {"camera": name, "frames_read": read, "frames_offered": offered,
            "frames_dropped": dropped, "inferred_whole": 0, "inferred_regions": inferred - 10,
            "skipped_still": 5, "held_still": 5}


def daemon(cameras: list[dict[str, Any]], p95: float | None = 0.4) -> dict[str, Any]:
    return {"wall_s": 10.0, "cpu_s": 12.0, "machine_cpu_s": 12.5, "peak_rss_mb": 900.0,
            "detect_fps": 5.0, "model": "m", "cameras": cameras,
            "inputs": [{"batch": 1, "height": 224, "width": 640, "calls": 100}],
            "inference_s": 6.0, "alerts": 3 if p95 is not None else 0,
            "latency_p50_s": p95 and p95 / 2, "latency_p95_s": p95, "latency_max_s": p95,
            "since_first_seen_p50_s": None, "since_first_seen_p95_s": None,
            "thread_cpu_s": {"detector": 11.0}, "timeline": []}


NAIVE = {"wall_s": 10.0, "cpu_s": 20.0, "peak_rss_mb": 1200.0, "model": "best.pt",
         "cameras": [{"camera": f"cam{i}", "frames_processed": 30, "latency_p50_s": 2.0,
                      "latency_p95_s": 4.0, "latency_last_s": 5.0, "stream_lost_at_s": None}
                     for i in (1, 2)],
         "timeline": []}
LIMITS = {"decode": {"cpu_ms_per_frame": 1.0},
          "inference": {"rows": [{"batch": 1, "height": 224, "width": 640, "wall_ms": 40.0,
                                  "cpu_ms": 80.0}]}}


def test_keeping_up_with_every_camera_is_real_time_and_the_ratio_follows() -> None:
    report = summarise(SETTINGS, "vtest.avi", 10.0, daemon([camera("cam1"), camera("cam2")]),
                       NAIVE, LIMITS)
    assert report["monitor"]["realtime_cameras"] == 2.0
    assert report["naive"]["realtime_cameras"] == pytest.approx(0.6)  # 6 fps of 10
    assert report["ratio_realtime_cameras"] == pytest.approx(2.0 / 0.6)
    # Limit: 200 frames x 1 ms + 100 calls x 80 ms = 8.2 CPU-s; the daemon used 12.
    assert report["monitor"]["limit_cpu_s"] == pytest.approx(8.2)
    assert report["monitor"]["overhead_over_limit"] == pytest.approx(12.0 / 8.2 - 1)
    assert "real-time cameras" in format_table(report)


def test_a_stream_the_naive_loop_lost_shows_with_its_time() -> None:
    live = dataclasses.replace(SETTINGS, source_url="rtsp://user:pw@cam.example/live")
    naive = copy.deepcopy(NAIVE)
    naive["cameras"][1]["stream_lost_at_s"] = 7.4
    report = summarise(live, live.source_url, 10.0, daemon([camera("cam1"), camera("cam2")]),
                       naive, LIMITS)
    table = format_table(report)
    assert "rtsp://user:***@cam.example/live" in table and "pw" not in table
    lost_column = {line.split()[0]: line.split()[-1] for line in table.splitlines()
                   if line.startswith(("cam1 ", "cam2 ")) and len(line.split()) == 6}
    assert lost_column == {"cam1": "never", "cam2": "7"}
    # A file cannot be lost: the column is left out.
    assert "stream lost" not in format_table(summarise(SETTINGS, "vtest.avi", 10.0,
                                                       daemon([camera("cam1")]), NAIVE, LIMITS))


def test_dropping_due_frames_counts_only_the_frames_served() -> None:
    busy = [camera("cam1", dropped=10), camera("cam2", dropped=10)]  # 20% of due frames
    report = summarise(SETTINGS, "vtest.avi", 10.0, daemon(busy), NAIVE, LIMITS)
    assert report["monitor"]["realtime_cameras"] == pytest.approx(1.6)


def test_slow_alerts_or_no_alerts_are_not_real_time() -> None:
    cameras = [camera("cam1"), camera("cam2")]
    late = summarise(SETTINGS, "vtest.avi", 10.0, daemon(cameras, p95=1.5), NAIVE, LIMITS)
    unmeasured = summarise(SETTINGS, "vtest.avi", 10.0, daemon(cameras, p95=None), NAIVE, LIMITS)
    assert late["monitor"]["realtime_cameras"] == 0.0
    assert unmeasured["monitor"]["realtime_cameras"] == 0.0
    assert "latency unmeasured" in format_table(unmeasured)


def test_shapes_that_were_not_timed_are_priced_per_pixel() -> None:
    run = daemon([camera("cam1"), camera("cam2")])
    run["inputs"].append({"batch": 1, "height": 448, "width": 640, "calls": 10})
    report = summarise(SETTINGS, "vtest.avi", 10.0, run, NAIVE, LIMITS)
    # 10 calls of twice the pixels at the timed shape's cost per pixel: 10 x 160 ms more.
    assert report["monitor"]["limit_cpu_s"] == pytest.approx(8.2 + 1.6)


def test_the_paced_limit_prices_calls_as_the_daemon_made_them() -> None:
    # The model alone: 96 CPU-ms a call in the daemon's pattern, 80 for the same calls back to
    # back, so the daemon's 100 calls (80 ms each timed back to back) are priced 96 ms each.
    paced = {"calls": 10, "gap_ms": 40.0, "wall_ms": 45.0, "cpu_ms": 96.0,
             "back_to_back_wall_ms": 38.0, "back_to_back_cpu_ms": 80.0}
    report = summarise(SETTINGS, "vtest.avi", 10.0, daemon([camera("cam1"), camera("cam2")]),
                       NAIVE, {**LIMITS, "paced": paced})
    result = report["monitor"]["paced"]
    assert result["runtime_cost_of_the_pattern"] == pytest.approx(0.2)
    # 200 frames x 1 ms + 100 calls x 80 ms x 1.2 = 9.8 CPU-s; the daemon used 12.
    assert result["limit_cpu_s"] == pytest.approx(9.8)
    assert result["overhead_over_limit"] == pytest.approx(12.0 / 9.8 - 1)
    assert "96 CPU-ms a call against 80 for the same calls back to back (+20%)" in \
        format_table(report)
    assert summarise(SETTINGS, "vtest.avi", 10.0, daemon([camera("cam1")]), NAIVE,
                     {**LIMITS, "paced": None})["monitor"]["paced"] is None


def test_the_daemon_gap_is_its_idle_time_per_call_within_bounds() -> None:
    run = daemon([camera("cam1")])  # 10 s, 6 s inferring, 100 calls
    assert daemon_gap_s(run) == pytest.approx(0.04)
    assert daemon_gap_s({**run, "inputs": [{"batch": 1, "height": 64, "width": 640, "calls": 1}]}) \
        == PACED_MAX_GAP_S
    assert daemon_gap_s({**run, "inputs": []}) == 0.0
