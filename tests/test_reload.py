"""What a reload changes: a table of running config -> file read again."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.config import parse_config
from monitor.reload import plan_reload


def config(*cameras: dict[str, Any], **sections: Any) -> Any:
    return parse_config({"cameras": list(cameras), **sections})


A = {"name": "a", "url": "rtsp://h/a"}
B = {"name": "b", "url": "rtsp://h/b"}


@pytest.mark.parametrize(
    ("before", "after", "removed", "added", "restart"),
    [
        (config(A), config(A), (), (), ()),
        (config(A), config(A, B), (), ("b",), ()),
        (config(A, B), config(B), ("a",), (), ()),
        (config(A), config({**A, "detect_fps": 1.0}), ("a",), ("a",), ()),  # changed: restarted
        (config(A), config(A, mqtt={"port": 1884}), (), (), ("mqtt",)),
        (config(A), config(B, events={"loitering_s": 5.0}), ("a",), ("b",), ("events",)),
    ],
)
def test_plan_reload(before: Any, after: Any, removed: tuple[str, ...], added: tuple[str, ...],
                     restart: tuple[str, ...]) -> None:
    plan = plan_reload(before, after)
    assert plan.removed == removed
    assert tuple(c.name for c in plan.added) == added
    assert plan.needs_restart == restart
    assert plan.changes_cameras == bool(removed or added)
