"""The measured side of ``monitor bench``: the real daemon watching N cameras.

Every camera plays the scene file at its native frame rate (a local file is paced like a live
camera, see ``ingest.source``); alerts travel the whole way: store, outbox, a real MQTT broker,
and a subscriber in this process that notes when each arrived. Runs in its own process, so CPU
time and peak memory are the daemon's alone.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from monitor.bench.naive import TimelinePoint, decimate, machine_busy_s, percentile
from monitor.config import Config, parse_config
from monitor.daemon import Daemon
from monitor.observe.stats import DaemonStats

log = logging.getLogger(__name__)

# Seconds after READY before the window opens: the first frames pay for OpenCV's and the
# model's first-call costs, which a long-running daemon does not.
WARM_UP_S = 3.0
TIMELINE_POINTS = 300
BROKER_CONNECT_TIMEOUT_S = 10.0
DAEMON_START_TIMEOUT_S = 300.0  # model load and canvas warm-up on a slow, busy machine
# After the window, alerts for its last frames are still on their way; only alerts whose
# confirming frame lies in the window count, so waiting longer cannot add later ones.
ALERT_GRACE_S = 3.0
DAEMON_STOP_TIMEOUT_S = 30.0


def thread_cpu_s() -> dict[str, float]:
    """CPU seconds of this process's threads, by role (Linux ``/proc``; empty elsewhere).

    Python threads are named by their ``threading`` name with digits dropped, so every camera's
    capture thread adds to one ``source-cam`` entry; native threads (the inference runtime's
    pool, FFmpeg's decoder threads) by their kernel name.
    """
    names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[str, float] = {}
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/stat", encoding="ascii") as stat:
                text = stat.read()
        except OSError:
            continue  # the thread ended meanwhile
        comm = text[text.index("(") + 1:text.rindex(")")]
        fields = text[text.rindex(")") + 2:].split()
        name = names.get(int(task), f"native: {comm}")
        role = "".join(c for c in name if not c.isdigit()).rstrip("-_ ")
        found[role] = found.get(role, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return found


class BenchError(Exception):
    """The run could not be made (broker unreachable, daemon failed); one line of text."""


@dataclass(frozen=True, slots=True)
class DaemonCamera:
    """One camera over the window.

    Attributes:
        camera: its name.
        frames_read: frames decoded and looked at for motion.
        frames_offered: frames due for detection (``detect_fps``).
        frames_dropped: due frames replaced before the detector took them (it was busy).
        inferred_whole: frames inferred whole.
        inferred_regions: frames inferred as motion/track regions.
        skipped_still: due frames not inferred: nothing moved and no recent track.
        held_still: due frames not inferred: nothing moved, the last detections were kept.
    """

    camera: str
    frames_read: int
    frames_offered: int
    frames_dropped: int
    inferred_whole: int
    inferred_regions: int
    skipped_still: int
    held_still: int


@dataclass(frozen=True, slots=True)
class InputShape:
    """Detector calls of one input shape over the window."""

    batch: int
    height: int
    width: int
    calls: int


@dataclass(frozen=True, slots=True)
class DaemonRun:
    """What the daemon did in the window; ``dataclasses.asdict`` gives JSON.

    Attributes:
        wall_s: window length.
        cpu_s: the process's CPU seconds (all threads) in the window.
        machine_cpu_s: every process's CPU seconds in the window (noise check), None off Linux.
        peak_rss_mb: the process's peak resident memory (includes start-up), MiB.
        detect_fps: frames per second each camera offered to the detector (its cap).
        model: the detector model the daemon ran.
        cameras: per camera counts.
        inputs: detector calls by input shape.
        inference_s: seconds inside the model.
        alerts: start alerts received over MQTT in the window.
        latency_p50_s / latency_p95_s / latency_max_s: footage time of the frame that confirmed
            the event (``seen_at``) to the MQTT message's arrival at a subscriber; None without
            alerts.
        since_first_seen_p50_s / since_first_seen_p95_s: the same from the event's start (the
            track's first sighting): adds the time confirmation took (``[events]``).
        timeline: (seconds into the window, camera, latency) per alert, decimated.
        thread_cpu_s: CPU seconds in the window by thread role (see ``thread_cpu_s``).
        opencv_threads: OpenCV's thread count while the daemon ran (``[daemon]
            opencv_threads``, unless something loaded later changed it).
        worker_detect_s / worker_route_s: the inference thread's wall seconds in the detector's
            calls, and in handing their results on (tracking, events, the temporal model).
    """

    wall_s: float
    cpu_s: float
    machine_cpu_s: float | None
    peak_rss_mb: float
    detect_fps: float
    model: str
    cameras: tuple[DaemonCamera, ...]
    inputs: tuple[InputShape, ...]
    inference_s: float
    alerts: int
    latency_p50_s: float | None
    latency_p95_s: float | None
    latency_max_s: float | None
    thread_cpu_s: dict[str, float]
    since_first_seen_p50_s: float | None
    since_first_seen_p95_s: float | None
    timeline: tuple[TimelinePoint, ...]
    opencv_threads: int
    worker_detect_s: float = 0.0
    worker_route_s: float = 0.0


class _Ready:
    """Stands in for systemd's notifier: notes READY=1."""

    def __init__(self) -> None:
        self.ready = threading.Event()

    def notify(self, *states: str) -> None:
        if "READY=1" in states:
            self.ready.set()


class _AlertClock:
    """An MQTT subscriber noting when each start alert arrives, and how late."""

    def __init__(self, host: str, port: int, prefix: str) -> None:
        self._lock = threading.Lock()
        # (confirming frame's wall time, camera, seconds from it to arrival, seconds from the
        # event's first sighting to arrival)
        self._arrivals: list[tuple[datetime, str, float, float]] = []
        self._prefix = prefix
        self._client = paho.Client(CallbackAPIVersion.VERSION2)
        self._client.on_message = self._on_message
        self._connected = threading.Event()
        self._client.on_connect = self._on_connect
        try:
            self._client.connect(host, port)
        except OSError as exc:
            raise BenchError(f"MQTT broker {host}:{port}: {exc.strerror or exc}") from None
        self._client.loop_start()
        if not self._connected.wait(BROKER_CONNECT_TIMEOUT_S):
            raise BenchError(f"MQTT broker {host}:{port}: no CONNACK within "
                             f"{BROKER_CONNECT_TIMEOUT_S:g} s")

    def _on_connect(self, client: Any, *_: Any) -> None:
        client.subscribe(f"{self._prefix}/events/#", qos=1)
        self._connected.set()

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        arrived = datetime.now(UTC)
        payload = json.loads(message.payload)
        if payload.get("type") != "start":
            return
        started = datetime.fromisoformat(payload["start_time"].replace("Z", "+00:00"))
        seen = datetime.fromisoformat((payload["seen_at"] or payload["start_time"])
                                      .replace("Z", "+00:00"))
        with self._lock:
            self._arrivals.append((seen, payload["camera"], (arrived - seen).total_seconds(),
                                   (arrived - started).total_seconds()))

    def seen_between(self, start: datetime,
                     end: datetime) -> list[tuple[datetime, str, float, float]]:
        """Alerts whose confirming frame was read between ``start`` and ``end``."""
        with self._lock:
            return [a for a in self._arrivals if start <= a[0] <= end]

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def bench_config(base: Config | None, scene: Path | str, cameras: int, state_dir: Path,
                 mqtt_host: str, mqtt_port: int, prefix: str, model: str | None = None,
                 export_dir: Path | None = None) -> Config:
    """The daemon's config for a run: the user's (detector, motion, events...) or the defaults,
    with N cameras on the scene, a throw-away SQLite store and its own topic prefix, and
    ``model`` as the detector when given. The int8 export (the default) is kept in
    ``export_dir`` unless the config names a folder: the store is thrown away, the export not."""
    data: dict[str, Any] = base.model_dump(mode="json") if base is not None else {}
    if model is not None:
        data["detector"] = {**data.get("detector", {}), "model": model}
    if export_dir is not None and data.get("detector", {}).get("export_dir") is None:
        data["detector"] = {**data.get("detector", {}), "export_dir": str(export_dir)}
    template = data.get("cameras", [{}])[0] if base is not None else {}
    template = {k: v for k, v in template.items() if k not in ("name", "url", "zones")}
    data["cameras"] = [
        {**template, "name": f"cam{i + 1}", "url": str(scene), "loop_file": True}
        for i in range(cameras)
    ]
    data["database"] = {**data.get("database", {}), "url": "sqlite:///bench.db"}
    data["daemon"] = {**data.get("daemon", {}), "state_dir": str(state_dir),
                      "log_level": "WARNING"}
    data["mqtt"] = {**data.get("mqtt", {}), "host": mqtt_host, "port": mqtt_port,
                    "prefix": prefix}
    return parse_config(data)


def run_daemon(
    scene: Path | str,
    cameras: int,
    seconds: float,
    *,
    base: Config | None = None,
    model: str | None = None,
    export_dir: Path | None = None,
    mqtt_host: str = "127.0.0.1",
    mqtt_port: int = 1883,
    progress: Callable[[float], None] | None = None,
) -> DaemonRun:
    """Run the daemon on ``cameras`` copies of ``scene`` and measure ``seconds`` after warm-up.

    Args:
        scene: a video file, played at its own frame rate, looping; or a stream URL.
        cameras: how many cameras play it.
        seconds: length of the measured window.
        base: config whose detector, motion, tracker, events and temporal sections are used
            (cameras, store and MQTT prefix are replaced); None: the defaults.
        model: the detector model instead of the config's.
        export_dir: where the int8 export of a ``.pt`` is kept (see ``bench_config``).
        mqtt_host / mqtt_port: the broker alerts go through.
        progress: called with seconds measured so far, about once a second.

    Raises:
        BenchError: the broker is unreachable or the daemon did not start.
    """
    with tempfile.TemporaryDirectory(prefix="monitor-bench-") as tmp:
        prefix = f"bench-{Path(tmp).name}"
        config = bench_config(base, scene, cameras, Path(tmp), mqtt_host, mqtt_port, prefix,
                              model, export_dir)
        clock = _AlertClock(mqtt_host, mqtt_port, prefix)
        ready = _Ready()
        daemon = Daemon(config, notifier=ready)
        failure: list[BaseException] = []

        def serve() -> None:
            try:
                daemon.run()
            except BaseException as exc:  # noqa: BLE001 - reported below
                failure.append(exc)
                ready.ready.set()

        thread = threading.Thread(target=serve, name="bench-daemon", daemon=True)
        thread.start()
        try:
            if not ready.ready.wait(DAEMON_START_TIMEOUT_S) or failure:
                reason = (str(failure[0]) if failure
                          else f"not ready within {DAEMON_START_TIMEOUT_S:g} s")
                raise BenchError(f"daemon did not start: {reason}")
            time.sleep(WARM_UP_S)
            before, cpu0, machine0 = daemon.stats(), time.process_time(), machine_busy_s()
            threads0 = thread_cpu_s()
            start, start_wall = time.monotonic(), datetime.now(UTC)
            while (elapsed := time.monotonic() - start) < seconds:
                if progress is not None:
                    progress(elapsed)
                time.sleep(min(1.0, seconds - elapsed))
            after, cpu1, machine1 = daemon.stats(), time.process_time(), machine_busy_s()
            opencv_threads = cv2.getNumThreads()
            threads1 = thread_cpu_s()
            end, end_wall = time.monotonic(), datetime.now(UTC)
            time.sleep(ALERT_GRACE_S)
            arrivals = clock.seen_between(start_wall, end_wall)
        finally:
            daemon.request_stop()
            thread.join(DAEMON_STOP_TIMEOUT_S)
            clock.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    latencies = [a[2] for a in arrivals]
    since_first = [a[3] for a in arrivals]
    return DaemonRun(
        wall_s=end - start,
        cpu_s=cpu1 - cpu0,
        machine_cpu_s=(machine1 - machine0) if machine0 is not None and machine1 is not None
        else None,
        peak_rss_mb=peak_mb,
        detect_fps=config.cameras[0].detect_fps,
        model=daemon.detector_model or config.detector.model,
        cameras=_camera_deltas(before, after),
        inputs=_input_deltas(before, after),
        inference_s=_inference_delta(before, after),
        alerts=len(arrivals),
        latency_p50_s=percentile(latencies, 50) if latencies else None,
        latency_p95_s=percentile(latencies, 95) if latencies else None,
        latency_max_s=max(latencies) if latencies else None,
        thread_cpu_s={role: round(spent - threads0.get(role, 0.0), 2)
                      for role, spent in sorted(threads1.items(), key=lambda kv: -kv[1])
                      if spent - threads0.get(role, 0.0) > 0.05},
        since_first_seen_p50_s=percentile(since_first, 50) if since_first else None,
        since_first_seen_p95_s=percentile(since_first, 95) if since_first else None,
        timeline=tuple(decimate([TimelinePoint((a[0] - start_wall).total_seconds(), a[1], a[2])
                                 for a in arrivals], TIMELINE_POINTS)),
        opencv_threads=opencv_threads,
        worker_detect_s=_worker_delta(before, after, "detect_s"),
        worker_route_s=_worker_delta(before, after, "route_s"),
    )


def _camera_deltas(before: DaemonStats, after: DaemonStats) -> tuple[DaemonCamera, ...]:
    cameras = []
    for name, end in after.sources.items():
        start = before.sources[name]
        regions_end, regions_start = after.regions, before.regions
        assert regions_end is not None and regions_start is not None

        def delta(field: str, camera: str = name) -> int:
            assert regions_end is not None and regions_start is not None
            return int(getattr(regions_end, field).get(camera, 0)
                       - getattr(regions_start, field).get(camera, 0))

        cameras.append(DaemonCamera(
            camera=name,
            frames_read=end.frames_read - start.frames_read,
            frames_offered=end.frames_offered - start.frames_offered,
            frames_dropped=end.frames_dropped - start.frames_dropped,
            inferred_whole=delta("whole"),
            inferred_regions=delta("regions"),
            skipped_still=delta("skipped"),
            held_still=delta("held"),
        ))
    return tuple(cameras)


def _input_deltas(before: DaemonStats, after: DaemonStats) -> tuple[InputShape, ...]:
    assert before.regions is not None and after.regions is not None
    shapes = []
    for shape, calls in sorted(after.regions.inputs.items()):
        made = calls - before.regions.inputs.get(shape, 0)
        if made:
            shapes.append(InputShape(shape[0], shape[1], shape[2], made))
    return tuple(shapes)


def _worker_delta(before: DaemonStats, after: DaemonStats, field: str) -> float:
    if before.worker is None or after.worker is None:
        return 0.0
    return float(getattr(after.worker, field) - getattr(before.worker, field))


def _inference_delta(before: DaemonStats, after: DaemonStats) -> float:
    assert before.regions is not None and after.regions is not None
    return after.regions.inference_s - before.regions.inference_s
