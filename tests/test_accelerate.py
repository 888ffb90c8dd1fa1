"""Fast by default: a .pt detector runs as its int8 OpenVINO export, made once (on the first start
or by ``monitor prepare``), cached by the .pt's SHA-256, and the .pt with one warning when the
export cannot be made."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from monitor.config import CameraConfig, DetectorConfig, load_config
from monitor.detect.accelerate import (
    choose_model,
    collect_calibration_frames,
    is_complete_export,
    plan_export,
)
from monitor.detect.yolo import resolve_model
from tests.fixtures.broker import Broker

DEFAULT_PT = resolve_model(DetectorConfig().model)


def small_video(path: Path, frames: int = 30) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (160, 120))
    for n in range(frames):
        picture = np.full((120, 160, 3), 40, np.uint8)
        cv2.rectangle(picture, (n * 4, 30), (n * 4 + 20, 90), (200, 200, 200), -1)
        writer.write(picture)
    writer.release()
    return path


def test_a_pt_on_the_cpu_gets_an_export_named_by_its_digest(tmp_path: Path) -> None:
    plan = plan_export(DetectorConfig(), tmp_path)
    assert plan.source == DEFAULT_PT
    assert plan.target is not None and plan.target.parent == tmp_path / "models"
    assert plan.target.name.endswith("-640_int8_openvino_model")
    assert not plan.cached
    # Another inference size is another export; the digest part stays.
    other = plan_export(DetectorConfig(imgsz=320), tmp_path).target
    assert other is not None and other != plan.target
    assert other.name.split("-")[1] == plan.target.name.split("-")[1]


@pytest.mark.parametrize(
    ("detector", "why"),
    [
        ({"accelerate": "none"}, 'accelerate = "none"'),
        ({"device": "cuda:0"}, "is not the CPU"),
    ],
)
def test_no_export_when_not_asked_or_not_on_the_cpu(
    tmp_path: Path, detector: dict[str, str], why: str
) -> None:
    plan = plan_export(DetectorConfig(**detector), tmp_path)
    assert plan.target is None and why in plan.reason
    choice = choose_model(DetectorConfig(**detector), tmp_path, [])
    assert choice.model == DEFAULT_PT and not choice.accelerated
    assert not (tmp_path / "models").exists()


def test_an_export_is_used_as_it_is(tmp_path: Path) -> None:
    exported = tmp_path / "mine_openvino_model"
    exported.mkdir()
    plan = plan_export(DetectorConfig(model=str(exported)), tmp_path)
    assert plan.target is None and "already an export" in plan.reason


def test_export_folder_and_calibration_are_relative_to_the_config_file(tmp_path: Path) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    config = folder / "monitor.toml"
    config.write_text('[detector]\nexport_dir = "models"\ncalibration = "clips/lawn.mp4"\n'
                      '[[cameras]]\nname = "a"\nurl = "rtsp://127.0.0.1:9/a"\n')
    detector = load_config(config).detector
    assert detector.export_dir == folder / "models"
    assert detector.calibration == folder / "clips" / "lawn.mp4"
    target = plan_export(detector, tmp_path / "state").target
    assert target is not None and target.parent == folder / "models"


def test_calibration_frames_come_from_all_of_a_file_camera_and_skip_a_dead_one(
    tmp_path: Path,
) -> None:
    video = small_video(tmp_path / "cam.avi", frames=30)
    out = tmp_path / "frames"
    out.mkdir()
    cameras = [CameraConfig(name="dead", url="rtsp://127.0.0.1:9/none"),
               CameraConfig(name="cam", url=str(video)),
               CameraConfig(name="same_file", url=str(video))]  # one file: read once
    written = collect_calibration_frames(cameras, out, 8, timeout_s=30)
    files = sorted(out.iterdir())
    assert written == len(files) > 0
    assert all(f.name.startswith("cam-") for f in files)
    pictures = [cv2.imread(str(f)) for f in files]
    # Spread over the file: the bar has moved between the first and the last pick.
    first, last = (int(np.argmax(p[60, :, 0])) for p in (pictures[0], pictures[-1]))
    assert last - first > 60


def test_no_frames_to_calibrate_on_falls_back_to_the_pt_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cameras = [CameraConfig(name="dead", url="rtsp://127.0.0.1:9/none")]
    with caplog.at_level(logging.WARNING, logger="monitor.detect.accelerate"):
        choice = choose_model(DetectorConfig(calibration_timeout_s=5), tmp_path, cameras)
    assert choice.model == DEFAULT_PT and not choice.accelerated
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "no camera gave a frame" in warnings[0]
    assert "on torch" in warnings[0]
    assert list((tmp_path / "models").iterdir()) == []  # no temporary folder left behind


def test_an_export_over_its_time_is_stopped_and_the_pt_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    video = small_video(tmp_path / "cam.avi")
    config = DetectorConfig(calibration=video, export_timeout_s=1.0)
    with caplog.at_level(logging.WARNING, logger="monitor.detect.accelerate"):
        choice = choose_model(config, tmp_path, [])
    assert not choice.accelerated and "export_timeout_s" in choice.reason
    assert list((tmp_path / "models").iterdir()) == []


def test_a_stop_request_ends_the_export_at_once(tmp_path: Path) -> None:
    video = small_video(tmp_path / "cam.avi")
    calls = []

    def keep_waiting() -> bool:
        calls.append(1)
        return len(calls) < 3

    choice = choose_model(DetectorConfig(calibration=video), tmp_path, [],
                          keep_waiting=keep_waiting)
    assert not choice.accelerated and "stopped" in choice.reason
    assert list((tmp_path / "models").iterdir()) == []


@pytest.mark.slow
def test_first_start_makes_the_export_and_the_next_start_uses_it(
    tmp_path: Path, footage: Path, broker: Broker
) -> None:
    """The real daemon with the default detector: its first start exports (telling systemd
    start-up goes on), check-config then names the cached export, and the second start loads it
    without exporting again."""
    from tests.test_daemon import config_for, start_daemon

    models = tmp_path / "models"
    config = config_for(tmp_path, broker.port, [{"name": "lawn", "url": str(footage)}],
                        detector={"accelerate": "openvino-int8", "export_dir": str(models)})
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first = start_daemon(config, tmp_path / "first")
    try:
        assert any("EXTEND_TIMEOUT_USEC=" in n for n in first.notifications)
    finally:
        assert first.stop() == 0
    assert "loading detector: int8 OpenVINO export of" in first.log and "made in" in first.log
    exports = [p for p in models.iterdir()]
    assert len(exports) == 1 and is_complete_export(exports[0])  # no temporary folder left

    checked = subprocess.run([sys.executable, "-m", "monitor.cli", "check-config", str(config)],
                             capture_output=True, text=True, timeout=120, check=False)
    assert checked.returncode == 0, checked.stderr
    assert f"int8 OpenVINO export, cached: {exports[0]}" in checked.stdout

    second = start_daemon(config, tmp_path / "second")
    try:
        assert not any("EXTEND_TIMEOUT_USEC=" in n for n in second.notifications)
        assert second.wait_for_log("detector ready:", 30)
    finally:
        assert second.stop() == 0
    assert f"(cached: {exports[0]})" in second.log
    assert f"detector ready: {exports[0]}" in second.log
    assert "making the int8" not in second.log
