"""Hostile and careless configs: each is a clear one-line error, or a config the daemon can run.

A thousand mutations of a config that uses every section (zones, crowds, lines, two cameras) go
through the real ``monitor check-config``; the ones it accepts are wired into camera pipelines and
fed frames, the way the daemon would run them. Found this way before (issue 11): NUL bytes, a
``~nosuchuser`` path and a non-UTF-8 file gave tracebacks; overflowing timeouts, zero-area zones
and oversized client ids were accepted and failed at run time.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import tempfile
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from monitor.cli import main
from monitor.config import Config, ConfigError, load_config
from monitor.events.snapshot import SnapshotWriter
from monitor.ingest.motion import MotionDetector
from monitor.pipeline import build_camera_pipeline
from monitor.temporal.deciders import load_configured_checkpoint
from monitor.types import Alert
from tests.builders import make_detection, make_detections

BASE: dict[str, Any] = {
    "daemon": {"state_dir": "state", "log_level": "INFO", "shutdown_timeout_s": 4.0},
    "database": {"url": "sqlite:///monitor.db", "busy_timeout_ms": 5000},
    "mqtt": {"host": "127.0.0.1", "port": 1883, "prefix": "monitor", "client_id": "monitor-a",
             "keepalive_s": 30, "reconnect_max_s": 30.0},
    "detector": {"model": "model.onnx", "imgsz": 640, "min_score": 0.25, "class_labels": {"Normal": "person"},
                 "regions": {"margin": 0.15, "min_size_px": 64, "still_recheck_s": 5.0}},
    "motion": {"width_px": 160, "blur_px": 5, "threshold": 25, "warmup_frames": 2},
    "tracker": {"lost_track_s": 2.0, "stitch_s": 4.0, "stitch_radius": 1.0},
    "source": {"open_timeout_s": 5.0, "read_timeout_s": 2.0, "stall_timeout_s": 10.0,
               "reconnect_initial_s": 0.5, "reconnect_max_s": 30.0},
    "events": {"confirm_frames": 2, "end_after_s": 5.0, "loitering_s": 30.0, "history_len": 300},
    "reviews": {"gap_s": 5.0, "alert_zones": ["porch"]},
    "temporal": {"decider": "rules", "enter_prob": 0.7, "exit_prob": 0.4},
    "cameras": [
        {"name": "frontdoor", "url": "rtsp://viewer:secret@192.0.2.10:554/stream1",
         "detect_fps": 5.0, "labels": ["person"],
         "zones": [{"name": "porch", "polygon": [[0.2, 0.5], [0.8, 0.5], [0.8, 1.0], [0.2, 1.0]],
                    "crowd": {"label": "person", "min_objects": 2, "for_s": 1.0}}],
         "lines": [{"name": "path", "points": [[0.5, 0.4], [0.5, 1.0]], "hysteresis": 0.02}]},
        {"name": "yard", "url": "rtsp://192.0.2.11:554/h264", "detect_fps": 2.0},
    ],
}

HOSTILE_STRINGS = [
    "", " ", "\x00", "a\x00b", "yard\n", "\x1b[2J", "~nosuchuser/x", "~", "../../../etc/passwd",
    "rtsp://", "rtsp://:@", "rtsp://h:notaport/", "rtsp://u:p w@h/", "rtsp:// h/", "${NOPE}",
    "a" * 5000, "\u00e9\u4e2d", "\ud7ff", "\u202e", "null", "inf", "-1", "1e999", "[]", "#", "+",
    "monitor/#", "/", "postgresql://u:p@/x", "sqlite:///\x00", "file:///dev/zero",
]
HOSTILE_NUMBERS = [0, -1, 1, 2**31, 2**63, -(2**63) - 1, 10**20, 10**400, 0.0, -0.0, 1e-300,
                   1e308, math.inf, -math.inf, math.nan, 0.5, 3.0]

VALUES = st.one_of(
    st.sampled_from(HOSTILE_STRINGS),
    st.sampled_from(HOSTILE_NUMBERS),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.text(max_size=20),
    st.lists(st.one_of(st.integers(-3, 3), st.floats(-2, 2), st.text(max_size=3)), max_size=4),
    st.just({}),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=2),
)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in the config, containers and leaves."""
    found = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _paths(value, (*prefix, index))
    return found


PATHS = _paths(BASE)


def _mutate(data: dict[str, Any], path: tuple[Any, ...], operation: str, value: Any) -> None:
    # A copy: hypothesis may hand the same object to two mutations, and inserting it twice could
    # nest a dict inside itself, which no TOML file can say.
    value = copy.deepcopy(value)
    parent: Any = data
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if operation == "scale":  # a plausible typo: a number many times too big or small
        current = parent[last]
        if isinstance(current, int | float) and not isinstance(current, bool):
            factor = value if isinstance(value, float) and math.isfinite(value) else 7.0
            scaled = current * abs(factor)
            if math.isfinite(scaled):
                parent[last] = type(current)(scaled % 1e6)
    elif operation == "replace":
        parent[last] = value
    elif operation == "delete":
        del parent[last]
    elif operation == "add" and isinstance(parent, dict):
        parent[f"{last}_extra"] = value
    elif operation == "add" and isinstance(parent, list):
        parent.append(value)


MUTATIONS = st.lists(
    st.tuples(st.sampled_from(PATHS), st.sampled_from(["replace", "replace", "scale", "scale", "delete", "add"]),
              VALUES),
    min_size=1, max_size=3,
)
# Byte-level damage to the file itself: a NUL, bytes that are not UTF-8, a cut.
BYTE_DAMAGE = st.one_of(st.none(), st.tuples(st.integers(0, 10_000),
                                             st.sampled_from([b"\x00", b"\xff", b"\x80\x80", b""])))


def _toml(data: dict[str, Any]) -> bytes | None:
    try:
        return tomli_w.dumps(data).encode()
    except (TypeError, ValueError):
        return None  # not representable in TOML (e.g. an empty key path in a list of tables)


class _Collect:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def emit(self, alert: Alert) -> None:
        self.alerts.append(alert)


def _run_like_the_daemon(config: Config, state: Path) -> None:
    """Wire every camera's pipeline and motion detector from the config and feed them frames:
    what the daemon does with the numbers, without the model and the network."""
    checkpoint = (load_configured_checkpoint(config.temporal)
                  if config.temporal.decider == "temporal" else None)
    for camera in config.cameras:
        pipeline = build_camera_pipeline(
            camera, config, _Collect(), SnapshotWriter(state, config.events.snapshot_quality),
            checkpoint, with_snapshots=False,
        )
        for step in range(4):
            t = step / camera.detect_fps
            pipeline.process(make_detections(
                t, make_detection((10 + 5 * step, 40, 30 + 5 * step, 95)), camera=camera.name))
        pipeline.expire(100.0)
        assert pipeline.close(timeout_s=1.0)
        motion = MotionDetector(config.motion)
        for shade in range(config.motion.warmup_frames + 2):
            motion.update(np.full((120, 160, 3), shade * 20 % 256, dtype=np.uint8))


@settings(max_examples=1000, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutations=MUTATIONS, damage=BYTE_DAMAGE)
def test_every_mutated_config_is_an_error_line_or_runs(
    mutations: list[tuple[tuple[Any, ...], str, Any]], damage: tuple[int, bytes] | None
) -> None:
    data = copy.deepcopy(BASE)
    for path, operation, value in mutations:
        with contextlib.suppress(KeyError, IndexError, TypeError):
            _mutate(data, path, operation, value)
    text = _toml(data)
    if text is None:
        return
    if damage is not None:
        at, junk = damage
        at = min(at, len(text))
        text = text[:at] + junk + text[at:] if junk else text[:at]
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "monitor.toml"
        file.write_bytes(text)
        (Path(tmp) / "model.onnx").write_bytes(b"not read by check-config")
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["check-config", str(file)])
        output = err.getvalue()
        assert "Traceback" not in output
        assert code in (0, 2), output
        errors = [line for line in output.splitlines() if line.startswith("monitor: error: ")]
        if code == 2:
            assert errors, output
            for line in errors:
                # one line per problem, naming what is wrong, and no raw control character
                assert len(line) < 600 and line.isprintable(), repr(line)
            assert "secret" not in output  # the base config's camera password
            return
        _run_like_the_daemon(load_config(file), Path(tmp) / "snapshots")


NUMBER_TYPES = (int, float)


def _numeric_fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        options = (annotation, *get_args(annotation))
        sub = [o for o in options if isinstance(o, type) and issubclass(o, BaseModel)]
        if sub:
            found += _numeric_fields(sub[0], f"{prefix}{name}.")
        elif any(o in NUMBER_TYPES for o in options) and bool not in options:
            found.append((f"{prefix}{name}", field))
    return found


NUMERIC_FIELDS = _numeric_fields(Config)


@pytest.mark.parametrize(("name", "field"), NUMERIC_FIELDS, ids=[n for n, _ in NUMERIC_FIELDS])
def test_every_number_is_bounded_on_both_sides(name: str, field: Any) -> None:
    # An unbounded timeout overflows a thread's wait (1e300 s) or a C int (2**63 frames): the
    # config must refuse what the code cannot hold, not a thread at run time.
    kinds = {type(m).__name__ for m in field.metadata}
    assert kinds & {"Ge", "Gt"}, f"{name} has no lower bound"
    assert kinds & {"Le", "Lt"}, f"{name} has no upper bound"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b'[[cameras]]\nname = "a"\nurl = "rtsp://h/\x00"\n', "not valid TOML"),
        (b'[[cameras]]\nname = "a"\nurl = "rtsp://h/\\u0000"\n', "control character"),
        (b'[[cameras]]\nname = "a\xff"\nurl = "rtsp://h/"\n', "not UTF-8"),
        (b'[temporal]\ncheckpoint = "~nosuchuser/m.pt"\n[[cameras]]\nname = "a"\nurl = "rtsp://h/"\n',
         "no such user"),
        (b'[[cameras]]\nname = "a"\nurl = "rtsp://u:pw d@h/"\n', "whitespace"),
        (b'[[cameras]]\nname = "a"\nurl = "rtsp://h/"\n[[cameras.zones]]\nname = "z"\n'
         b"polygon = [[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]]\n", "no area"),
        (b'[mqtt]\nclient_id = "' + b"c" * 200 + b'"\n[[cameras]]\nname = "a"\nurl = "rtsp://h/"\n',
         "client_id"),
        (b'[source]\nreconnect_max_s = 1e300\n[[cameras]]\nname = "a"\nurl = "rtsp://h/"\n',
         "reconnect_max_s"),
        (b'[source]\nstall_timeout_s = nan\n[[cameras]]\nname = "a"\nurl = "rtsp://h/"\n',
         "stall_timeout_s"),
    ],
)
def test_what_the_probe_found_is_one_line_each(tmp_path: Path, text: bytes, expected: str) -> None:
    file = tmp_path / "monitor.toml"
    file.write_bytes(text)
    with pytest.raises(ConfigError) as raised:
        load_config(file)
    message = str(raised.value)
    assert expected in message
    assert message.isprintable(), repr(message)


def test_a_password_file_others_can_read_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = tmp_path / "mqtt-password"
    secret.write_text("pw\n")
    secret.chmod(0o644)
    file = tmp_path / "monitor.toml"
    file.write_text('[mqtt]\npassword_file = "mqtt-password"\n'
                    '[[cameras]]\nname = "a"\nurl = "rtsp://h/"\n')
    file.chmod(0o600)
    load_config(file)
    assert [r.message for r in caplog.records if "every user" in r.message] == [
        f"{secret}: mqtt.password_file holds a secret and every user of this machine can read "
        "it (mode 644); chmod o-r it"
    ]
    secret.chmod(0o600)
    caplog.clear()
    load_config(file)
    assert not [r for r in caplog.records if "every user" in r.message]
