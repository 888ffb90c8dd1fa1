"""Which cameras a daemon runs: ``[daemon] cameras``, ``[daemon] shard = "i/n"``, their
environment overrides, and the errors an operator gets for a wrong value."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.config import ConfigError, load_config, parse_config
from monitor.config.ownership import SHARD_COUNT_MAX, Shard, camera_shard, parse_shard
from tests.support.daemon import write_config

NAMES = ["gate", "yard", "porch", "garage", "drive", "lobby", "dock", "front-door"]


def config_with(daemon: dict[str, object], names: list[str] = NAMES) -> dict[str, object]:
    return {"daemon": daemon,
            "cameras": [{"name": n, "url": f"rtsp://127.0.0.1:9/{n}"} for n in names]}


def owned_names(daemon: dict[str, object], names: list[str] = NAMES) -> list[str]:
    return [c.name for c in parse_config(config_with(daemon, names)).owned().cameras]


def test_shards_split_the_cameras_each_to_exactly_one_daemon() -> None:
    names = [f"camera-{i}" for i in range(200)]
    for count in (1, 2, 3, 5, 8):
        shares = [owned_names({"shard": f"{i}/{count}"}, names) for i in range(count)]
        assert sorted(n for share in shares for n in share) == sorted(names)
        if count > 1:  # a hash, not "the first half": every shard gets a fair share
            assert min(len(s) for s in shares) >= len(names) / count / 2


def test_a_cameras_shard_is_the_same_in_every_process() -> None:
    # Python's own hash() of a str is salted per process: two daemons would disagree.
    code = ("from monitor.config.ownership import camera_shard; "
            "print([camera_shard(n, 7) for n in ['gate', 'yard', 'porch', 'garage']])")
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={"PYTHONHASHSEED": seed}).stdout
            for seed in ("1", "2", "3")}
    assert runs == {str([camera_shard(n, 7) for n in ["gate", "yard", "porch", "garage"]]) + "\n"}


def test_no_ownership_keys_runs_every_camera() -> None:
    assert owned_names({}) == NAMES


def test_explicit_camera_list() -> None:
    assert owned_names({"cameras": ["yard", "gate"]}) == ["gate", "yard"]  # the file's order


@pytest.mark.parametrize("daemon, expected", [
    ({"cameras": ["gate", "nope"]}, "daemon.cameras: no camera named nope in [[cameras]]"),
    ({"cameras": ["gate"], "shard": "0/2"}, "set cameras or shard, not both"),
    ({"shard": "2/2"}, "shard index 2: from 0 to 1 of 2"),
    ({"shard": "0/0"}, "shard count 0: from 1 to 1024"),
    ({"shard": "half"}, "'half' is not a shard: write \"i/n\""),
    ({"shard": "-1/2"}, "is not a shard"),
    ({"cameras": []}, "daemon.cameras"),
])
def test_bad_ownership_is_one_line_naming_the_key(daemon: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(config_with(daemon))
    message = str(caught.value)
    assert expected in message
    assert len(message.splitlines()) == 1
    assert message.removeprefix("(top level): ").startswith("daemon")


def test_an_empty_shard_is_allowed() -> None:
    names = ["gate", "porch"]  # both in shard 0 of 2
    assert owned_names({"shard": "1/2"}, names) == []
    assert owned_names({"shard": "0/2"}, names) == names


@given(st.text(max_size=30))
def test_any_shard_text_is_a_shard_or_a_value_error(text: str) -> None:
    try:
        shard = parse_shard(text)
    except ValueError as exc:
        assert "\n" not in str(exc)
        return
    assert 0 <= shard.index < shard.count <= SHARD_COUNT_MAX
    assert parse_shard(str(shard)) == shard


@given(st.integers(1, SHARD_COUNT_MAX).flatmap(
    lambda n: st.tuples(st.integers(0, n - 1), st.just(n))))
def test_every_valid_shard_round_trips(index_count: tuple[int, int]) -> None:
    index, count = index_count
    assert parse_shard(f" {index} / {count} ") == Shard(index, count)


@given(st.text(min_size=1, max_size=64), st.integers(1, 64))
def test_every_name_falls_in_one_shard(name: str, count: int) -> None:
    owners = [i for i in range(count) if Shard(i, count).owns(name)]
    assert owners == [camera_shard(name, count)]


def test_environment_replaces_the_files_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cameras = [{"name": n, "url": f"rtsp://127.0.0.1:9/{n}"} for n in NAMES]
    path = write_config(tmp_path / "monitor.toml",
                        {"daemon": {"instance": "a", "cameras": ["gate"]}}, cameras)
    monkeypatch.setenv("MONITOR_INSTANCE", "b")
    monkeypatch.setenv("MONITOR_SHARD", "1/2")
    config = load_config(path)
    assert config.daemon.instance == "b"
    assert config.daemon.shard == "1/2" and config.daemon.cameras is None  # the env's choice
    assert [c.name for c in config.owned().cameras] == owned_names({"shard": "1/2"})
    monkeypatch.delenv("MONITOR_SHARD")
    monkeypatch.setenv("MONITOR_CAMERAS", " yard , porch,")
    assert [c.name for c in load_config(path).owned().cameras] == ["yard", "porch"]
    monkeypatch.setenv("MONITOR_CAMERAS", "attic")
    with pytest.raises(ConfigError, match="daemon.cameras: no camera named attic"):
        load_config(path)
    monkeypatch.delenv("MONITOR_CAMERAS")
    monkeypatch.setenv("MONITOR_INSTANCE", "bad name")
    with pytest.raises(ConfigError, match="daemon.instance"):
        load_config(path)
    monkeypatch.setenv("MONITOR_INSTANCE", "a\u202eb")  # a bidirectional override
    with pytest.raises(ConfigError, match="daemon.instance"):
        load_config(path)


def test_check_config_lists_the_cameras_this_daemon_runs(tmp_path: Path) -> None:
    cameras = [{"name": n, "url": f"rtsp://127.0.0.1:9/{n}"} for n in ["gate", "yard", "porch"]]
    path = write_config(tmp_path / "monitor.toml",
                        {"daemon": {"shard": "0/2"}},
                        cameras)
    done = subprocess.run([sys.executable, "-m", "monitor.cli", "check-config", str(path)],
                          capture_output=True, text=True, )
    assert done.returncode == 0, done.stderr
    assert "this daemon runs 2 of the 3 camera(s) (shard 0/2): gate, porch" in done.stdout
