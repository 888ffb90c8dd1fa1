"""The systemd unit and the watchdog contract between it and the daemon.

The unit is checked with the real ``systemd-analyze`` (``/usr/bin/systemd-analyze``: on the
reference machine and in CI; the tests fail, never skip, without it):

- ``security --offline=yes``: the overall exposure score stays at most ``MAX_EXPOSURE``.
- ``verify``: the unit parses without a warning. Verify insists that ExecStart's binary exists
  and that the default dependencies (sysinit.target, ...) can be loaded, and a build machine has
  no /opt/monitor, so it runs with ``--root`` on a throw-away root holding the unit, a copy of the
  host's unit directory and a stub ExecStart. The ``monitor`` user need not exist.
- The syscall filter, expanded with ``systemd-analyze syscall-filter``, still allows what the
  daemon needs (lowering capture threads' priority, thread pinning by torch/OpenMP).

The watchdog derivation (``WATCHDOG_USEC`` -> ping interval, ``worker_stall_s`` refused when not
below the timeout) is tested as pure functions, and once through the real CLI.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from monitor.config import ConfigError, DaemonConfig
from monitor.sdnotify import watchdog_timeout_s

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "systemd" / "monitor.service"
SYSTEMD_ANALYZE = "/usr/bin/systemd-analyze"
HOST_UNITS = Path("/usr/lib/systemd/system")
MAX_EXPOSURE = 2.0
# What the daemon or its libraries call and the filter must keep allowing.
NEEDED_SYSCALLS = ("setpriority", "getpriority", "nice", "sched_setaffinity", "mbind")
# What the filter is there to refuse.
REFUSED_SYSCALLS = ("setuid", "chown", "capset", "mount", "ptrace", "reboot", "init_module")


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    if not os.access(SYSTEMD_ANALYZE, os.X_OK):
        pytest.fail(f"{SYSTEMD_ANALYZE} not found: install systemd (apt-get install systemd)")
    env = {**os.environ, "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": "", "LC_ALL": "C.UTF-8"}
    return subprocess.run(
        [SYSTEMD_ANALYZE, "--no-pager", *args], capture_output=True, text=True,
        encoding="utf-8", errors="replace", env=env, timeout=60,
    )


def unit_values(key: str) -> list[str]:
    """Every value of ``key=`` in the unit, in order (comments skipped)."""
    pattern = re.compile(rf"^{re.escape(key)}=(.*)$")
    lines = UNIT.read_text(encoding="utf-8").splitlines()
    return [m.group(1).strip() for line in lines if (m := pattern.match(line.strip()))]


# --- the unit ---------------------------------------------------------------------------------


TEMPLATE = REPO / "systemd" / "monitor@.service"  # scale-out: one instance per daemon


def settings(unit: Path) -> list[str]:
    return [line.strip() for line in unit.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_the_template_is_the_unit_with_an_instance() -> None:
    """monitor@.service is monitor.service but for what names the instance (%i): hardening or
    a timeout changed in one file and not in the other would fail here."""
    unit, template = settings(UNIT), settings(TEMPLATE)
    assert [line for line in template if "%i" not in line] == [
        line for line in unit if not line.startswith(("StateDirectory=", "CacheDirectory=",
                                                      "Description=", "Environment=YOLO_CONFIG",
                                                      "Environment=MPLCONFIG"))]
    assert "Environment=MONITOR_INSTANCE=%i" in template
    assert "EnvironmentFile=/etc/monitor/%i.env" in template


@pytest.mark.parametrize("unit", [UNIT, TEMPLATE], ids=lambda u: u.name)
def test_security_exposure_is_at_most_2(unit: Path) -> None:
    result = analyze("security", "--offline=yes", str(unit))
    found = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert found, f"no exposure line (exit {result.returncode}):\n{result.stdout}{result.stderr}"
    score = float(found.group(1))
    failing = [line for line in result.stdout.splitlines() if line.startswith("✗")]
    assert score <= MAX_EXPOSURE, f"exposure {score} > {MAX_EXPOSURE}; failing:\n" + "\n".join(
        failing
    )


@pytest.mark.parametrize("unit, name", [(UNIT, UNIT.name), (TEMPLATE, "monitor@a.service")],
                         ids=["unit", "template"])
def test_unit_verifies(unit: Path, name: str, tmp_path: Path) -> None:
    if not HOST_UNITS.is_dir():
        pytest.fail(f"{HOST_UNITS} missing: systemd-analyze verify needs the host's units")
    root = tmp_path / "root"
    shutil.copytree(HOST_UNITS, root / HOST_UNITS.relative_to("/"), symlinks=True)
    for command in (unit_values("ExecStart")[0].split()[0], unit_values("ExecReload")[0].split()[0]):
        stub = root / command.lstrip("/")  # the programs the unit runs, as stubs in the root
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text("#!/bin/sh\n")
        stub.chmod(0o755)
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(unit, root / "etc/systemd/system" / unit.name)

    result = analyze("verify", f"--root={root}", "--man=no", name)
    # An unknown or misspelt directive is only a warning (exit 0): any output is a failure.
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


@cache
def syscalls_of(group: str) -> frozenset[str]:
    """The system calls of a ``@group`` (nested groups expanded) or of a single name."""
    if not group.startswith("@"):
        return frozenset({group})
    result = analyze("syscall-filter", group)
    assert result.returncode == 0, result.stderr
    members = [line.strip() for line in result.stdout.splitlines()[1:]]
    names: set[str] = set()
    for member in members:
        if member and not member.startswith("#"):
            names |= syscalls_of(member)
    return frozenset(names)


def allowed_syscalls() -> frozenset[str]:
    """What the unit's SystemCallFilter= lines allow: the allow-list minus every ``~`` line."""
    allowed: set[str] = set()
    for value in unit_values("SystemCallFilter"):
        deny = value.startswith("~")
        names = set().union(*(syscalls_of(item) for item in value.lstrip("~").split()))
        allowed = allowed - names if deny else allowed | names
    return frozenset(allowed)


def test_syscall_filter_keeps_what_the_daemon_needs() -> None:
    allowed = allowed_syscalls()
    assert set(NEEDED_SYSCALLS) <= allowed, set(NEEDED_SYSCALLS) - allowed
    assert not set(REFUSED_SYSCALLS) & allowed, set(REFUSED_SYSCALLS) & allowed
    # A refused call returns an error the libraries handle, rather than killing the daemon.
    assert unit_values("SystemCallErrorNumber") == ["EPERM"]


def test_unit_keeps_what_the_libraries_need() -> None:
    assert unit_values("UMask") == ["0027"]
    # torch/OpenVINO/ONNX Runtime generate code at run time; torch needs /proc/cpuinfo.
    assert not unit_values("MemoryDenyWriteExecute")
    assert not unit_values("ProcSubset")
    assert unit_values("RestrictAddressFamilies") == ["AF_UNIX AF_INET AF_INET6"]


def test_default_stall_and_ping_fit_the_units_watchdog() -> None:
    (watchdog,) = unit_values("WatchdogSec")
    timeout_s = float(watchdog)  # plain seconds in this unit
    defaults = DaemonConfig()
    assert defaults.worker_stall_s < timeout_s
    assert defaults.watchdog_ping_interval_s(timeout_s) <= timeout_s / 2


def test_the_stop_timeout_covers_the_longest_clean_stop_the_config_allows() -> None:
    # Found in review: TimeoutStopSec=15 SIGKILLed a stop the config allowed 60 s for.
    (stop,) = unit_values("TimeoutStopSec")
    longest_s = DaemonConfig.model_fields["shutdown_timeout_s"].metadata
    bound = next(getattr(m, "le") for m in longest_s if hasattr(m, "le"))
    assert float(stop) > bound


# --- the watchdog derivation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "expected_s"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 30.0),
        ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "4242"}, 0.5),
        # Inherited from a supervised parent: not our watchdog.
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": ""}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": ""}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "30s"}, None),
        ({"WATCHDOG_USEC": "3²"}, None),
        ({"WATCHDOG_USEC": "9" * 5000}, None),
        ({"WATCHDOG_PID": "4242"}, None),
    ],
)
def test_watchdog_timeout_from_the_environment(
    environ: dict[str, str], expected_s: float | None
) -> None:
    assert watchdog_timeout_s(environ, 4242) == expected_s


@pytest.mark.parametrize(
    ("interval_s", "stall_s", "timeout_s", "expected_s"),
    [
        (5.0, 20.0, None, 5.0),     # not under systemd's watchdog: as configured
        (5.0, 20.0, 30.0, 5.0),     # the unit's WatchdogSec=30
        (5.0, 4.0, 6.0, 3.0),       # half the timeout at most
        (5.0, 0.5, 1.0, 0.5),
        (5.0, 100.0, None, 5.0),    # nothing to compare the stall with
    ],
)
def test_ping_interval(
    interval_s: float, stall_s: float, timeout_s: float | None, expected_s: float
) -> None:
    config = DaemonConfig(watchdog_interval_s=interval_s, worker_stall_s=stall_s)
    assert config.watchdog_ping_interval_s(timeout_s) == expected_s


@pytest.mark.parametrize(("stall_s", "timeout_s"), [(30.0, 30.0), (60.0, 30.0), (20.0, 10.0)])
def test_stall_not_below_the_watchdog_is_refused(stall_s: float, timeout_s: float) -> None:
    config = DaemonConfig(worker_stall_s=stall_s)
    with pytest.raises(ConfigError) as raised:
        config.watchdog_ping_interval_s(timeout_s)
    message = str(raised.value)
    assert "\n" not in message
    assert f"daemon.worker_stall_s ({stall_s:g} s)" in message
    assert f"WatchdogSec, {timeout_s:g} s from WATCHDOG_USEC" in message


def test_run_refuses_a_stall_longer_than_the_watchdog(tmp_path: Path) -> None:
    """The real entry point, as systemd would start it with WatchdogSec=10: exit 2, one line,
    before anything is created."""
    state = tmp_path / "state"
    config = tmp_path / "monitor.toml"
    config.write_text(
        f'[daemon]\nstate_dir = "{state}"\n'
        '[[cameras]]\nname = "door"\nurl = "rtsp://127.0.0.1:9/never"\n',
        encoding="utf-8",
    )
    env = {**os.environ, "WATCHDOG_USEC": "10000000"}
    env.pop("WATCHDOG_PID", None)
    env.pop("NOTIFY_SOCKET", None)
    result = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "run", "--config", str(config)],
        capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("monitor: error:")]
    assert errors == [
        "monitor: error: daemon.worker_stall_s (20 s) must be less than systemd's watchdog "
        "timeout (WatchdogSec, 10 s from WATCHDOG_USEC): lower worker_stall_s or raise WatchdogSec"
    ], result.stderr
    assert not state.exists()
