"""Camera zones: normalised polygons and the point-in-polygon test events use."""

from __future__ import annotations

from dataclasses import dataclass

from monitor.config import ZoneConfig


@dataclass(frozen=True, slots=True)
class Zone:
    """A named polygon with corners normalised to 0..1 of the frame."""

    name: str
    polygon: tuple[tuple[float, float], ...]

    @classmethod
    def from_config(cls, config: ZoneConfig) -> Zone:
        return cls(config.name, tuple((float(x), float(y)) for x, y in config.polygon))

    def contains(self, x: float, y: float, width: int, height: int) -> bool:
        """Whether pixel point (x, y) of a width x height frame lies inside (ray casting)."""
        px, py = x / width, y / height
        inside = False
        corners = self.polygon
        j = len(corners) - 1
        for i, (xi, yi) in enumerate(corners):
            xj, yj = corners[j]
            if (yi > py) != (yj > py) and px < (xj - xi) * (py - yi) / (yj - yi) + xi:
                inside = not inside
            j = i
        return inside
