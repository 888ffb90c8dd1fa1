"""The daemon: builds every stage from config, starts them in order, stops them in reverse.

Start order: store (migrations, writer thread) -> MQTT (client, outbox publisher) -> detector
(model load, warm-up) -> per-camera pipelines -> inference worker -> capture threads. Then
READY=1 to systemd and a main loop that sends WATCHDOG=1 while the pipeline is healthy.

Stop (SIGTERM/SIGINT): capture threads -> inference worker -> end every open event -> flush the
store -> flush the outbox as far as the broker allows -> ``offline`` -> close the store.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from types import FrameType

from monitor.config import Config, mask_url
from monitor.detect.worker import InferenceWorker
from monitor.detect.yolo import YoloDetector
from monitor.events.lifecycle import EventLifecycle
from monitor.events.snapshot import SnapshotWriter
from monitor.events.zones import Zone
from monitor.ingest.latest import LatestFrame
from monitor.ingest.source import CameraSource
from monitor.mqtt.client import MqttClient
from monitor.mqtt.outbox import OutboxPublisher
from monitor.mqtt.topics import outbox_message
from monitor.pipeline import CameraPipeline
from monitor.sdnotify import SystemdNotifier
from monitor.store import EventWriter, open_database
from monitor.store.queries import delete_sent_before, pending_messages
from monitor.track.bytetrack import ByteTracker
from monitor.types import Alert, Detections

log = logging.getLogger(__name__)

_STATS_LOG_INTERVAL_S = 60.0


class _StoreSink:
    """Every alert goes to the store together with its outbox message, in one transaction."""

    def __init__(self, writer: EventWriter, prefix: str) -> None:
        self._writer = writer
        self._prefix = prefix

    def emit(self, alert: Alert) -> None:
        self._writer.record(alert, outbox_message(self._prefix, alert))


class Daemon:
    """The running service. ``run()`` blocks until a stop signal and returns the exit code."""

    def __init__(self, config: Config, notifier: SystemdNotifier | None = None) -> None:
        self._config = config
        self._notifier = notifier or SystemdNotifier()
        self._stop = threading.Event()
        self._sources: list[CameraSource] = []
        self._pipelines: dict[str, CameraPipeline] = {}
        self._worker: InferenceWorker | None = None
        self._writer: EventWriter | None = None
        self._client: MqttClient | None = None
        self._publisher: OutboxPublisher | None = None

    def request_stop(self, *_: object) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        def handler(signum: int, _frame: FrameType | None) -> None:
            log.info("received %s, stopping", signal.Signals(signum).name)
            self._stop.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def run(self) -> int:
        """Start everything, serve until stopped, shut down cleanly. Returns the exit code."""
        try:
            self._start()
        except BaseException:
            self._shutdown()
            raise
        names = ", ".join(self._pipelines)
        log.info("watching %d camera(s): %s", len(self._pipelines), names)
        self._notifier.notify("READY=1", f"STATUS=watching {len(self._pipelines)} camera(s)")
        self._serve()
        self._notifier.notify("STOPPING=1")
        self._shutdown()
        return 0

    # --- start --------------------------------------------------------------------------------

    def _start(self) -> None:
        config = self._config
        config.daemon.state_dir.mkdir(parents=True, exist_ok=True)
        engine = open_database(config.database_url(), busy_timeout_ms=config.database.busy_timeout_ms)
        self._engine = engine
        self._writer = EventWriter(
            engine,
            queue_size=config.database.writer_queue_size,
            on_commit=lambda: self._publisher.wake() if self._publisher else None,
        )
        self._writer.start()

        self._client = MqttClient(
            config.mqtt,
            on_delivered=lambda mid: self._publisher.delivered(mid) if self._publisher else None,
            # Back online: start draining the outbox now rather than at the next poll.
            on_connection_change=lambda up: self._publisher.wake() if up and self._publisher else None,
        )
        writer = self._writer
        self._publisher = OutboxPublisher(
            self._client,
            lambda after_id, limit: pending_messages(engine, after_id=after_id, limit=limit),
            writer.mark_sent,
            max_inflight=config.mqtt.max_inflight,
        )
        self._client.start()
        self._publisher.start()
        if self._stop.is_set():
            return

        log.info("loading detector %s", config.detector.model)
        detector = YoloDetector(config.detector)
        detector.warm_up()
        log.info("detector ready: %s, classes %s", detector.model_path, detector.class_names)

        snapshots = SnapshotWriter(config.daemon.state_dir / "snapshots", config.events.snapshot_quality)
        sink = _StoreSink(writer, config.mqtt.prefix)
        wake = threading.Event()
        slots: dict[str, LatestFrame] = {}
        for camera in config.cameras:
            lifecycle = EventLifecycle(
                camera.name,
                camera.labels,
                [Zone.from_config(z) for z in camera.zones],
                config.events,
                snapshot_path=snapshots.path_for,
            )
            tracker = ByteTracker(camera.name, config.tracker, camera.detect_fps)
            self._pipelines[camera.name] = CameraPipeline(tracker, lifecycle, snapshots, sink)
            slots[camera.name] = LatestFrame(on_put=wake.set)

        self._worker = InferenceWorker(
            detector,
            slots,
            {c.name: 1.0 / c.detect_fps for c in config.cameras},
            self._route,
            self._tick,
            wake,
        )
        self._worker.start()
        for camera in config.cameras:
            source = CameraSource(camera, config.source, slots[camera.name])
            log.info("camera %s: %s", camera.name, mask_url(camera.url))
            source.start()
            self._sources.append(source)

    def _route(self, detections: Detections) -> None:
        self._pipelines[detections.frame.camera].process(detections)

    def _tick(self) -> None:
        now = time.monotonic()
        for pipeline in self._pipelines.values():
            pipeline.expire(now)

    # --- serve --------------------------------------------------------------------------------

    def _serve(self) -> None:
        interval_s = self._config.daemon.watchdog_interval_s
        next_stats = time.monotonic() + _STATS_LOG_INTERVAL_S
        while not self._stop.wait(interval_s):
            if self._worker is not None and self._worker.is_alive():
                self._notifier.notify("WATCHDOG=1")
            else:
                # No WATCHDOG=1: systemd's WatchdogSec restarts us; say why in the log.
                log.error("inference worker is not running; withholding the watchdog ping")
            if time.monotonic() >= next_stats:
                next_stats += _STATS_LOG_INTERVAL_S
                self._log_stats()
                self._log_worker_stats()
                self._prune_outbox()

    def _log_stats(self) -> None:
        for source in self._sources:
            stats = source.stats()
            pipeline = self._pipelines[source.name]
            log.info(
                "camera %s: %s, %d frames read, %d not inferred, %d reconnects, %d detections, "
                "%d alerts",
                source.name,
                stats.state,
                stats.frames_read,
                stats.frames_dropped,
                stats.reconnects,
                pipeline.detections,
                pipeline.alerts,
            )

    def _log_worker_stats(self) -> None:
        if self._worker is not None:
            stats = self._worker.stats()
            log.info(
                "detector: %d frames in %d batches, last batch %.0f ms, %d errors",
                stats.frames_inferred,
                stats.batches,
                stats.last_batch_ms,
                stats.errors,
            )

    def _prune_outbox(self) -> None:
        retention = timedelta(hours=self._config.database.outbox_retention_h)
        try:
            deleted = delete_sent_before(self._engine, datetime.now(UTC) - retention)
        except Exception as exc:  # a busy or unreachable database: try again next time
            log.warning("outbox retention skipped: %s", str(exc).splitlines()[0])
            return
        if deleted:
            log.info("deleted %d delivered alerts older than %s from the outbox", deleted, retention)

    # --- stop ---------------------------------------------------------------------------------

    def _shutdown(self) -> None:
        config = self._config.daemon
        deadline = time.monotonic() + config.shutdown_timeout_s

        def left(share_s: float) -> float:
            return max(0.05, min(share_s, deadline - time.monotonic()))

        for source in self._sources:
            source.stop(left(0.5))
        if self._worker is not None and not self._worker.stop(left(1.5)):
            log.warning("inference worker did not stop in time; open events are ended anyway")
        for pipeline in self._pipelines.values():
            pipeline.close()
        if self._writer is not None:
            self._writer.flush(left(1.0))
        if self._publisher is not None:
            self._publisher.wake()
            if not self._publisher.flush(left(config.outbox_flush_timeout_s)):
                log.info("broker did not take every alert before shutdown; they stay in the outbox")
            self._publisher.stop(left(0.3))
        if self._client is not None:
            self._client.stop(left(0.5))
        if self._writer is not None:
            self._writer.stop(left(1.0))
        log.info("stopped")
