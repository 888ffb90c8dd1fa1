"""The retention cleaner: a thread that deletes what ``[retention]`` says is old enough.

Every change to the database is a bounded step run by the writer thread
(``monitor.store.retention``), one at a time, so alerts go on being written between them.
A snapshot file is deleted only after the step that left no stored event pointing to it has
committed: a crash in between leaves a stray file (the next run deletes it), never an event
whose snapshot is missing. The cleaner itself only waits and deletes files.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from monitor.config import RetentionConfig
from monitor.errors import first_line
from monitor.store.db import masked_url
from monitor.store.models import utcnow
from monitor.store.retention import (
    ExpireEvents, ExpireReviews, ExpireSnapshots, ForgetSnapshots, IncrementalVacuum,
    RetentionStep, StepResult, UnreferencedClips, UnreferencedSnapshots, vacuum_state,
)
from monitor.store.snapshot_files import CLIP_SUFFIX, FileDeleter, SnapshotFile, scan
from monitor.store.writer import EventWriter

log = logging.getLogger(__name__)

_POLL_S = 0.1  # how often a wait for the writer looks at the stop flag


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """What one run deleted."""

    events: int = 0
    outbox_rows: int = 0
    reviews: int = 0
    snapshots: int = 0
    clips: int = 0
    temp_files: int = 0
    file_bytes: int = 0  # of the snapshots, clips and temporary files
    vacuum_bytes: int = 0  # SQLite file pages given back

    def deleted_anything(self) -> bool:
        # Not the vacuum alone: giving back the pages of a migration or an outbox prune is not
        # news worth a line every hour.
        return any((self.events, self.outbox_rows, self.reviews, self.snapshots, self.clips,
                    self.temp_files))


class _Stopped(Exception):
    """stop() was called during a run."""


class _Tally:
    """The counts of the run in progress (a report once it ends)."""

    def __init__(self) -> None:
        self.counts = {field.name: 0 for field in dataclasses.fields(RetentionReport)}

    def add(self, **counts: int) -> None:
        for name, count in counts.items():
            self.counts[name] += count

    def report(self) -> RetentionReport:
        return RetentionReport(**self.counts)


class RetentionCleaner:
    """Runs retention every ``interval_s`` in a thread named ``monitor-retention``.

    Args:
        config: the ``[retention]`` section.
        writer: the started writer thread; every database change goes through it.
        engine: for reading SQLite's vacuum state (never written here).
        snapshot_root: the folder ``SnapshotWriter`` writes to, spelt the same way.
        clip_root: the clips folder (``Config.clips_dir()``); None: clip files are left alone.
            Clips go with their events (``events_days``); a clip no event points to goes once
            older than ``stray_file_age_s`` (its path is recorded seconds after it is written).
        now: the clock (UTC-aware), injectable for tests.

    Example:
        >>> cleaner = RetentionCleaner(config.retention, writer, engine, state_dir / "snapshots")
        >>> cleaner.start()
        >>> cleaner.stop(timeout_s=1.0)
    """

    def __init__(
        self, config: RetentionConfig, writer: EventWriter, engine: Engine, snapshot_root: Path,
        *, clip_root: Path | None = None, now: Callable[[], datetime] = utcnow,
    ) -> None:
        self._config = config
        self._writer = writer
        self._engine = engine
        self._root = snapshot_root
        self._clip_root = clip_root
        self._now = now
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._told_no_auto_vacuum = False
        self._over_cap = False  # the cap could not be met last run (warned once per streak)

    def start(self) -> None:
        """Start the thread; its first run is ``first_run_delay_s`` from now."""
        if self._thread is not None:
            raise RuntimeError("RetentionCleaner.start() called twice")
        # daemon: a run waiting on a database that is away must not keep the process alive.
        self._thread = threading.Thread(target=self._run, name="monitor-retention", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float) -> bool:
        """Stop the thread (a run in progress ends after its current step).

        Returns:
            True if the thread ended within ``timeout_s`` seconds.
        """
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.warning("retention cleaner still busy after %.1f s; leaving it", timeout_s)
            return False
        return True

    def _run(self) -> None:
        failures = 0
        delay_s = self._config.first_run_delay_s
        while not self._stop.wait(delay_s):
            try:
                self.run_once()
            except Exception as exc:  # the database is away, a step failed...: try again later
                failures += 1
                # One warning per failure streak: a database away for a day is one problem.
                (log.warning if failures == 1 else log.debug)(
                    "retention run failed, retrying every %g s: %s",
                    self._config.retry_s, first_line(exc),
                )
                delay_s = self._config.retry_s
                continue
            if failures:
                log.info("retention runs again after %d failed attempt(s)", failures)
                failures = 0
            delay_s = self._config.interval_s

    def run_once(self) -> RetentionReport:
        """One full run: events, reviews, snapshots by age, stray files, the byte cap, vacuum.

        Returns:
            What was deleted (also logged, in one line, when anything was). A stop() during the
            run ends it after the current step, with what was done so far.

        Raises:
            Exception: a step failed (the database refused, the writer is stopped...).
        """
        tally = _Tally()
        deleter = FileDeleter(self._root)
        clips = None if self._clip_root is None else FileDeleter(self._clip_root, CLIP_SUFFIX)
        try:
            self._expire(tally, deleter, clips, self._now())
            self._sweep(tally, deleter, self._now())
            if clips is not None:
                self._sweep_clips(tally, clips, self._now())
            self._vacuum(tally)
        except _Stopped:
            pass
        finally:
            deleter.report_failures()
            if clips is not None:
                clips.report_failures()
        report = tally.report()
        if report.deleted_anything():
            log.info(
                "retention: deleted %d event(s) with %d outbox row(s), %d review(s), "
                "%d snapshot(s), %d clip(s) and %d temporary file(s) (%s); vacuum gave back %s",
                report.events, report.outbox_rows, report.reviews, report.snapshots,
                report.clips, report.temp_files, _mib(report.file_bytes),
                _mib(report.vacuum_bytes),
            )
        return report

    def _expire(
        self, tally: _Tally, deleter: FileDeleter, clips: FileDeleter | None, now: datetime
    ) -> None:
        config = self._config
        if config.events_days:
            cutoff = now - timedelta(days=config.events_days)
            step: RetentionStep = ExpireEvents(cutoff, config.batch_rows, config.keep_labelled)
            for result in self._repeat(lambda _: step):
                tally.add(events=result.rows, outbox_rows=result.outbox_rows)
                self._delete(result.paths, tally, deleter)
                if clips is not None:
                    self._delete_clips(result.clip_paths, tally, clips)
            for result in self._repeat(
                lambda last: ExpireReviews(
                    cutoff, config.batch_rows, None if last is None else last.after
                )
            ):
                tally.add(reviews=result.rows)
        if config.snapshots_days:
            cutoff = now - timedelta(days=config.snapshots_days)
            prefix = os.path.join(self._root, "")  # with the separator, as path_for spells it
            by_age = ExpireSnapshots(cutoff, prefix, config.batch_rows)
            for result in self._repeat(lambda _: by_age):
                self._delete(result.paths, tally, deleter)

    def _sweep(self, tally: _Tally, deleter: FileDeleter, now: datetime) -> None:
        """Stray temporary files, files no event points to, and the byte cap."""
        config = self._config
        now_s = now.timestamp()
        folder = scan(self._root)
        for temp in folder.temporary:
            if now_s - temp.mtime_s > config.stray_file_age_s:
                if (freed := deleter.delete(temp.path)) is not None:
                    tally.add(temp_files=1, file_bytes=freed)
        files = {f.path: f for f in folder.files}
        orphan_days = config.snapshots_days or config.events_days
        if orphan_days:
            old = [f.path for f in folder.files if now_s - f.mtime_s > orphan_days * 86_400]
            for chunk in _chunks(old, config.batch_rows):
                result = self._apply(UnreferencedSnapshots(tuple(chunk)))
                self._delete(result.paths, tally, deleter, files)
        if config.snapshots_max_bytes:
            self._cap(list(files.values()), tally, deleter, now_s)

    def _sweep_clips(self, tally: _Tally, clips: FileDeleter, now: datetime) -> None:
        """Stray temporary files of the clip folder, and clips no event points to."""
        assert self._clip_root is not None
        config = self._config
        now_s = now.timestamp()
        folder = scan(self._clip_root, CLIP_SUFFIX)
        for temp in folder.temporary:
            if now_s - temp.mtime_s > config.stray_file_age_s:
                if (freed := clips.delete(temp.path)) is not None:
                    tally.add(temp_files=1, file_bytes=freed)
        # A younger clip may be waiting in the store queue for its path to be recorded.
        old = [f.path for f in folder.files if now_s - f.mtime_s > config.stray_file_age_s]
        for chunk in _chunks(old, config.batch_rows):
            result = self._apply(UnreferencedClips(tuple(chunk)))
            self._delete_clips(result.clip_paths, tally, clips)

    def _delete_clips(self, paths: Sequence[str], tally: _Tally, clips: FileDeleter) -> None:
        for path in paths:
            if (freed := clips.delete(path)) is not None:
                tally.add(clips=1, file_bytes=freed)

    def _cap(
        self, files: list[SnapshotFile], tally: _Tally, deleter: FileDeleter, now_s: float
    ) -> None:
        """Oldest first, until the folder holds at most ``snapshots_max_bytes``."""
        config = self._config
        total = sum(f.size_bytes for f in files)
        # Younger files may belong to an event still on its way to the database.
        candidates = [f for f in files if now_s - f.mtime_s > config.stray_file_age_s]
        index = 0
        while total > config.snapshots_max_bytes and index < len(candidates):
            chunk: list[SnapshotFile] = []
            excess = total - config.snapshots_max_bytes
            while index < len(candidates) and len(chunk) < config.batch_rows and excess > 0:
                chunk.append(candidates[index])
                excess -= candidates[index].size_bytes
                index += 1
            result = self._apply(ForgetSnapshots(tuple(f.path for f in chunk)))
            sizes = {f.path: f.size_bytes for f in chunk}
            for path in result.paths:
                if (freed := deleter.delete(path)) is not None:
                    tally.add(snapshots=1, file_bytes=freed)
                    total -= sizes[path]
        over = total > config.snapshots_max_bytes
        if over and not self._over_cap:
            log.warning(
                "snapshot folder %s holds %s, over snapshots_max_bytes (%s): the rest are newer "
                "than %g s or belong to open events", self._root, _mib(total),
                _mib(config.snapshots_max_bytes), config.stray_file_age_s,
            )
        self._over_cap = over

    def _vacuum(self, tally: _Tally) -> None:
        if not self._config.vacuum:
            return
        state = vacuum_state(self._engine)
        if state is None or state.mode == "full":
            return  # PostgreSQL's autovacuum, or SQLite shrinking the file on every commit
        if state.mode == "none":
            if not self._told_no_auto_vacuum:
                self._told_no_auto_vacuum = True
                log.info(
                    "%s was created without auto_vacuum: deleted rows' space is reused but the "
                    "file never shrinks. To convert it once, stop the daemon and run: sqlite3 "
                    "%s 'PRAGMA auto_vacuum=INCREMENTAL; VACUUM;' (rewrites the file; needs as "
                    "much free disk space as it takes)",
                    masked_url(self._engine), self._engine.url.database,
                )
            return
        if state.free_pages == 0:
            return
        step = IncrementalVacuum(self._config.vacuum_step_pages)
        for result in self._repeat(lambda _: step):
            tally.add(vacuum_bytes=result.rows * state.page_size)

    def _delete(
        self, paths: Sequence[str], tally: _Tally, deleter: FileDeleter,
        files: dict[str, SnapshotFile] | None = None,
    ) -> None:
        for path in paths:
            if (freed := deleter.delete(path)) is not None:
                tally.add(snapshots=1, file_bytes=freed)
            if files is not None:
                files.pop(path, None)

    def _repeat(
        self, make: Callable[[StepResult | None], RetentionStep]
    ) -> Iterator[StepResult]:
        """Apply the step made from the previous result until one says there is no more."""
        last: StepResult | None = None
        while True:
            last = self._apply(make(last))
            yield last
            if not last.more:
                return

    def _apply(self, step: RetentionStep) -> StepResult:
        """Queue the step on the writer and wait for it (however long the database takes)."""
        if self._stop.is_set():
            raise _Stopped
        future = self._writer.apply_retention(step)
        while True:
            try:
                return future.result(timeout=_POLL_S)
            except FutureTimeout:
                if self._stop.is_set():
                    raise _Stopped from None


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _mib(count: int) -> str:
    return f"{count / 2**20:.1f} MiB" if count >= 2**20 else f"{count / 1024:.0f} KiB"
