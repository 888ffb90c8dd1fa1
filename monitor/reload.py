"""What a reloaded config (SIGHUP) changes in a running daemon: cameras come and go; the rest
waits for a restart.

Cameras are independent of each other, so adding one (a capture thread, a pipeline, a slot in
the inference loop) or removing one (its open events end, its counts go to zero) is safe while
the others run. The detector, the store, the broker connection and the event settings are shared
by every camera: changing them under running pipelines would mix two configurations in one
event, so such changes are named in the log and applied at the next restart.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.config import CameraConfig, Config


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """The difference between the running config and a newly read one.

    Attributes:
        removed: names of cameras to stop (gone, or changed: stopped and started again).
        added: cameras to start (new, or changed).
        needs_restart: sections outside ``[[cameras]]`` that differ (kept as they run).
    """

    removed: tuple[str, ...]
    added: tuple[CameraConfig, ...]
    needs_restart: tuple[str, ...]

    @property
    def changes_cameras(self) -> bool:
        return bool(self.removed or self.added)


def plan_reload(running: Config, loaded: Config) -> ReloadPlan:
    """Compare two validated configs.

    Args:
        running: the config the daemon runs with.
        loaded: the config just read from the file.

    Returns:
        Which cameras to stop and start, and which other sections changed.
    """
    before = {camera.name: camera for camera in running.cameras}
    after = {camera.name: camera for camera in loaded.cameras}
    removed = tuple(name for name, camera in before.items() if after.get(name) != camera)
    added = tuple(camera for name, camera in after.items() if before.get(name) != camera)
    sections = [name for name in type(running).model_fields if name != "cameras"]
    needs_restart = tuple(s for s in sections if getattr(running, s) != getattr(loaded, s))
    return ReloadPlan(removed, added, needs_restart)
