"""A full disk: events keep being recorded, none points to a missing snapshot, nothing is left
half-written, each problem is one warning, and recording resumes when space returns.

The state directory is a real 4 MiB tmpfs filled to the last byte (the probe of issue 11 found
58 of 60 snapshot writes failing into 0-byte ``.tmp`` files, 28 of 30 events pointing to
snapshots that did not exist and one SQLite warning per retry).
"""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.config import parse_config
from monitor.store.sink import StoreSink
from monitor.events.snapshot import SnapshotWriter
from monitor.pipeline import CameraPipeline, build_camera_pipeline
from monitor.store import EventWriter, open_database
from monitor.store.models import EventRow
from tests.builders import make_detection, make_detections

pytestmark = pytest.mark.integration


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"this test needs root to mount a tmpfs: {done.stderr.strip()}"
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the disk is full; returns it (delete it to free the space)."""
    filler = disk / "filler"
    out = filler.open("wb", buffering=0)
    try:
        while True:
            out.write(b"\0" * 4096)
    except OSError:
        pass
    finally:
        out.close()
    return filler


def walk_through(pipeline: CameraPipeline, person: int, start_s: float) -> float:
    """One person walks across (a new track each time) and leaves; returns the time after."""
    t = start_s
    for step in range(8):
        t = start_s + step * 0.2
        x = 5 + 8 * step
        pipeline.process(make_detections(t, make_detection((x, 30, x + 15, 95))))
    pipeline.expire(t + 5.0)
    return t + 5.0


def test_a_full_disk_loses_no_event_and_recording_resumes(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = parse_config({
        "daemon": {"state_dir": str(small_disk)},
        "events": {"confirm_frames": 2, "end_after_s": 0.5},
        "temporal": {"decider": "off"},
        "cameras": [{"name": "cam1", "url": "rtsp://127.0.0.1/x"}],
    })
    engine = open_database(config.database_url())
    writer = EventWriter(engine, retry_initial_s=0.05, retry_max_s=0.2)
    writer.start()
    sink = StoreSink(writer, "monitor")
    pipeline = build_camera_pipeline(
        config.cameras[0], config, sink, SnapshotWriter(small_disk / "snapshots", 85), None,
    )
    caplog.set_level(logging.INFO)
    t = walk_through(pipeline, 0, 0.0)  # space left: a snapshot
    assert writer.flush(5.0)
    filler = fill(small_disk)
    for person in range(1, 6):  # the disk is full
        t = walk_through(pipeline, person, t)
    time.sleep(1.0)  # the writer retries meanwhile
    filler.unlink()  # space returns
    for person in range(6, 8):
        t = walk_through(pipeline, person, t)
    assert pipeline.close(timeout_s=2.0)
    assert writer.flush(10.0)
    writer.stop(5.0)

    with Session(engine) as session:
        rows = list(session.scalars(select(EventRow).order_by(EventRow.start_time)))
    engine.dispose()
    assert len(rows) == 8 and all(r.end_time is not None for r in rows)
    snapshots = [r.snapshot for r in rows]
    assert snapshots[0] is not None and snapshots[-1] is not None
    assert snapshots[1:6] == [None] * 5
    assert all(Path(s).stat().st_size > 0 for s in snapshots if s is not None)
    assert list(small_disk.rglob("*.tmp")) == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len([w for w in warnings if "cannot write snapshot" in w]) == 1, warnings
    assert len([w for w in warnings if "cannot write" in w and "items to" in w]) == 1, warnings
    infos = [r.getMessage() for r in caplog.records]
    assert any("snapshots are written again (5 event(s)" in m for m in infos), infos
    with sqlite3.connect(small_disk / "monitor.db") as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
