"""Small parts without their own test module: time parsing, sd_notify, snapshots, reports and
one camera's pipeline."""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from monitor.cli import UsageError, parse_time
from monitor.config import EventsConfig
from monitor.events import report
from monitor.events.lifecycle import EventLifecycle
from monitor.events.snapshot import SnapshotWriter
from monitor.pipeline import CameraPipeline
from monitor.sdnotify import SystemdNotifier
from monitor.types import (
    Alert, AlertType, Box, Detections, EndReason, Event, EventKind, Frame, Track, Tracks,
)
from tests.builders import EPOCH, make_detection, make_detections

# --- monitor.cli.parse_time ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-25T10:00Z", datetime(2026, 11, 25, 10, 0, tzinfo=UTC)),
        ("2026-11-25T10:00:30Z", datetime(2026, 11, 25, 10, 0, 30, tzinfo=UTC)),
        ("2026-11-25T10:00", datetime(2026, 11, 25, 10, 0, tzinfo=UTC)),  # naive means UTC
        ("2026-11-25T10:00+02:00", datetime(2026, 11, 25, 8, 0, tzinfo=UTC)),
        ("2026-11-25T10:00:00-05:30", datetime(2026, 11, 25, 15, 30, tzinfo=UTC)),
        ("2026-11-25", datetime(2026, 11, 25, tzinfo=UTC)),
    ],
)
def test_parse_time_reads_iso_8601(text: str, expected: datetime) -> None:
    parsed = parse_time(text)
    assert parsed == expected
    assert parsed.tzinfo is not None


def test_parse_time_keeps_the_given_offset() -> None:
    assert parse_time("2026-11-25T10:00+02:00").utcoffset() == timedelta(hours=2)


@pytest.mark.parametrize(
    ("text", "ago"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1.5h", timedelta(minutes=90)),
        (" 2h ", timedelta(hours=2)),
    ],
)
def test_parse_time_reads_an_age(text: str, ago: timedelta) -> None:
    before = datetime.now(UTC)
    parsed = parse_time(text)
    after = datetime.now(UTC)
    assert before - ago <= parsed <= after - ago
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize("text", ["yesterday", "15x", "2H", "-2h", "h", "", "2026-13-01", "10:00Z"])
def test_parse_time_rejects_bad_input_naming_it(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_time(text)
    message = str(caught.value)
    assert f"'{text}'" in message
    assert "15m" in message  # says what would have been accepted
    assert "\n" not in message


@pytest.mark.parametrize("text", ["1000000d", "9" * 400 + "s"])
def test_parse_time_rejects_an_absurd_age(text: str) -> None:
    with pytest.raises(UsageError):
        parse_time(text)


# --- monitor.sdnotify.SystemdNotifier ---------------------------------------------------------


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound AF_UNIX datagram socket in tmp_path, playing systemd: (socket, its path)."""
    path = str(tmp_path / "notify")
    if len(path.encode()) >= 108:  # sun_path limit; pytest's tmp_path is normally far shorter
        pytest.fail(f"tmp_path too long for an AF_UNIX address: {path}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2.0)
    try:
        yield sock, path
    finally:
        sock.close()


@pytest.fixture
def abstract_socket() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket in the abstract namespace: (socket, its '@name' as NOTIFY_SOCKET says)."""
    name = f"monitor-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2.0)
    try:
        yield sock, "@" + name
    finally:
        sock.close()


@pytest.mark.parametrize(
    ("states", "datagram"),
    [
        (("READY=1",), b"READY=1"),
        (("READY=1", "STATUS=watching 2 cameras"), b"READY=1\nSTATUS=watching 2 cameras"),
        (("STOPPING=1",), b"STOPPING=1"),
    ],
)
def test_notify_sends_one_datagram(
    notify_socket: tuple[socket.socket, str], states: tuple[str, ...], datagram: bytes
) -> None:
    sock, path = notify_socket
    notifier = SystemdNotifier(path)
    assert notifier.enabled
    notifier.notify(*states)
    assert sock.recv(4096) == datagram


def test_notify_socket_comes_from_the_environment(
    notify_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    SystemdNotifier().notify("READY=1")
    assert sock.recv(4096) == b"READY=1"


def test_notify_reaches_an_abstract_socket(
    abstract_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, address = abstract_socket
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    notifier = SystemdNotifier()
    assert notifier.enabled
    notifier.notify("READY=1")
    assert sock.recv(4096) == b"READY=1"


def test_without_notify_socket_the_notifier_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = SystemdNotifier()
    assert not notifier.enabled
    notifier.notify("READY=1")  # nothing to send to, nothing raised
    assert not SystemdNotifier("").enabled


def test_notify_to_a_vanished_socket_is_ignored(tmp_path: Path) -> None:
    SystemdNotifier(str(tmp_path / "gone")).notify("WATCHDOG=1")


def test_notify_never_blocks_on_a_full_queue(notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    # Fill the reader's queue: nobody reads, so datagrams pile up until the kernel refuses more.
    filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    filler.setblocking(False)
    sent = 0
    try:
        while sent < 100_000:
            filler.sendto(b"WATCHDOG=1", path)
            sent += 1
    except BlockingIOError:
        pass
    assert 0 < sent < 100_000, "the queue never filled"
    # Proof the queue is full: an ordinary blocking send would wait (here: time out).
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
        probe.settimeout(0.2)
        with pytest.raises(OSError):  # TimeoutError or EAGAIN, depending on the kernel
            probe.sendto(b"x", path)

    notifier = SystemdNotifier(path)
    done = threading.Event()

    def notify_many() -> None:
        for _ in range(20):
            notifier.notify("WATCHDOG=1")
        done.set()

    thread = threading.Thread(target=notify_many, daemon=True)
    started = time.monotonic()
    thread.start()
    # Run in a thread so a regression hangs this thread, not the test session.
    assert done.wait(5.0), "notify() blocked on a full queue"
    assert time.monotonic() - started < 2.0
    filler.close()


# --- monitor.events.snapshot.SnapshotWriter --------------------------------------------------

GREY = 128
SNAP_W, SNAP_H = 200, 160
SNAP_BOX = Box(40, 30, 120, 110)


def make_event(
    event_id: str = "e1",
    *,
    camera: str = "cam1",
    kind: EventKind = EventKind.PRESENCE,
    start: float = 0.0,
    end: float | None = None,
    box: Box = SNAP_BOX,
    zone: str | None = None,
    snapshot: str | None = None,
    evidence: dict[str, object] | None = None,
    clip: str | None = None,
) -> Event:
    return Event(
        id=event_id, camera=camera, kind=kind, label="person", track_id=7,
        start_time=EPOCH + timedelta(seconds=start),
        end_time=None if end is None else EPOCH + timedelta(seconds=end),
        score=0.876, box=box, zone=zone, snapshot=snapshot, evidence=evidence or {}, clip=clip,
    )


def grey_frame(camera: str = "cam1") -> Frame:
    image = np.full((SNAP_H, SNAP_W, 3), GREY, dtype=np.uint8)
    return Frame(camera, 1, image, EPOCH, 0.0)


def is_red(pixel: np.ndarray) -> bool:
    blue, green, red = (int(v) for v in pixel)
    return red > 180 and blue < 90 and green < 90


def test_snapshot_is_a_jpeg_of_the_frame_with_the_box_drawn(tmp_path: Path) -> None:
    writer = SnapshotWriter(tmp_path / "snapshots", quality=90)
    path = writer.path_for("cam1", "e1")
    frame = grey_frame()

    assert writer.write(frame, make_event(snapshot=path)) is True

    assert path == str(tmp_path / "snapshots" / "cam1" / "e1.jpg")
    data = Path(path).read_bytes()
    assert data[:2] == b"\xff\xd8"  # JPEG SOI marker
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    assert image.shape == (SNAP_H, SNAP_W, 3)
    x1, y1, x2, y2 = (int(v) for v in (SNAP_BOX.x1, SNAP_BOX.y1, SNAP_BOX.x2, SNAP_BOX.y2))
    middle_y, middle_x = (y1 + y2) // 2, (x1 + x2) // 2
    edges = [image[middle_y, x1], image[middle_y, x2], image[y2, middle_x], image[y1 + 40, x1]]
    assert all(is_red(pixel) for pixel in edges), edges
    assert abs(int(image[middle_y, middle_x].mean()) - GREY) < 10  # inside the box untouched
    assert abs(int(image[5, SNAP_W - 5].mean()) - GREY) < 10       # far outside too
    assert (frame.image == GREY).all()  # the frame itself is never drawn on
    assert [p.name for p in Path(path).parent.iterdir()] == ["e1.jpg"]  # no temp file left


def test_an_event_without_snapshot_path_writes_nothing(tmp_path: Path) -> None:
    writer = SnapshotWriter(tmp_path, quality=85)
    assert writer.write(grey_frame(), make_event(snapshot=None)) is False
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_snapshot_directory_is_a_warning_not_an_exception(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A file where the camera's directory should be: mkdir fails even for root.
    (tmp_path / "cam1").write_text("in the way")
    writer = SnapshotWriter(tmp_path, quality=85)
    path = writer.path_for("cam1", "e1")

    with caplog.at_level(logging.WARNING, logger="monitor.events.snapshot"):
        assert writer.write(grey_frame(), make_event(snapshot=path)) is False

    warnings = [r for r in caplog.records
                if r.name == "monitor.events.snapshot" and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and path in warnings[0].getMessage()


# --- monitor.events.report -------------------------------------------------------------------


def sample_events() -> list[Event]:
    return [
        make_event("e1", start=0, end=12.5, zone=None, snapshot="/snap/cam1/e1.jpg",
                   evidence={"sightings": 9, "classes": {"Normal": 9}}, clip="/clips/cam1/e1.mp4"),
        make_event("e2", camera="cam2", kind=EventKind.INTRUSION, start=60, zone="gate",
                   box=Box(1.234, 2.0, 30.06, 40.0)),
    ]


def test_render_table() -> None:
    lines = report.render(sample_events(), "table").splitlines()
    assert lines[0].split() == ["START", "(UTC)", "DURATION", "CAMERA", "KIND", "LABEL", "TRACK",
                                "SCORE", "ZONE", "ID", "CLIP", "NOTE"]
    assert lines[1].split() == ["2026-01-01", "12:00:00", "12.5s", "cam1", "presence", "person",
                                "7", "0.88", "-", "e1", "/clips/cam1/e1.mp4", "-"]
    assert lines[2].split() == ["2026-01-01", "12:01:00", "open", "cam2", "intrusion", "person",
                                "7", "0.88", "gate", "e2", "-", "-"]
    quiet = replace(sample_events()[0], announced=False, stationary=True,
                                end_reason=EndReason.SHUTDOWN)
    assert report.render([quiet], "table").splitlines()[1].endswith(
        "stationary, not alerted; ended: shutdown")
    # Columns line up: every ID starts at the same column.
    assert lines[1].index("e1") == lines[2].index("e2") == lines[0].index("ID")


def test_render_json_round_trips() -> None:
    events = sample_events()
    data = json.loads(report.render(events, "json"))
    assert [d["id"] for d in data] == ["e1", "e2"]
    assert data[0]["end_time"] == "2026-01-01T12:00:12.500Z"  # the one format, as on MQTT
    assert data[1]["end_time"] is None
    assert data[1]["box"] == [1.2, 2.0, 30.1, 40.0]
    assert data[0]["evidence"] == {"sightings": 9, "classes": {"Normal": 9}}
    assert data[0]["score"] == 0.876


def test_render_csv() -> None:
    text = report.render(sample_events(), "csv")
    assert text.splitlines()[0] == ",".join(report.COLUMNS)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["id"] for r in rows] == ["e1", "e2"]
    assert rows[0]["zone"] == ""              # None is an empty cell
    assert rows[1]["end_time"] == ""
    assert rows[1]["box"] == "1.2 2.0 30.1 40.0"
    assert rows[1]["zone"] == "gate"
    assert rows[0]["start_time"] == "2026-01-01T12:00:00.000Z"
    assert {"end_reason", "seq", "stationary", "zones", "dwell_s"} <= set(rows[0])


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("table", "no events\n"),
        ("json", "[]\n"),
        ("csv", ",".join(report.COLUMNS) + "\r\n"),  # RFC 4180 row ends
    ],
)
def test_render_nothing(fmt: str, expected: str) -> None:
    assert report.render([], fmt) == expected


def test_render_one_shows_the_event_and_its_evidence() -> None:
    event = sample_events()[0]
    evidence = {"sightings": 9, "classes": {"Normal": 9, "Fall": 1}, "median_score": 0.81}
    text = report.render_one(replace(event, evidence=evidence))
    lines = text.splitlines()
    assert lines[0].split() == ["id", "e1"]
    fields = lines[:lines.index("evidence:")]
    assert "zone".ljust(len("operator_label")) + "  -" in fields  # None shown as a dash
    assert all(line[16] != " " for line in fields)  # every value starts in the same column
    assert lines[lines.index("evidence:") + 1:] == [
        "  sightings: 9",
        '  classes: {"Normal": 9, "Fall": 1}',
        "  median_score: 0.81",
    ]


def test_render_one_without_evidence() -> None:
    text = report.render_one(make_event(evidence={}))
    assert text.splitlines()[-1] == "evidence:"


# --- monitor.pipeline.CameraPipeline ---------------------------------------------------------


class FakeTracker:
    """Gives each detection of a frame the track id of its position (first = 1, ...)."""

    def update(self, detections: Detections) -> Tracks:
        camera = detections.frame.camera
        return Tracks(detections.frame, tuple(
            Track(camera, n, d) for n, d in enumerate(detections.items, start=1)))


class ListSink:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def emit(self, alert: Alert) -> None:
        self.alerts.append(alert)


@pytest.fixture
def pipeline(tmp_path: Path) -> tuple[CameraPipeline, ListSink]:
    writer = SnapshotWriter(tmp_path / "snapshots", quality=85)
    ids = (f"e{n}" for n in itertools.count(1))
    lifecycle = EventLifecycle(
        "cam1", ["person"], [], EventsConfig(confirm_frames=3, end_after_s=2.0, alert_never_moved=True),
        new_id=lambda: next(ids), snapshot_path=writer.path_for,
    )
    sink = ListSink()
    return CameraPipeline(FakeTracker(), lifecycle, writer, sink), sink


def summary(alerts: list[Alert]) -> list[tuple[str, str, int]]:
    return [(a.type.value, a.event.id, a.event.track_id) for a in alerts]


def test_pipeline_start_alert_comes_with_a_snapshot(
    pipeline: tuple[CameraPipeline, ListSink], tmp_path: Path
) -> None:
    camera, sink = pipeline
    person = make_detection((10, 10, 30, 60), 0.9)
    for t in (0.0, 0.2):
        camera.process(make_detections(t, person))
    assert sink.alerts == []
    assert not (tmp_path / "snapshots").exists()

    camera.process(make_detections(0.4, person))  # the third sighting confirms the track

    assert summary(sink.alerts) == [("start", "e1", 1)]
    snapshot = sink.alerts[0].event.snapshot
    assert snapshot == str(tmp_path / "snapshots" / "cam1" / "e1.jpg")
    image = cv2.imread(snapshot)
    assert image is not None and image.shape == (100, 100, 3)
    assert (camera.detections, camera.alerts) == (3, 1)


def test_pipeline_close_ends_open_events(pipeline: tuple[CameraPipeline, ListSink]) -> None:
    camera, sink = pipeline
    for t in (0.0, 0.2, 0.4, 0.6):
        camera.process(make_detections(t, make_detection((10, 10, 30, 60)),
                                       make_detection((60, 10, 80, 60))))
    assert summary(sink.alerts) == [("start", "e1", 1), ("start", "e2", 2)]

    camera.close()

    ends = sink.alerts[2:]
    assert sorted(summary(ends)) == [("end", "e1", 1), ("end", "e2", 2)]
    assert all(a.event.end_time == EPOCH + timedelta(seconds=0.6) for a in ends)
    assert camera.alerts == 4
    camera.close()  # nothing left to end
    assert camera.alerts == 4


class BlockingSink(ListSink):
    """A sink stuck in emit (a store whose queue is full), released by the test."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def emit(self, alert: Alert) -> None:
        self.entered.set()
        self.release.wait(10)
        super().emit(alert)


def test_pipeline_close_gives_up_while_a_result_is_stuck_and_drops_late_ones(tmp_path: Path) -> None:
    lifecycle = EventLifecycle("cam1", ["person"], [], EventsConfig(confirm_frames=1, alert_never_moved=True))
    sink = BlockingSink()
    camera = CameraPipeline(FakeTracker(), lifecycle, SnapshotWriter(tmp_path, 85), sink)
    worker = threading.Thread(
        target=camera.process, args=(make_detections(0.0, make_detection()),)
    )
    worker.start()
    assert sink.entered.wait(5)
    started = time.monotonic()
    assert camera.close(timeout_s=0.2) is False  # the inference thread holds the camera
    assert time.monotonic() - started < 2
    sink.release.set()
    worker.join(5)
    assert camera.close(timeout_s=1.0) is True
    ended = [a.type.value for a in sink.alerts]
    assert ended == ["start", "end"]
    camera.process(make_detections(0.5, make_detection()))  # a late result after shutdown
    assert [a.type.value for a in sink.alerts] == ["start", "end"]


def test_pipeline_expire_ends_events_of_a_silent_camera(
    pipeline: tuple[CameraPipeline, ListSink],
) -> None:
    camera, sink = pipeline
    for t in (0.0, 0.2, 0.4):
        camera.process(make_detections(t, make_detection()))
    camera.expire(1.0)
    assert summary(sink.alerts) == [("start", "e1", 1)]  # not gone long enough yet
    camera.expire(2.4)  # end_after_s = 2 after the last sighting at 0.4
    assert summary(sink.alerts) == [("start", "e1", 1), ("end", "e1", 1)]


def test_pipeline_alerts_of_a_camera_without_snapshots_still_flow(tmp_path: Path) -> None:
    writer = SnapshotWriter(tmp_path, quality=85)
    lifecycle = EventLifecycle("cam1", ["person"], [], EventsConfig(confirm_frames=1, alert_never_moved=True))
    sink = ListSink()
    camera = CameraPipeline(FakeTracker(), lifecycle, writer, sink)
    camera.process(make_detections(0.0, make_detection()))
    assert [a.type for a in sink.alerts] == [AlertType.START]
    assert sink.alerts[0].event.snapshot is None
    assert list(tmp_path.iterdir()) == []

