"""monitor: a security-camera monitoring daemon."""

__version__ = "0.1.0"
