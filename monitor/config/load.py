"""Reading a config file: TOML, secrets from the environment, paths relative to the file, and one
error line per problem (with the closest known key suggested for a typo)."""

from __future__ import annotations

import difflib
import logging
import os
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from monitor.config.base import ConfigError, path_too_long
from monitor.config.ownership import apply_environment
from monitor.config.schema import Config, _database_url
from monitor.config.service import DaemonConfig, DatabaseConfig
from monitor.redact import redact, redact_url

log = logging.getLogger(__name__)


def _known_fields(model: type[BaseModel], path: tuple[Any, ...]) -> list[str]:
    """The field names valid at ``path`` (list indexes skipped), for 'did you mean' hints."""
    current: Any = model
    for part in path:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        annotation = field.annotation
        for arg in (annotation, *getattr(annotation, "__args__", ())):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                current = arg
                break
        else:
            return []
    return list(getattr(current, "model_fields", {}))


def _format_error(err: ErrorDetails) -> str:
    loc = tuple(err["loc"])
    path = printable(
        ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")
    )
    if err["type"] == "extra_forbidden":
        known = _known_fields(Config, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"{path}: unknown key{hint}"
    # Any message may quote a value, and any value may be a URL with a password in it.
    message = printable(redact(str(err["msg"]).removeprefix("Value error, ")))
    return f"{path or '(top level)'}: {message}"


def parse_config(data: dict[str, Any]) -> Config:
    """Validate a config mapping. Raises ConfigError whose lines each name one key path."""
    if problems := _control_characters(data):
        raise ConfigError("\n".join(problems))
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("\n".join(_format_error(e) for e in exc.errors())) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML config file. Raises ConfigError with a one-line reason per problem."""
    path = Path(path)
    data = _read_toml(path)
    _expand_secrets(data)
    if problems := _control_characters(data):  # before any of them reaches a file name
        raise ConfigError("\n".join(problems))
    _resolve_paths(data, path.parent)
    apply_environment(data, os.environ)  # one file for every instance of a template unit
    config = parse_config(data)
    for warning in _exposed_secrets(config, path):
        log.warning("%s", warning)
    return config


# Tab is the one control character a value may hold (TOML allows it in strings; a password may
# have one). Every other is a typo or an attack: a NUL ends a C string early (FFmpeg, SQLite
# paths), a newline forges a log line, an escape code rewrites the operator's terminal.
# Bidirectional overrides count too: they make a value read differently from what it is.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with every character a terminal would not show as itself escaped (``\\x80``)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _control_characters(data: Any, path: str = "") -> list[str]:
    """One line per string (key or value) in ``data`` holding a control character."""
    problems: list[str] = []
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        where = f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}" if path else str(key)
        if isinstance(key, str) and (found := _CONTROL.search(key)):
            problems.append(f"{printable(redact(where))}: a key holds the control character "
                            f"{found[0]!r}")
        elif isinstance(value, str) and (found := _CONTROL.search(value)):
            problems.append(f"{printable(where)}: holds the control character {found[0]!r} at position "
                            f"{found.start()}")
        else:
            problems.extend(_control_characters(value, where))
    return problems


def _exposed_secrets(config: Config, path: Path) -> list[str]:
    """Warnings for files that hold a secret and that other users of the machine may read."""
    files = []
    if config.mqtt.password is not None or any(_has_password(c.url) for c in config.cameras) or \
            _has_password(config.database.url):
        files.append(("the config file", path))
    if config.mqtt.password_file is not None:
        files.append(("mqtt.password_file", config.mqtt.password_file))
    if config.mqtt.tls_key_file is not None:
        files.append(("mqtt.tls_key_file", config.mqtt.tls_key_file))
    warnings = []
    for what, file in files:
        try:
            mode = file.stat().st_mode
        except OSError:
            continue
        if mode & 0o004:
            warnings.append(f"{file}: {what} holds a secret and every user of this machine can "
                            f"read it (mode {mode & 0o777:o}); chmod o-r it")
    return warnings


def _has_password(url: str) -> bool:
    return redact_url(url) != url


def load_database_url(path: str | Path) -> str:
    """The database URL of a config file, reading only ``[daemon]`` and ``[database]``.

    ``monitor events`` uses this: a query must not need the cameras' secrets or footage.
    """
    path = Path(path)
    data = _read_toml(path)
    subset: dict[str, Any] = {k: data[k] for k in ("daemon", "database") if k in data}
    _expand_secrets(subset)
    _resolve_paths(subset, path.parent)
    try:
        daemon = DaemonConfig.model_validate(subset.get("daemon", {}))
        database = DatabaseConfig.model_validate(subset.get("database", {}))
    except ValidationError as exc:
        raise ConfigError("\n".join(_format_error(e) for e in exc.errors())) from None
    return _database_url(database.url, daemon.state_dir)


_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand_env(value: str, key: str) -> str:
    """Replace ``${NAME}`` with the environment variable NAME, so credentials in camera and
    database URLs can live in the environment (systemd's EnvironmentFile) instead of the file."""

    def lookup(match: re.Match[str]) -> str:
        name = match[1]
        if name not in os.environ:
            raise ConfigError(f"{key}: environment variable {name} is not set")
        return os.environ[name]

    return _ENV_REFERENCE.sub(lookup, value)


def _expand_secrets(data: dict[str, Any]) -> None:
    database = data.get("database")
    if isinstance(database, dict) and isinstance(database.get("url"), str):
        database["url"] = _expand_env(database["url"], "database.url")
    cameras = data.get("cameras")
    for index, camera in enumerate(cameras if isinstance(cameras, list) else []):
        if isinstance(camera, dict) and isinstance(camera.get("url"), str):
            camera["url"] = _expand_env(camera["url"], f"cameras[{index}].url")


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a folder this user may not enter: not "beside the config" as far as we know
        return False


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    """Relative paths in a config file mean "relative to the file", so the daemon, the CLI and
    systemd agree whatever their working directory; ``~`` is expanded."""

    def resolve(value: str, key: str) -> str:
        try:
            expanded = Path(value).expanduser()
        except RuntimeError:  # "~nosuchuser/..."
            raise ConfigError(f"'{value}': cannot expand '~': no such user") from None
        absolute = expanded if expanded.is_absolute() else base / expanded
        if (problem := path_too_long(str(absolute))) is not None:
            raise ConfigError(f"{key}: {problem}")
        if expanded.is_absolute():
            # As written: stored snapshot paths are compared as strings by retention, so a
            # symlinked state_dir must keep its spelling.
            return str(expanded)
        try:
            return str(absolute.resolve())
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
            raise ConfigError(f"{key}: cannot resolve '{value}': {exc}") from None

    cameras = data.get("cameras")
    for index, camera in enumerate(cameras if isinstance(cameras, list) else []):
        url = camera.get("url") if isinstance(camera, dict) else None
        if isinstance(url, str) and url and "://" not in url:
            camera["url"] = resolve(url, f"cameras[{index}].url")
    detector = data.get("detector")
    model = detector.get("model") if isinstance(detector, dict) else None
    if isinstance(detector, dict) and isinstance(model, str) and model and (
        model.startswith(("~", "."))
        or path_too_long(str(base / model)) is not None  # resolve() names the problem
        or _exists(base / model)
    ):  # a model beside the config; otherwise a package path or an ultralytics name
        detector["model"] = resolve(model, "detector.model")
    for key in ("export_dir", "calibration"):
        if isinstance(detector, dict) and isinstance(detector.get(key), str):
            detector[key] = resolve(detector[key], f"detector.{key}")
    mqtt = data.get("mqtt")
    for key in ("password_file", "tls_ca_file", "tls_cert_file", "tls_key_file"):
        if isinstance(mqtt, dict) and isinstance(mqtt.get(key), str):
            mqtt[key] = resolve(mqtt[key], f"mqtt.{key}")
    temporal = data.get("temporal")
    if isinstance(temporal, dict) and isinstance(temporal.get("checkpoint"), str):
        temporal["checkpoint"] = resolve(temporal["checkpoint"], "temporal.checkpoint")
    daemon = data.get("daemon")
    if isinstance(daemon, dict) and isinstance(daemon.get("state_dir"), str):
        daemon["state_dir"] = resolve(daemon["state_dir"], "daemon.state_dir")
    clips = data.get("clips")
    if isinstance(clips, dict) and isinstance(clips.get("dir"), str):
        clips["dir"] = resolve(clips["dir"], "clips.dir")
