"""``monitor eval`` scoring: annotation loading, one-to-one IoU matching, counts, rates, report."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest

from monitor.evaluate.annotations import KINDS, AnnotationError, Interval, load_annotations
from monitor.evaluate.matching import KindScore, format_table, match, score, temporal_iou, to_json


def iv(start: float, end: float, *, clip: str = "a.avi", kind: str = "fall") -> Interval:
    return Interval(clip, kind, start, end)


# --- temporal IoU ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (iv(0, 2), iv(3, 5), 0.0),          # disjoint
        (iv(0, 2), iv(2, 4), 0.0),          # touching: no overlap
        (iv(0, 10), iv(2, 4), 0.2),         # nested: 2 / 10
        (iv(0, 4), iv(2, 6), 2 / 6),        # partial: overlap 2, union 6
        (iv(1.5, 3.5), iv(1.5, 3.5), 1.0),  # identical
    ],
)
def test_temporal_iou(a: Interval, b: Interval, expected: float) -> None:
    assert temporal_iou(a, b) == pytest.approx(expected)
    assert temporal_iou(b, a) == pytest.approx(expected)


# --- matching ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("truth", "predicted", "matches"),
    [
        (iv(0, 10), iv(0, 3), True),        # IoU exactly 0.3: enough
        (iv(0, 10), iv(0, 2.99), False),    # IoU 0.299: not enough
        (iv(1.1, 2.1), iv(1.1, 1.4), True), # 0.3 on paper, 0.2999999999999998 in floats
        (iv(0, 10), iv(7.5, 20), False),    # IoU 2.5 / 20
    ],
)
def test_threshold_boundary(truth: Interval, predicted: Interval, matches: bool) -> None:
    assert match([truth], [predicted]) == ([(truth, predicted)] if matches else [])


def test_min_iou_is_a_parameter_and_checked() -> None:
    truth, predicted = iv(0, 4), iv(2, 6)  # IoU 1/3
    assert match([truth], [predicted], min_iou=0.3) == [(truth, predicted)]
    assert match([truth], [predicted], min_iou=0.5) == []
    for bad in (0.0, -0.1, 1.01):
        with pytest.raises(ValueError, match=r"min_iou must be in \(0, 1\]"):
            match([truth], [predicted], min_iou=bad)


def test_two_predictions_over_one_label_are_one_match_and_one_false_positive() -> None:
    truth = iv(2, 6)
    close, loose = iv(2.5, 6), iv(1, 5)
    assert match([truth], [loose, close]) == [(truth, close)]  # the better overlap wins
    assert score([truth], [loose, close])["fall"] == KindScore("fall", 1, 1, 0)


def test_one_prediction_over_two_labels_finds_one() -> None:
    assert score([iv(0, 4), iv(1, 5)], [iv(0.5, 4.5)])["fall"] == KindScore("fall", 1, 0, 1)


def test_matching_never_crosses_clips_or_kinds() -> None:
    truth = [iv(0, 5, clip="a.avi", kind="fall")]
    predicted = [iv(0, 5, clip="b.avi", kind="fall"), iv(0, 5, clip="a.avi", kind="running")]
    assert match(truth, predicted) == []
    scores = score(truth, predicted)
    assert scores["fall"] == KindScore("fall", 0, 1, 1)
    assert scores["running"] == KindScore("running", 0, 1, 0)


def test_maximum_matching_where_greedy_by_iou_finds_fewer() -> None:
    first, second = iv(0, 10), iv(5, 15)
    wide, early = iv(2, 12), iv(0, 6)
    # Greedy takes the best pair first, wide-first (0.667), leaving early with nothing (its only
    # partner is taken) and second with nothing: 1 match. Two are possible.
    assert temporal_iou(first, wide) > max(temporal_iou(second, wide), temporal_iou(first, early))
    assert temporal_iou(second, early) < 0.3
    assert match([first, second], [wide, early]) == [(first, early), (second, wide)]


def test_more_matches_beat_a_larger_total_iou() -> None:
    first, second = iv(0, 10), iv(5, 12)
    exact, short = iv(0, 10), iv(0, 3.5)
    # exact-first alone has IoU 1.0; exact-second (0.42) + short-first (0.35) is less IoU but two.
    assert match([first, second], [exact, short]) == [(first, short), (second, exact)]


def test_more_matches_beat_fewer_near_perfect_ones() -> None:
    # A chain: each prediction sits exactly on the next label and overlaps its own by 1/3. Three
    # perfect matches (total weight 3 x (1 + 1.0) if a match were worth 1 + IoU) must lose to
    # four matches at 1/3 (4 x (1 + 0.33)): the count comes first.
    truth = [iv(0, 10), iv(5, 15), iv(10, 20), iv(15, 25)]
    predicted = [iv(5, 15), iv(10, 20), iv(15, 25), iv(20, 30)]
    assert match(truth, predicted) == list(zip(truth, predicted, strict=True))


def test_among_maximum_matchings_the_larger_total_iou_wins() -> None:
    a, b = iv(0, 10), iv(1, 11)
    assert match([a, b], [b, a]) == [(a, a), (b, b)]  # not the crossed pairing, 2 x 0.82


def _brute_force(truth: list[Interval], predicted: list[Interval]) -> tuple[int, float]:
    """Most matches, then largest total IoU, over every injective assignment (IoU is symmetric)."""
    small, large = sorted((truth, predicted), key=len)
    best = (0, 0.0)
    for chosen in itertools.permutations(range(len(large)), len(small)):
        ious = [temporal_iou(small[i], large[j]) for i, j in enumerate(chosen)]
        kept = [value for value in ious if value >= 0.3]
        best = max(best, (len(kept), sum(kept)))
    return best


@pytest.mark.parametrize("seed", range(40))
def test_matching_agrees_with_brute_force(seed: int) -> None:
    rng = random.Random(seed)

    def spans(count: int) -> list[Interval]:
        out = []
        for _ in range(count):
            start = rng.uniform(0, 8)
            out.append(iv(round(start, 2), round(start + rng.uniform(0.5, 5), 2)))
        return out

    truth, predicted = spans(rng.randint(1, 4)), spans(rng.randint(1, 4))
    pairs = match(truth, predicted)
    count, total = _brute_force(truth, predicted)
    assert len(pairs) == count
    assert sum(temporal_iou(t, p) for t, p in pairs) == pytest.approx(total)
    assert len({id(p) for _, p in pairs}) == len(pairs)  # each prediction used once


def test_pairs_come_in_the_order_of_the_labels() -> None:
    truth = [iv(20, 30, clip="b.avi"), iv(0, 5), iv(10, 15)]
    predicted = [iv(10, 15), iv(0, 5), iv(20, 30, clip="b.avi")]
    assert [t for t, _ in match(truth, predicted)] == truth


# --- empty cases and scores --------------------------------------------------------------------


def test_nothing_labelled_and_nothing_predicted_is_perfect() -> None:
    assert match([], []) == []
    for kind, found in score([], []).items():
        assert found == KindScore(kind, 0, 0, 0)
        assert (found.precision, found.recall, found.f1) == (1.0, 1.0, 1.0)


def test_predictions_without_any_labels_are_false_positives() -> None:
    # A fall on a walk-only clip, which has no rows in the annotations at all.
    found = score([], [iv(1, 3, clip="walk_1.avi")])["fall"]
    assert found == KindScore("fall", 0, 1, 0)
    assert (found.precision, found.recall, found.f1) == (0.0, 0.0, 0.0)


def test_labels_without_any_predictions_are_missed() -> None:
    found = score([iv(1, 3), iv(5, 6)], [])["fall"]
    assert found == KindScore("fall", 0, 0, 2)
    assert (found.precision, found.recall, found.f1) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("counts", "precision", "recall", "f1"),
    [
        ((0, 0, 0), 1.0, 1.0, 1.0),      # nothing to find, nothing claimed
        ((0, 3, 0), 0.0, 0.0, 0.0),      # only false alarms
        ((0, 0, 2), 0.0, 0.0, 0.0),      # silent decider: not "precise"
        ((0, 2, 2), 0.0, 0.0, 0.0),      # P = R = 0: F1 = 0, not 0/0
        ((4, 0, 0), 1.0, 1.0, 1.0),
        ((2, 2, 1), 0.5, 2 / 3, 4 / 7),
        ((3, 1, 3), 0.75, 0.5, 0.6),
    ],
)
def test_rates(counts: tuple[int, int, int], precision: float, recall: float, f1: float) -> None:
    found = KindScore("fall", *counts)
    assert found.precision == pytest.approx(precision)
    assert found.recall == pytest.approx(recall)
    assert found.f1 == pytest.approx(f1)


def test_negative_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        KindScore("fall", 1, -1, 0)


def worked_example() -> tuple[list[Interval], list[Interval]]:
    """3 falls and 1 running labelled on two clips; a decider finds 2 falls, the run, and 2 ghosts."""
    truth = [
        iv(1, 4, clip="fall_1.avi"),
        iv(10, 12, clip="fall_1.avi"),
        iv(2, 5, clip="fall_2.avi"),
        iv(0, 8, clip="run_1.avi", kind="running"),
    ]
    predicted = [
        iv(1.5, 4.5, clip="fall_1.avi"),          # TP (IoU 2.5 / 3.5)
        iv(2.2, 5.0, clip="fall_2.avi"),          # TP (IoU 2.8 / 3)
        iv(2.0, 4.8, clip="fall_2.avi"),          # FP: the label is taken
        iv(3, 6, clip="walk_1.avi"),              # FP: a clip without labels
        iv(1, 7, clip="run_1.avi", kind="running"),  # TP (IoU 6 / 8)
    ]
    return truth, predicted


def test_worked_example() -> None:
    scores = score(*worked_example())
    assert list(scores) == list(KINDS)
    fall = scores["fall"]
    assert fall == KindScore("fall", 2, 2, 1)
    assert (fall.precision, fall.recall, fall.f1) == pytest.approx((0.5, 2 / 3, 4 / 7))
    assert scores["running"] == KindScore("running", 1, 0, 0)
    assert scores["loitering"] == KindScore("loitering", 0, 0, 0)


def test_score_reports_the_kinds_asked_for_and_checks_them() -> None:
    truth, predicted = worked_example()
    assert list(score(truth, predicted, kinds=("running",))) == ["running"]
    with pytest.raises(ValueError, match="unknown kind.*'falls'.*fall, running, loitering"):
        score(truth, predicted, kinds=("falls",))
    with pytest.raises(ValueError, match="repeats"):
        score(truth, predicted, kinds=("fall", "fall"))


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (("a.avi", "falling", 0.0, 1.0), "unknown kind 'falling' (did you mean 'fall'?); known kinds"),
        (("a.avi", "fall", 2.0, 2.0), "end 2.0 s must be after start 2.0 s"),
        (("a.avi", "fall", -1.0, 2.0), "negative"),
        (("a.avi", "fall", 0.0, float("inf")), "not a finite number"),
        (("", "fall", 0.0, 1.0), "clip is empty"),
    ],
)
def test_interval_refuses_impossible_events(args: tuple[str, str, float, float], problem: str) -> None:
    with pytest.raises(ValueError) as caught:
        Interval(*args)
    assert problem in str(caught.value)


# --- report ------------------------------------------------------------------------------------


def results() -> dict[str, dict[str, KindScore]]:
    truth, predicted = worked_example()
    return {
        "per-frame": score(truth, predicted),
        "rules": score(truth, predicted[:1]),
        "temporal": score(truth, []),
    }


def test_format_table_shows_every_decider_kind_and_number() -> None:
    table = format_table(results(), min_iou=0.3)
    lines = table.splitlines()
    for name in ("per-frame", "rules", "temporal", *KINDS, "TP", "FP", "FN", "precision", "recall", "F1"):
        assert name in table
    row = next(line for line in lines if line.startswith("fall") and "per-frame" in line)
    assert row.split() == ["fall", "per-frame", "2", "2", "1", "0.500", "0.667", "0.571"]
    assert len(lines) == 1 + len(KINDS) * 3 + 1  # header, rows, legend
    assert len({len(line) for line in lines[:-1]}) == 1  # aligned: numbers right-justified
    assert "IoU >= 0.3" in lines[-1]
    assert table == format_table(results(), min_iou=0.3)


def test_format_table_marks_a_missing_kind_instead_of_failing() -> None:
    table = format_table({"fall-only": {"fall": KindScore("fall", 1, 0, 0)}}, kinds=("fall", "running"))
    assert [line.split() for line in table.splitlines()[1:3]] == [
        ["fall", "fall-only", "1", "0", "0", "1.000", "1.000", "1.000"],
        ["running", "fall-only", "-", "-", "-", "-", "-", "-"],
    ]


def test_to_json_carries_counts_and_rates() -> None:
    data = json.loads(json.dumps(to_json(results())))
    assert list(data) == ["per-frame", "rules", "temporal"]
    assert data["per-frame"]["fall"] == {
        "true_positives": 2,
        "false_positives": 2,
        "false_negatives": 1,
        "precision": 0.5,
        "recall": pytest.approx(2 / 3),
        "f1": pytest.approx(4 / 7),
    }
    assert data["temporal"]["running"]["recall"] == 0.0


# --- loading annotations -----------------------------------------------------------------------


def test_load_json(tmp_path: Path) -> None:
    path = tmp_path / "labels.json"
    path.write_text(
        json.dumps(
            [
                {"clip": "./fall_7_0.avi", "kind": "fall", "start": 3, "end": 6.5, "note": "ignored"},
                {"clip": "sub/run.avi", "kind": "running", "start": 0.0, "end": 2.0},
            ]
        ),
        encoding="utf-8",
    )
    assert load_annotations(path) == [
        Interval("fall_7_0.avi", "fall", 3.0, 6.5),
        Interval("sub/run.avi", "running", 0.0, 2.0),
    ]
    assert isinstance(load_annotations(path)[0].start, float)


def test_load_csv(tmp_path: Path) -> None:
    path = tmp_path / "LABELS.CSV"
    # A spreadsheet export: byte-order mark, CRLF, spaces after commas, an extra column, a blank
    # line and an empty row.
    text = (
        "clip, kind, start, end, labeller\r\n"
        "fall_7_0.avi, fall, 3.2, 6\r\n"
        "\r\n"
        ",,,,\r\n"
        '"loiter, long.avi",loitering,10,70.5,ann\r\n'
    )
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert load_annotations(path) == [
        Interval("fall_7_0.avi", "fall", 3.2, 6.0),
        Interval("loiter, long.avi", "loitering", 10.0, 70.5),
    ]


def test_empty_label_lists_are_valid(tmp_path: Path) -> None:
    (tmp_path / "none.json").write_text("[]", encoding="utf-8")
    (tmp_path / "none.csv").write_text("clip,kind,start,end\n", encoding="utf-8")
    assert load_annotations(tmp_path / "none.json") == []
    assert load_annotations(tmp_path / "none.csv") == []


def _item(**changes: object) -> str:
    item: dict[str, object] = {"clip": "a.avi", "kind": "fall", "start": 1.0, "end": 2.0}
    item.update(changes)
    return json.dumps([{k: v for k, v in item.items() if v is not _DROP}])


_DROP = object()
_HEADER = "clip,kind,start,end\n"

JSON_ERRORS = [
    ("[{", "line 1 column 3", "invalid JSON"),
    ('{"clip": "a.avi"}', None, "expected a JSON list of {clip, kind, start, end} objects, got an object"),
    (json.dumps([json.loads(_item())[0], "a.avi"]), "item 2", "expected an object with keys clip, kind"),
    (_item(end=_DROP), "item 1", "missing field 'end'"),
    (_item(end=None), "item 1", "missing field 'end'"),
    (_item(start=_DROP, strat=1.0), "item 1", "missing field 'start' (is 'strat' a misspelling of it?)"),
    (_item(kind="falling"), "item 1", "unknown kind 'falling' (did you mean 'fall'?); known kinds: fall"),
    (_item(kind="fall\nrunning"), "item 1", "unknown kind 'fall\\nrunning'"),
    (_item(kind=3), "item 1", "kind must be a string"),
    (_item(clip=7), "item 1", "clip must be a string"),
    (_item(start="1.5"), "item 1", "start must be a number of seconds, got a string '1.5'"),
    (_item(end=True), "item 1", "end must be a number of seconds, got a boolean"),
    (_item(start=-0.5), "item 1", "start -0.5 s is negative"),
    (_item(end=1.0), "item 1", "end 1.0 s must be after start 1.0 s"),
    (_item(end=0.5), "item 1", "end 0.5 s must be after start 1.0 s"),
    ('[{"clip": "a.avi", "kind": "fall", "start": NaN, "end": 2}]', "item 1", "start nan is not a finite"),
    (_item(clip="/data/clips/a.avi"), "item 1", "clip '/data/clips/a.avi' is absolute"),
    (_item(clip="C:\\clips\\a.avi"), "item 1", "is absolute"),
    (_item(clip="../other/a.avi"), "item 1", "contains '..'"),
    (_item(clip="sub\\..\\..\\a.avi"), "item 1", "contains '..'"),
    (_item(clip="./"), "item 1", "clip is empty"),
]

CSV_ERRORS = [
    ("", None, "empty file; expected a header row clip,kind,start,end"),
    ("clip,kind,start\na.avi,fall,1\n", "line 1", "missing column 'end'"),
    ("clip,kind,begin,end\n", "line 1", "missing column 'start'"),
    ("clip,kind,strat,end\n", "line 1", "missing column 'start' (is 'strat' a misspelling of it?)"),
    ("clip,kind,start,end,end\n", "line 1", "column(s) end more than once"),
    (_HEADER + "a.avi,fall,1,2\nb.avi,fall,,2\n", "line 3", "missing value for 'start'"),
    (_HEADER + "a.avi,fall,1\n", "line 2", "missing value for 'end'"),
    (_HEADER + "a.avi,fall,1,2,x\n", "line 2", "5 fields but the header has 4"),
    (_HEADER + "a.avi,fall,1.5s,2\n", "line 2", "start '1.5s' is not a number of seconds"),
    (_HEADER + "a.avi,fall,1,nan\n", "line 2", "end nan is not a finite number"),
    (_HEADER + "a.avi,fall,-1,2\n", "line 2", "negative"),
    (_HEADER + "a.avi,fall,2,2\n", "line 2", "must be after start"),
    (_HEADER + "a.avi,Fall,1,2\n", "line 2", "unknown kind 'Fall'"),
    (_HEADER + "/abs/a.avi,fall,1,2\n", "line 2", "is absolute"),
    (_HEADER + "x/../../a.avi,fall,1,2\n", "line 2", "contains '..'"),
    (_HEADER + 'a.avi,"fall,1,2\n', "line 2", "invalid CSV"),
    (_HEADER + 'a.avi,"fall"x,1,2\n', "line 2", "invalid CSV"),
]


def _check(error: AnnotationError, path: Path, where: str | None, problem: str) -> None:
    message = str(error)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    if where is not None:
        assert f": {where}: " in message
    assert problem in message
    assert isinstance(error, ValueError)


@pytest.mark.parametrize(("text", "where", "problem"), JSON_ERRORS)
def test_json_errors(tmp_path: Path, text: str, where: str | None, problem: str) -> None:
    path = tmp_path / "labels.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(AnnotationError) as caught:
        load_annotations(path)
    _check(caught.value, path, where, problem)


@pytest.mark.parametrize(("text", "where", "problem"), CSV_ERRORS)
def test_csv_errors(tmp_path: Path, text: str, where: str | None, problem: str) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(AnnotationError) as caught:
        load_annotations(path)
    _check(caught.value, path, where, problem)


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("missing.json", None, "no such file"),
        ("missing.csv", None, "no such file"),
        ("labels.txt", b"clip,kind,start,end\n", "unsupported file type '.txt'; use .json or .csv"),
        ("latin1.csv", "clip,kind,start,end\ncafé.avi,fall,1,2\n".encode("latin-1"), "not UTF-8 text"),
        ("folder.json", "dir", "is a directory"),
    ],
)
def test_file_errors(tmp_path: Path, name: str, content: bytes | str | None, problem: str) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "dir":
        path.mkdir()
    with pytest.raises(AnnotationError) as caught:
        load_annotations(path)
    _check(caught.value, path, None, problem)
    assert caught.value.path == path
