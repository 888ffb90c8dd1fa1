"""The daemon: builds every stage from config, starts them in order, stops them in reverse.

Start order: store (migrations, writer thread) -> MQTT (client, outbox publisher) -> clip thread
-> detector (model load, warm-up) -> per-camera pipelines -> inference worker -> capture threads
-> retention cleaner. Then READY=1 to systemd and a main loop that sends WATCHDOG=1 while the
pipeline is healthy.

Stop (SIGTERM/SIGINT): retention cleaner -> capture threads -> inference worker -> end every open
event -> write the pending clips -> flush the store -> flush the outbox as far as the broker
allows -> ``offline`` -> close the store.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

import cv2
import numpy as np
from sqlalchemy import Engine

from monitor.clips.encode import ClipEncodeError, require_h264_encoder
from monitor.clips.writer import ClipObserver, ClipWriter, ring_keep_s
from monitor.config import CameraConfig, Config, ConfigError, load_config
from monitor.detect.accelerate import choose_model
from monitor.detect.regions import RegionDetector, warm_canvas_sizes
from monitor.detect.worker import InferenceWorker
from monitor.detect.yolo import DetectorError, YoloDetector, unwatchable_labels
from monitor.errors import first_line
from monitor.events.lines import CrossingKey
from monitor.events.health import CameraHealth
from monitor.events.occupancy import empty_state
from monitor.events.reconcile import restart_ends, restart_review_ends
from monitor.events.snapshot import SnapshotWriter
from monitor.ingest.latest import LatestFrame
from monitor.ingest.source import CameraSource, lower_thread_priority
from monitor.mqtt.client import MqttClient
from monitor.mqtt.outbox import OutboxPublisher
from monitor.mqtt.commands import CommandInbox, HomeAssistantStarted
from monitor.mqtt.announce import Announcer
from monitor.mqtt.homeassistant import STATUS_DISABLED
from monitor.observe.metrics import MetricsServer
from monitor.observe.stats import DaemonStats
from monitor.observe.stats_topic import StatsReport, StatsThread
from monitor.mqtt.state import RetainedState
from monitor.pipeline import CameraPipeline, build_camera_pipeline
from monitor.redact import redact, redact_url
from monitor.reload import plan_reload
from monitor.sdnotify import Notifier, SystemdNotifier, watchdog_timeout_s
from monitor.store import (
    EventWriter, RetentionCleaner, StoreError, claim_unowned_messages, count_unsent, open_database,
)
from monitor.store.lock import InstanceLock
from monitor.store.sink import StoreSink
from monitor.store.queries import (
    crossing_counts, get_event, open_events, open_reviews, pending_messages,
)
from monitor.temporal.checkpoint import Checkpoint
from monitor.temporal.deciders import load_configured_checkpoint
from monitor.types import Alert, Box, Detections

log = logging.getLogger(__name__)

_STATS_LOG_INTERVAL_S = 60.0
_RELOAD_POLL_S = 0.5  # how soon the main loop acts on SIGHUP
# While the export is made, each progress call gives systemd this much more start-up time.
EXPORT_PROGRESS_EXTEND_S = 120  # above a camera open that blocks until its own timeout
_UNSENT_COUNT_INTERVAL_S = 15.0  # the metrics' outbox depth, when no stats topic is published


class Daemon:
    """The running service. ``run()`` blocks until a stop signal and returns the exit code."""

    def __init__(
        self, config: Config, notifier: Notifier | None = None, config_path: Path | None = None
    ) -> None:
        # Fixed at start: a reload runs the cameras the start-up shard or list gave this daemon
        # (a changed [daemon] section takes effect at the next restart, like its other keys).
        self._ownership = config.daemon.ownership()
        self._config = config.owned(self._ownership)
        self._cameras_in_file = len(config.cameras)
        self._config_path = config_path  # read again on SIGHUP
        self._reload_requested = threading.Event()
        self._wake = threading.Event()  # set by every camera's slot when a frame arrives
        self._checkpoint: Checkpoint | None = None
        self._snapshots: SnapshotWriter | None = None
        self._detector_labels: set[str] = set()
        self.detector_model: str | None = None  # what the detector loaded (maybe the export)
        self._notifier = notifier or SystemdNotifier()
        self._stop = threading.Event()
        self._exit_code = 0  # 1 when the daemon stops itself (its instance taken over)
        self._sources: list[CameraSource] = []
        self._pipelines: dict[str, CameraPipeline] = {}
        self._slots: dict[str, LatestFrame] = {}
        self._sink: StoreSink | None = None
        self._clips: ClipWriter | None = None
        self._worker: InferenceWorker | None = None
        self._writer: EventWriter | None = None
        self._cleaner: RetentionCleaner | None = None
        self._instance_lock: InstanceLock | None = None
        self._client: MqttClient | None = None
        self._publisher: OutboxPublisher | None = None
        self._state: RetainedState | None = None
        self._regions: RegionDetector | None = None
        self._health = CameraHealth(config.source.offline_event_s)
        self._started_at = time.monotonic()
        # The registry exists from the start (the inference thread observes its histogram);
        # the HTTP endpoint only with [metrics] enabled.
        self._engine: Engine | None = None
        self._stats_thread = StatsThread(
            self.stats, self._count_unsent, self._publish_stats, StatsReport(config.daemon.instance),
            config.metrics.stats_interval_s or _UNSENT_COUNT_INTERVAL_S,
        )
        self._metrics = MetricsServer(self.stats, lambda: self._stats_thread.unsent)
        home_assistant = config.homeassistant
        self._announcer: Announcer | None = None
        self._inbox = CommandInbox(
            config.mqtt.prefix, home_assistant.discovery_prefix if home_assistant.enabled else None,
            {camera.name for camera in config.cameras},
        )
        self._detection_off: set[str] = set()  # cameras switched off over MQTT
        self._health_alerts: list[Alert] = []  # camera_offline alerts waiting for queue room
        # Checked before anything starts: a worker_stall_s that systemd's watchdog would
        # overtake is a config error (exit 2).
        self._ping_interval_s = self._watchdog_ping_interval_s()

    def _watchdog_ping_interval_s(self) -> float:
        config = self._config.daemon
        interval_s = config.watchdog_ping_interval_s(watchdog_timeout_s(os.environ, os.getpid()))
        if interval_s < config.watchdog_interval_s:
            log.info("WATCHDOG=1 every %g s: half of systemd's WatchdogSec", interval_s)
        return interval_s

    def install_signal_handlers(self) -> None:
        def handler(signum: int, _frame: FrameType | None) -> None:
            log.info("received %s, stopping", signal.Signals(signum).name)
            self._stop.set()

        def reload(signum: int, _frame: FrameType | None) -> None:
            log.info("received SIGHUP, reloading %s", self._config_path)
            self._reload_requested.set()  # done by the main loop, not in the signal handler

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGHUP, reload)

    def request_stop(self) -> None:
        """Stop as a signal would (``monitor bench`` runs the daemon in a thread)."""
        self._stop.set()

    def stats(self) -> DaemonStats:
        """Counters of every stage; safe from any thread, never waiting for one (a pipeline
        blocked on a full store queue, the database)."""
        health = self._health.statuses()
        return DaemonStats(
            {source.name: source.stats() for source in self._sources},
            self._regions.stats() if self._regions is not None else None,
            self._worker.stats() if self._worker is not None else None,
            pipelines={name: p.stats() for name, p in self._pipelines.items()},
            statuses={name: self._status_of(name, health) for name in health},
            streaming={name: status == "online" for name, status in health.items()},
            writer=self._writer.stats() if self._writer is not None else None,
            outbox=self._publisher.stats() if self._publisher is not None else None,
            uptime_s=time.monotonic() - self._started_at,
            clips=self._clips.stats() if self._clips is not None else None,
        )

    @property
    def _db(self) -> Engine:
        assert self._engine is not None, "the store is opened first"
        return self._engine

    def _publish_stats(self, payload: str) -> None:
        if self._announcer is not None and self._config.metrics.stats_interval_s > 0:
            self._announcer.stats(payload)

    def _count_unsent(self) -> int | None:
        """This instance's alerts not yet acknowledged by the broker (None: store unreadable).
        Only the stats thread calls it: it is a query, which may wait for an absent database."""
        if self._engine is None:
            return None
        try:
            return count_unsent(self._engine, instance=self._config.daemon.instance)
        except Exception:  # noqa: BLE001 - a scrape must not fail because the database is away
            return None

    def run(self) -> int:
        """Start everything, serve until stopped, shut down cleanly. Returns the exit code."""
        try:
            started = self._start()
        except BaseException:
            self._shutdown()
            raise
        try:
            if started:
                self._log_watching()
                self._notifier.notify("READY=1",
                                      f"STATUS=watching {len(self._pipelines)} camera(s)")
                self._serve()
        finally:  # whatever ended serving, what is queued is written and the alerts handed over
            self._notifier.notify("STOPPING=1")
            self._shutdown()
        return self._exit_code

    def _log_watching(self) -> None:
        names = ", ".join(self._pipelines) or "none"
        if self._ownership.names is None and self._ownership.shard is None:
            log.info("watching %d camera(s): %s", len(self._pipelines), names)
        elif self._pipelines:
            log.info("watching %d of the %d camera(s) in the file (%s): %s", len(self._pipelines),
                     self._cameras_in_file, self._ownership.describe(), names)
        else:  # an empty shard: still its availability, outbox and retention, and a reload
            log.warning("watching none of the %d camera(s) in the file (%s): the other daemons "
                        "own them all", self._cameras_in_file, self._ownership.describe())

    # --- start --------------------------------------------------------------------------------

    def _start(self) -> bool:
        """Start the stages in order; False when a stop signal came in before the last one."""
        steps = (self._start_store, self._start_metrics, self._start_mqtt, self._start_clips,
                 self._start_detection, self._start_sources, self._start_retention)
        for step in steps:
            if self._stop.is_set():
                log.info("stop requested during start-up")
                return False
            step()
        return not self._stop.is_set()

    def _start_store(self) -> None:
        config = self._config
        try:
            config.daemon.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"daemon.state_dir {config.daemon.state_dir}: {exc.strerror}") from None
        instance = config.daemon.instance

        def take_instance_lock(engine: Engine) -> None:
            # Before migrating: a refused second daemon must not change the schema under the
            # running one.
            self._instance_lock = InstanceLock(engine, instance)
            self._instance_lock.acquire()

        self._engine = open_database(
            config.database_url(), busy_timeout_ms=config.database.busy_timeout_ms,
            before_migrating=take_instance_lock,
        )
        if claimed := claim_unowned_messages(self._engine, instance):
            log.info("instance %s took over %d unsent alert(s) from before instances", instance,
                     claimed)
        self._writer = EventWriter(
            self._engine,
            queue_size=config.database.writer_queue_size,
            on_commit=lambda: self._publisher.wake() if self._publisher else None,
            instance=instance,
        )
        self._writer.start()
        self._sink = StoreSink(self._writer, config.mqtt.prefix)
        self._end_events_left_open()

    def _end_events_left_open(self) -> None:
        """End what a previous run that died left open (sent once MQTT is up, via the outbox)."""
        assert self._sink is not None
        cameras = [camera.name for camera in self._config.cameras]
        ends = restart_ends(open_events(self._db, cameras))
        for alert in ends:
            self._sink.emit(alert)
        review_ends = restart_review_ends(
            open_reviews(self._db, cameras),
            {alert.event.id: alert.event for alert in ends},
            lambda event_id: get_event(self._db, event_id),
        )
        for message in review_ends:
            self._sink.emit_review(message)
        if ends:
            log.warning(
                "ended %d event(s) the previous run left open (end_reason restart)", len(ends)
            )

    def _start_metrics(self) -> None:
        metrics = self._config.metrics
        if not metrics.enabled:
            return
        try:
            self._metrics.start(metrics.host, metrics.port)
        except OSError as exc:  # in use, or no address of this machine
            raise OSError(exc.errno, f"metrics endpoint {metrics.host}:{metrics.port}: "
                                     f"{exc.strerror or exc}") from None

    def _start_mqtt(self) -> None:
        config, engine, writer = self._config, self._db, self._writer
        assert writer is not None
        self._client = MqttClient(
            config.mqtt,
            on_delivered=lambda mid: self._publisher.delivered(mid) if self._publisher else None,
            on_connection_change=self._connection_changed,
            instance=config.daemon.instance,
            subscriptions=dict.fromkeys(self._inbox.subscriptions(), self._inbox.receive),
        )
        self._state = RetainedState(self._client, config.mqtt.prefix)
        self._announcer = Announcer(self._state, config)
        for camera in config.cameras:
            self._announcer.camera(camera, detection_on=True)
        # Before "online": a crashed run's retained counts are replaced as soon as we connect,
        # not only once the detector has loaded.
        self._publish_empty_states()
        self._publisher = OutboxPublisher(
            self._client,
            lambda after_id, limit: pending_messages(
                engine, after_id=after_id, limit=limit, instance=config.daemon.instance
            ),
            writer.mark_sent,
            max_inflight=config.mqtt.max_inflight,
        )
        self._client.start()
        self._publisher.start()
        self._state.start()
        self._stats_thread.start()

    def _start_clips(self) -> None:
        """The clip thread (before the pipelines, which tell it their alerts); without a usable
        H.264 encoder the daemon runs without clips rather than without cameras."""
        config = self._config
        if not config.clips.enabled:
            return
        assert self._sink is not None
        try:
            require_h264_encoder()
        except ClipEncodeError as exc:
            log.error("clips are off: %s", exc)
            return
        nice = config.source.capture_nice  # background work, like decoding
        self._clips = ClipWriter(
            config.clips, config.clips_dir(), self._sink.record_clip,
            on_encoded=self._metrics.observe_clip_encode,
            on_start=lambda: lower_thread_priority(nice),
        )
        self._clips.start()
        log.info("clips of events go to %s", config.clips_dir())

    def _publish_snapshot(self, camera: str, image: np.ndarray) -> None:
        if self._announcer is not None:
            self._announcer.snapshot(camera, image)

    def _handle_commands(self) -> None:
        for command in self._inbox.take():
            if isinstance(command, HomeAssistantStarted):
                log.info("Home Assistant (re)started: discovery and states sent again")
                if self._announcer is not None:
                    self._announcer.again()
            elif command.camera in self._pipelines:
                self._switch_detection(command.camera, command.on)

    def _switch_detection(self, camera: str, on: bool) -> None:
        if on:
            self._detection_off.discard(camera)
        else:
            self._detection_off.add(camera)
        # The source stops offering frames; the one it may have left in the slot goes too.
        for source in self._sources:
            if source.name == camera:
                source.pause_detection(not on)
        slot = self._slots.get(camera)
        if slot is not None:
            slot.take()
        # A warning: anyone who may publish on the broker can blind a camera this way.
        log.warning("camera %s: detection switched %s over MQTT", camera, "on" if on else "off")
        if self._announcer is not None:
            self._announcer.detection(camera, on)
            self._announcer.status(camera, self._status_of(camera))

    def _status_of(self, camera: str, health: Mapping[str, str] | None = None) -> str:
        """What ``{prefix}/{camera}/status`` says (``health``: ``CameraHealth.statuses()``,
        when the caller has it already)."""
        if camera in self._detection_off:
            return STATUS_DISABLED
        return (self._health.statuses() if health is None else health).get(camera, "offline")

    def _publish_empty_states(self) -> None:
        """Zero counts, motion OFF and status offline: at start (replacing what a crashed run
        left retained) and at a clean stop."""
        assert self._state is not None
        for camera in self._config.cameras:
            self._state.publish_state(empty_state(
                camera.name, camera.labels, [z.name for z in camera.zones],
                motion_known=self._config.motion.enabled,
            ))
            if self._announcer is not None:
                self._announcer.status(camera.name, "offline")

    def _connection_changed(self, connected: bool) -> None:
        """paho's network thread: back online, drain the outbox now rather than at the next
        poll, and give the broker every retained state value again."""
        if connected and self._publisher is not None:
            self._publisher.wake()
        if self._state is not None:
            self._state.connection_changed(connected)

    def _start_detection(self) -> None:
        config = self._config
        assert self._writer is not None
        checkpoint = None
        if config.temporal.decider == "temporal":
            checkpoint = load_configured_checkpoint(config.temporal)
            log.info(
                "temporal model %s (sha256 %s, labels %s)",
                checkpoint.path, checkpoint.sha256, ", ".join(checkpoint.labels),
            )
        detector = self._load_detector()
        if detector is None:
            return

        self._checkpoint = checkpoint
        self._snapshots = SnapshotWriter(
            config.daemon.state_dir / "snapshots", config.events.snapshot_quality,
            on_drawn=self._publish_snapshot,
        )
        for camera in config.cameras:
            self._build_camera(camera)
        memory_s = config.detector.regions.track_memory_s
        self._regions = RegionDetector(
            detector,
            config.detector.regions,
            lambda camera, now: self._recent_tracks(camera, now, memory_s),
            on_inference=self._metrics.observe_inference,
        )
        self._worker = InferenceWorker(
            self._regions, self._slots, self._route, self._tick, self._wake,
            max_batch=config.detector.max_batch,
        )
        self._worker.start()

    def _build_camera(
        self, camera: CameraConfig, crossings: dict[CrossingKey, int] | None = None
    ) -> None:
        """The camera's pipeline and frame slot. Dicts are replaced, never changed in place: the
        inference thread reads them while a reload adds a camera.

        ``crossings``: counts to continue from, when the camera's previous pipeline had them
        (its last crossings may still be in the store queue); else the store's.
        """
        assert self._sink is not None and self._snapshots is not None
        if camera.lines and crossings is None:
            crossings = crossing_counts(self._db, camera.name)
        elif not camera.lines:
            crossings = None
        sink = self._sink if self._clips is None else ClipObserver(self._sink, self._clips)
        pipeline = build_camera_pipeline(
            camera, self._config, sink, self._snapshots, self._checkpoint,
            state=self._state, reviews=self._sink, crossings=crossings,
        )
        self._pipelines = {**self._pipelines, camera.name: pipeline}
        self._slots = {**self._slots, camera.name: LatestFrame(on_put=self._wake.set)}

    def _recent_tracks(self, camera: str, now: float, memory_s: float) -> tuple[Box, ...]:
        pipeline = self._pipelines.get(camera)
        return () if pipeline is None else pipeline.recent_tracks(now, memory_s)

    def _load_detector(self) -> YoloDetector | None:
        """Load and warm the model in a helper thread, so a stop signal during the seconds it
        takes is obeyed at once (None) instead of after it."""
        choice = choose_model(self._config.detector, self._config.daemon.state_dir,
                              self._config.cameras, keep_waiting=self._still_starting)
        if self._stop.is_set():
            return None
        config = self._config.detector
        if choice.accelerated:  # the pin was checked on the .pt the export was made from
            config = config.model_copy(update={"model": choice.model, "sha256": None})
        log.info("loading detector: %s", choice.reason)
        loaded: list[YoloDetector] = []
        failed: list[BaseException] = []

        def load() -> None:
            try:
                detector = YoloDetector(config)
                detector.warm_up()
                if self._config.detector.regions.enabled and self._config.motion.enabled:
                    warm_canvas_sizes(detector)
                loaded.append(detector)
            except BaseException as exc:
                failed.append(exc)

        loader = threading.Thread(target=load, name="detector-load", daemon=True)
        loader.start()
        while loader.is_alive():
            if self._stop.wait(0.1):
                return None  # the loader is a daemon thread; the process exits without it
        if failed:
            raise failed[0]
        detector = loaded[0]
        self.detector_model = detector.model_path
        log.info("detector ready: %s, classes %s", detector.model_path, detector.class_names)
        self._detector_labels = detector.labels()
        if problem := self._unwatchable_labels(self._config.cameras):
            raise DetectorError(problem)
        return detector

    def _still_starting(self) -> bool:
        """While the int8 export is made: systemd is told start-up goes on (its start timeout
        would otherwise end a first start that exports), and a stop request ends the wait."""
        self._notifier.notify(f"EXTEND_TIMEOUT_USEC={EXPORT_PROGRESS_EXTEND_S * 1_000_000}",
                              "STATUS=making the int8 detector export (first start)")
        return not self._stop.is_set()

    def _unwatchable_labels(self, cameras: Sequence[CameraConfig]) -> str | None:
        return unwatchable_labels(cameras, self._detector_labels, self._config.detector.model)

    def _start_sources(self) -> None:
        # Process-wide, like torch's threads. Set after the detector has loaded: importing
        # ultralytics sets it (to 0) too. Before the capture threads: they call OpenCV most.
        cv2.setNumThreads(self._config.daemon.opencv_threads)
        for camera in self._config.cameras:
            self._start_source(camera)

    def _start_source(self, camera: CameraConfig) -> None:
        tap = None
        if self._clips is not None:
            # A camera changed by a reload gets a new ring (clips still pending for its old
            # events are made from it, with what it has).
            keep_s = ring_keep_s(self._config.clips, self._config.events.confirm_frames, camera)
            tap = self._clips.add_camera(camera.name, keep_s)
        source = CameraSource(camera, self._config.source, self._slots[camera.name],
                              motion=self._config.motion, frame_tap=tap)
        log.info("camera %s: %s", camera.name, redact_url(camera.url))
        source.pause_detection(camera.name in self._detection_off)  # a changed camera stays off
        source.start()
        self._sources.append(source)

    def _start_retention(self) -> None:
        # Last: its first run waits first_run_delay_s anyway, and every deletion it makes goes
        # through the writer thread, which is running by now.
        assert self._writer is not None
        self._cleaner = RetentionCleaner(
            self._config.retention, self._writer, self._db,
            self._config.daemon.state_dir / "snapshots",  # as the SnapshotWriter's root
            # Even with clips off: the clips of events written before still go with them.
            clip_root=self._config.clips_dir(),
        )
        self._cleaner.start()

    # --- reload (SIGHUP) ------------------------------------------------------------------------

    def _reload(self) -> None:
        """Read the config file again and add or remove cameras; any problem keeps it all as is."""
        if self._config_path is None:
            log.warning("reload requested, but the daemon was not started from a config file")
            return
        try:
            loaded = load_config(self._config_path)
        except ConfigError as exc:
            for line in str(exc).splitlines():
                log.error("config reload refused (the running config stays): %s", line)
            return
        except (OSError, RuntimeError) as exc:  # e.g. a folder this user may not enter
            log.error("config reload refused (the running config stays): %s",
                      redact(first_line(exc)))
            return
        loaded = loaded.owned(self._ownership)
        plan = plan_reload(self._config, loaded)
        for section in plan.needs_restart:
            log.warning("config reload: [%s] changed; that takes effect at the next restart",
                        section)
        if not plan.changes_cameras:
            log.info("config reloaded: no camera changed")
            return
        if self._worker is None:
            log.warning("config reload: the detector is not running yet; cameras unchanged")
            return
        refused = self._unwatchable_labels(plan.added)
        if refused:
            log.error("config reload refused (the running config stays): %s", refused)
            return
        counts = {name: self._remove_camera(name) for name in plan.removed}
        running = {camera.name: camera for camera in self._config.cameras}
        self._config = self._config.model_copy(update={"cameras": list(loaded.cameras)})
        names = {camera.name for camera in loaded.cameras}
        self._inbox.set_cameras(names)
        self._detection_off &= names
        changed = {camera.name: camera for camera in plan.added}
        for name in plan.removed:
            # A changed camera keeps the entities its new config still has (announced again
            # below); only the others leave Home Assistant.
            if self._announcer is not None:
                self._announcer.forget(running[name], keeping=changed.get(name))
            if self._clips is not None and name not in changed:
                self._clips.retire_camera(name)  # a changed camera's ring is replaced below
        for camera in plan.added:
            try:
                self._build_camera(camera, counts.get(camera.name) or None)
            except StoreError as exc:  # its line counts unreadable: the database is away
                log.error("config reload: camera %s not started: %s", camera.name, exc)
                continue
            self._worker.set_slots(self._slots)
            self._start_source(camera)
            if self._announcer is not None:
                self._announcer.camera(camera, detection_on=camera.name not in self._detection_off)
        log.info("config reloaded: %d camera(s) started, %d stopped; watching %s",
                 len(plan.added), len(plan.removed), ", ".join(self._pipelines))
        self._notifier.notify(f"STATUS=watching {len(self._pipelines)} camera(s)")

    def _remove_camera(self, name: str) -> dict[CrossingKey, int]:
        """Stop feeding the camera at once; stop its capture and end its events on a thread of
        their own, so the main loop keeps pinging the watchdog however long that takes (a dead
        camera's capture takes up to ``read_timeout_s`` to notice, a full store queue longer).

        Returns its line counts, for a pipeline that replaces it.
        """
        timeout_s = self._config.daemon.shutdown_timeout_s
        sources = [s for s in self._sources if s.name == name]
        self._sources = [s for s in self._sources if s.name != name]
        self._slots = {k: v for k, v in self._slots.items() if k != name}
        if self._worker is not None:
            self._worker.set_slots(self._slots)
        pipeline = self._pipelines.get(name)
        self._pipelines = {k: v for k, v in self._pipelines.items() if k != name}
        counts = pipeline.crossing_counts() if pipeline is not None else {}

        def retire() -> None:
            for source in sources:
                source.request_stop()
                source.stop(timeout_s / 2)
            if pipeline is not None and not pipeline.close(timeout_s=timeout_s / 2):
                log.warning("camera %s: its open events could not be ended in time", name)
            log.info("camera %s stopped (removed or changed in the config)", name)

        threading.Thread(target=retire, name=f"monitor-retire-{name}", daemon=True).start()
        return counts

    def _route(self, detections: Detections) -> None:
        pipeline = self._pipelines.get(detections.frame.camera)
        if pipeline is not None:  # None: a frame of a camera a reload has just removed
            pipeline.process(detections)

    def _tick(self) -> None:
        now, wall = time.monotonic(), datetime.now(UTC)
        for pipeline in self._pipelines.values():
            pipeline.expire(now, wall)

    # --- serve --------------------------------------------------------------------------------

    def _serve(self) -> None:
        interval_s = self._ping_interval_s
        next_stats = time.monotonic() + _STATS_LOG_INTERVAL_S
        next_ping = time.monotonic() + interval_s
        while not self._stop.wait(min(interval_s, _RELOAD_POLL_S)):
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                try:
                    self._reload()
                except Exception as exc:  # noqa: BLE001 - a reload must never end the daemon
                    log.error("config reload failed part-way (%s); running cameras: %s",
                              redact(first_line(exc)), ", ".join(self._pipelines))
            self._handle_commands()
            self._check_cameras()
            if time.monotonic() < next_ping:
                continue
            next_ping = time.monotonic() + interval_s
            problem = self._health_problem()
            if problem is None:
                self._notifier.notify("WATCHDOG=1")
            else:
                # No WATCHDOG=1: systemd's WatchdogSec restarts us; say why in the log.
                log.error("%s; withholding the watchdog ping", problem)
            if time.monotonic() >= next_stats:
                next_stats += _STATS_LOG_INTERVAL_S
                self._log_stats()
                self._log_worker_stats()
                self._prune_outbox()
                if self._instance_lock is not None and (
                    lost := self._instance_lock.check()
                ) is not None:
                    log.error("%s; stopping", lost)
                    self._exit_code = 1
                    self._stop.set()

    def _check_cameras(self) -> None:
        """Publish status changes; record camera_offline events (never blocking this loop: an
        alert that finds the store queue full waits for the next check)."""
        streaming = {s.name: s.stats().state == "streaming" for s in self._sources}
        update = self._health.check(streaming, time.monotonic(), datetime.now(UTC))
        for name, status in update.statuses.items():
            log.info("camera %s: %s", name, status)
            if self._announcer is not None:
                self._announcer.status(name, self._status_of(name))
        self._health_alerts.extend(update.alerts)
        self._record_health_alerts(timeout_s=0.05)

    def _record_health_alerts(self, timeout_s: float) -> None:
        while self._health_alerts and self._sink is not None:
            alert = self._health_alerts[0]
            try:
                if not self._sink.offer(alert, timeout_s):
                    return
            except RuntimeError as exc:  # the writer has ended: the watchdog reports the rest
                log.error("camera_offline event of %s not recorded: %s", alert.event.camera, exc)
                self._health_alerts.clear()  # said once; they can never be recorded now
                return
            self._health_alerts.pop(0)

    def _health_problem(self) -> str | None:
        worker = self._worker
        if worker is None or not worker.is_alive():
            return "inference worker is not running"
        stalled_s = worker.seconds_since_progress()
        if stalled_s > self._config.daemon.worker_stall_s:
            if self._writer is not None and self._writer.backlogged():
                # Waiting for the database, not wedged: a restart would lose the queued alerts.
                log.warning("store queue full for %.0f s: is the database reachable?", stalled_s)
                return None
            return f"inference worker made no progress for {stalled_s:.0f} s"
        return None

    def _log_stats(self) -> None:
        regions = self._regions.stats() if self._regions is not None else None
        for source in self._sources:
            stats = source.stats()
            pipeline = self._pipelines[source.name]
            name = source.name
            log.info(
                "camera %s: %s, %d frames read, %d due for detection, %d of them dropped "
                "(detector busy), inferred %d whole and %d as regions, %d skipped (still), "
                "%d reconnects, %d detections, %d alerts",
                name,
                stats.state,
                stats.frames_read,
                stats.frames_offered,
                stats.frames_dropped,
                regions.whole.get(name, 0) if regions else 0,
                regions.regions.get(name, 0) if regions else 0,
                regions.skipped.get(name, 0) if regions else 0,
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
        # Through the writer thread: SQLite wants one writer, and this never blocks the loop.
        if self._writer is not None:
            retention = timedelta(hours=self._config.database.outbox_retention_h)
            try:
                self._writer.prune_sent_before(datetime.now(UTC) - retention)
            except RuntimeError as exc:  # the writer has ended: the watchdog reports the rest
                log.error("outbox retention skipped: %s", exc)

    # --- stop ---------------------------------------------------------------------------------

    def _shutdown(self) -> None:
        """Stop in reverse start order within ``shutdown_timeout_s``.

        Each stage may use at most a fixed share of the budget; time a stage does not use stays
        in the budget, and the writer's final stop gets whatever is left.
        """
        config = self._config.daemon
        budget_s = config.shutdown_timeout_s
        deadline = time.monotonic() + budget_s

        def share(fraction: float) -> float:
            return max(0.0, min(budget_s * fraction, deadline - time.monotonic()))

        if self._cleaner is not None:
            self._cleaner.stop(share(0.05))  # started last; a run ends after its current step
        for source in self._sources:
            source.request_stop()  # all at once; then wait for them against one deadline
        sources_deadline = time.monotonic() + share(0.1)
        for source in self._sources:
            source.stop(max(0.0, sources_deadline - time.monotonic()))
        if self._worker is not None and not self._worker.stop(share(0.25)):
            log.warning("inference worker still busy; ending open events without it")
        if self._sink is not None:
            # END alerts must not wait forever for room in a full store queue (database away).
            self._sink.timeout_s = share(0.1)
        self._health_alerts.extend(self._health.end_all(datetime.now(UTC)))
        self._record_health_alerts(timeout_s=share(0.05))
        for pipeline in self._pipelines.values():
            # Safe while the worker is busy (see CameraPipeline); bounded in case it is stuck
            # inside this camera's processing.
            if not pipeline.close(timeout_s=share(0.1)):
                log.warning("could not end the open events of a camera in time; they stay open")
        if self._clips is not None:
            # After the ENDs above (each clip ends at the stop: no post-roll comes), before the
            # store's flush, which then writes the clip paths too.
            self._clips.stop(share(0.2))
        if self._writer is not None:
            self._writer.flush(share(0.15))
        if self._publisher is not None:
            self._publisher.wake()
            # Keep a little for stopping the publisher and the client (marks sent, "offline").
            reserve_s = budget_s * 0.1
            flush_s = min(config.outbox_flush_timeout_s, deadline - time.monotonic() - reserve_s)
            if not self._publisher.flush(max(0.0, flush_s)):
                log.info("broker did not take every alert before shutdown; they stay in the outbox")
            self._publisher.stop(share(0.05))
        self._stats_thread.stop(share(0.02))
        if self._state is not None:
            # Nothing is watched any more: zero every count (the pipelines did, unless one was
            # stuck or never built), before "offline".
            self._publish_empty_states()
            if not self._state.flush(share(0.05)):
                log.info("broker did not take the final state; its retained values may be stale")
            self._state.stop(share(0.02))
        if self._client is not None:
            self._client.stop(share(0.1))
        if self._writer is not None:
            self._writer.stop(max(0.1, deadline - time.monotonic()))
        if self._instance_lock is not None:
            self._instance_lock.release()
        self._metrics.stop()
        log.info("stopped")
