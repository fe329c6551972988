"""The one way a shipped weights file is found and checked (both demo loaders use it)."""

from __future__ import annotations

import hashlib
from pathlib import Path


class DemoWeightsError(ValueError):
    """A demo weights file is missing or is not the one shipped (the demo nodes report it as theirs)."""


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def checked_weights(path: Path, expected_sha256: str | None, retrain: str) -> Path:
    """`path` if it exists and (when `expected_sha256` is given) has that sha256; `retrain` names the
    script that makes a new file."""
    if not path.is_file():
        raise DemoWeightsError(f"demo weights not found at {path}: restore models/demo/ from the repository.")
    if expected_sha256 is not None:
        got = sha256_of(path)
        if got != expected_sha256:
            raise DemoWeightsError(
                f"demo weights {path} have sha256 {got}, expected {expected_sha256}: the file is damaged or was "
                f"replaced; restore it from the repository, or retrain with {retrain} and update its sha256.")
    return path
