"""Labelled event intervals for ``monitor eval``: JSON or CSV on disk -> ``Interval`` values.

Labels are written by hand, so every mistake is reported as one line that names the file, the
item or line, and what is wrong; a run that scores against half-read labels is worse than none.
Clip names are relative to the annotation file's folder, so that a labelled data set can be moved
as a whole; absolute paths and ``..`` are refused because they would tie it to one machine or
reach outside it.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from monitor.types import EventKind, kinds_where

KINDS: tuple[str, ...] = kinds_where(evaluated=True)
FIELDS: tuple[str, ...] = ("clip", "kind", "start", "end")

MOMENT_S = 1.0
"""A moment (a line crossing: it ends as it starts) is scored as the span of this length centred
on it, labelled and predicted alike: with ``min_iou`` 0.3 two moments match within about 0.54 s."""
MOMENT_KINDS = frozenset({EventKind.LINE_CROSSING.value})


def moment_span(at_s: float) -> tuple[float, float]:
    """The scored span of a moment at ``at_s`` seconds from the clip's start (never before 0)."""
    start = max(0.0, at_s - MOMENT_S / 2)
    return round(start, 3), round(at_s + MOMENT_S / 2, 3)


@dataclass(frozen=True, slots=True)
class Interval:
    """One event of one kind in one clip, labelled or predicted.

    The constructor rejects what no real event can be, so a predicted interval built by the
    caller is held to the same rules as a labelled one.

    Attributes:
        clip: clip file name relative to the annotation file's folder, e.g. ``fall_7_0.avi``.
        kind: one of ``KINDS``.
        start: seconds from the clip's first frame, >= 0.
        end: seconds from the clip's first frame, > start. An event still open when the clip
            ends is closed at the clip's end by whoever builds the interval.
    """

    clip: str
    kind: str
    start: float
    end: float

    def __post_init__(self) -> None:
        if not self.clip:
            raise ValueError("clip is empty")
        if self.kind not in KINDS:
            raise ValueError(
                f"unknown kind {self.kind!r}{_suggest(self.kind, KINDS)}; known kinds: {', '.join(KINDS)}"
            )
        for name, value in (("start", self.start), ("end", self.end)):
            if not math.isfinite(value):
                raise ValueError(f"{name} {value} is not a finite number of seconds")
        if self.start < 0:
            raise ValueError(
                f"start {self.start} s is negative; times are seconds from the clip's first frame"
            )
        if self.end <= self.start:
            raise ValueError(f"end {self.end} s must be after start {self.start} s")

    @property
    def duration(self) -> float:
        """Length in seconds, always > 0."""
        return self.end - self.start


class AnnotationError(ValueError):
    """An annotation file that cannot be used; ``str()`` is one line: ``FILE: WHERE: PROBLEM``.

    Attributes:
        path: the annotation file.
        where: ``item N`` (JSON, counted from 1), ``line N`` (CSV or a JSON syntax error), or None
            when the problem is the whole file.
        problem: what is wrong, in words.
    """

    def __init__(self, path: Path, where: str | None, problem: str) -> None:
        self.path = path
        self.where = where
        self.problem = problem
        # A value quoted from the file could carry a line break; the message must stay one line.
        text = ": ".join(part for part in (str(path), where, problem) if part)
        super().__init__(" ".join(text.split()))


def load_annotations(path: Path) -> list[Interval]:
    """Read labelled intervals from a ``.json`` or ``.csv`` file, in file order.

    JSON is a list of ``{"clip", "kind", "start", "end"}`` objects; CSV has a header row naming
    at least the columns ``clip,kind,start,end``. Unknown keys and columns are ignored so that
    labellers can keep notes beside the labels.

    Args:
        path: the annotation file; its suffix (case-insensitive) picks the format.

    Returns:
        The intervals; clip names normalised (``./a.avi`` -> ``a.avi``).

    Raises:
        AnnotationError: on the first problem found.

    Example:
        >>> load_annotations(Path("clips/labels.csv"))  # doctest: +SKIP
        [Interval(clip='fall_7_0.avi', kind='fall', start=3.2, end=6.0)]
    """
    suffix = path.suffix.lower()
    if suffix not in (".json", ".csv"):
        raise AnnotationError(path, None, f"unsupported file type {path.suffix!r}; use .json or .csv")
    text = _read_text(path)
    return _parse_json(path, text) if suffix == ".json" else _parse_csv(path, text)


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise AnnotationError(path, None, "no such file") from None
    except IsADirectoryError:
        raise AnnotationError(path, None, "is a directory, expected an annotation file") from None
    except OSError as exc:
        raise AnnotationError(path, None, f"cannot read: {exc.strerror or type(exc).__name__}") from None
    try:
        # utf-8-sig: spreadsheet programs put a byte-order mark in front of exported CSV.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AnnotationError(path, None, f"not UTF-8 text (bad byte at offset {exc.start})") from None


def _parse_json(path: Path, text: str) -> list[Interval]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise AnnotationError(path, where, f"invalid JSON: {exc.msg}") from None
    if not isinstance(data, list):
        raise AnnotationError(
            path, None, f"expected a JSON list of {{clip, kind, start, end}} objects, got {_json_type(data)}"
        )
    intervals: list[Interval] = []
    for number, item in enumerate(data, start=1):
        where = f"item {number}"
        if not isinstance(item, dict):
            raise AnnotationError(
                path, where, f"expected an object with keys {', '.join(FIELDS)}, got {_json_type(item)}"
            )
        # null counts as missing: it is how a half-finished label usually looks.
        _require(path, where, [key for key, value in item.items() if value is not None], "field")
        clip, kind = item["clip"], item["kind"]
        for name, value in (("clip", clip), ("kind", kind)):
            if not isinstance(value, str):
                raise AnnotationError(path, where, f"{name} must be a string, got {_json_type(value)}")
        start, end = (_json_seconds(path, where, name, item[name]) for name in ("start", "end"))
        intervals.append(_interval(path, where, clip, kind, start, end))
    return intervals


def _json_seconds(path: Path, where: str, name: str, value: object) -> float:
    # bool is an int in Python but never a time in a label file; strings are refused rather than
    # parsed so that a file that mixes types is noticed.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AnnotationError(
            path, where, f"{name} must be a number of seconds, got {_json_type(value)} {value!r}"
        )
    return float(value)


def _parse_csv(path: Path, text: str) -> list[Interval]:
    rows = csv.reader(io.StringIO(text, newline=""), strict=True)
    intervals: list[Interval] = []
    try:
        header = next((row for row in rows if not _blank(row)), None)
        if header is None:
            raise AnnotationError(path, None, f"empty file; expected a header row {','.join(FIELDS)}")
        columns = [name.strip() for name in header]
        where = f"line {rows.line_num}"
        duplicated = sorted({name for name in columns if name in FIELDS and columns.count(name) > 1})
        if duplicated:
            problem = f"header names column(s) {', '.join(duplicated)} more than once"
            raise AnnotationError(path, where, problem)
        _require(path, where, columns, "column")
        for row in rows:
            if _blank(row):
                continue
            where = f"line {rows.line_num}"
            if len(row) > len(columns) and not _blank(row[len(columns):]):
                raise AnnotationError(path, where, f"{len(row)} fields but the header has {len(columns)}")
            cells = {name: (row[i].strip() if i < len(row) else "") for i, name in enumerate(columns)}
            _require(path, where, [name for name in FIELDS if cells[name]], "value for")
            start, end = (_text_seconds(path, where, name, cells[name]) for name in ("start", "end"))
            intervals.append(_interval(path, where, cells["clip"], cells["kind"], start, end))
    except csv.Error as exc:
        raise AnnotationError(path, f"line {rows.line_num}", f"invalid CSV: {exc}") from None
    return intervals


def _text_seconds(path: Path, where: str, name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise AnnotationError(path, where, f"{name} {text!r} is not a number of seconds") from None


def _blank(cells: Sequence[str]) -> bool:
    # Spreadsheets export empty rows as ",,,"; they carry no label.
    return all(not cell.strip() for cell in cells)


def _require(path: Path, where: str, present: Sequence[str], what: str) -> None:
    """Raise for the first of FIELDS not in ``present``, naming a likely misspelling among them."""
    missing = [name for name in FIELDS if name not in present]
    if not missing:
        return
    unknown = [key for key in present if key not in FIELDS]
    hint = difflib.get_close_matches(missing[0], unknown, n=1)
    problem = f"missing {what} {missing[0]!r}" + (f" (is {hint[0]!r} a misspelling of it?)" if hint else "")
    raise AnnotationError(path, where, problem)


def _interval(path: Path, where: str, clip: str, kind: str, start: float, end: float) -> Interval:
    clip = _clip_name(path, where, clip)
    try:
        return Interval(clip, kind, start, end)
    except ValueError as exc:
        raise AnnotationError(path, where, str(exc)) from None


def _clip_name(path: Path, where: str, clip: str) -> str:
    """The clip's path relative to the annotation folder, in POSIX form."""
    clip = clip.strip()
    if PurePosixPath(clip).is_absolute() or PureWindowsPath(clip).anchor:
        raise AnnotationError(path, where, f"clip {clip!r} is absolute; name it relative to {path.parent}")
    parts = clip.replace("\\", "/").split("/")
    if ".." in parts:
        raise AnnotationError(path, where, f"clip {clip!r} contains '..'; clips must lie under {path.parent}")
    normal = str(PurePosixPath(clip))
    return "" if normal == "." else normal  # "" or "./" name no file: Interval reports it empty


def _suggest(word: str, known: Sequence[str]) -> str:
    hint = difflib.get_close_matches(word, known, n=1)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")
