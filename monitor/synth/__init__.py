"""Labelled test clips with real people, composed from a fixed camera's footage.

People are cut out of the footage with the detector's boxes, pasted onto the median background
and moved to act out a fall, a run or loitering in a zone (and plain walking), so the temporal
classifier can be evaluated on pixels the real detector and tracker have to work through.
Entry point: :func:`monitor.synth.compose.generate_clips`.
"""

from monitor.synth.compose import generate_clips
from monitor.synth.settings import SynthSettings

__all__ = ["SynthSettings", "generate_clips"]
