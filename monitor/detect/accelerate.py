"""Fast by default: a ``.pt`` detector runs as an int8 OpenVINO export, made once and cached.

On two CPU cores the int8 OpenVINO export of the default model infers about 1.9x faster than
torch at IoU >= 0.88 to torch's boxes (docs/performance.md); that is the difference between
four busy cameras in real time and fewer than three. Making the export takes about a minute, so
it is made once, on the first start, and kept under ``[detector] export_dir`` (default
``{state_dir}/models``) by the SHA-256 of the ``.pt`` it came from: a changed model gets a new
export, an unchanged one is never exported twice. ``monitor prepare`` makes it ahead of time
(``scripts/demo.sh`` does).

int8 needs calibration frames like the cameras'. Unless ``[detector] calibration`` names
footage, they are read from the configured cameras themselves, before the daemon starts them.

The export runs in a child process (``monitor export``): it imports ultralytics' exporter,
ONNX and NNCF, about 1 GB that a long-running daemon should not keep. Anything that stops it
(no OpenVINO, no frames, a failed export, a timeout) leaves the ``.pt`` in use, with one
warning naming why.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from monitor.config import CameraConfig, DetectorConfig
from monitor.detect.yolo import (
    OPENVINO_SUFFIX,
    DetectorError,
    backend_of,
    pinned_model,
    resolve_model,
)
from monitor.errors import first_line
from monitor.redact import redact, redact_url

log = logging.getLogger(__name__)

CALIBRATION_FRAMES = 64  # what NNCF's default subset uses; more adds time, not accuracy here
STREAM_FRAME_STRIDE = 5  # on a live camera, every 5th frame: people move between two picks
WAIT_POLL_S = 1.0


class AccelerateError(Exception):
    """Why the export cannot be made or used; ``str()`` is one line."""


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """What the detector loads, and why (one line for the log).

    Attributes:
        model: a path ``YoloDetector`` loads (the export, or the model as configured).
        accelerated: True when ``model`` is the int8 export of the configured ``.pt``.
        reason: what was chosen and why, for the log and ``monitor check-config``.
    """

    model: str
    accelerated: bool
    reason: str


@dataclass(frozen=True, slots=True)
class ExportPlan:
    """Where the export of a ``.pt`` lives, or why there is none to make.

    Attributes:
        source: the resolved ``.pt`` (or the configured model when there is nothing to do).
        target: the cached export's directory; None when the model is used as it is.
        reason: why it is used as it is (when ``target`` is None).
    """

    source: str
    target: Path | None
    reason: str = ""

    @property
    def cached(self) -> bool:
        return self.target is not None and is_complete_export(self.target)


def export_dir(config: DetectorConfig, state_dir: Path) -> Path:
    return config.export_dir if config.export_dir is not None else state_dir / "models"


def plan_export(config: DetectorConfig, state_dir: Path) -> ExportPlan:
    """Decide, without exporting, whether the configured model gets the int8 export.

    Raises:
        DetectorError: the model cannot be found, or differs from its pin.
    """
    source = resolve_model(config.model)
    if config.accelerate == "none":
        return ExportPlan(source, None, "[detector] accelerate = \"none\"")
    if backend_of(source) == "triton":
        return ExportPlan(source, None, "a Triton server runs it")
    if backend_of(source) != "torch" or not Path(source).is_file():
        return ExportPlan(source, None, "the model is already an export")
    if config.device != "cpu":
        return ExportPlan(source, None, f"device '{config.device}' is not the CPU")
    digest = pinned_model(source, config.sha256)
    assert digest is not None  # a file
    name = f"{Path(source).stem}-{digest[:16]}-{config.imgsz}_int8{OPENVINO_SUFFIX}"
    return ExportPlan(source, export_dir(config, state_dir) / name)


def is_complete_export(directory: Path) -> bool:
    """A finished export: moved into place whole (see ``_export``), so its parts are there."""
    return (directory.is_dir() and any(directory.glob("*.xml")) and any(directory.glob("*.bin"))
            and (directory / "metadata.yaml").is_file())


def openvino_missing() -> str | None:
    for package in ("openvino", "nncf"):
        if importlib.util.find_spec(package) is None:
            return f"the {package} package is not installed"
    return None


def choose_model(
    config: DetectorConfig,
    state_dir: Path,
    cameras: Sequence[CameraConfig],
    *,
    keep_waiting: Callable[[], bool] = lambda: True,
) -> ModelChoice:
    """The model the detector should load: the cached int8 export, made now when missing.

    Args:
        config: the ``[detector]`` section.
        state_dir: ``[daemon] state_dir`` (the default export folder is under it).
        cameras: where calibration frames come from when ``[detector] calibration`` is unset.
        keep_waiting: called about once a second while the export runs; False stops it (the
            daemon was asked to stop) and the ``.pt`` is chosen. The daemon also tells systemd
            it is still starting from here.

    Raises:
        DetectorError: the configured model cannot be found, or differs from its pin.
    """
    plan = plan_export(config, state_dir)
    if plan.target is None:
        return ModelChoice(plan.source, False, f"{plan.source} as configured ({plan.reason})")
    if plan.cached:
        return ModelChoice(str(plan.target), True, f"int8 OpenVINO export of {plan.source} "
                           f"(cached: {plan.target})")
    try:
        if (missing := openvino_missing()) is not None:
            raise AccelerateError(missing)
        started = time.monotonic()
        log.info("making the int8 OpenVINO export of %s once (about a minute on two cores); "
                 "it is kept in %s", plan.source, plan.target.parent)
        _export(plan.source, plan.target, config, cameras, keep_waiting)
        reason = (f"int8 OpenVINO export of {plan.source} (made in "
                  f"{time.monotonic() - started:.0f} s: {plan.target})")
        return ModelChoice(str(plan.target), True, reason)
    except AccelerateError as exc:
        log.warning("running %s on torch, slower (about half the cameras in real time): no int8 "
                    "OpenVINO export: %s", plan.source, exc)
        return ModelChoice(plan.source, False, f"{plan.source} on torch (export failed: {exc})")


def _export(source: str, target: Path, config: DetectorConfig,
            cameras: Sequence[CameraConfig], keep_waiting: Callable[[], bool]) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    except OSError as exc:
        raise AccelerateError(f"cannot write {target.parent}: {exc.strerror}") from None
    try:
        if config.calibration is not None:
            calibration = config.calibration
        else:
            calibration = work / "calibration"
            calibration.mkdir()
            if not collect_calibration_frames(cameras, calibration, CALIBRATION_FRAMES,
                                              config.calibration_timeout_s, keep_waiting):
                raise AccelerateError("no camera gave a frame to calibrate on "
                                      "(set [detector] calibration to footage)")
        made = work / target.name
        command = [sys.executable, "-m", "monitor.cli", "export", "--model", source,
                   "--format", "openvino", "--int8", "--calibration", str(calibration),
                   "--imgsz", str(config.imgsz), "--out", str(made)]
        _run_export(command, config.export_timeout_s, keep_waiting)
        if not is_complete_export(made):
            raise AccelerateError(f"the export left no OpenVINO model in {made}")
        try:
            os.replace(made, target)  # whole or not at all: a crash leaves only the temp folder
        except OSError as exc:
            if not is_complete_export(target):  # not another daemon that got there first
                raise AccelerateError(f"cannot move the export to {target}: {exc}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run_export(command: list[str], timeout_s: float, keep_waiting: Callable[[], bool]) -> None:
    # The child's output is kept in a file, not a pipe: a pipe nobody reads would fill and stall
    # it; the last line names the failure.
    with tempfile.TemporaryFile(mode="w+") as output:
        child = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, text=True)
        deadline = time.monotonic() + timeout_s
        try:
            while child.poll() is None:
                if not keep_waiting():
                    raise AccelerateError("stopped while exporting")
                if time.monotonic() > deadline:
                    raise AccelerateError(f"the export took longer than {timeout_s:g} s "
                                          "([detector] export_timeout_s)")
                try:
                    child.wait(WAIT_POLL_S)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        if child.returncode != 0:
            output.seek(0)
            lines = [line.strip() for line in output.read().splitlines() if line.strip()]
            raise AccelerateError(redact(lines[-1]) if lines
                                  else f"monitor export exited with {child.returncode}")


def collect_calibration_frames(cameras: Sequence[CameraConfig], out: Path, count: int,
                               timeout_s: float,
                               keep_waiting: Callable[[], bool] = lambda: True) -> int:
    """Write up to ``count`` frames of the cameras into ``out`` as PNG files.

    A file camera gives frames spread over the whole file; a stream gives every
    ``STREAM_FRAME_STRIDE``-th frame until its share is taken or ``timeout_s`` has passed over
    all cameras. A camera that cannot be opened is skipped (logged): calibration wants frames,
    not every camera.

    Returns:
        How many frames were written.
    """
    import cv2
    import numpy as np

    distinct: list[CameraConfig] = []  # several cameras on one file or stream: read it once
    for camera in cameras:
        if all(camera.url != seen.url for seen in distinct):
            distinct.append(camera)
    if not distinct:
        return 0
    share = max(1, count // len(distinct))
    deadline = time.monotonic() + timeout_s
    written = 0
    for camera in distinct:
        if written >= count or time.monotonic() > deadline or not keep_waiting():
            break
        capture = cv2.VideoCapture(camera.url)
        try:
            if not capture.isOpened():
                log.info("calibration: camera %s cannot be opened (%s); skipped", camera.name,
                         redact_url(camera.url))
                continue
            frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            wanted = min(share, count - written)
            if frames > 0:  # a file: frames from all of it
                picks = [int(i) for i in np.unique(np.linspace(0, frames - 1, wanted).round())]
            else:
                picks = []
            taken = 0
            index = 0
            while taken < wanted and time.monotonic() < deadline and keep_waiting():
                if picks:
                    if taken >= len(picks):
                        break
                    capture.set(cv2.CAP_PROP_POS_FRAMES, picks[taken])
                    ok, frame = capture.read()
                    if not ok:
                        break
                else:
                    ok, frame = capture.read()
                    if not ok:
                        break
                    index += 1
                    if (index - 1) % STREAM_FRAME_STRIDE:
                        continue
                if cv2.imwrite(str(out / f"{camera.name}-{taken:03d}.png"), frame):
                    taken += 1
            written += taken
        except cv2.error as exc:
            log.info("calibration: camera %s: %s; skipped", camera.name, first_line(exc))
        finally:
            capture.release()
    return written


def describe(config: DetectorConfig, state_dir: Path) -> str:
    """What ``choose_model`` would do, without doing it (``monitor check-config``)."""
    try:
        plan = plan_export(config, state_dir)
    except DetectorError as exc:
        return str(exc)
    if plan.target is None:
        return f"{plan.source} as configured ({plan.reason})"
    if plan.cached:
        return f"int8 OpenVINO export, cached: {plan.target}"
    if (missing := openvino_missing()) is not None:
        return f"{plan.source} on torch ({missing}: no int8 export)"
    return (f"int8 OpenVINO export of {plan.source}, made on the first start (about a minute; "
            f"'monitor prepare' makes it now) into {plan.target}")
