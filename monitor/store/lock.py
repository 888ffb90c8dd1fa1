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
import os
from pathlib import Path

from sqlalchemy import Connection, Engine, text

from monitor.store.db import StoreError, masked_url


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
        path = Path(f"{database}.{self._instance}.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True
