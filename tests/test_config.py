"""Config validation: every problem is one line naming the key path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
import tomllib

import pytest

from typing import Any

from monitor.config import (
    ClipsConfig, ConfigError, EventsConfig, MotionConfig, RegionsConfig, ReviewsConfig, load_config,
    parse_config,
)

REPO = Path(__file__).resolve().parent.parent


def minimal(**overrides: object) -> dict:
    data: dict = {"cameras": [{"name": "cam1", "url": "rtsp://127.0.0.1:8554/cam1"}]}
    data.update(overrides)
    return data


def error_of(data: dict) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return str(info.value)


def test_example_config_is_valid() -> None:
    config = load_config(REPO / "config.example.toml")
    assert [c.name for c in config.cameras] == ["frontdoor", "yard"]
    assert config.cameras[0].zones[0].name == "porch"


def test_defaults() -> None:
    config = parse_config(minimal())
    assert config.detector.imgsz == 640
    assert config.mqtt.prefix == "monitor"
    assert config.events.confirm_frames >= 1


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (minimal(mqtt={"hots": "x"}), "mqtt.hots: unknown key (did you mean 'host'?)"),
        (minimal(mqtt={"port": 0}), "mqtt.port: Input should be greater than or equal to 1"),
        ({"cameras": []}, "cameras: List should have at least 1 item"),
        ({}, "cameras: Field required"),
        (
            {"cameras": [{"name": "a b", "url": "rtsp://h/x"}]},
            "cameras[0].name: must be letters, digits, '-' or '_'",
        ),
        (
            {"cameras": [{"name": "a", "url": "ftp://h/x"}]},
            "cameras[0].url: unsupported scheme 'ftp://'",
        ),
        (
            {"cameras": [{"name": "a", "url": "rtsp://h/x", "detect_fsp": 2}]},
            "cameras[0].detect_fsp: unknown key (did you mean 'detect_fps'?)",
        ),
        (
            {"cameras": [{"name": "a", "url": "rtsp://h/x"}, {"name": "a", "url": "rtsp://h/y"}]},
            "camera names must be unique, repeated: a",
        ),
        (
            {"cameras": [{"name": "a", "url": "rtsp://h/x",
                          "zones": [{"name": "z", "polygon": [[0, 0], [2, 0], [0, 1]]}]}]},
            "cameras[0].zones[0].polygon: corner [2.0, 0.0] is outside 0..1",
        ),
        (minimal(events={"end_after_s": -1}), "events.end_after_s: Input should be greater than 0"),
        (
            minimal(database={"url": "postgres://u:pw@h/db"}),
            "database.url: unsupported database URL 'postgres://u:***@h/db'",
        ),
        ({"cameras": [{"name": "a", "url": "rtsp://"}]}, "cameras[0].url: 'rtsp://' has no host"),
        (
            {"cameras": [{"name": "a", "url": "rtsp://admin:p/ss@10.0.0.5/s"}]},
            "cameras[0].url: the host part ends in a port that is not a number; "
            "a password containing '/' must be written as %2F",
        ),
        (
            {"cameras": [{"name": "a", "url": "rtsp//admin:secret@10.0.0.5/s"}]},
            "no such video file: rtsp//admin:***@10.0.0.5/s (a camera URL needs rtsp://",
        ),
        (
            minimal(mqtt={"password_file": "/nonexistent/pw"}),
            "mqtt.password_file: Path does not point to a file",
        ),
        (
            minimal(source={"reconnect_initial_s": 60, "reconnect_max_s": 30}),
            "source: reconnect_initial_s (60.0) must not exceed reconnect_max_s (30.0)",
        ),
        (
            minimal(daemon={"shutdown_timeout_s": 2, "outbox_flush_timeout_s": 3}),
            "daemon: outbox_flush_timeout_s (3.0) must be less than shutdown_timeout_s (2.0)",
        ),
    ],
)
def test_errors_name_the_key(data: dict, expected: str) -> None:
    message = error_of(data)
    assert expected in message
    assert "Traceback" not in message


def test_every_problem_is_one_line() -> None:
    message = error_of(minimal(mqtt={"port": "x", "prefx": "a"}))
    lines = message.splitlines()
    assert len(lines) == 2
    assert any(line.startswith("mqtt.port:") for line in lines)
    assert any(line.startswith("mqtt.prefx: unknown key") for line in lines)


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    video = tmp_path / "clips" / "a.avi"
    video.parent.mkdir()
    video.write_bytes(b"x")
    path = tmp_path / "conf" / "monitor.toml"
    path.parent.mkdir()
    path.write_text(
        '[daemon]\nstate_dir = "state"\n[[cameras]]\nname = "a"\nurl = "../clips/a.avi"\n'
    )
    config = load_config(path)
    assert config.cameras[0].url == str(video)
    assert config.daemon.state_dir == path.parent / "state"
    assert config.database_url() == f"sqlite:///{path.parent / 'state' / 'monitor.db'}"


def test_password_from_file_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    config = parse_config(minimal(mqtt={"password_file": str(secret)}))
    assert config.mqtt.resolved_password() == "s3cret"
    monkeypatch.setenv("MONITOR_MQTT_PASSWORD", "fromenv")
    assert config.mqtt.resolved_password() == "fromenv"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_check_config_cli(tmp_path: Path) -> None:
    ok = run_cli("check-config", str(REPO / "config.example.toml"))
    assert ok.returncode == 0, ok.stderr
    assert "OK (2 camera(s), detector " in ok.stdout
    assert "best.pt sha256 5f6f620d0fa574ed80d8348bb8d46060148eb0ba24e3eea00d31a30cdadba41d, " \
        "classes person, temporal model" in ok.stdout

    # The model is loaded (safely) for its classes: a label it never produces is a config error.
    cars = tmp_path / "cars.toml"
    cars.write_text('[[cameras]]\nname = "a"\nurl = "rtsp://h/x"\nlabels = ["car"]\n')
    result = run_cli("check-config", str(cars))
    assert result.returncode == 2, result.stderr
    assert "camera a: labels 'car' are never detected by" in result.stderr

    bad = tmp_path / "bad.toml"
    bad.write_text('[[cameras]]\nname = "a"\nurl = "rtsp://u:pw@h/x"\n[mqtt]\nport = "x"\n')
    result = run_cli("check-config", str(bad))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "monitor: error: mqtt.port: Input should be a valid integer, "
        "unable to parse string as an integer"
    )

    broken = tmp_path / "broken.toml"
    broken.write_text("[mqtt\n")
    result = run_cli("check-config", str(broken))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "not valid TOML" in result.stderr

    missing = run_cli("check-config", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2
    assert "cannot read config" in missing.stderr


def test_urls_take_secrets_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "monitor.toml"
    path.write_text(
        '[database]\nurl = "postgresql+psycopg://monitor:${DB_PW}@db/monitor"\n'
        '[[cameras]]\nname = "a"\nurl = "rtsp://viewer:${CAM_PW}@10.0.0.5/s"\n'
    )
    monkeypatch.setenv("DB_PW", "dbsecret")
    monkeypatch.setenv("CAM_PW", "camsecret")
    config = load_config(path)
    assert config.cameras[0].url == "rtsp://viewer:camsecret@10.0.0.5/s"
    assert config.database.url == "postgresql+psycopg://monitor:dbsecret@db/monitor"

    monkeypatch.delenv("CAM_PW")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == "cameras[0].url: environment variable CAM_PW is not set"


def test_events_query_needs_no_camera_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.config import load_database_url

    path = tmp_path / "monitor.toml"
    path.write_text(
        '[daemon]\nstate_dir = "state"\n'
        '[[cameras]]\nname = "a"\nurl = "rtsp://viewer:${CAM_PW}@10.0.0.5/s"\n'
    )
    monkeypatch.delenv("CAM_PW", raising=False)
    assert load_database_url(path) == f"sqlite:///{tmp_path / 'state' / 'monitor.db'}"


def test_motion_and_region_settings_are_validated() -> None:
    assert "motion.blur_px: must be odd (Gaussian kernel), got 4" in error_of(minimal(motion={"blur_px": 4}))
    assert "detector.regions.max_fraction" in error_of(minimal(detector={"regions": {"max_fraction": 0}}))
    assert "detector.regions.margn: unknown key (did you mean 'margin'?)" in error_of(
        minimal(detector={"regions": {"margn": 0.2}}))


def test_the_example_shows_every_motion_and_region_key_at_its_default() -> None:
    raw = tomllib.loads((REPO / "config.example.toml").read_text())
    assert set(raw["motion"]) == set(MotionConfig.model_fields)
    assert set(raw["detector"]["regions"]) == set(RegionsConfig.model_fields)
    example = load_config(REPO / "config.example.toml")
    defaults = parse_config(minimal())
    assert example.motion == defaults.motion
    assert example.detector.regions == defaults.detector.regions


def test_the_example_shows_every_events_and_reviews_key_at_its_default() -> None:
    raw = tomllib.loads((REPO / "config.example.toml").read_text())
    assert set(raw["events"]) == set(EventsConfig.model_fields)
    assert set(raw["reviews"]) == set(ReviewsConfig.model_fields)
    example = load_config(REPO / "config.example.toml")
    defaults = parse_config(minimal())
    assert example.events == defaults.events
    assert example.reviews == defaults.reviews


@pytest.mark.parametrize(
    ("camera", "expected"),
    [
        ({"labels": ["motion"]}, "label 'motion' is reserved"),
        ({"labels": ["person", "person"]}, "labels must be unique"),
        ({"zones": [{"name": "yard\n", "polygon": [[0, 0], [1, 0], [1, 1]]}]},
         "zones[0].name: holds the control character '\\n'"),
        ({"zones": [{"name": "y" * 65, "polygon": [[0, 0], [1, 0], [1, 1]]}]}, "at most 64"),
        ({"labels": ["p" * 65]}, "at most 64"),
        ({"zones": [{"name": "front door", "polygon": [[0, 0], [1, 0], [1, 1]]}]}, "zone name"),
        ({"zones": [{"name": "status", "polygon": [[0, 0], [1, 0], [1, 1]]}]}, "is reserved"),
        ({"name": "reviews"}, "is reserved"),
    ],
)
def test_names_that_would_break_topics_are_refused(camera: dict[str, Any], expected: str) -> None:
    data = minimal()
    data["cameras"][0].update(camera)
    assert expected in error_of(data)


def test_review_kinds_must_be_event_kinds() -> None:
    assert "unknown event kind 'fal'" in error_of(minimal(reviews={"alert_kinds": ["fal"]}))


def test_review_alert_zones_must_be_zones() -> None:
    data = minimal(reviews={"alert_zones": ["porch"]})
    data["cameras"][0]["zones"] = [{"name": "yard", "polygon": [[0, 0], [1, 0], [1, 1]]}]
    assert "reviews.alert_zones names no zone of any camera: porch (zones: yard)" in error_of(data)


@pytest.mark.parametrize(
    ("section", "key"),
    [("cameras", "url"), ("detector", "model"), ("mqtt", "password_file"),
     ("temporal", "checkpoint"), ("daemon", "state_dir")],
)
def test_a_path_the_system_cannot_hold_is_a_config_error(
    tmp_path: Path, section: str, key: str
) -> None:
    # Found by tests/test_config_fuzz.py: a 1 000-character camera url made stat() raise
    # ENAMETOOLONG, which check-config reported with exit 1 (a fault) instead of 2 (bad config).
    long_path = "a" * 1000
    data = minimal()
    if section == "cameras":
        data["cameras"][0]["url"] = long_path
    else:
        data[section] = {key: long_path}
    path = tmp_path / "monitor.toml"
    import tomli_w
    path.write_text(tomli_w.dumps(data))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert key in message and "too long" in message and "\n" not in message


def test_the_example_shows_every_clips_key_at_its_default() -> None:
    raw = tomllib.loads((REPO / "config.example.toml").read_text())
    assert set(raw["clips"]) | {"dir"} == set(ClipsConfig.model_fields)
    assert load_config(REPO / "config.example.toml").clips == parse_config(minimal()).clips


def test_clips_default_on_under_the_state_dir(tmp_path: Path) -> None:
    path = tmp_path / "monitor.toml"
    path.write_text('[daemon]\nstate_dir = "state"\n[[cameras]]\nname = "a"\nurl = "rtsp://h/a"\n')
    config = load_config(path)
    assert config.clips.enabled
    assert (config.clips.pre_roll_s, config.clips.post_roll_s, config.clips.fps) == (5.0, 5.0, 5.0)
    assert config.clips_dir() == tmp_path / "state" / "clips"


def test_a_relative_clips_dir_is_relative_to_the_file(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "monitor.toml"
    path.parent.mkdir()
    path.write_text('[clips]\ndir = "../videos"\n[[cameras]]\nname = "a"\nurl = "rtsp://h/a"\n')
    assert load_config(path).clips_dir() == tmp_path / "videos"


@pytest.mark.parametrize(
    ("clips", "expected"),
    [
        ({"pre_roll_s": -1}, "clips.pre_roll_s: Input should be greater than or equal to 0"),
        ({"post_roll_s": 61}, "clips.post_roll_s: Input should be less than or equal to 60"),
        ({"fps": 0}, "clips.fps: Input should be greater than 0"),
        ({"max_width_px": 10}, "clips.max_width_px: Input should be greater than or equal to 64"),
        ({"memory_limit_mb": 0}, "clips.memory_limit_mb: Input should be greater than or equal to 1"),
        ({"queue_size": 0}, "clips.queue_size: Input should be greater than or equal to 1"),
        ({"max_width": 640}, "clips.max_width: unknown key (did you mean 'max_width_px'?)"),
        ({"enabled": "yes please"}, "clips.enabled: Input should be a valid boolean"),
        ({"pre_roll_s": 10, "max_length_s": 8},
         "clips: max_length_s (8) must be more than pre_roll_s (10)"),
    ],
)
def test_bad_clip_settings_name_the_key(clips: dict[str, Any], expected: str) -> None:
    message = error_of(minimal(clips=clips))
    assert expected in message, message
    assert "\n" not in message


def test_a_clips_dir_too_long_for_the_store_is_refused() -> None:
    message = error_of(minimal(clips={"dir": "/" + "d/" * 480}))
    assert "clips.dir: " in message, message
    assert "characters long" in message
