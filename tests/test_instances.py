"""Several daemons on one PostgreSQL database and one broker: each delivers its own alerts,
exactly once and in order per camera, and has its own availability.

Two daemons are started through the daemon's own start-up code for the store and MQTT (the
detector and cameras are not needed to write alerts: each camera's alerts are emitted from a
thread of its own, as its pipeline would, concurrently on both daemons). Before outbox rows had
an owner, each publisher read every daemon's rows: alerts were published twice, and a row that
one daemon committed after another's higher id was never published at all.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import pytest
from alembic.migration import MigrationContext
from sqlalchemy import text

from monitor.config import Config, parse_config
from monitor.daemon import Daemon
from monitor.store import StoreError, count_unsent, open_database
from monitor.store.db import migrate
from monitor.store.lock import InstanceLock
from monitor.types import Alert, AlertType
from tests.fixtures.broker import Broker, Subscriber
from tests.test_store import make_event

pytestmark = pytest.mark.integration

PER_CAMERA = 150


class _NoNotifier:
    def notify(self, message: str) -> None:
        pass


def daemon_config(instance: str, url: str, port: int, state: Path) -> Config:
    return parse_config({
        "daemon": {"instance": instance, "state_dir": str(state / instance)},
        "database": {"url": url},
        "mqtt": {"port": port, "client_id": f"test-{instance}-{uuid.uuid4().hex[:6]}"},
        "cameras": [{"name": f"{instance}-cam{n}", "url": "rtsp://127.0.0.1:9/none"}
                    for n in (1, 2)],
    })


def started(config: Config) -> Daemon:
    daemon = Daemon(config, notifier=_NoNotifier())
    daemon._start_store()
    daemon._start_mqtt()
    return daemon


def test_two_daemons_share_a_database_and_deliver_each_alert_once_in_order(
    postgres_url: str, broker: Broker, tmp_path: Path
) -> None:
    daemons = [started(daemon_config(name, postgres_url, broker.port, tmp_path))
               for name in ("nvr-a", "nvr-b")]
    emitted: dict[str, list[str]] = defaultdict(list)

    def emit(daemon: Daemon, camera: str) -> None:
        for _ in range(PER_CAMERA):
            event = replace(make_event(), id=str(uuid.uuid4()), camera=camera)
            emitted[camera].append(event.id)
            assert daemon._sink is not None
            daemon._sink.emit(Alert(AlertType.START, event))

    with Subscriber(broker.port, ["monitor/events/#", "monitor/available/#"]) as sub:
        threads = [threading.Thread(target=emit, args=(d, c.name))
                   for d in daemons for c in d._config.cameras]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        total = PER_CAMERA * len(threads)
        assert sub.wait_for(lambda m: len([r for r in m if "/events/" in r.topic]) >= total, 30.0)
        for daemon in daemons:
            assert daemon._publisher is not None and daemon._publisher.flush(10.0)
        delivered: dict[str, list[str]] = defaultdict(list)
        for message in sub.messages:
            if "/events/" in message.topic:
                body = json.loads(message.payload)
                delivered[body["camera"]].append(body["id"])
        # Every alert exactly once, in the order its camera emitted them.
        assert dict(delivered) == dict(emitted)
        available = {m.topic: m.payload for m in sub.messages if "/available/" in m.topic}
        assert available == {"monitor/available/nvr-a": "online", "monitor/available/nvr-b": "online"}

        daemons[0]._shutdown()  # one daemon stops: the other stays online
        assert sub.wait_for(lambda m: any(r.topic == "monitor/available/nvr-a"
                                          and r.payload == "offline" for r in m), 5.0)
        assert [r.payload for r in sub.messages if r.topic == "monitor/available/nvr-b"] == ["online"]
        daemons[1]._shutdown()
    engine = open_database(postgres_url)
    try:
        assert count_unsent(engine) == 0
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_second_daemon_of_the_same_instance_is_refused(
    backend: str, postgres_url: str, sqlite_url: str, tmp_path: Path
) -> None:
    url = sqlite_url if backend == "sqlite" else postgres_url
    Path(tmp_path / "state").mkdir(exist_ok=True)
    engine = open_database(url)
    first, second = InstanceLock(engine, "nvr"), InstanceLock(engine, "nvr")
    other = InstanceLock(engine, "nvr-2")
    try:
        first.acquire()
        other.acquire()  # another instance on the same database is fine
        with pytest.raises(StoreError, match="another monitor daemon with instance 'nvr'"):
            second.acquire()
        first.release()
        second.acquire()  # once the first is gone, it may start
    finally:
        for lock in (first, second, other):
            lock.release()
        engine.dispose()


def test_rows_from_before_instances_are_claimed_once(db_url: str) -> None:
    from sqlalchemy import text

    from monitor.store import EventWriter, claim_unowned_messages, pending_messages
    from monitor.types import OutboxMessage

    engine = open_database(db_url)
    writer = EventWriter(engine, instance="old")
    writer.start()
    for _ in range(3):
        event = make_event()
        writer.record(Alert(AlertType.START, event), OutboxMessage(None, event.camera, "t/x", "{}"))
    writer.stop(5.0)
    with engine.begin() as connection:  # what migration 0006 leaves: no owner
        connection.execute(text("UPDATE outbox SET instance = NULL"))
    try:
        assert claim_unowned_messages(engine, "nvr-a") == 3
        assert claim_unowned_messages(engine, "nvr-b") == 0
        assert len(pending_messages(engine, after_id=0, limit=10, instance="nvr-a")) == 3
        assert pending_messages(engine, after_id=0, limit=10, instance="nvr-b") == []
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_refused_daemon_has_not_migrated_the_database(
    backend: str, postgres_url: str, sqlite_url: str
) -> None:
    # Found in review: migrations ran before the lock was taken, so a second daemon of a newer
    # release changed the schema under the running one before it was refused.
    url = sqlite_url if backend == "sqlite" else postgres_url
    engine = open_database(url)
    migrate(engine, "0005", down=True)  # as an older release left it
    running = InstanceLock(engine, "nvr")
    running.acquire()
    try:
        with pytest.raises(StoreError, match="another monitor daemon with instance 'nvr'"):
            open_database(url, before_migrating=lambda e: InstanceLock(e, "nvr").acquire())
        with engine.connect() as connection:
            assert MigrationContext.configure(connection).get_current_revision() == "0005"
    finally:
        running.release()
        engine.dispose()


def test_two_spellings_of_one_sqlite_file_share_one_lock(tmp_path: Path) -> None:
    real = tmp_path / "state"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    first = open_database(f"sqlite:///{real}/monitor.db")
    second = open_database(f"sqlite:///{tmp_path}/link/../state/./monitor.db")
    try:
        InstanceLock(first, "nvr").acquire()
        with pytest.raises(StoreError, match="instance 'nvr'"):
            InstanceLock(second, "nvr").acquire()
    finally:
        first.dispose()
        second.dispose()


def test_a_lock_lost_with_its_session_is_taken_again_or_reported(postgres_url: str) -> None:
    # PostgreSQL ends an advisory lock with its session (server restart, failover,
    # idle_session_timeout); the daemon's periodic check takes it again, or stops the daemon
    # when another one took the instance in the meantime.
    engine = open_database(postgres_url)
    lock, rival = InstanceLock(engine, "nvr"), InstanceLock(engine, "nvr")

    def end_lock_sessions() -> None:
        with engine.connect() as connection:
            connection.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks "
                "WHERE locktype = 'advisory' AND pid <> pg_backend_pid()"
            ))
            connection.commit()

    try:
        lock.acquire()
        assert lock.check() is None
        end_lock_sessions()
        assert lock.check() is None  # taken again on a new session...
        with pytest.raises(StoreError):
            rival.acquire()  # ...so nobody else gets it
        end_lock_sessions()
        rival.acquire()  # a second daemon starts while the first's session is gone
        problem = lock.check()
        assert problem is not None and "another monitor daemon took instance 'nvr'" in problem
    finally:
        lock.release()
        rival.release()
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_daemons_starting_together_on_a_new_database_migrate_it_once(
    backend: str, postgres_url: str, sqlite_url: str
) -> None:
    # Found by two sharded daemons started at once on a fresh PostgreSQL database: both ran
    # CREATE TABLE, and the second failed ("duplicate key value violates unique constraint
    # pg_type_typname_nsp_index"). Processes, as daemons are (alembic's context is per process).
    url = sqlite_url if backend == "sqlite" else postgres_url
    code = ("import sys, time; from monitor.store import open_database; "
            "time.sleep(max(0.0, float(sys.argv[2]) - time.time())); "
            "open_database(sys.argv[1]).dispose()")
    start_at = str(time.time() + 3.0)  # all four past their imports, then at once
    processes = [subprocess.Popen([sys.executable, "-c", code, url, start_at],
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
    errors = [p.communicate(timeout=60)[1] for p in processes]
    assert [p.returncode for p in processes] == [0] * 4, errors
    engine = open_database(url)
    with engine.connect() as connection:
        heads = MigrationContext.configure(connection).get_current_heads()
    engine.dispose()
    assert len(heads) == 1
