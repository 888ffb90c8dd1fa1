"""Retention on real SQLite and the local PostgreSQL: the real writer thread, real files.

Events are written through ``EventWriter`` with end times in the past and snapshot files with
old modification times; the cleaner runs against the real clock.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
import tomllib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from monitor.clips.writer import clip_path
from monitor.config import ConfigError, RetentionConfig, load_config, parse_config
from monitor.events.snapshot import SnapshotWriter
from monitor.store import EventWriter, RetentionCleaner, get_event, open_database
from monitor.store.models import OutboxRow, ReviewRow
from monitor.store.queries import set_operator_label
from monitor.store.retention import vacuum_state
from monitor.types import (
    Alert, AlertType, Box, Event, EventKind, OutboxMessage, Review, ReviewChange, ReviewMessage,
    Severity,
)

REPO = Path(__file__).resolve().parent.parent
NOW = datetime.now(timezone.utc)
DAY = timedelta(days=1)
# Only the thresholds each test is about; the rest stay out of the way.
QUIET = {"snapshots_max_bytes": 0, "first_run_delay_s": 0}
REVIEW_TOPIC = "monitor/reviews/front"


@dataclass
class Store:
    engine: Engine
    writer: EventWriter
    root: Path  # the snapshot folder
    snapshots: SnapshotWriter  # only for path_for: paths spelt as the daemon spells them
    clip_root: Path

    def cleaner(self, **config: Any) -> RetentionCleaner:
        return RetentionCleaner(
            RetentionConfig(**{**QUIET, **config}), self.writer, self.engine, self.root,
            clip_root=self.clip_root,
        )


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> Iterator[Store]:
    with _store(db_url, tmp_path) as opened:
        yield opened


@pytest.fixture
def sqlite_store(sqlite_url: str, tmp_path: Path) -> Iterator[Store]:
    with _store(sqlite_url, tmp_path) as opened:
        yield opened


@contextmanager
def _store(url: str, tmp_path: Path) -> Iterator[Store]:
    engine = open_database(url)
    writer = EventWriter(engine)
    writer.start()
    root = tmp_path / "state" / "snapshots"
    try:
        yield Store(engine, writer, root, SnapshotWriter(root, 85), tmp_path / "state" / "clips")
    finally:
        writer.stop(timeout_s=5.0)
        engine.dispose()


def add_event(
    store: Store, *, ended_ago: timedelta | None, started_ago: timedelta | None = None,
    sent: bool = True, snapshot_bytes: int | None = 1000, file_age: timedelta | None = None,
    evidence_bytes: int = 10, **overrides: Any,
) -> Event:
    """An event written through the writer (START, then END unless ``ended_ago`` is None), its
    alerts marked sent or not, and its snapshot file aged ``file_age`` (default: its start)."""
    started = NOW - (started_ago or (ended_ago or timedelta()) + timedelta(minutes=1))
    event_id = str(uuid.uuid4())
    event = Event(
        id=event_id, camera="front", kind=EventKind.PRESENCE, label="person", track_id=1,
        start_time=started, end_time=None, score=0.9, box=Box(1, 2, 3, 4), zone=None,
        snapshot=store.snapshots.path_for("front", event_id) if snapshot_bytes else None,
        evidence={"pad": "x" * evidence_bytes},
    )
    event = replace(event, **overrides)
    if event.snapshot is not None and snapshot_bytes:
        write_file(Path(event.snapshot), snapshot_bytes, file_age or NOW - started)
    store.writer.record(Alert(AlertType.START, event), message(event, "start"))
    if ended_ago is not None:
        event = replace(event, end_time=NOW - ended_ago)
        store.writer.record(Alert(AlertType.END, event), message(event, "end"))
    assert store.writer.flush(timeout_s=5.0)
    if sent:
        store.writer.mark_sent(outbox_ids(store.engine, event.id))
        assert store.writer.flush(timeout_s=5.0)
    return event


def message(event: Event, kind: str) -> OutboxMessage:
    payload = json.dumps({"type": kind, "id": event.id})
    return OutboxMessage(None, event.camera, f"monitor/events/{event.camera}/presence", payload)


def add_review(store: Store, events: list[Event], ended_ago: timedelta) -> Review:
    review = Review(
        id=str(uuid.uuid4()), camera="front", start_time=min(e.start_time for e in events),
        end_time=NOW - ended_ago, severity=Severity.DETECTION,
        event_ids=tuple(e.id for e in events), kinds=("presence",), labels=("person",),
        zones=(), seq=2,
    )
    outbox = OutboxMessage(None, "front", REVIEW_TOPIC, '{"type":"end"}')
    store.writer.record_review(ReviewMessage(ReviewChange.END, review, events[-1].id), outbox)
    assert store.writer.flush(timeout_s=5.0)
    store.writer.mark_sent(outbox_ids(store.engine, events[-1].id, topic=REVIEW_TOPIC))
    assert store.writer.flush(timeout_s=5.0)
    return review


def write_file(path: Path, size: int, age: timedelta) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff" * size)
    then = (NOW - age).timestamp()
    os.utime(path, (then, then))
    return path


def outbox_ids(engine: Engine, event_id: str, topic: str | None = None) -> list[int]:
    query = select(OutboxRow.id).where(OutboxRow.event_id == event_id)
    if topic is not None:
        query = query.where(OutboxRow.topic == topic)
    with Session(engine) as session:
        return list(session.scalars(query))


def review_ids(engine: Engine) -> set[str]:
    with Session(engine) as session:
        return set(session.scalars(select(ReviewRow.id)))


def snapshot_of(store: Store, event: Event) -> str | None:
    stored = get_event(store.engine, event.id)
    assert stored is not None, f"event {event.id} was deleted"
    return stored.snapshot


def test_old_ended_events_go_with_their_rows_and_files_and_nothing_else(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    old = [add_event(store, ended_ago=40 * DAY) for _ in range(5)]  # > batch_rows: 3 steps
    unsent = add_event(store, ended_ago=40 * DAY, sent=False)
    still_open = add_event(store, ended_ago=None, started_ago=40 * DAY)
    labelled = add_event(store, ended_ago=40 * DAY)
    assert set_operator_label(store.engine, labelled.id, "fall") is not None  # as `monitor label`
    recent = add_event(store, ended_ago=5 * DAY)
    snapshot_aged = add_event(store, ended_ago=20 * DAY)
    alone = add_review(store, old[:2], ended_ago=40 * DAY)
    shared = add_review(store, [old[2], unsent], ended_ago=40 * DAY)
    assert old[0].snapshot is not None and Path(old[0].snapshot).exists()

    with caplog.at_level(logging.INFO, logger="monitor.store.cleaner"):
        report = store.cleaner(events_days=30, snapshots_days=14, batch_rows=2).run_once()

    [line] = [r.getMessage() for r in caplog.records if r.name == "monitor.store.cleaner"]
    assert line.startswith("retention: deleted 5 event(s) with 11 outbox row(s), 1 review(s), "
                           "7 snapshot(s), 0 clip(s) and 0 temporary file(s) (7 KiB)")
    assert report.events == 5
    assert report.outbox_rows == 5 * 2 + 1  # START and END of each, and one review's END
    assert report.reviews == 1
    # The five events', and those of two kept events that ended over snapshots_days ago.
    assert report.snapshots == 7
    assert report.file_bytes == 7 * 1000
    for event in old:
        assert get_event(store.engine, event.id) is None
        assert event.snapshot is not None and not Path(event.snapshot).exists()
        assert outbox_ids(store.engine, event.id) == []
    assert review_ids(store.engine) == {shared.id}  # one of its events is kept
    assert alone.id not in review_ids(store.engine)
    # An undelivered alert keeps its event (START, END and the review's END), and the event its
    # snapshot: the alert names it.
    assert len(outbox_ids(store.engine, unsent.id)) == 3
    for kept in (unsent, still_open, recent):
        assert snapshot_of(store, kept) == kept.snapshot
        assert kept.snapshot is not None and Path(kept.snapshot).exists()
    for aged in (snapshot_aged, labelled):  # the event stays, its snapshot goes
        assert snapshot_of(store, aged) is None
        assert aged.snapshot is not None and not Path(aged.snapshot).exists()

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="monitor.store.cleaner"):
        again = store.cleaner(events_days=30, snapshots_days=14).run_once()
    assert again.events == again.snapshots == again.reviews == 0
    assert not caplog.records  # nothing deleted: no line


def test_the_byte_cap_deletes_the_oldest_snapshots_and_nulls_their_events(store: Store) -> None:
    held = add_event(store, ended_ago=None, started_ago=timedelta(hours=9),
                     snapshot_bytes=10_000)  # open: its next update would store the path again
    ended = [
        add_event(store, ended_ago=timedelta(hours=8 - n), snapshot_bytes=10_000)
        for n in range(6)
    ]
    young = write_file(store.root / "front" / f"{uuid.uuid4()}.jpg", 10_000, timedelta(minutes=5))

    report = store.cleaner(
        events_days=30, snapshots_days=14, snapshots_max_bytes=35_000, batch_rows=2,
    ).run_once()

    # 80 000 bytes: the open event's file (the oldest) and the young one stay; the five oldest
    # of the ended events go.
    assert (report.snapshots, report.file_bytes) == (5, 50_000)
    for event in ended[:5]:
        assert snapshot_of(store, event) is None
        assert event.snapshot is not None and not Path(event.snapshot).exists()
    for event in [held, *ended[5:]]:
        assert event.snapshot is not None and Path(event.snapshot).exists()
        assert snapshot_of(store, event) == event.snapshot
    assert young.exists()
    total = sum(p.stat().st_size for p in store.root.rglob("*.jpg"))
    assert total <= 35_000


def test_stray_temporary_and_unreferenced_files_go_and_others_stay(
    store: Store, tmp_path: Path
) -> None:
    folder = store.root / "front"
    stale_tmp = write_file(folder / "a.tmp", 0, timedelta(hours=2))  # a full disk's leftover
    fresh_tmp = write_file(folder / "b.tmp", 100, timedelta(minutes=10))  # being written
    orphan = write_file(folder / f"{uuid.uuid4()}.jpg", 500, 15 * DAY)  # a deleted database's
    young_orphan = write_file(folder / f"{uuid.uuid4()}.jpg", 500, 2 * DAY)
    notes = write_file(folder / "notes.txt", 10, 100 * DAY)
    # A long event: its snapshot is 20 days old, it ended 2 days ago, so it stays.
    long_event = add_event(store, ended_ago=2 * DAY, file_age=20 * DAY)
    # A path outside the snapshot folder (another daemon's, or edited) is never deleted.
    outside = write_file(tmp_path / "elsewhere" / "x.jpg", 100, 40 * DAY)
    foreign = add_event(store, ended_ago=40 * DAY, snapshot=str(outside), snapshot_bytes=None)

    report = store.cleaner(events_days=30, snapshots_days=14).run_once()

    assert not stale_tmp.exists() and not orphan.exists()
    assert fresh_tmp.exists() and young_orphan.exists() and notes.exists() and outside.exists()
    assert long_event.snapshot is not None and Path(long_event.snapshot).exists()
    assert snapshot_of(store, long_event) == long_event.snapshot
    assert get_event(store.engine, foreign.id) is None
    assert (report.events, report.snapshots, report.temp_files, report.file_bytes) == (1, 1, 1, 500)


def test_incremental_vacuum_gives_the_pages_back(sqlite_store: Store) -> None:
    state = vacuum_state(sqlite_store.engine)
    assert state is not None and state.mode == "incremental"  # set before the first table
    for _ in range(120):
        add_event(sqlite_store, ended_ago=40 * DAY, snapshot_bytes=None, evidence_bytes=20_000)
    before = vacuum_state(sqlite_store.engine)
    assert before is not None
    database = sqlite_store.engine.url.database
    assert database is not None
    size_before = os.path.getsize(database)

    report = sqlite_store.cleaner(events_days=30, vacuum_step_pages=100).run_once()

    after = vacuum_state(sqlite_store.engine)
    assert after is not None
    assert report.events == 120 and after.free_pages == 0
    freed_pages = before.page_count - after.page_count
    assert freed_pages > 500  # 120 x 20 KB of evidence, in 4 KiB pages
    assert report.vacuum_bytes == freed_pages * after.page_size
    # The file itself shrank: the vacuum's checkpoint truncated it (WAL).
    assert os.path.getsize(database) <= after.page_count * after.page_size < size_before / 4


def test_an_old_database_without_auto_vacuum_is_told_how_to_convert(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as legacy:  # as an earlier release created it: auto_vacuum NONE
        legacy.execute("CREATE TABLE legacy (x)")
    with _store(sqlite_url, tmp_path) as store:
        cleaner = store.cleaner(events_days=30)
        with caplog.at_level(logging.INFO, logger="monitor.store.cleaner"):
            cleaner.run_once()
            cleaner.run_once()
        told = [r for r in caplog.records if "auto_vacuum" in r.getMessage()]
        assert len(told) == 1 and told[0].levelno == logging.INFO
        assert "PRAGMA auto_vacuum=INCREMENTAL; VACUUM;" in told[0].getMessage()
        state = vacuum_state(store.engine)
        assert state is not None and state.mode == "none"  # not converted behind our back
    with sqlite3.connect(path) as converting:  # what the message says to do
        converting.executescript("PRAGMA auto_vacuum=INCREMENTAL; VACUUM;")
        assert converting.execute("PRAGMA auto_vacuum").fetchone() == (2,)


def test_the_thread_runs_soon_after_start_and_stops_within_its_timeout(store: Store) -> None:
    old = add_event(store, ended_ago=40 * DAY)
    cleaner = store.cleaner(events_days=30, first_run_delay_s=0, interval_s=600)
    cleaner.start()
    deadline = time.monotonic() + 5
    while get_event(store.engine, old.id) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert get_event(store.engine, old.id) is None
    assert "monitor-retention" in {t.name for t in threading.enumerate()}
    started = time.monotonic()
    assert cleaner.stop(timeout_s=2.0)
    assert time.monotonic() - started < 1.0
    assert "monitor-retention" not in {t.name for t in threading.enumerate()}


def test_a_failing_run_is_one_warning_and_retried(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = open_database(sqlite_url, busy_timeout_ms=10)
    writer = EventWriter(engine)
    writer.start()
    root = tmp_path / "snapshots"
    store = Store(engine, writer, root, SnapshotWriter(root, 85), tmp_path / "clips")
    old = add_event(store, ended_ago=40 * DAY)
    lock = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # another writer holds the lock: every delete fails
    cleaner = store.cleaner(events_days=30, retry_s=1)
    try:
        with caplog.at_level(logging.DEBUG, logger="monitor.store.cleaner"):
            cleaner.start()
            deadline = time.monotonic() + 5
            while _failures(caplog) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            lock.execute("ROLLBACK")
            while not _recovered(caplog) and time.monotonic() < deadline:
                time.sleep(0.05)
        assert get_event(engine, old.id) is None
        failed = [r for r in caplog.records if "retention run failed" in r.getMessage()]
        assert len(failed) >= 2 and "locked" in failed[0].getMessage()
        assert [r.levelno for r in failed if r.levelno >= logging.WARNING] == [logging.WARNING]
        assert _recovered(caplog)
    finally:
        assert cleaner.stop(timeout_s=2.0)
        lock.close()
        writer.stop(timeout_s=5.0)
        engine.dispose()


def _failures(caplog: pytest.LogCaptureFixture) -> int:
    return sum("retention run failed" in r.getMessage() for r in caplog.records)


def _recovered(caplog: pytest.LogCaptureFixture) -> bool:
    return any("retention runs again after" in r.getMessage() for r in caplog.records)


def minimal(**retention: Any) -> dict[str, Any]:
    return {"cameras": [{"name": "a", "url": "rtsp://h/x"}], "retention": retention}


def test_config_defaults_and_relations() -> None:
    config = parse_config(minimal()).retention
    assert (config.events_days, config.snapshots_days, config.interval_s) == (30, 14, 3600)
    assert config.snapshots_max_bytes == 5 * 1024**3 and config.vacuum
    assert parse_config(minimal(events_days=0, snapshots_days=400)).retention.snapshots_days == 400
    with pytest.raises(ConfigError, match=r"snapshots_days \(40\) must not exceed events_days"):
        parse_config(minimal(events_days=30, snapshots_days=40))
    with pytest.raises(ConfigError, match="retention.snapshots_dayz: unknown key"):
        parse_config(minimal(snapshots_dayz=3))


def test_the_example_shows_every_retention_key_at_its_default() -> None:
    raw = tomllib.loads((REPO / "config.example.toml").read_text())
    assert set(raw["retention"]) == set(RetentionConfig.model_fields)
    assert load_config(REPO / "config.example.toml").retention == parse_config(minimal()).retention


def test_deleted_line_crossings_still_count_in_the_retained_totals(store: Store) -> None:
    from monitor.store.queries import crossing_counts
    from monitor.types import Direction

    for ago, direction in ((40, Direction.IN), (40, Direction.IN), (35, Direction.OUT), (1, Direction.IN)):
        add_event(store, ended_ago=ago * DAY, kind=EventKind.LINE_CROSSING, zone="gate",
                  track_id=3, direction=direction)
    before = crossing_counts(store.engine, "front")
    assert before == {("gate", "person", Direction.IN): 3, ("gate", "person", Direction.OUT): 1}
    store.cleaner(events_days=30, snapshots_days=0).run_once()
    with Session(store.engine) as session:
        from monitor.store.models import EventRow

        assert len(list(session.scalars(select(EventRow.id)))) == 1  # three were deleted
    assert crossing_counts(store.engine, "front") == before  # the counters never go down
    add_event(store, ended_ago=45 * DAY, kind=EventKind.LINE_CROSSING, zone="gate", track_id=4,
              direction=Direction.IN)
    store.cleaner(events_days=30, snapshots_days=0).run_once()  # a second run adds to the totals
    assert crossing_counts(store.engine, "front")[("gate", "person", Direction.IN)] == 4


def add_clip(store: Store, event: Event, age: timedelta, size: int = 2000) -> Path:
    """A clip file for the event, recorded with it as the clip thread does."""
    path = write_file(clip_path(store.clip_root, event), size, age)
    clip_message = OutboxMessage(None, "front", "monitor/clips/front", '{"type":"clip"}')
    store.writer.record_clip(event.id, str(path), clip_message)
    assert store.writer.flush(timeout_s=5.0)
    store.writer.mark_sent(outbox_ids(store.engine, event.id))
    assert store.writer.flush(timeout_s=5.0)
    return path


def test_clips_go_with_their_events_and_orphan_clips_go_too(store: Store) -> None:
    purged = add_event(store, ended_ago=40 * DAY)
    purged_clip = add_clip(store, purged, 40 * DAY)
    kept = add_event(store, ended_ago=2 * DAY)
    kept_clip = add_clip(store, kept, 2 * DAY)
    day = store.clip_root / "front" / "2026-01-01"
    orphan = write_file(day / f"{uuid.uuid4()}.mp4", 700, timedelta(hours=2))  # its row is gone
    on_its_way = write_file(day / f"{uuid.uuid4()}.mp4", 700, timedelta(minutes=1))
    stale_tmp = write_file(day / f"{uuid.uuid4()}.tmp", 300, timedelta(hours=2))  # a crash's
    notes = write_file(day / "notes.txt", 10, 100 * DAY)

    report = store.cleaner(events_days=30, snapshots_days=14).run_once()

    assert get_event(store.engine, purged.id) is None and not purged_clip.exists()
    assert not orphan.exists() and not stale_tmp.exists()
    assert kept_clip.exists() and on_its_way.exists() and notes.exists()
    stored = get_event(store.engine, kept.id)
    assert stored is not None and stored.clip == str(kept_clip)
    assert (report.events, report.clips) == (1, 2)
    assert report.file_bytes == 1000 + 2000 + 700 + 300  # the snapshot, two clips, the temp
    again = store.cleaner(events_days=30, snapshots_days=14).run_once()
    assert again.clips == again.temp_files == 0
