"""The store on real SQLite and real PostgreSQL: migrations, the writer thread, the read side."""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, make_url, select, text
from sqlalchemy import event as sa_event
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

import monitor.store
from monitor.store import (
    EventWriter,
    StoreError,
    count_unsent,
    delete_sent_before,
    get_event,
    list_events,
    open_database,
    pending_messages,
)
from monitor.store.db import alembic_config, masked_url, migrate
from monitor.store.models import Base, EventRow, OutboxRow
from monitor.store.queries import get_review, list_reviews, open_events, open_reviews
from monitor.types import (
    Alert, AlertType, Box, EndReason, Event, EventKind, OutboxMessage, Review, ReviewChange,
    ReviewMessage, Severity,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
FAST_RETRY = {"retry_initial_s": 0.05, "retry_max_s": 0.2}
# The newest migration: a fresh or upgraded database must be stamped with it.
HEAD_REVISION = max(
    p.name.split("_")[0]
    for p in (Path(monitor.store.__file__).parent / "migrations" / "versions").glob("0*.py")
)


def make_event(**overrides: object) -> Event:
    event = Event(
        id=str(uuid.uuid4()),
        camera="front",
        kind=EventKind.PRESENCE,
        label="person",
        track_id=7,
        start_time=T0,
        end_time=None,
        score=0.81,
        box=Box(10.0, 20.0, 110.0, 220.0),
        zone=None,
        snapshot=None,
        evidence={"frames": 3, "scores": [0.7, 0.81]},
    )
    return replace(event, **overrides)  # type: ignore[arg-type]


def make_message(alert_type: AlertType, event: Event) -> OutboxMessage:
    return OutboxMessage(
        id=None,
        camera=event.camera,
        topic=f"monitor/events/{event.camera}/{event.kind.value}",
        payload=json.dumps({"type": alert_type.value, "id": event.id}),
    )


def record(writer: EventWriter, alert_type: AlertType, event: Event) -> None:
    writer.record(Alert(alert_type, event), make_message(alert_type, event))


def outbox_rows(engine: Engine) -> list[OutboxRow]:
    with Session(engine) as session:
        return list(session.scalars(select(OutboxRow).order_by(OutboxRow.id)))


def event_count(engine: Engine) -> int:
    with Session(engine) as session:
        return len(session.scalars(select(EventRow.id)).all())


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = open_database(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def writer(engine: Engine) -> Iterator[EventWriter]:
    writer = EventWriter(engine, **FAST_RETRY)
    writer.start()
    yield writer
    writer.stop(timeout_s=5.0)


@contextmanager
def write_lock(db_url: str, table: str = "events") -> Iterator[None]:
    """Hold a lock, from another connection, that makes the store's writes fail.

    SQLite: an exclusive transaction on the whole file (the store's busy timeout must be short).
    PostgreSQL: an ACCESS EXCLUSIVE lock on ``table`` (the database's lock_timeout must be short).
    """
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        conn = sqlite3.connect(str(url.database), isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            conn.rollback()
            conn.close()
        return
    with psycopg.connect(url.set(drivername="postgresql").render_as_string(False)) as conn:
        conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            conn.rollback()


def open_with_short_lock_wait(db_url: str) -> Engine:
    """Open the store so that waiting for another connection's lock fails within ~0.1 s."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        return open_database(db_url, busy_timeout_ms=50)
    with psycopg.connect(url.set(drivername="postgresql").render_as_string(False)) as conn:
        conn.autocommit = True
        conn.execute(f'ALTER DATABASE "{url.database}" SET lock_timeout = \'100ms\'')
    return open_database(db_url)


# --- migrations -------------------------------------------------------------------------------


def test_open_creates_schema_and_reopen_is_a_no_op(db_url: str) -> None:
    engine = open_database(db_url)
    assert {"events", "outbox", "alembic_version"} <= set(inspect(engine).get_table_names())
    writer = EventWriter(engine)
    writer.start()
    event = make_event()
    record(writer, AlertType.START, event)
    writer.stop(timeout_s=5.0)
    engine.dispose()

    engine = open_database(db_url)
    try:
        with engine.connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
        assert versions == [(HEAD_REVISION,)]
        assert get_event(engine, event.id) == event
    finally:
        engine.dispose()


def test_models_match_migrations(engine: Engine) -> None:
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_downgrade_to_empty_and_upgrade_again(engine: Engine) -> None:
    migrate(engine, "base", down=True)
    assert not {"events", "outbox"} & set(inspect(engine).get_table_names())
    migrate(engine, "head")
    assert {"events", "outbox"} <= set(inspect(engine).get_table_names())


def get_event_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM events")).scalar_one())


def test_upgrade_from_0001_keeps_events_and_adds_operator_labels(engine: Engine) -> None:
    """A database written by the previous release: its events survive 0002 and can be labelled."""
    from monitor.store.queries import labelled_events, set_operator_label

    migrate(engine, "0001", down=True)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO events (id, camera, kind, label, track_id, start_time, end_time, score,"
            " box, zone, snapshot, evidence, created_at, updated_at) VALUES ('old', 'cam1',"
            " 'presence', 'person', 3, '2026-01-01 12:00:00', '2026-01-01 12:00:09', 0.8,"
            " '[1, 2, 3, 4]', NULL, NULL, '{}', '2026-01-01 12:00:00', '2026-01-01 12:00:09')"
        ))
    migrate(engine, "head")
    old = get_event(engine, "old")
    assert old is not None and old.track_id == 3 and old.operator_label is None
    labelled = set_operator_label(engine, "old", "normal")
    assert labelled is not None and labelled.operator_label == "normal"
    assert [e.id for e in labelled_events(engine)] == ["old"]
    assert set_operator_label(engine, "missing", "fall") is None
    # And back, with an alert referencing the event (the outbox's foreign key).
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO outbox (event_id, camera, topic, payload, created_at) VALUES"
            " ('old', 'cam1', 'monitor/events/cam1/presence', '{}', '2026-01-01 12:00:09')"
        ))
    migrate(engine, "0001", down=True)
    assert "operator_label" not in {c["name"] for c in inspect(engine).get_columns("events")}
    assert get_event_count(engine) == 1


def test_alembic_cli_upgrades_a_url(tmp_path: Path) -> None:
    ini = Path(monitor.store.__file__).parent / "alembic.ini"
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    alembic = Path(sys.executable).parent / "alembic"
    subprocess.run(
        [str(alembic), "-c", str(ini), "-x", f"url={url}", "upgrade", "head"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=60,
    )
    with sqlite3.connect(tmp_path / "cli.db") as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD_REVISION,)]


def test_sqlite_connections_get_the_pragmas(sqlite_url: str) -> None:
    engine = open_database(sqlite_url, busy_timeout_ms=1234)
    try:
        with engine.connect() as conn:
            pragma = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
    finally:
        engine.dispose()
    # synchronous 1 = NORMAL
    assert pragma == {
        "journal_mode": "wal",
        "synchronous": 1,
        "foreign_keys": 1,
        "busy_timeout": 1234,
    }


# --- open errors ------------------------------------------------------------------------------


def test_unreachable_postgres_is_one_line_with_the_password_masked() -> None:
    with pytest.raises(StoreError) as caught:
        open_database("postgresql+psycopg://monitor:s3cret@127.0.0.1:1/monitor")
    message = str(caught.value)
    assert "\n" not in message
    assert "s3cret" not in message
    assert message.startswith(
        "cannot open database postgresql+psycopg://monitor:***@127.0.0.1:1/monitor: "
    )
    assert "refused" in message.lower()


def test_unusable_sqlite_path_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    with pytest.raises(StoreError, match=r"^cannot open database sqlite:///.*a-file/db/x\.db: "):
        open_database(f"sqlite:///{tmp_path / 'a-file' / 'db' / 'x.db'}")


def test_invalid_url_does_not_echo_it() -> None:
    with pytest.raises(StoreError, match="invalid database URL") as caught:
        open_database("not a url with s3cret")
    assert "s3cret" not in str(caught.value)


# --- writer -----------------------------------------------------------------------------------


def test_start_update_end_is_one_event_and_three_messages_in_order(
    engine: Engine, writer: EventWriter
) -> None:
    started = make_event()
    updated = replace(started, score=0.93, box=Box(12, 22, 112, 222), evidence={"frames": 9})
    ended = replace(updated, end_time=T0 + timedelta(seconds=30), snapshot="/snaps/a.jpg")
    record(writer, AlertType.START, started)
    record(writer, AlertType.UPDATE, updated)
    record(writer, AlertType.END, ended)
    assert writer.flush(timeout_s=5.0)

    assert event_count(engine) == 1
    stored = get_event(engine, started.id)
    assert stored == ended
    assert stored is not None and stored.evidence == {"frames": 9}
    assert stored.end_time is not None and stored.end_time.tzinfo == timezone.utc
    rows = outbox_rows(engine)
    assert [json.loads(r.payload)["type"] for r in rows] == ["start", "update", "end"]
    assert {r.event_id for r in rows} == {started.id}
    assert rows[0].id < rows[1].id < rows[2].id


def test_update_of_an_unknown_event_inserts_it(engine: Engine, writer: EventWriter) -> None:
    event = make_event(end_time=T0 + timedelta(seconds=5))
    record(writer, AlertType.END, event)
    assert writer.flush(timeout_s=5.0)
    assert get_event(engine, event.id) == event


def test_pending_messages_mark_sent_and_count_unsent(engine: Engine, writer: EventWriter) -> None:
    events = [make_event(camera=f"cam{i}") for i in range(5)]
    for event in events:
        record(writer, AlertType.START, event)
    assert writer.flush(timeout_s=5.0)

    pending = pending_messages(engine, after_id=0, limit=100)
    assert [m.camera for m in pending] == [e.camera for e in events]
    assert pending[0] == replace(make_message(AlertType.START, events[0]), id=pending[0].id)
    assert pending_messages(engine, after_id=pending[1].id or 0, limit=2) == pending[2:4]
    assert count_unsent(engine) == 5

    writer.mark_sent([m.id for m in pending[:3] if m.id is not None])
    assert writer.flush(timeout_s=5.0)
    assert count_unsent(engine) == 2
    assert pending_messages(engine, after_id=0, limit=100) == pending[3:]
    sent_at = [r.sent_at for r in outbox_rows(engine)]
    assert all(s is not None and s.tzinfo == timezone.utc for s in sent_at[:3])


def test_delete_sent_before_keeps_unsent_and_never_reuses_ids(
    engine: Engine, writer: EventWriter
) -> None:
    for _ in range(3):
        record(writer, AlertType.START, make_event())
    assert writer.flush(timeout_s=5.0)
    ids = [m.id for m in pending_messages(engine, after_id=0, limit=10) if m.id is not None]
    writer.mark_sent(ids[1:])  # the newest row too: SQLite without AUTOINCREMENT would reuse it
    assert writer.flush(timeout_s=5.0)

    assert delete_sent_before(engine, datetime.now(timezone.utc) - timedelta(hours=1)) == 0
    assert delete_sent_before(engine, datetime.now(timezone.utc) + timedelta(seconds=1)) == 2
    assert [r.id for r in outbox_rows(engine)] == ids[:1]

    record(writer, AlertType.START, make_event())
    assert writer.flush(timeout_s=5.0)
    assert outbox_rows(engine)[-1].id > ids[-1]


def statement_threads(engine: Engine, prefix: str) -> list[str]:
    """Names of the threads that run each statement starting with ``prefix``, as they run."""
    threads: list[str] = []
    sa_event.listen(
        engine,
        "before_cursor_execute",
        lambda _c, _cur, sql, _p, _ctx, _many: (
            threads.append(threading.current_thread().name) if sql.startswith(prefix) else None
        ),
    )
    return threads


def test_prune_sent_before_deletes_old_sent_rows_on_the_writer_thread(
    engine: Engine, writer: EventWriter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="monitor.store")
    for _ in range(5):
        record(writer, AlertType.START, make_event())
    assert writer.flush(timeout_s=5.0)
    a, b, c, d, e = [m.id or 0 for m in pending_messages(engine, after_id=0, limit=10)]
    writer.mark_sent([a, b, e])  # e, the newest: SQLite without AUTOINCREMENT would reuse its id
    assert writer.flush(timeout_s=5.0)
    time.sleep(0.01)
    cutoff = datetime.now(timezone.utc)
    time.sleep(0.01)
    writer.mark_sent([c])  # sent after the cutoff: kept
    assert writer.flush(timeout_s=5.0)
    deletes = statement_threads(engine, "DELETE FROM outbox")

    writer.prune_sent_before(cutoff)
    assert writer.flush(timeout_s=5.0)
    assert [r.id for r in outbox_rows(engine)] == [c, d]  # d was never sent
    assert deletes == ["store-writer"]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any(m.startswith("pruned 3 outbox rows sent before ") for m in infos), infos

    caplog.clear()
    writer.prune_sent_before(cutoff)  # nothing left to delete: nothing logged
    record(writer, AlertType.START, make_event())
    assert writer.flush(timeout_s=5.0)
    assert not [r for r in caplog.records if "pruned" in r.getMessage()]
    assert outbox_rows(engine)[-1].id > e


def test_failed_prune_is_one_warning_and_not_retried(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = open_with_short_lock_wait(db_url)
    writer = EventWriter(engine, **FAST_RETRY)
    writer.start()
    try:
        for _ in range(2):
            record(writer, AlertType.START, make_event())
        assert writer.flush(timeout_s=5.0)
        writer.mark_sent([m.id for m in pending_messages(engine, after_id=0, limit=10) if m.id])
        assert writer.flush(timeout_s=5.0)
        deletes = statement_threads(engine, "DELETE FROM outbox")
        cutoff = datetime.now(timezone.utc) + timedelta(seconds=1)
        with write_lock(db_url, table="outbox"):
            writer.prune_sent_before(cutoff)
            assert writer.flush(timeout_s=5.0)  # done (dropped) while the lock is still held
            time.sleep(0.3)  # a retry would happen now
            assert deletes == ["store-writer"]
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1 and "\n" not in warnings[0], warnings
        assert warnings[0].startswith("outbox pruning on "), warnings
        assert len(outbox_rows(engine)) == 2

        record(writer, AlertType.START, make_event())  # the writer goes on
        writer.prune_sent_before(cutoff)  # the next run prunes what the failed one left
        assert writer.flush(timeout_s=5.0)
        assert len(outbox_rows(engine)) == 1 and count_unsent(engine) == 1
    finally:
        writer.stop(timeout_s=5.0)
        engine.dispose()


def test_prune_never_blocks_and_one_queued_prune_takes_the_newest_cutoff(
    engine: Engine, writer: EventWriter
) -> None:
    record(writer, AlertType.START, make_event())
    assert writer.flush(timeout_s=5.0)
    writer.mark_sent([1])
    writer.stop(timeout_s=5.0)
    now = datetime.now(timezone.utc)

    idle = EventWriter(engine, queue_size=1)  # not started: nothing leaves its queue
    record(idle, AlertType.START, make_event())  # the queue is full now
    deletes = statement_threads(engine, "DELETE FROM outbox")
    started = time.monotonic()
    idle.prune_sent_before(now - timedelta(days=1))  # would keep the sent row
    idle.prune_sent_before(now + timedelta(days=1))  # moves the queued prune's cutoff forward
    idle.prune_sent_before(now - timedelta(days=2))  # an older cutoff never moves it back
    assert time.monotonic() - started < 0.1 and idle.pending() == 2
    with pytest.raises(ValueError, match="naive"):
        idle.prune_sent_before(datetime(2025, 3, 1))
    idle.start()
    idle.stop(timeout_s=5.0)
    assert deletes == ["store-writer"]
    assert [r.sent_at for r in outbox_rows(engine)] == [None]  # the sent row went, the new stays
    with pytest.raises(RuntimeError, match="stopped"):
        idle.prune_sent_before(now)


def test_record_is_atomic_and_one_bad_item_does_not_block_the_rest(
    engine: Engine, writer: EventWriter, caplog: pytest.LogCaptureFixture
) -> None:
    good1, bad, good2 = make_event(), make_event(), make_event()
    statements: list[tuple[str, str]] = []
    sa_event.listen(
        engine,
        "before_cursor_execute",
        lambda _c, _cur, sql, params, _ctx, _many: statements.append((sql, repr(params))),
    )
    record(writer, AlertType.START, good1)
    # NOT NULL on outbox.topic fails the outbox insert after the event row was inserted.
    bad_message = replace(make_message(AlertType.START, bad), topic=None)
    writer.record(Alert(AlertType.START, bad), bad_message)  # type: ignore[arg-type]
    record(writer, AlertType.START, good2)
    assert writer.flush(timeout_s=5.0)

    event_inserts = [p for sql, p in statements if sql.startswith("INSERT INTO events")]
    assert any(bad.id in p for p in event_inserts)  # it was written, then rolled back
    assert get_event(engine, bad.id) is None
    assert get_event(engine, good1.id) == good1 and get_event(engine, good2.id) == good2
    assert {r.event_id for r in outbox_rows(engine)} == {good1.id, good2.id}
    assert any(f"start alert of event {bad.id}" in r.getMessage() for r in caplog.records)
    assert writer.pending() == 0


@pytest.mark.integration
def test_outbox_camera_too_long_rolls_back_the_event_on_postgres(postgres_url: str) -> None:
    engine = open_database(postgres_url)
    writer = EventWriter(engine)
    writer.start()
    try:
        event = make_event()
        too_long = replace(make_message(AlertType.START, event), camera="c" * 65)
        writer.record(Alert(AlertType.START, event), too_long)
        assert writer.flush(timeout_s=5.0)
        assert get_event(engine, event.id) is None
        assert count_unsent(engine) == 0
    finally:
        writer.stop(timeout_s=5.0)
        engine.dispose()


def test_writer_survives_a_locked_database_and_loses_nothing(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = open_with_short_lock_wait(db_url)
    writer = EventWriter(engine, **FAST_RETRY)
    writer.start()
    events = [make_event(track_id=i) for i in range(20)]
    try:
        with write_lock(db_url):
            for event in events:
                record(writer, AlertType.START, event)
            time.sleep(0.6)
            assert not writer.flush(timeout_s=0.1)
            assert writer.pending() == 20
        assert writer.flush(timeout_s=5.0)
        assert event_count(engine) == 20
        assert [json.loads(r.payload)["id"] for r in outbox_rows(engine)] == [e.id for e in events]
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert warnings and all("\n" not in w for w in warnings)
        assert f"to {masked_url(engine)} (attempt 1" in warnings[0]
    finally:
        writer.stop(timeout_s=5.0)
        engine.dispose()


def test_stop_gives_up_on_a_stuck_database_and_logs_what_was_lost(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = open_with_short_lock_wait(db_url)
    writer = EventWriter(engine, **FAST_RETRY)
    writer.start()
    try:
        with write_lock(db_url):
            for _ in range(5):
                record(writer, AlertType.START, make_event())
            began = time.monotonic()
            writer.stop(timeout_s=0.5)
            assert time.monotonic() - began < 1.5
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert any("5 items not written" in e for e in errors)
    finally:
        engine.dispose()


def test_naive_datetimes_are_rejected(engine: Engine, writer: EventWriter) -> None:
    naive = make_event(start_time=datetime(2025, 3, 1, 12, 0))
    with pytest.raises(ValueError, match="naive"):
        record(writer, AlertType.START, naive)
    with pytest.raises(ValueError, match="naive"):
        list_events(engine, since=datetime(2025, 3, 1))
    row = EventRow(
        id="x", camera="c", kind="presence", label="person", track_id=1,
        start_time=datetime(2025, 3, 1), score=0.5, box=[0, 0, 1, 1], evidence={},
    )  # fmt: skip
    with Session(engine) as session, pytest.raises(StatementError, match="naive"):
        session.add(row)
        session.commit()


def test_flush_pending_and_stop(engine: Engine) -> None:
    writer = EventWriter(engine)
    assert writer.flush(timeout_s=0.01)  # nothing enqueued
    for _ in range(300):  # more than one batch
        record(writer, AlertType.START, make_event())
    assert writer.pending() == 300
    assert not writer.flush(timeout_s=0.05)  # not started
    writer.start()
    writer.stop(timeout_s=5.0)  # writes what was queued
    assert writer.pending() == 0
    assert event_count(engine) == 300 and count_unsent(engine) == 300
    with pytest.raises(RuntimeError, match="stopped"):
        record(writer, AlertType.START, make_event())
    writer.stop(timeout_s=1.0)  # idempotent


def test_record_blocks_while_the_queue_is_full(engine: Engine) -> None:
    writer = EventWriter(engine, queue_size=2)
    producer = threading.Thread(
        target=lambda: [record(writer, AlertType.START, make_event()) for _ in range(3)]
    )
    producer.start()
    producer.join(timeout=0.3)
    assert producer.is_alive() and writer.pending() == 2
    writer.start()
    producer.join(timeout=5.0)
    assert not producer.is_alive()
    writer.stop(timeout_s=5.0)
    assert event_count(engine) == 3


def test_on_commit_runs_on_the_writer_thread_after_outbox_commits(engine: Engine) -> None:
    calls: list[tuple[str, int]] = []
    writer = EventWriter(
        engine,
        on_commit=lambda: calls.append((threading.current_thread().name, count_unsent(engine))),
    )
    writer.start()
    try:
        record(writer, AlertType.START, make_event())
        assert writer.flush(timeout_s=5.0)
        assert calls == [("store-writer", 1)]  # the row is visible when the callback runs
        writer.mark_sent([1])
        assert writer.flush(timeout_s=5.0)
        assert len(calls) == 1  # sent-marks add no outbox rows
    finally:
        writer.stop(timeout_s=5.0)


def test_concurrent_producers_keep_their_own_order(engine: Engine, writer: EventWriter) -> None:
    def produce(camera: str) -> None:
        for i in range(50):
            record(writer, AlertType.START, make_event(camera=camera, track_id=i))

    threads = [threading.Thread(target=produce, args=(f"cam{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert writer.flush(timeout_s=10.0)
    by_camera: dict[str, list[int]] = {}
    for message in pending_messages(engine, after_id=0, limit=1000):
        stored = get_event(engine, json.loads(message.payload)["id"])
        assert stored is not None
        by_camera.setdefault(message.camera, []).append(stored.track_id)
    assert by_camera == {f"cam{n}": list(range(50)) for n in range(4)}


def test_constructor_rejects_bad_parameters(engine: Engine) -> None:
    with pytest.raises(ValueError, match="queue_size"):
        EventWriter(engine, queue_size=0)
    with pytest.raises(ValueError, match="retry_initial_s"):
        EventWriter(engine, retry_initial_s=5.0, retry_max_s=1.0)


# --- queries ----------------------------------------------------------------------------------


def test_list_events_filters_and_orders(engine: Engine, writer: EventWriter) -> None:
    a = make_event(camera="front", start_time=T0)
    b = make_event(
        camera="front", kind=EventKind.INTRUSION, zone="gate", start_time=T0 + timedelta(minutes=1)
    )
    c = make_event(camera="back", start_time=T0 + timedelta(minutes=2))
    for event in (a, b, c):
        record(writer, AlertType.START, event)
    assert writer.flush(timeout_s=5.0)

    def ids(**kwargs: object) -> list[str]:
        return [e.id for e in list_events(engine, **kwargs)]  # type: ignore[arg-type]

    assert ids() == [c.id, b.id, a.id]
    assert ids(camera="front") == [b.id, a.id]
    assert ids(kind="intrusion") == [b.id]
    assert ids(since=T0 + timedelta(minutes=1)) == [c.id, b.id]
    assert ids(until=T0 + timedelta(minutes=1)) == [a.id]
    # Same instant in another zone: comparisons are on UTC.
    plus_one = timezone(timedelta(hours=1))
    assert ids(since=(T0 + timedelta(minutes=1)).astimezone(plus_one), camera="front") == [b.id]
    assert ids(limit=2) == [c.id, b.id]
    assert list_events(engine, kind="intrusion")[0] == b
    assert get_event(engine, "no-such-id") is None


def test_record_with_a_timeout_gives_up_on_a_full_queue(db_url: str) -> None:
    engine = open_with_short_lock_wait(db_url)
    writer = EventWriter(engine, queue_size=10, **FAST_RETRY)
    writer.start()
    try:
        with write_lock(db_url):
            record(writer, AlertType.START, make_event(track_id=0))
            time.sleep(0.5)  # the writer holds that one and retries it against the lock
            for i in range(1, 11):
                record(writer, AlertType.START, make_event(track_id=i))
            assert writer.backlogged()
            event = make_event(track_id=999)
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                writer.record(
                    Alert(AlertType.START, event), make_message(AlertType.START, event),
                    timeout_s=0.3,
                )
            assert 0.25 <= time.monotonic() - started < 3
        assert writer.flush(timeout_s=10.0)
        assert get_event(engine, event.id) is None  # refused, not half-written
        assert not writer.backlogged()
    finally:
        writer.stop(timeout_s=5.0)
        engine.dispose()


def test_event_state_round_trips_and_unannounced_events_get_no_outbox_row(
    engine: Engine, writer: EventWriter
) -> None:
    quiet = make_event(stationary=True, announced=False, seq=1, seen_at=T0 + timedelta(seconds=9),
                       seen_score=0.55, zones=("lawn",))
    loud = make_event(kind=EventKind.INTRUSION, zone="lawn", zones=("lawn",), dwell_s=4.5, seq=3,
                      end_time=T0 + timedelta(seconds=6), end_reason=EndReason.LEFT_ZONE)
    writer.record(Alert(AlertType.START, quiet), None)
    record(writer, AlertType.END, loud)
    assert writer.flush(timeout_s=5.0)
    assert get_event(engine, quiet.id) == quiet
    assert get_event(engine, loud.id) == loud
    assert [r.event_id for r in outbox_rows(engine)] == [loud.id]
    assert [e.id for e in open_events(engine, ["front"])] == [quiet.id]
    assert open_events(engine, ["elsewhere"]) == []


def test_open_events_on_an_unreachable_database_is_a_store_error() -> None:
    dead = create_engine("postgresql+psycopg://nobody:secret@127.0.0.1:1/none")
    with pytest.raises(StoreError) as info:
        open_events(dead, ["front"])
    assert "secret" not in str(info.value) and "\n" not in str(info.value)


def test_reviews_are_stored_and_published_through_the_outbox_in_order(
    engine: Engine, writer: EventWriter
) -> None:
    person = make_event()
    review = Review(id=str(uuid.uuid4()), camera="front", start_time=T0, end_time=None,
                    severity=Severity.DETECTION, event_ids=(person.id,), kinds=("presence",),
                    labels=("person",), zones=(), seq=1)
    outbox = OutboxMessage(None, "front", "monitor/reviews", '{"type":"new"}')
    record(writer, AlertType.START, person)
    writer.record_review(ReviewMessage(ReviewChange.NEW, review, person.id), outbox)
    done = replace(review, end_time=T0 + timedelta(seconds=9), severity=Severity.ALERT, seq=2)
    writer.record_review(ReviewMessage(ReviewChange.END, done, person.id), outbox)
    assert writer.flush(timeout_s=5.0)
    assert get_review(engine, review.id) == done
    assert list_reviews(engine, severity="alert") == [done]
    assert list_reviews(engine, camera="elsewhere") == []
    assert open_reviews(engine, ["front"]) == []
    rows = outbox_rows(engine)
    assert [r.topic for r in rows] == ["monitor/events/front/presence", "monitor/reviews",
                                       "monitor/reviews"]
    assert {r.event_id for r in rows} == {person.id}


def test_0005_relaxes_track_id_with_alerts_referencing_events(
    engine: Engine, writer: EventWriter
) -> None:
    """SQLite copies the events table to relax NOT NULL; the outbox rows pointing at it must
    survive, enforcement must be back on after, and a downgrade keeps zone-level events."""
    migrate(engine, "0004", down=True)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO events (id, camera, kind, label, track_id, start_time, end_time, score,"
            " box, zone, snapshot, evidence, created_at, updated_at) VALUES ('old', 'cam1',"
            " 'presence', 'person', 3, '2026-01-01 12:00:00', NULL, 0.8,"
            " '[1, 2, 3, 4]', NULL, NULL, '{}', '2026-01-01 12:00:00', '2026-01-01 12:00:09')"
        ))
        conn.execute(text(
            "INSERT INTO outbox (event_id, camera, topic, payload, created_at) VALUES"
            " ('old', 'cam1', 'monitor/events/cam1/presence', '{}', '2026-01-01 12:00:09')"
        ))
    migrate(engine, "head")
    crowd = make_event(id="crowd", kind=EventKind.CROWD, track_id=None, zone="yard")
    record(writer, AlertType.START, crowd)
    assert writer.flush(timeout_s=10.0)
    stored = get_event(engine, "crowd")
    assert stored is not None and stored.track_id is None
    assert [row.event_id for row in outbox_rows(engine)] == ["old", "crowd"]
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
    migrate(engine, "0004", down=True)
    with engine.connect() as conn:
        tracks = dict(conn.execute(text("SELECT id, track_id FROM events")).all())
        # (raw SQL: the model has columns of later revisions)
        outbox = list(conn.execute(text("SELECT event_id FROM outbox ORDER BY id")).scalars())
    assert tracks == {"old": 3}  # the older release cannot read a crowd: it went, with its alert
    assert outbox == ["old"]
    migrate(engine, "head")


def test_a_failed_sqlite_migration_changes_nothing(sqlite_url: str) -> None:
    """A reference left broken (written with enforcement off) stops the upgrade before its
    commit: the database stays at 0004, no half-copied table is left, and once repaired the
    upgrade goes through."""
    engine = open_database(sqlite_url)
    try:
        migrate(engine, "0004", down=True)
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.execute(text(
                "INSERT INTO outbox (event_id, camera, topic, payload, created_at) VALUES"
                " ('nowhere', 'cam1', 't', '{}', '2026-01-01 12:00:09')"
            ))
            conn.commit()
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            conn.commit()
        with pytest.raises(StoreError, match="broken reference"):
            migrate(engine, "head")
        tables = set(inspect(engine).get_table_names())
        assert not {t for t in tables if t.startswith("_alembic_tmp")}
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).all() == [("0004",)]
            conn.execute(text("DELETE FROM outbox WHERE event_id = 'nowhere'"))
            conn.commit()
        migrate(engine, "head")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).all() == [
                (HEAD_REVISION,)
            ]
    finally:
        engine.dispose()



def test_a_clip_path_is_recorded_with_its_message_and_kept_by_later_alerts(
    engine: Engine, writer: EventWriter
) -> None:
    event = make_event()
    record(writer, AlertType.START, event)
    clip_message = OutboxMessage(None, "front", "monitor/clips/front", '{"type":"clip"}')
    writer.record_clip(event.id, "/clips/front/2025-03-01/x.mp4", clip_message)
    # An alert after the clip (a long event's clip is written while it is open) keeps the path:
    # the pipeline's events never carry it.
    record(writer, AlertType.END, replace(event, end_time=T0 + timedelta(seconds=3), seq=2))
    writer.record_clip("no-such-event", "/clips/front/2025-03-01/y.mp4", clip_message)
    assert writer.flush(5.0)
    stored = get_event(engine, event.id)
    assert stored is not None and stored.clip == "/clips/front/2025-03-01/x.mp4"
    assert [row.topic for row in outbox_rows(engine)] == [
        "monitor/events/front/presence", "monitor/clips/front", "monitor/events/front/presence"]
    with engine.connect() as conn:
        clip = conn.execute(text("SELECT clip FROM events_view WHERE id = :id"),
                            {"id": event.id}).scalar_one()
    assert clip == "/clips/front/2025-03-01/x.mp4"


def test_0010_adds_the_clip_column_and_takes_it_back(engine: Engine) -> None:
    migrate(engine, "0009", down=True)
    assert "clip" not in {c["name"] for c in inspect(engine).get_columns("events")}
    with engine.connect() as conn:  # 0009's view still reads
        conn.execute(text("SELECT snapshot FROM events_view")).all()
    migrate(engine, "head")
    assert "clip" in {c["name"] for c in inspect(engine).get_columns("events")}
