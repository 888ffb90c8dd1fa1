"""One measurement of ``monitor bench``, in its own process: ``python -m monitor.bench.child
MODE OUT_JSON`` with the arguments as JSON on stdin (they hold camera URLs, which must not show
in ``ps``). Progress goes to stderr; the result, as JSON, to OUT_JSON."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from monitor.config import Config, load_config

PROGRESS_EVERY_S = 10.0


def _config(arguments: dict[str, Any]) -> Config | None:
    path = arguments.get("config")
    return load_config(path) if path else None


def _progress(what: str, total_s: float) -> Any:
    shown = [-PROGRESS_EVERY_S]

    def report(elapsed_s: float) -> None:
        if elapsed_s - shown[0] >= PROGRESS_EVERY_S:
            shown[0] = elapsed_s
            print(f"    {what}: {elapsed_s:.0f}/{total_s:g} s", file=sys.stderr, flush=True)

    return report


def measure(mode: str, arguments: dict[str, Any]) -> dict[str, Any]:
    scene = Path(arguments["scene"])
    url = arguments.get("source_url")
    cameras, seconds = int(arguments["cameras"]), float(arguments["seconds"])
    base = _config(arguments)
    model = arguments.get("model")
    detector = base.detector if base is not None else None
    if mode == "daemon":
        from monitor.bench.daemon_run import run_daemon

        cache = arguments.get("export_dir")
        run = run_daemon(url or scene, cameras, seconds, base=base, model=model,
                         export_dir=Path(cache) if cache else None,
                         mqtt_host=arguments["mqtt_host"],
                         mqtt_port=int(arguments["mqtt_port"]),
                         progress=_progress("monitor", seconds))
        return asdict(run)
    from monitor.config import DetectorConfig

    detector = detector or DetectorConfig()
    if mode == "naive":
        # The loop a user writes runs the ultralytics model as it comes (the .pt): a faster
        # backend is one of the things the daemon does for them.
        from monitor.bench.naive import run_naive

        naive = run_naive(None if url else scene, cameras, seconds, model=detector.model,
                          imgsz=detector.imgsz, conf=detector.min_score, source_url=url,
                          progress=_progress("naive", seconds))
        return asdict(naive)
    if mode == "limits":
        import cv2

        from monitor.bench.limits import (
            decode_limit,
            inference_limit,
            paced_inference,
            sample_images,
        )
        from monitor.bench.runner import (
            DECODE_LIMIT_FRAMES,
            INFERENCE_LIMIT_REPEATS,
            LIMIT_IMAGES,
            PACED_CALLS,
        )
        from monitor.config import DaemonConfig
        from monitor.detect.yolo import YoloDetector

        decode = decode_limit(url or scene, DECODE_LIMIT_FRAMES)  # what the daemon decoded
        if model is not None:  # the limits are those of the model the daemon ran
            detector = detector.model_copy(update={"model": model, "sha256": None})
        loaded = YoloDetector(detector)
        # OpenCV (resizing before inference) with the daemon's threads, as the daemon sets
        # them: after ultralytics' import has set its own.
        cv2.setNumThreads((base.daemon if base is not None else DaemonConfig()).opencv_threads)
        loaded.warm_up()
        shapes = [tuple(shape) for shape in arguments["shapes"]]
        images = sample_images(scene, LIMIT_IMAGES)
        inference = inference_limit(loaded, shapes, INFERENCE_LIMIT_REPEATS, images=images)
        shape_calls = [(tuple(shape), calls) for shape, calls in arguments["shape_calls"]]
        paced = (paced_inference(loaded, shape_calls, PACED_CALLS, float(arguments["gap_s"]),
                                 images=images) if shape_calls else None)
        return {"decode": asdict(decode), "inference": asdict(inference),
                "paced": asdict(paced) if paced is not None else None}
    raise SystemExit(f"unknown measurement '{mode}'")


def main() -> None:
    from monitor.bench.daemon_run import BenchError
    from monitor.bench.limits import LimitsError
    from monitor.bench.naive import NaiveRunError
    from monitor.config import ConfigError
    from monitor.detect.yolo import DetectorError

    mode, out = sys.argv[1], Path(sys.argv[2])
    arguments = json.loads(sys.stdin.read())  # not argv: it holds camera URLs
    try:
        result = measure(mode, arguments)
    except (BenchError, NaiveRunError, LimitsError, DetectorError, ConfigError) as exc:
        # One line for the parent to show; the parent reports the last line of stderr.
        print(str(exc).replace("\n", "; "), file=sys.stderr)
        raise SystemExit(1) from None
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
