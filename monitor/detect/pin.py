"""Model files are code's neighbours: know exactly which one runs.

A detector model may be a ``.pt`` file, a ``.onnx`` file or an OpenVINO model directory. Its
SHA-256 may be pinned in config (``[detector] sha256``); a file that differs (replaced by someone
with write access to the model folder, damaged on disk, a different export) is refused before
anything reads it. ``.pt`` files are additionally loaded without running pickled code (see
``yolo.safe_yolo_class``): a pin guards the file, safe loading guards the loader.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20
MAX_MODEL_FILES = 100  # an OpenVINO export has three


class PinError(Exception):
    """The model's digest is not the pinned one; ``str()`` is one line naming both."""


def model_digest(path: Path) -> str:
    """The SHA-256 of a model file, or of a model directory (every file's relative path and
    digest, in sorted order: renaming, adding or changing any file changes it).

    Args:
        path: a file, or a directory such as ``best_openvino_model/``.

    Returns:
        64 lowercase hex digits.
    """
    if path.is_file():
        return _file_digest(path)
    files = []
    for file in path.rglob("*"):
        if file.is_file():
            files.append(file)
            if len(files) > MAX_MODEL_FILES:  # a model is a few files, not a file system
                raise PinError(f"{path}: more than {MAX_MODEL_FILES} files: not a model directory")
    digest = hashlib.sha256()
    for file in sorted(files):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        digest.update(_file_digest(file).encode() + b"\n")
    return digest.hexdigest()


def verify_pin(path: Path, expected: str | None, key: str) -> str:
    """The model's digest, after checking it against the pin when there is one.

    Raises:
        PinError: the digest differs from ``expected``.
    """
    actual = model_digest(path)
    if expected is not None and actual != expected.lower():
        raise PinError(f"{path}: SHA-256 is {actual}, but {key} pins {expected.lower()}: refusing it")
    return actual


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
