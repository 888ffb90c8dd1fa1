"""Opening the database: the engine, SQLite's pragmas, and migration to the newest schema.

``open_database`` is the daemon's (creates and migrates); ``open_database_readonly`` is the query
commands' (never creates, migrates or writes).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from monitor.errors import first_line
from monitor.redact import redact_url

_PACKAGE_DIR = Path(__file__).resolve().parent
# A PostgreSQL host that drops packets would otherwise hold start-up for the OS TCP timeout.
_PG_CONNECT_TIMEOUT_S = 10


class StoreError(Exception):
    """The database cannot be opened or migrated.

    The message is one line that names the database (password masked) and the reason.
    """


# SQLite before 3.32 allows 999 bound parameters per statement (PostgreSQL 65 535): an IN list
# of ids is cut into pieces of this size.
IN_LIST_MAX = 500
# PostgreSQL advisory lock held while one daemon migrates (a constant every release shares;
# the instance locks of monitor.store.lock are keyed by digests, so they cannot collide).
MIGRATION_LOCK_KEY = 0x6D6F6E69746F72  # "monitor"
_T = TypeVar("_T")


def in_chunks(items: Sequence[_T]) -> list[Sequence[_T]]:
    """``items`` in pieces of at most ``IN_LIST_MAX``, one statement each."""
    return [items[i:i + IN_LIST_MAX] for i in range(0, len(items), IN_LIST_MAX)]


def masked_url(engine_or_url: Engine | URL) -> str:
    """The database URL with any password replaced by ``***``, for logs and errors."""
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else engine_or_url
    # SQLAlchemy hides only the user-info password; a "?password=" query parameter is the
    # redactor's (libpq takes one).
    return redact_url(url.render_as_string(hide_password=True))


def alembic_config(connection: Connection) -> Config:
    """An alembic configuration that migrates over ``connection``.

    Args:
        connection: an open connection; the caller owns (and commits) its transaction.

    Returns:
        The configuration to pass to ``alembic.command`` functions.
    """
    config = Config(str(_PACKAGE_DIR / "alembic.ini"))
    # configparser would read '%' as interpolation.
    config.set_main_option("script_location", str(_PACKAGE_DIR / "migrations").replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def open_database(
    url: str, *, busy_timeout_ms: int = 5000,
    before_migrating: Callable[[Engine], None] | None = None,
) -> Engine:
    """Create the engine and bring the schema to the newest revision.

    Args:
        url: SQLAlchemy URL, e.g. ``sqlite:///var/monitor.db`` or
            ``postgresql+psycopg://monitor@db.example/monitor``.
        busy_timeout_ms: how long a SQLite connection waits for a lock before failing.
        before_migrating: called with the engine before the schema is touched (the daemon takes
            its instance lock there, so a refused second daemon has changed nothing).

    Returns:
        The engine; the caller disposes it.

    Raises:
        StoreError: the URL is invalid, or the database cannot be reached or migrated, or
            ``before_migrating`` raised it.
        ValueError: ``busy_timeout_ms`` is negative.

    Example:
        >>> engine = open_database("sqlite:////var/lib/monitor/monitor.db")
    """
    if busy_timeout_ms < 0:
        raise ValueError(f"busy_timeout_ms must be >= 0, got {busy_timeout_ms}")
    try:
        parsed = make_url(url)
    except ArgumentError:
        # SQLAlchemy's message repeats the URL, password included.
        raise StoreError(
            "invalid database URL (expected e.g. sqlite:///path/monitor.db or "
            "postgresql+psycopg://user@host/db)"
        ) from None
    name = masked_url(parsed)
    try:
        engine = _create_engine(parsed, busy_timeout_ms)
    except Exception as exc:  # bad driver name, unwritable directory...
        raise StoreError(f"cannot open database {name}: {first_line(exc)}") from exc
    if before_migrating is not None:
        try:
            before_migrating(engine)
        except StoreError:
            engine.dispose()
            raise
        except Exception as exc:  # connection refused, auth...
            engine.dispose()
            raise StoreError(f"cannot open database {name}: {first_line(exc)}") from exc
    try:
        migrate(engine, "head")
    except Exception as exc:  # connection refused, auth, locked, failed migration...
        engine.dispose()
        raise StoreError(f"cannot open database {name}: {first_line(exc)}") from exc
    return engine


def migrate(engine: Engine, revision: str, *, down: bool = False) -> None:
    """Upgrade (or with ``down``, downgrade) the schema to ``revision`` in one transaction.

    SQLite changes a column by copying its table; a copy of a table that other tables' foreign
    keys point at can only be dropped with foreign-key enforcement off, which SQLite allows only
    outside a transaction. So on SQLite enforcement is off for the migration, every reference is
    checked before it commits, and enforcement is back on before the connection returns to the pool.

    Raises:
        StoreError: the migrated SQLite database has rows whose references point nowhere.
    """
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                if sqlite:
                    # pysqlite opens a transaction only before DML, so a failed migration would
                    # keep the DDL it ran (a half-copied table); open it explicitly. IMMEDIATE:
                    # the write lock now, so a daemon starting at the same moment waits
                    # (busy_timeout) instead of failing at its first DDL with "locked".
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                else:
                    # Daemons started together on a new database would each create the
                    # tables; one at a time, the later ones find the schema at head.
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                       {"key": MIGRATION_LOCK_KEY})
                run = command.downgrade if down else command.upgrade
                run(alembic_config(connection), revision)
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        table, rowid, parent, _ = broken[0]
                        raise StoreError(
                            f"migration to {revision} left {len(broken)} broken reference(s), "
                            f"e.g. {table} row {rowid} -> {parent}; nothing was changed"
                        )
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


def _create_engine(url: URL, busy_timeout_ms: int) -> Engine:
    if url.get_backend_name() != "sqlite":
        connect_args: dict[str, Any] = {}
        if url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
            connect_args["connect_timeout"] = _PG_CONNECT_TIMEOUT_S
        # pre_ping: a server restart otherwise surfaces as an error on the next pooled checkout.
        return create_engine(url, pool_pre_ping=True, connect_args=connect_args)

    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        # Per connection, because these pragmas (except journal_mode) are not stored in the file.
        cursor = dbapi_connection.cursor()
        try:
            # Retention deletes rows daily; INCREMENTAL lets it give the pages back to the disk.
            # Only a file without tables takes it (SQLite fixes the mode with the first table,
            # and before journal_mode, which writes the header): an existing file keeps its own,
            # and the retention cleaner says how to convert one that has none.
            if cursor.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is None:
                cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
            # WAL: readers (the publisher, queries) never block the single writer.
            cursor.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable against process crashes in WAL mode; FULL adds an fsync per commit.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        finally:
            cursor.close()

    return engine


def open_database_readonly(url: str, *, busy_timeout_ms: int = 5000) -> Engine:
    """Open an existing database for reading only: never create, migrate or write it.

    A SQLite file is opened with ``mode=ro`` (and ``query_only``); every PostgreSQL session is
    ``READ ONLY``. The schema must be the revision this release writes: an older database lacks
    columns the queries read, and a newer one may mean something else by them.

    Args:
        url: SQLAlchemy URL of a SQLite file or a PostgreSQL database.
        busy_timeout_ms: how long a SQLite connection waits for the writer's lock.

    Returns:
        The engine; the caller disposes it.

    Raises:
        StoreError: the URL is invalid or of another backend, the SQLite file does not exist,
            the database cannot be reached, is not a monitor database, or its schema is older
            or newer than this release's.
        ValueError: ``busy_timeout_ms`` is negative.
    """
    if busy_timeout_ms < 0:
        raise ValueError(f"busy_timeout_ms must be >= 0, got {busy_timeout_ms}")
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(
            "invalid database URL (expected e.g. sqlite:///path/monitor.db or "
            "postgresql+psycopg://user@host/db)"
        ) from None
    name = masked_url(parsed)
    try:
        engine = _create_readonly_engine(parsed, busy_timeout_ms)
    except StoreError:
        raise
    except Exception as exc:  # bad driver name...
        raise StoreError(f"cannot open database {name}: {first_line(exc)}") from exc
    try:
        _require_head_revision(engine, name)
    except StoreError:
        engine.dispose()
        raise
    except Exception as exc:  # connection refused, auth, not a database file...
        engine.dispose()
        raise StoreError(f"cannot open database {name}: {first_line(exc)}") from exc
    return engine


def _create_readonly_engine(url: URL, busy_timeout_ms: int) -> Engine:
    backend = url.get_backend_name()
    if backend == "postgresql":
        engine = _create_engine(url, busy_timeout_ms)

        @event.listens_for(engine, "connect")
        def _read_only_session(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            finally:
                cursor.close()
            dbapi_connection.commit()  # the driver opened a transaction for the SET

        return engine
    if backend != "sqlite":
        raise StoreError(f"cannot open database {masked_url(url)}: only sqlite:/// and "
                         "postgresql:// databases are supported")
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        raise StoreError(f"cannot query {masked_url(url)}: expected the path of a database file, "
                         "e.g. sqlite:////var/lib/monitor/monitor.db")
    path = Path(database).expanduser()
    if not path.is_file():
        raise StoreError(f"no database at {path} (has the daemon run with this config?)")
    # A URI filename: mode=ro fails on a missing file instead of creating it. Quoted from the
    # bytes, so '?', '#' and undecodable names stay part of the path.
    uri = f"file:{quote(os.fsencode(path.resolve()))}?mode=ro"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, check_same_thread=False)

    engine = create_engine(url, creator=connect)

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        # No journal_mode here: setting it is a write. The file's own mode (WAL) applies.
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA query_only=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        finally:
            cursor.close()

    return engine


def _require_head_revision(engine: Engine, name: str) -> None:
    """Refuse a database whose schema revision is not this release's newest one."""
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
        script = ScriptDirectory.from_config(alembic_config(connection))
    head = script.get_current_head()
    if current == head:
        return
    if current is None:
        raise StoreError(f"{name} is not a monitor database (it has no schema revision)")
    if current in {revision.revision for revision in script.walk_revisions()}:
        raise StoreError(
            f"{name} has schema revision {current}, older than this release's {head}: queries "
            "never migrate; the daemon of this release migrates it when it starts"
        )
    raise StoreError(
        f"{name} has schema revision {current}, newer than this release knows (up to {head}): "
        "query it with the release that wrote it"
    )
