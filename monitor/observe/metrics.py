"""Prometheus metrics on ``[metrics] host:port/metrics`` (prometheus-client).

Counters come from one ``DaemonStats`` snapshot per scrape (a custom collector: nothing is
counted twice and no stage takes a prometheus lock in its hot path). The one exception is the
inference-latency histogram, which must see every call: the inference thread observes it. The
registry is the daemon's own, never prometheus-client's global one, so two daemons in one
process (the bench, the tests) do not mix their numbers.

Names follow Prometheus' conventions: a ``monitor_`` prefix, ``_total`` on counters (added by
the client), base units (seconds, bytes), one label ``camera`` where per camera.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from monitor.observe.stats import DaemonStats

log = logging.getLogger(__name__)

# From a 320-px crop on a fast CPU (~10 ms) to a 4-camera batch at 640 px on two cores (~2 s).
INFERENCE_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0)
# From a line crossing's 10 s clip (~0.2 s here) to a max_length_s clip of a busy camera.
CLIP_ENCODE_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class DaemonCollector(Collector):
    """Turns a ``DaemonStats`` snapshot into metric families at every scrape.

    Args:
        stats: the daemon's ``stats()``.
        unsent: the outbox rows of this instance not yet acknowledged by the broker (a store
            query; None when it cannot be read right now).
    """

    def __init__(self, stats: Callable[[], DaemonStats], unsent: Callable[[], int | None]) -> None:
        self._stats = stats
        self._unsent = unsent

    def describe(self) -> list[Metric]:
        return []  # families depend on the cameras running; no check at registration

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        yield from self._cameras(stats)
        yield from self._detector(stats)
        yield from self._store(stats)
        yield from self._clips(stats)
        uptime = GaugeMetricFamily("monitor_uptime_seconds", "Seconds since the daemon started.")
        uptime.add_metric([], stats.uptime_s)
        yield uptime

    def _cameras(self, stats: DaemonStats) -> Iterator[Metric]:
        def counter(name: str, doc: str) -> CounterMetricFamily:
            return CounterMetricFamily(f"monitor_camera_{name}", doc, labels=["camera"])

        read = counter("frames_read", "Frames decoded from the stream.")
        offered = counter("frames_due", "Frames due for detection (detect_fps).")
        dropped = counter("frames_dropped",
                          "Due frames replaced before the detector took them (detector busy).")
        reconnects = counter("reconnects", "Times frames resumed after a failure.")
        stalls = counter("stalls", "Times the stream was reopened after stall_timeout_s.")
        online = GaugeMetricFamily(
            "monitor_camera_online",
            "1 while the camera's frames arrive (detection on or off), else 0.", labels=["camera"])
        age = GaugeMetricFamily("monitor_camera_last_frame_age_seconds",
                                "Seconds since the newest frame was read.", labels=["camera"])
        for name, source in stats.sources.items():
            read.add_metric([name], source.frames_read)
            offered.add_metric([name], source.frames_offered)
            dropped.add_metric([name], source.frames_dropped)
            reconnects.add_metric([name], source.reconnects)
            stalls.add_metric([name], source.stalls)
            online.add_metric([name], 1.0 if stats.streaming.get(name) else 0.0)
            if source.last_frame_age_s is not None:
                age.add_metric([name], source.last_frame_age_s)
        yield from (read, offered, dropped, reconnects, stalls, online, age)

        processed = CounterMetricFamily(
            "monitor_camera_frames_processed",
            "Frames the detector answered for, by how: whole, regions (crops of where things "
            "moved), held (nothing moved: the last answer kept), skipped (nothing to look at).",
            labels=["camera", "how"],
        )
        if stats.regions is not None:
            for how, counts in (("whole", stats.regions.whole), ("regions", stats.regions.regions),
                                ("held", stats.regions.held), ("skipped", stats.regions.skipped)):
                for name, count in counts.items():
                    processed.add_metric([name, how], count)
        detections = counter("detections", "Detector boxes given to the tracker.")
        alerts = counter("alerts", "Alerts emitted (start, update, end).")
        behaviour = SummaryMetricFamily(
            "monitor_behaviour_seconds",
            "Time in the behaviour decider per frame with tracks (the temporal model).",
            labels=["camera"],
        )
        for name, pipeline in stats.pipelines.items():
            detections.add_metric([name], pipeline.detections)
            alerts.add_metric([name], pipeline.alerts)
            behaviour.add_metric([name], pipeline.behaviour_steps, pipeline.behaviour_s)
        yield from (processed, detections, alerts, behaviour)

    def _detector(self, stats: DaemonStats) -> Iterator[Metric]:
        batches = CounterMetricFamily("monitor_inference_batches", "Inference loop batches.")
        inferred = CounterMetricFamily("monitor_inference_frames", "Frames through the detector.")
        errors = CounterMetricFamily("monitor_inference_errors", "Detector calls that failed.")
        if stats.worker is not None:
            batches.add_metric([], stats.worker.batches)
            inferred.add_metric([], stats.worker.frames_inferred)
            errors.add_metric([], stats.worker.errors)
        inputs = CounterMetricFamily(
            "monitor_detector_inputs",
            "Detector calls by input (canvas) shape: images per call, height and width in px.",
            labels=["batch", "height", "width"],
        )
        pixels = CounterMetricFamily("monitor_detector_pixels", "Pixels given to the detector.")
        if stats.regions is not None:
            for (batch, height, width), count in stats.regions.inputs.items():
                inputs.add_metric([str(batch), str(height), str(width)], count)
            pixels.add_metric([], stats.regions.pixels)
        yield from (batches, inferred, errors, inputs, pixels)

    def _store(self, stats: DaemonStats) -> Iterator[Metric]:
        queued = GaugeMetricFamily("monitor_store_queue_items",
                                   "Items waiting for the store's writer thread.")
        capacity = GaugeMetricFamily("monitor_store_queue_capacity",
                                     "[database] writer_queue_size.")
        events = CounterMetricFamily("monitor_events", "Events started, by kind.",
                                     labels=["camera", "kind"])
        if stats.writer is not None:
            queued.add_metric([], stats.writer.queued)
            capacity.add_metric([], stats.writer.capacity)
            for (camera, kind), count in stats.writer.events_started.items():
                events.add_metric([camera, kind], count)
        published = CounterMetricFamily("monitor_alerts_published",
                                        "Outbox rows handed to the MQTT client.")
        delivered = CounterMetricFamily("monitor_alerts_delivered",
                                        "Outbox rows the broker acknowledged (QoS 1).")
        failed = CounterMetricFamily("monitor_alerts_failed",
                                     "Outbox rows that could never be published (dropped).")
        in_flight = GaugeMetricFamily("monitor_alerts_in_flight",
                                      "Published rows awaiting the broker's acknowledgement.")
        if stats.outbox is not None:
            published.add_metric([], stats.outbox.published)
            delivered.add_metric([], stats.outbox.delivered)
            failed.add_metric([], stats.outbox.dropped)
            in_flight.add_metric([], stats.outbox.in_flight)
        yield from (queued, capacity, events, published, delivered, failed, in_flight)
        unsent = self._unsent()
        if unsent is not None:
            depth = GaugeMetricFamily(
                "monitor_outbox_unsent", "Alerts recorded and not yet acknowledged by the broker."
            )
            depth.add_metric([], unsent)
            yield depth


    def _clips(self, stats: DaemonStats) -> Iterator[Metric]:
        written = CounterMetricFamily("monitor_clips_written", "Event clips written.")
        failed = CounterMetricFamily(
            "monitor_clips_failed", "Event clips that could not be made (no footage, encoder "
            "or disk error).")
        dropped = CounterMetricFamily(
            "monitor_clips_dropped", "Event clips given up: [clips] queue_size full, or not "
            "done within the stop's time.")
        written_bytes = CounterMetricFamily("monitor_clips_written_bytes",
                                            "Bytes of the event clips written.")
        pending = GaugeMetricFamily("monitor_clips_pending",
                                    "Events whose clips are still to be written.")
        buffered = GaugeMetricFamily(
            "monitor_clip_buffer_bytes", "JPEG bytes in the camera's clip frame ring "
            "(at most [clips] memory_limit_mb).", labels=["camera"])
        evicted = CounterMetricFamily(
            "monitor_clip_buffer_evicted_frames", "Frames the ring dropped, though a clip "
            "wanted them, to stay within memory_limit_mb.", labels=["camera"])
        clips = stats.clips
        if clips is not None:
            written.add_metric([], clips.written)
            failed.add_metric([], clips.failed)
            dropped.add_metric([], clips.dropped)
            written_bytes.add_metric([], clips.bytes_written)
            pending.add_metric([], clips.pending)
            for name, count in clips.buffered_bytes.items():
                buffered.add_metric([name], count)
            for name, count in clips.evicted_frames.items():
                evicted.add_metric([name], count)
        yield from (written, failed, dropped, written_bytes, pending, buffered, evicted)


class MetricsServer:
    """The registry, the inference histogram and the HTTP endpoint of one daemon.

    Args:
        stats: the daemon's ``stats()``.
        unsent: the outbox depth (see ``DaemonCollector``).
    """

    def __init__(self, stats: Callable[[], DaemonStats], unsent: Callable[[], int | None]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(DaemonCollector(stats, unsent))
        self._inference = Histogram(
            "monitor_inference_seconds", "Wall time of one detector call.",
            buckets=INFERENCE_BUCKETS_S, registry=self.registry,
        )
        self._clip_encode = Histogram(
            "monitor_clip_encode_seconds", "Wall time to encode and write one event clip.",
            buckets=CLIP_ENCODE_BUCKETS_S, registry=self.registry,
        )
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def observe_clip_encode(self, seconds: float) -> None:
        """One clip written (the clip thread; ``ClipWriter(on_encoded=...)``)."""
        self._clip_encode.observe(seconds)

    def observe_inference(self, seconds: float, _shape: tuple[int, int, int]) -> None:
        """One detector call (the inference thread; ``RegionDetector(on_inference=...)``)."""
        self._inference.observe(seconds)

    def start(self, host: str, port: int) -> None:
        """Serve ``/metrics``.

        Raises:
            OSError: the address cannot be bound (in use, not an address of this machine).
        """
        self._server, self._thread = start_http_server(port, host, registry=self.registry)
        log.info("metrics on http://%s:%d/metrics", host, self._server.server_port)

    @property
    def port(self) -> int | None:
        """The bound port, None when not serving."""
        return None if self._server is None else int(self._server.server_port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
