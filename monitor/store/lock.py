"""One running daemon per instance id and database: a second one refuses to start.

Two daemons with the same ``[daemon] instance`` on one database would each publish the other's
alerts (they share the outbox rows of that instance) and end each other's open events at
start-up. PostgreSQL: a session advisory lock keyed by the instance id, held on a connection of
its own for the daemon's life (released by the server if the process dies). SQLite: an exclusive
``flock`` on ``<database>.<instance>.lock`` beside the file (released by the kernel likewise).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
from pathlib import Path

from sqlalchemy import Connection, Engine, text

from monitor.store.db import StoreError, masked_url

log = logging.getLogger(__name__)


class InstanceLock:
    """Held from ``acquire()`` until ``release()``.

    Args:
        engine: the daemon's database.
        instance: its instance id.
    """

    def __init__(self, engine: Engine, instance: str) -> None:
        self._engine = engine
        self._instance = instance
        self._connection: Connection | None = None
        self._fd: int | None = None
        # PostgreSQL's key: 63 bits of the id's digest (advisory locks take a signed bigint).
        self._key = int.from_bytes(hashlib.sha256(instance.encode()).digest()[:8], "big") >> 1

    def acquire(self) -> None:
        """Take the lock.

        Raises:
            StoreError: another daemon of this instance holds it (one line, naming both).
        """
        taken = self._lock_sqlite() if self._engine.dialect.name == "sqlite" else self._lock_postgres()
        if not taken:
            raise StoreError(
                f"another monitor daemon with instance '{self._instance}' is running on "
                f"{masked_url(self._engine)}: give each daemon its own [daemon] instance"
            )

    def check(self) -> str | None:
        """None while the lock is (again) held; otherwise why this daemon must stop.

        The PostgreSQL lock lives as long as its session: a server restart, a failover or an
        ``idle_session_timeout`` ends it silently, and a second daemon of this instance could
        then start. So the daemon checks now and then: a dead session is replaced and the lock
        taken again; only if someone else took it meanwhile is that a problem. While the server
        is unreachable nobody can take it, and the next check tries again.
        """
        if self._engine.dialect.name == "sqlite":
            return None  # a flock lasts as long as its descriptor
        if self._connection is not None:
            try:
                self._connection.execute(text("SELECT 1"))
                self._connection.commit()
                return None
            except Exception:  # noqa: BLE001 - any failure means the session, and the lock, is gone
                self._connection.invalidate()
                self._connection = None
                log.warning("the instance lock's database session ended; taking the lock again")
        try:
            taken = self._lock_postgres()
        except Exception:  # noqa: BLE001 - unreachable: nobody else can take it either
            return None
        if taken:
            log.info("instance lock for '%s' held again", self._instance)
            return None
        return (f"another monitor daemon took instance '{self._instance}' on "
                f"{masked_url(self._engine)} while this one's database session was away")

    def release(self) -> None:
        if self._connection is not None:
            # close() alone would return the session to the pool with the lock still held.
            try:
                self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
                self._connection.commit()
                self._connection.close()
            except Exception:  # noqa: BLE001 - the server may be gone: drop the session instead
                self._connection.invalidate()
            self._connection = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _lock_postgres(self) -> bool:
        connection = self._engine.connect()
        taken = bool(connection.execute(text("SELECT pg_try_advisory_lock(:key)"),
                                        {"key": self._key}).scalar())
        connection.commit()
        if taken:
            self._connection = connection
        else:
            connection.close()
        return taken

    def _lock_sqlite(self) -> bool:
        database = self._engine.url.database
        if not database or database == ":memory:":
            return True  # a private database: nobody else can share it
        # One file however the URL spells the path (a symlink, "..").
        path = Path(f"{os.path.realpath(database)}.{self._instance}.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True
