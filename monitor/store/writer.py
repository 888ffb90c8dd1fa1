"""The single writer thread: each alert's event row and outbox row in one transaction.

SQLite allows one writer at a time, so every write of the daemon goes through this thread,
outbox pruning and retention included. Callers only enqueue; the thread drains the queue in batches, one
transaction per batch (a prune gets a transaction of its own). A full queue blocks the caller
(backpressure) rather than dropping alerts.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, update
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session

from monitor.errors import first_line
from monitor.store.db import in_chunks, masked_url
from monitor.store.models import EventRow, OutboxRow, ReviewRow, require_utc, utcnow
from monitor.store.queries import delete_sent_before
from monitor.store.retention import RetentionStep, StepResult, apply_step
from monitor.types import LOCAL_INSTANCE, Alert, AlertType, OutboxMessage, Review, ReviewMessage

logger = logging.getLogger(__name__)

BATCH_MAX = 256


@dataclass(frozen=True, slots=True)
class _Record:
    seq: int
    alert: Alert
    message: OutboxMessage | None  # None: recorded, not published


@dataclass(frozen=True, slots=True)
class _ReviewRecord:
    seq: int
    message: ReviewMessage
    outbox: OutboxMessage


@dataclass(frozen=True, slots=True)
class _ClipRecord:
    """An event's clip was written: its path on the event row, and its message to publish."""

    seq: int
    event_id: str
    path: str
    message: OutboxMessage | None


@dataclass(frozen=True, slots=True)
class _MarkSent:
    seq: int
    outbox_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _MarksQueued:
    """Stands in the queue for every id mark_sent() collected until the writer takes it."""

    seq: int


@dataclass(frozen=True, slots=True)
class _Prune:
    """Delete sent outbox rows; the cutoff is read from the writer when the prune runs."""

    seq: int


@dataclass(frozen=True, slots=True)
class _Retention:
    """One retention step (``monitor.store.retention``); its outcome or error goes to ``done``."""

    seq: int
    step: RetentionStep
    done: Future[StepResult]


_Item = _Record | _ReviewRecord | _ClipRecord | _MarkSent | _MarksQueued | _Prune | _Retention


@dataclass(frozen=True, slots=True)
class WriterStats:
    """Counters since start.

    Attributes:
        queued: items waiting for the writer thread now (of ``capacity``).
        capacity: ``queue_size``.
        events_started: (camera, kind) -> START alerts recorded.
        committed: items committed (or dropped as unwritable).
    """

    queued: int
    capacity: int
    events_started: dict[tuple[str, str], int]
    committed: int


class _Aborted(Exception):
    """stop() ran out of time while a batch kept failing."""


def _is_transient(exc: BaseException) -> bool:
    # Constraint and data errors fail the same way on every retry; everything else the driver
    # reports (locked, connection lost, server restarting...) may pass.
    if isinstance(exc, (IntegrityError, DataError)):
        return False
    return isinstance(exc, (DBAPIError, PoolTimeoutError))


class EventWriter:
    """Writes alerts (event + outbox row), sent-marks and outbox prunes from one thread.

    Args:
        engine: from ``open_database``.
        queue_size: items that may wait; ``record`` blocks beyond it.
        retry_initial_s: first delay after a database fault; doubles per failed attempt.
        retry_max_s: cap of that delay.
        on_commit: called from the writer thread after each commit that added outbox rows.

    Example:
        >>> writer = EventWriter(engine, on_commit=publisher.wake)
        >>> writer.start()
        >>> writer.record(alert, message)
        >>> writer.stop(timeout_s=2.0)
    """

    def __init__(
        self,
        engine: Engine,
        *,
        queue_size: int = 10000,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 10.0,
        on_commit: Callable[[], None] | None = None,
        instance: str = LOCAL_INSTANCE,
    ) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if not 0 < retry_initial_s <= retry_max_s:
            raise ValueError(
                f"need 0 < retry_initial_s <= retry_max_s, got {retry_initial_s} and {retry_max_s}"
            )
        self._engine = engine
        self._name = masked_url(engine)
        self._capacity = queue_size
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._on_commit = on_commit
        self._instance = instance  # stamped on every outbox row: only this daemon publishes it
        # One condition guards the queue and the counters, so sequence order is queue order and
        # "closed" is checked atomically with every append.
        self._cond = threading.Condition()
        self._items: deque[_Item] = deque()
        self._enqueued = 0  # seq of the newest accepted item
        self._done = 0  # seq of the newest item committed (or dropped as unwritable)
        self._closed = False
        self._finished = False
        # Cutoff of the one prune waiting in the queue (None: no prune is queued).
        self._prune_cutoff: datetime | None = None
        self._marks_waiting: list[int] | None = None  # ids of the queued _MarksQueued
        self._events_started: Counter[tuple[str, str]] = Counter()
        self._abort = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the writer thread (named ``store-writer``)."""
        with self._cond:
            if self._thread is not None:
                raise RuntimeError("EventWriter.start() called twice")
            # daemon: a writer stuck on a dead database must not keep the process alive after
            # stop() gave up on it.
            self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    def record(
        self, alert: Alert, message: OutboxMessage | None, *, timeout_s: float | None = None
    ) -> None:
        """Queue an alert's event upsert and its outbox message; blocks while the queue is full.

        Args:
            message: what to publish, in the same transaction; None records the event only.
            timeout_s: longest wait for room in a full queue (None: as long as it takes).

        Raises:
            ValueError: a naive datetime or non-JSON evidence (it could never be written).
            RuntimeError: the writer was stopped.
            TimeoutError: the queue stayed full for ``timeout_s``; nothing was queued.
        """
        event = alert.event
        require_utc(event.start_time, f"event {event.id} start_time")
        if event.end_time is not None:
            require_utc(event.end_time, f"event {event.id} end_time")
        try:
            json.dumps(event.evidence)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"event {event.id} evidence is not JSON-serialisable: {exc}") from None
        self._put(lambda seq: _Record(seq, alert, message), timeout_s)
        if alert.type is AlertType.START:
            with self._cond:
                self._events_started[(event.camera, event.kind.value)] += 1

    def record_review(
        self, message: ReviewMessage, outbox: OutboxMessage, *, timeout_s: float | None = None
    ) -> None:
        """Queue a review's upsert and its outbox message (after the events it names, which
        were queued first); blocks while the queue is full, as ``record``.

        Raises:
            ValueError: a naive datetime.
            RuntimeError: the writer was stopped.
            TimeoutError: the queue stayed full for ``timeout_s``; nothing was queued.
        """
        review = message.review
        require_utc(review.start_time, f"review {review.id} start_time")
        if review.end_time is not None:
            require_utc(review.end_time, f"review {review.id} end_time")
        self._put(lambda seq: _ReviewRecord(seq, message, outbox), timeout_s)

    def record_clip(
        self, event_id: str, path: str, message: OutboxMessage | None, *,
        timeout_s: float | None = None,
    ) -> None:
        """Queue setting the event's clip path, with the message announcing it, in one
        transaction (after the event's alerts, queued before). An event no longer stored
        (deleted meanwhile) gets neither. Blocks while the queue is full, as ``record``.

        Raises:
            RuntimeError: the writer was stopped.
            TimeoutError: the queue stayed full for ``timeout_s``; nothing was queued.
        """
        self._put(lambda seq: _ClipRecord(seq, event_id, path, message), timeout_s)

    def mark_sent(self, outbox_ids: Sequence[int]) -> None:
        """Queue setting ``sent_at`` to now on these outbox rows (rows already sent keep theirs).

        Never blocks: the MQTT publisher calls it, and delivery must go on while the database is
        slow or away (a full queue once stalled delivery behind the writer). Ids wait in one
        queued item, beyond ``queue_size``, that every call until the writer takes it joins; a
        mark lost to a crash only means the broker gets that alert again.

        Raises:
            RuntimeError: the writer was stopped.
        """
        if not outbox_ids:
            return
        with self._cond:
            if self._closed:
                raise RuntimeError("EventWriter is stopped; nothing more can be marked")
            if self._marks_waiting is None:
                self._marks_waiting = []
                self._enqueued += 1
                self._items.append(_MarksQueued(self._enqueued))
                self._cond.notify_all()
            self._marks_waiting.extend(outbox_ids)

    def prune_sent_before(self, cutoff: datetime) -> None:
        """Queue deleting the outbox rows the broker acknowledged before ``cutoff``.

        Housekeeping, so it never blocks: it may exceed ``queue_size`` by this one item, and while
        a prune is still queued a new call only moves that prune's cutoff forward. The writer runs
        it in a transaction of its own, logs the rows deleted, and on failure logs one warning
        and drops it (the next call prunes what this one left). Unsent rows are never deleted.

        Args:
            cutoff: aware datetime; rows with ``sent_at`` before it are deleted.

        Raises:
            ValueError: ``cutoff`` is naive.
            RuntimeError: the writer was stopped.
        """
        cutoff = require_utc(cutoff, "cutoff")
        with self._cond:
            if self._closed:
                raise RuntimeError("EventWriter is stopped; nothing more can be pruned")
            if self._prune_cutoff is not None:
                self._prune_cutoff = max(self._prune_cutoff, cutoff)
                return
            self._prune_cutoff = cutoff
            self._enqueued += 1
            self._items.append(_Prune(self._enqueued))
            self._cond.notify_all()

    def apply_retention(self, step: RetentionStep) -> Future[StepResult]:
        """Queue one retention step (a bounded batch of deletions, or of vacuum).

        Housekeeping, like a prune: it never blocks and may exceed ``queue_size`` (the cleaner
        keeps at most one step queued). The writer runs it once, in a transaction of its own,
        between batches of alerts; the future gets the outcome or the error (no retry: the
        cleaner runs again later).

        Raises:
            RuntimeError: the writer was stopped.
        """
        done: Future[StepResult] = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("EventWriter is stopped; no retention step can run")
            self._enqueued += 1
            self._items.append(_Retention(self._enqueued, step, done))
            self._cond.notify_all()
        return done

    def pending(self) -> int:
        """Items accepted but not yet committed (queued or in the batch being written)."""
        with self._cond:
            return self._enqueued - self._done

    def flush(self, timeout_s: float) -> bool:
        """Wait until everything accepted before this call is committed.

        Returns:
            True if it was committed within ``timeout_s`` seconds.
        """
        with self._cond:
            target = self._enqueued
            self._cond.wait_for(lambda: self._done >= target or self._finished, timeout_s)
            return self._done >= target

    def stop(self, timeout_s: float) -> None:
        """Refuse new items, write what is queued, and end the thread.

        If the database stays unusable for ``timeout_s`` seconds the writer gives up and logs how
        many items were not written.
        """
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                self._abort.set()
        lost = self.pending()
        if lost:
            logger.error(
                "store writer stopped after %.1f s with %d items not written to %s",
                timeout_s,
                lost,
                self._name,
            )

    def stats(self) -> WriterStats:
        with self._cond:
            return WriterStats(len(self._items), self._capacity, dict(self._events_started),
                               self._done)

    def backlogged(self) -> bool:
        """True while the queue is full: the database is not keeping up (or is away)."""
        with self._cond:
            return len(self._items) >= self._capacity

    def _put(self, make: Callable[[int], _Item], timeout_s: float | None = None) -> None:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError("EventWriter is stopped; nothing more can be recorded")
                if len(self._items) < self._capacity:
                    break
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError("the store queue stayed full")
                self._cond.wait(left)
            self._enqueued += 1
            self._items.append(make(self._enqueued))
            self._cond.notify_all()

    def _take_batch(self) -> list[_Item] | None:
        with self._cond:
            while not self._items:
                if self._closed:
                    return None
                self._cond.wait()
            batch = [self._items.popleft() for _ in range(min(BATCH_MAX, len(self._items)))]
            for index, item in enumerate(batch):
                if isinstance(item, _MarksQueued):
                    batch[index] = _MarkSent(item.seq, tuple(self._marks_waiting or ()))
                    self._marks_waiting = None
            self._cond.notify_all()  # wake callers blocked on a full queue
            return batch

    def _run(self) -> None:
        try:
            while (batch := self._take_batch()) is not None:
                self._write(batch)
                with self._cond:
                    self._done = batch[-1].seq
                    self._cond.notify_all()
        except _Aborted:
            pass  # stop() logs what was left
        except Exception:
            logger.exception("store writer crashed; %d items not written", self.pending())
        finally:
            with self._cond:
                self._finished = True
                self._closed = True
                self._cond.notify_all()

    def _write(self, batch: list[_Item]) -> None:
        """Commit the batch in order; each prune splits it and runs in its own transaction."""
        run: list[_Item] = []
        for item in batch:
            if isinstance(item, _Prune | _Retention):
                if run:
                    self._write_run(run)
                    run = []
                if isinstance(item, _Retention):
                    self._retain(item)
                else:
                    self._prune()
            else:
                run.append(item)
        if run:
            self._write_run(run)

    def _write_run(self, batch: list[_Item]) -> None:
        try:
            self._commit_retrying(batch)
        except _Aborted:
            raise
        except Exception as exc:
            if len(batch) > 1:
                # One bad item must not block the others: write them one by one.
                for item in batch:
                    self._write_run([item])
                return
            log = logger.error if isinstance(exc, DBAPIError) else logger.exception
            log("dropping %s that %s refuses: %s", _describe(batch[0]), self._name, first_line(exc))
            return
        if self._on_commit is not None and any(
            isinstance(i, _Record | _ReviewRecord | _ClipRecord) for i in batch
        ):
            try:
                self._on_commit()
            except Exception:
                logger.exception("store writer: on_commit callback failed")

    def _prune(self) -> None:
        """Run the queued prune once: no retry, it is housekeeping that runs again later."""
        with self._cond:
            cutoff, self._prune_cutoff = self._prune_cutoff, None
        if cutoff is None:
            return
        try:
            deleted = delete_sent_before(self._engine, cutoff)
        except Exception as exc:  # housekeeping: whatever went wrong, the writer goes on
            logger.warning(
                "outbox pruning on %s skipped until the next run: %s",
                self._name,
                first_line(exc),
            )
            return
        if deleted:
            logger.info(
                "pruned %d outbox rows sent before %s from %s",
                deleted,
                cutoff.isoformat(timespec="seconds"),
                self._name,
            )

    def _retain(self, item: _Retention) -> None:
        if not item.done.set_running_or_notify_cancel():
            return  # the cleaner gave up on it
        try:
            result = apply_step(self._engine, item.step)
        except Exception as exc:  # housekeeping: the cleaner logs it, the writer goes on
            item.done.set_exception(exc)
        else:
            item.done.set_result(result)

    def _commit_retrying(self, batch: list[_Item]) -> None:
        delay = self._retry_initial_s
        attempts = 0
        while True:
            try:
                self._commit(batch)
            except Exception as exc:
                if not _is_transient(exc):
                    raise
                attempts += 1
                # One warning per outage (a full disk retried for an hour is one problem, not
                # hundreds of lines); the retries themselves are debug detail.
                log = logger.warning if attempts == 1 else logger.debug
                log(
                    "cannot write %d items to %s (attempt %d, retrying every %.1f s at most): %s",
                    len(batch),
                    self._name,
                    attempts,
                    self._retry_max_s,
                    first_line(exc),
                )
                if self._abort.wait(delay):
                    raise _Aborted from None
                delay = min(delay * 2, self._retry_max_s)
            else:
                if attempts:
                    logger.info(
                        "wrote %d items to %s after %d retries", len(batch), self._name, attempts
                    )
                return

    def _commit(self, batch: list[_Item]) -> None:
        with Session(self._engine) as session, session.begin():
            for item in batch:
                if isinstance(item, _Record):
                    _upsert_event(session, item.alert)
                    if item.message is not None:
                        session.add(_outbox_row(item.alert.event.id, item.message, self._instance))
                elif isinstance(item, _ReviewRecord):
                    _upsert_review(session, item.message.review)
                    session.add(_outbox_row(item.message.cause, item.outbox, self._instance))
                elif isinstance(item, _ClipRecord):
                    row = session.get(EventRow, item.event_id)
                    if row is None:
                        continue  # retention deleted it meanwhile: nothing to point at the file
                    row.clip = item.path
                    if item.message is not None:
                        session.add(_outbox_row(item.event_id, item.message, self._instance))
                    session.flush()
                elif isinstance(item, _MarkSent):
                    # In pieces: a long outage collects more marks than one statement may bind.
                    for ids in in_chunks(item.outbox_ids):
                        session.execute(
                            update(OutboxRow)
                            .where(OutboxRow.id.in_(ids), OutboxRow.sent_at.is_(None))
                            .values(sent_at=utcnow()),
                            execution_options={"synchronize_session": False},
                        )


def _outbox_row(event_id: str, message: OutboxMessage, instance: str) -> OutboxRow:
    """The row of one message; ``event_id``: the event it is about (or that changed a review)."""
    return OutboxRow(
        event_id=event_id, camera=message.camera, topic=message.topic, payload=message.payload,
        instance=instance,
    )


def _upsert_event(session: Session, alert: Alert) -> None:
    event = alert.event
    row = session.get(EventRow, event.id)
    if row is None:
        # Also the path of an update whose start was never stored (e.g. written before a wipe).
        row = EventRow(
            id=event.id,
            camera=event.camera,
            kind=event.kind.value,
            label=event.label,
            track_id=event.track_id,
            start_time=event.start_time,
            zone=event.zone,
            direction=None if event.direction is None else event.direction.value,
        )
        session.add(row)
    row.end_time = event.end_time
    row.score = event.score
    row.box = event.box.as_list()
    row.snapshot = event.snapshot
    row.evidence = dict(event.evidence)
    row.seq = event.seq
    row.seen_at = event.seen_at
    row.seen_score = event.seen_score
    row.stationary = event.stationary
    row.zones = list(event.zones)
    row.dwell_s = event.dwell_s
    row.end_reason = None if event.end_reason is None else event.end_reason.value
    row.announced = event.announced
    # Flush now: the outbox row that follows references this event (FK), and a later alert of
    # the same event in this batch must find the row through session.get.
    session.flush()


def _upsert_review(session: Session, review: Review) -> None:
    row = session.get(ReviewRow, review.id)
    if row is None:
        row = ReviewRow(id=review.id, camera=review.camera, start_time=review.start_time)
        session.add(row)
    row.start_time = review.start_time
    row.end_time = review.end_time
    row.severity = review.severity.value
    row.event_ids = list(review.event_ids)
    row.kinds = list(review.kinds)
    row.labels = list(review.labels)
    row.zones = list(review.zones)
    row.seq = review.seq
    session.flush()


def _describe(item: _Item) -> str:
    if isinstance(item, _Record):
        return f"{item.alert.type.value} alert of event {item.alert.event.id}"
    if isinstance(item, _ReviewRecord):
        return f"{item.message.type.value} of review {item.message.review.id}"
    if isinstance(item, _ClipRecord):
        return f"clip of event {item.event_id}"
    if isinstance(item, _MarkSent):
        return f"sent-mark of outbox ids {list(item.outbox_ids)}"
    return "outbox prune"
