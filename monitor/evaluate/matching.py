"""Predicted events vs labelled ones: one-to-one matching by temporal IoU, the scores, the report.

Scoring is event-level: a predicted event counts as found only if it overlaps a labelled event of
the same clip and kind by at least ``min_iou`` temporal IoU, and each labelled event can be found
once. Frame-level scores would reward a decider for a long event it reports in ten flickering
pieces; event-level scores punish that with false positives, which is what an alert user feels.

This module is the only one in ``monitor/evaluate`` that imports scipy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from monitor.evaluate.annotations import KINDS, Interval

# Times are frame-derived floats (frame / fps); a pair that sits exactly on the threshold on paper
# must not drop out because its IoU came out as 0.29999999999999993.
_IOU_TOLERANCE = 1e-9


@dataclass(frozen=True, slots=True)
class KindScore:
    """Event counts of one decider for one kind, and the rates derived from them.

    An empty denominator gives 1.0 only when the kind has neither labels nor predictions (nothing
    to find, nothing claimed); otherwise it gives 0.0. So a decider that never fires does not get
    a perfect precision on a kind that has labels, and one that fires on a kind without labels
    does not get a perfect recall: its table row shows 0.000 where it failed.

    Attributes:
        kind: one of ``KINDS``.
        true_positives: predicted events matched to a labelled one.
        false_positives: predicted events matched to none.
        false_negatives: labelled events no prediction matched.
    """

    kind: str
    true_positives: int
    false_positives: int
    false_negatives: int

    def __post_init__(self) -> None:
        counts = (self.true_positives, self.false_positives, self.false_negatives)
        if min(counts) < 0:
            raise ValueError(f"event counts must be >= 0, got TP/FP/FN {counts} for {self.kind!r}")

    @property
    def precision(self) -> float:
        """TP / (TP + FP): the share of predicted events that were real."""
        predicted = self.true_positives + self.false_positives
        if predicted == 0:
            return 1.0 if self.false_negatives == 0 else 0.0
        return self.true_positives / predicted

    @property
    def recall(self) -> float:
        """TP / (TP + FN): the share of labelled events that were found."""
        labelled = self.true_positives + self.false_negatives
        if labelled == 0:
            return 1.0 if self.false_positives == 0 else 0.0
        return self.true_positives / labelled

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall; 0.0 when both are 0."""
        p, r = self.precision, self.recall
        return 0.0 if p + r == 0 else 2 * p * r / (p + r)

    def as_dict(self) -> dict[str, int | float]:
        """Counts and rates as JSON-ready numbers (rates unrounded)."""
        return {
            "true_positives": self.true_positives,
            "false_positives": self.false_positives,
            "false_negatives": self.false_negatives,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
        }


def temporal_iou(a: Interval, b: Interval) -> float:
    """Intersection over union of two time spans; clip and kind are not looked at.

    Returns:
        0.0 for disjoint or touching spans, 1.0 for identical ones.
    """
    overlap = min(a.end, b.end) - max(a.start, b.start)
    if overlap <= 0:
        return 0.0
    # Interval guarantees end > start, so the union is > 0.
    return overlap / (a.duration + b.duration - overlap)


def match(
    truth: Sequence[Interval], predicted: Sequence[Interval], *, min_iou: float = 0.3
) -> list[tuple[Interval, Interval]]:
    """Pair predicted events with labelled ones, one-to-one, within each (clip, kind).

    The pairing has the most matches possible and, among those, the largest total IoU. Greedy
    pairing by IoU is not enough: a prediction that overlaps two labels best takes the one another
    prediction could only have had, and a match is lost.

    Args:
        truth: labelled intervals.
        predicted: predicted intervals.
        min_iou: temporal IoU a pair needs, in (0, 1].

    Returns:
        (labelled, predicted) pairs, in the order of the labelled intervals in ``truth``.

    Example:
        >>> fall = Interval("a.avi", "fall", 2.0, 6.0)
        >>> [(t.start, p.start) for t, p in match([fall], [Interval("a.avi", "fall", 3.0, 6.5)])]
        [(2.0, 3.0)]
    """
    _check_min_iou(min_iou)
    groups: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
    for i, interval in enumerate(truth):
        groups.setdefault((interval.clip, interval.kind), ([], []))[0].append(i)
    for j, interval in enumerate(predicted):
        group = groups.get((interval.clip, interval.kind))
        if group is not None:  # no label of this clip and kind: it cannot match anything
            group[1].append(j)
    pairs: list[tuple[int, int]] = []
    for truth_ids, predicted_ids in groups.values():
        if predicted_ids:
            rows = [truth[i] for i in truth_ids]
            columns = [predicted[j] for j in predicted_ids]
            pairs += [(truth_ids[r], predicted_ids[c]) for r, c in _assign(rows, columns, min_iou)]
    return [(truth[i], predicted[j]) for i, j in sorted(pairs)]


def _assign(
    truth: Sequence[Interval], predicted: Sequence[Interval], min_iou: float
) -> list[tuple[int, int]]:
    """Maximum matching of one (clip, kind) group, ties broken by total IoU; index pairs."""
    iou = np.array([[temporal_iou(t, p) for p in predicted] for t in truth], dtype=np.float64)
    allowed = iou >= min_iou - _IOU_TOLERANCE
    if not allowed.any():
        return []
    # Every allowed pair is worth more than the IoUs of any whole matching can add up to (at most
    # min(T, P)), so the best assignment first maximises the number of matches, then the IoU.
    # Forbidden pairs weigh 0; the solver may still pair them to fill its square, so drop them.
    weight = np.where(allowed, min(iou.shape) + 1.0 + iou, 0.0)
    rows, columns = linear_sum_assignment(weight, maximize=True)
    return [(int(r), int(c)) for r, c in zip(rows, columns, strict=True) if allowed[r, c]]


def score(
    truth: Sequence[Interval],
    predicted: Sequence[Interval],
    *,
    kinds: Sequence[str] = KINDS,
    min_iou: float = 0.3,
) -> dict[str, KindScore]:
    """Count matched, false and missed events per kind.

    A prediction on a clip or kind with no labels at all (a ``fall`` on a walk-only clip) is a
    false positive like any other unmatched prediction.

    Args:
        truth: labelled intervals.
        predicted: one decider's predicted intervals.
        kinds: the kinds to report, a subset of ``KINDS``; intervals of other kinds are left out.
        min_iou: temporal IoU a match needs, in (0, 1].

    Returns:
        kind -> score, in the order of ``kinds``.
    """
    _check_kinds(kinds)
    matched = Counter(t.kind for t, _ in match(truth, predicted, min_iou=min_iou))
    labelled = Counter(t.kind for t in truth)
    claimed = Counter(p.kind for p in predicted)
    return {
        kind: KindScore(kind, matched[kind], claimed[kind] - matched[kind], labelled[kind] - matched[kind])
        for kind in kinds
    }


_COLUMNS = ("kind", "decider", "TP", "FP", "FN", "precision", "recall", "F1")


def format_table(
    results: Mapping[str, Mapping[str, KindScore]],
    kinds: Sequence[str] = KINDS,
    *,
    min_iou: float | None = None,
) -> str:
    """A plain-text table, one row per (kind, decider), deciders of a kind next to each other.

    Args:
        results: decider name -> kind -> score; deciders appear in this mapping's order.
        kinds: the kinds to show, in this order. A kind missing from a decider's scores shows
            ``-`` in every column rather than failing the whole report.
        min_iou: the threshold the scores were made with; named in the legend when given.

    Returns:
        Aligned lines: header, rows, a legend line; no trailing newline.
    """
    rows = [list(_COLUMNS)]
    for kind in kinds:
        for decider, scores in results.items():
            found = scores.get(kind)
            if found is None:
                rows.append([kind, decider] + ["-"] * (len(_COLUMNS) - 2))
                continue
            counts = [found.true_positives, found.false_positives, found.false_negatives]
            rates = [found.precision, found.recall, found.f1]
            rows.append([kind, decider, *map(str, counts), *(f"{rate:.3f}" for rate in rates)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    # Names left-aligned, numbers right-aligned so that their digits line up.
    lines = [
        "  ".join(_align(i, cell, width) for i, (cell, width) in enumerate(zip(row, widths, strict=True)))
        for row in rows
    ]
    threshold = "min_iou" if min_iou is None else f"{min_iou:g}"
    lines.append(
        f"TP matched, FP unlabelled prediction, FN missed label; "
        f"match: one-to-one, same clip and kind, temporal IoU >= {threshold}"
    )
    return "\n".join(line.rstrip() for line in lines)


def _align(column: int, cell: str, width: int) -> str:
    return cell.ljust(width) if column < 2 else cell.rjust(width)


def to_json(results: Mapping[str, Mapping[str, KindScore]]) -> dict[str, Any]:
    """``results`` as JSON-ready data: decider -> kind -> counts, precision, recall and f1."""
    return {
        decider: {kind: found.as_dict() for kind, found in scores.items()}
        for decider, scores in results.items()
    }


def _check_min_iou(min_iou: float) -> None:
    # 0 would let disjoint events match each other.
    if not 0.0 < min_iou <= 1.0:
        raise ValueError(f"min_iou must be in (0, 1], got {min_iou}")


def _check_kinds(kinds: Sequence[str]) -> None:
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        names = ", ".join(map(repr, unknown))
        raise ValueError(f"unknown kind(s) {names}; known kinds: {', '.join(KINDS)}")
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"kinds repeats a kind: {', '.join(kinds)}")
