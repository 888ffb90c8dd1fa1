"""What people who are not the daemon read: ``monitor events --follow`` as events are being
recorded by a real writer, the CSV with every column, and the documented ``events_view``."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from monitor.events import report
from monitor.store import EventWriter, open_database
from monitor.types import Alert, AlertType, EndReason, EventKind
from tests.test_store import make_event

REPO = Path(__file__).resolve().parent.parent


def follow(url: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "events", "--follow", "--db", url,
         "--interval", "0.2", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def read_lines(proc: subprocess.Popen[str], count: int, timeout_s: float) -> list[str]:
    lines: list[str] = []

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if len(lines) >= count:
                return

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return lines


@pytest.mark.integration
def test_follow_prints_each_new_event_once_as_it_is_recorded(sqlite_url: str) -> None:
    engine = open_database(sqlite_url)
    writer = EventWriter(engine)
    writer.start()
    old = make_event(camera="gate")
    writer.record(Alert(AlertType.START, old), None)  # before --follow: not printed
    assert writer.flush(5.0)
    time.sleep(0.01)
    # From now on (the default is the moment it starts, which a loaded machine makes late).
    since = datetime.now(UTC).isoformat()
    proc = follow(sqlite_url, "--format", "json", "--camera", "gate", "--since", since)
    try:
        time.sleep(1.0)
        now = datetime.now(UTC)
        # Recorded now, started long ago (a camera_offline event starts when the camera left).
        offline = make_event(camera="gate", kind=EventKind.CAMERA_OFFLINE, label="camera",
                             track_id=None, start_time=now - timedelta(hours=3))
        fresh = [make_event(camera="gate", start_time=now) for _ in range(5)]
        elsewhere = make_event(camera="yard", start_time=now)
        for event in [offline, *fresh, elsewhere]:
            writer.record(Alert(AlertType.START, event), None)
        assert writer.flush(5.0)
        # Their updates and ends are not new events.
        for event in fresh:
            writer.record(Alert(AlertType.END, replace(
                event, end_time=now + timedelta(seconds=5), end_reason=EndReason.UNSEEN)), None)
        assert writer.flush(5.0)
        lines = read_lines(proc, 6, 15.0)
        time.sleep(1.0)  # a duplicate would come within a few polls
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
        writer.stop(5.0)
    lines += out.splitlines(keepends=True)
    ids = [json.loads(line)["id"] for line in lines if line.strip()]
    assert sorted(ids) == sorted([offline.id, *(e.id for e in fresh)]), (ids, err)
    assert "Traceback" not in err


def test_follow_refuses_what_it_cannot_do(sqlite_url: str) -> None:
    open_database(sqlite_url).dispose()
    for extra in (["show", "x"], ["--until", "1h"], ["--interval", "0"], ["--interval", "nan"]):
        result = subprocess.run(
            [sys.executable, "-m", "monitor.cli", "events", *extra[:1], *extra[1:], "--follow",
             "--db", sqlite_url], capture_output=True, text=True, cwd=REPO, timeout=60)
        assert result.returncode == 2, (extra, result.stderr)
        assert "error: " in result.stderr.strip().splitlines()[-1], result.stderr


def test_followed_csv_has_one_header_and_every_column() -> None:
    event = make_event(zones=("drive",), dwell_s=2.5)
    first = report.render_followed([event], "csv", first=True)
    later = report.render_followed([event], "csv", first=False)
    rows = list(csv.reader(io.StringIO(first + later)))
    assert rows[0] == list(report.COLUMNS) and len(rows) == 3
    record = dict(zip(rows[0], rows[1], strict=True))
    assert json.loads(record["evidence"]) == event.evidence
    assert record["zones"] == "drive" and record["dwell_s"] == "2.5"
    assert report.render_followed([], "csv", first=False) == ""
    table = report.render_followed([event], "table", first=True).splitlines()
    assert table[0].startswith("START (UTC)") and event.id in table[1]


def test_the_events_view_reads_as_documented(db_url: str) -> None:
    engine = open_database(db_url)
    writer = EventWriter(engine)
    writer.start()
    start = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    event = make_event(start_time=start, zone="drive", dwell_s=1.5)
    writer.record(Alert(AlertType.START, event), None)
    ended = replace(event, end_time=start + timedelta(seconds=12.5),
                    end_reason=EndReason.UNSEEN, seq=2)
    writer.record(Alert(AlertType.END, ended), None)
    assert writer.flush(5.0)
    writer.stop(5.0)
    with engine.connect() as connection:
        row = connection.execute(text(
            "SELECT camera, kind, label, zone, duration_s, end_reason, recorded_at "
            "FROM events_view WHERE id = :id"), {"id": event.id}).mappings().one()
    engine.dispose()
    assert (row["camera"], row["kind"], row["label"], row["zone"], row["end_reason"]) == (
        "front", "presence", "person", "drive", "unseen")
    assert float(row["duration_s"]) == pytest.approx(12.5, abs=1e-3)
    assert row["recorded_at"] is not None
    documented = (REPO / "docs" / "database.md").read_text()
    for column in ("duration_s", "recorded_at", "end_reason", "operator_label"):
        assert f"`{column}`" in documented
