"""``monitor bench --find-max``: the largest number of cameras the daemon keeps in real time.

A fixed camera count gives a figure that flips from "8 of 8" to "3.41" with machine speed; the
largest real-time count degrades a camera at a time. The search runs the daemon alone (no naive
loop, no limits), each count in its own process, as ``monitor bench`` measures it: from the
``--cameras`` count up by doubling until a count is not real time (or down by halving until one
is), then by bisection between the last count that was and the first that was not.

Real time is not monotonic to the camera on a noisy machine: a count that failed is not tried
again, and the answer is the largest count that passed with every smaller count tried also
passing, so one lucky run above a failure does not raise it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from monitor.bench.runner import (
    BenchSettings,
    bench_export_dir,
    camera_rows,
    is_realtime,
    native_fps,
    realtime_cameras,
    run_child,
    scene_file,
)
from monitor.redact import redact_url


@dataclass(frozen=True, slots=True)
class Trial:
    """One camera count, measured.

    Attributes:
        cameras: how many cameras played the scene.
        realtime: every camera real time (see ``runner.is_realtime``).
        realtime_cameras: as ``monitor bench`` reports it (short of real time, the cameras'
            worth of frames served).
        slowest_read_share: the lowest camera's frames read over the native frame rate.
        dropped_share: of all frames due for detection, those dropped.
        latency_p95_s: alert latency p95 (None: no alert in the window).
        cpu_percent: the daemon's CPU over the window (200 = two cores).
        busy_share: of the window, the inference thread's time in the detector's calls and in
            handing results on (1.0: it never waited for a frame).
        machine_cpu_percent: every process's (None where /proc/stat cannot be read): the
            daemon short of CPU while the machine had some left is the daemon's limit, not the
            machine's.
    """

    cameras: int
    realtime: bool
    realtime_cameras: float
    slowest_read_share: float
    dropped_share: float
    latency_p95_s: float | None
    cpu_percent: float
    busy_share: float
    machine_cpu_percent: float | None


def next_count(trials: dict[int, bool], start: int, most: int) -> int | None:
    """The next camera count to try, or None when the answer is known.

    Args:
        trials: counts tried so far -> real time.
        start: the first count.
        most: never more cameras than this.
    """
    if not trials:
        return start
    passed = [n for n, ok in trials.items() if ok]
    failed = [n for n, ok in trials.items() if not ok]
    low = max((n for n in passed if all(trials[m] for m in trials if m < n)), default=0)
    high = min(failed, default=None)
    if high is None:  # all passed so far: double
        return None if low >= most else min(most, low * 2)
    if low == 0:  # even the smallest tried failed: halve
        return None if high <= 1 else max(1, high // 2)
    if high - low <= 1:
        return None
    return (low + high) // 2


def largest_realtime(trials: dict[int, bool]) -> int:
    """The largest count that passed with every smaller count tried passing too (0: none)."""
    return max((n for n, ok in trials.items() if ok and all(trials[m] for m in trials if m < n)),
               default=0)


def find_max(settings: BenchSettings, say: Callable[[str], None], *,
             most: int = 32) -> dict[str, Any]:
    """Search the largest real-time camera count; the report is JSON-ready."""
    scene = scene_file(settings, say)
    played = settings.source_url or str(scene)
    fps = native_fps(played)
    results: dict[int, Trial] = {}
    count: int | None = max(1, min(settings.cameras, most))
    while count is not None:
        say(f"try {len(results) + 1}: {count} camera(s) of {redact_url(played)} at {fps:g} fps, "
            f"{settings.seconds:g} s")
        daemon = run_child("daemon", {
            "scene": str(scene), "source_url": settings.source_url, "model": settings.model,
            "cameras": count, "seconds": settings.seconds,
            "config": str(settings.config) if settings.config else None,
            "mqtt_host": settings.mqtt_host, "mqtt_port": settings.mqtt_port,
            "export_dir": str(bench_export_dir(settings)),
        }, say)
        trial = measure_trial(daemon, count, fps)
        results[count] = trial
        say(f"    {count} camera(s): {'real time' if trial.realtime else 'NOT real time'} "
            f"(slowest camera read {trial.slowest_read_share:.0%} of its frames, "
            f"{trial.dropped_share:.1%} dropped, alert p95 {_s(trial.latency_p95_s)} s, "
            f"CPU {trial.cpu_percent:.0f}%, machine {_pct(trial.machine_cpu_percent)})")
        count = next_count({n: t.realtime for n, t in results.items()}, settings.cameras, most)
    best = largest_realtime({n: t.realtime for n, t in results.items()})
    return {
        "settings": {"scene": settings.scene, "seconds": settings.seconds, "start": settings.cameras,
                     "most": most, "model": settings.model,
                     "config": str(settings.config) if settings.config else None},
        "scene": str(scene),
        "native_fps": fps,
        "largest_realtime_cameras": best,
        "capped": best >= most,
        "trials": [asdict(t) for _, t in sorted(results.items())],
        "model": daemon["model"],
    }


def measure_trial(daemon: dict[str, Any], cameras: int, fps: float) -> Trial:
    rows = camera_rows(daemon)
    offered = sum(c["frames_offered"] for c in daemon["cameras"])
    dropped = sum(c["frames_dropped"] for c in daemon["cameras"])
    return Trial(
        cameras=cameras,
        realtime=is_realtime(rows, fps, daemon["latency_p95_s"]),
        realtime_cameras=realtime_cameras(rows, fps, daemon["latency_p95_s"]),
        slowest_read_share=min((r["processed_fps"] / fps for r in rows), default=0.0),
        dropped_share=dropped / offered if offered else 0.0,
        latency_p95_s=daemon["latency_p95_s"],
        cpu_percent=100.0 * daemon["cpu_s"] / daemon["wall_s"],
        busy_share=(daemon.get("worker_detect_s", 0.0) + daemon.get("worker_route_s", 0.0))
        / daemon["wall_s"],
        machine_cpu_percent=(100.0 * daemon["machine_cpu_s"] / daemon["wall_s"]
                             if daemon["machine_cpu_s"] is not None else None),
    )


def format_search(report: dict[str, Any]) -> str:
    lines = [f"{'cameras':>8}{'real time':>11}{'slowest read':>14}{'dropped':>9}{'alert p95 s':>13}"
             f"{'CPU %':>7}{'machine %':>11}{'detector thread busy':>22}"]
    for t in report["trials"]:
        lines.append(f"{t['cameras']:>8}{'yes' if t['realtime'] else 'no':>11}"
                     f"{t['slowest_read_share']:>14.0%}{t['dropped_share']:>9.1%}"
                     f"{_s(t['latency_p95_s']):>13}{t['cpu_percent']:>7.0f}"
                     f"{_pct(t.get('machine_cpu_percent')):>11}"
                     f"{t.get('busy_share', 0.0):>22.0%}")
    best = report["largest_realtime_cameras"]
    lines.append(f"largest real-time camera count: {best}"
                 + (f" (the search's cap, --max-cameras {report['settings']['most']})"
                    if report["capped"] else ""))
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
