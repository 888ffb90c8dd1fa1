"""The snapshot and clip folders as retention sees them: which files there are, and deleting
them safely.

Only files of the folder's kind (``*.jpg`` snapshots, ``*.mp4`` clips) and ``*.tmp`` leftovers
of an interrupted write are ever touched, only regular files (never a symlink's target), and
only inside the folder: a path stored by another daemon sharing the database, or one an operator
edited, is never deleted here.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SNAPSHOT_SUFFIX = ".jpg"
CLIP_SUFFIX = ".mp4"
TEMP_SUFFIX = ".tmp"


@dataclass(frozen=True, slots=True)
class SnapshotFile:
    """One file of the folder.

    Attributes:
        path: as ``SnapshotWriter.path_for`` spells it (the root joined with the relative path),
            so it compares equal to the path stored with the event.
        size_bytes: its size.
        mtime_s: modification time, seconds since the epoch (the end of its write).
    """

    path: str
    size_bytes: int
    mtime_s: float


@dataclass(frozen=True, slots=True)
class FolderScan:
    """The folder's files of its kind (oldest first) and temporary files."""

    files: tuple[SnapshotFile, ...]
    temporary: tuple[SnapshotFile, ...]


def scan(root: Path, suffix: str = SNAPSHOT_SUFFIX) -> FolderScan:
    """Every file ending in ``suffix`` and every temporary file under ``root`` (a missing
    folder has none).

    Files that vanish or cannot be read while the folder is scanned are skipped.
    """
    snapshots: list[SnapshotFile] = []
    temporary: list[SnapshotFile] = []
    for directory, _dirs, names in os.walk(root):  # no symlinked folders (followlinks=False)
        for name in names:
            if not name.endswith((suffix, TEMP_SUFFIX)):
                continue
            path = os.path.join(directory, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue  # deleted meanwhile (the writer's os.replace of a .tmp)
            if not stat.S_ISREG(info.st_mode):
                continue
            found = SnapshotFile(path, info.st_size, info.st_mtime)
            (snapshots if name.endswith(suffix) else temporary).append(found)
    snapshots.sort(key=lambda f: (f.mtime_s, f.path))
    return FolderScan(tuple(snapshots), tuple(temporary))


class FileDeleter:
    """Deletes files inside one folder and counts the ones it could not.

    A file that cannot be deleted (permissions, read-only mount) is counted and the first one of
    a run named in one warning; it is tried again on the next run, since no event points to it.

    Args:
        root: the only folder whose files may be deleted.
        suffix: the folder's kind of file (besides temporary files).
    """

    def __init__(self, root: Path, suffix: str = SNAPSHOT_SUFFIX) -> None:
        self._root = root.resolve()
        self._suffix = suffix
        self.failed = 0
        self._first_failure = ""

    def delete(self, path: str) -> int | None:
        """Delete ``path`` if it is a file of the folder's kind or temporary, inside it.

        Returns:
            The bytes freed; None when nothing was deleted (missing, outside the folder, not a
            regular file, or not deletable).
        """
        if not path.endswith((self._suffix, TEMP_SUFFIX)) or not self._inside(path):
            return None
        try:
            info = os.lstat(path)
            if not stat.S_ISREG(info.st_mode):
                return None
            os.unlink(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self.failed += 1
            if not self._first_failure:
                self._first_failure = f"{path}: {exc.strerror or exc}"
            return None
        return info.st_size

    def report_failures(self) -> None:
        """One warning for the files this run could not delete, if any."""
        if self.failed:
            log.warning(
                "retention could not delete %d file(s), e.g. %s; no event points to them, so "
                "the next run tries again", self.failed, self._first_failure,
            )

    def _inside(self, path: str) -> bool:
        try:
            # The folder itself is resolved; the file's own name is not (a symlink is skipped
            # above, never followed).
            parent = Path(path).parent.resolve()
        except (OSError, RuntimeError):
            return False
        return parent == self._root or parent.is_relative_to(self._root)
