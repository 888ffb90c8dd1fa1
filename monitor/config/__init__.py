"""Validated configuration: TOML on disk -> pydantic models, one error line per problem.

Every threshold and timeout is a named field with its unit in the name. Unknown keys are errors
(with the closest known key suggested). Secrets may come from the environment or a ``*_file``
key; they never have to be written into the config file. The sections live beside the stage
they configure; ``load`` reads a file.
"""

from monitor.config.base import ConfigError
from monitor.config.cameras import CameraConfig, CrowdConfig, LineConfig, ZoneConfig
from monitor.config.clips import ClipsConfig
from monitor.config.detection import (
    DetectorConfig,
    MotionConfig,
    RegionsConfig,
    TrackerConfig,
)
from monitor.config.events import EventsConfig, ReviewsConfig, TemporalConfig
from monitor.config.load import load_config, load_database_url, parse_config, printable
from monitor.config.schema import Config
from monitor.config.service import (
    DaemonConfig,
    DatabaseConfig,
    HomeAssistantConfig,
    MetricsConfig,
    MqttConfig,
    RetentionConfig,
    SourceConfig,
    default_instance,
)

__all__ = [
    "CameraConfig", "ClipsConfig", "Config", "ConfigError", "CrowdConfig", "DaemonConfig", "DatabaseConfig",
    "DetectorConfig", "EventsConfig", "HomeAssistantConfig", "LineConfig", "MetricsConfig", "MotionConfig", "MqttConfig",
    "RegionsConfig", "RetentionConfig", "ReviewsConfig", "SourceConfig", "TemporalConfig",
    "TrackerConfig", "ZoneConfig", "default_instance", "load_config", "load_database_url",
    "parse_config", "printable",
]
