"""Real models for the demo and the correctness corpus, exported to ONNX offline from pip-installable packages.

Each exporter writes MODEL.onnx into a cache folder (``GREENRT_CACHE`` or ~/.cache/greenrt/zoo) once and returns
its path; ``CORPUS`` lists them with the inputs to feed. Nothing is downloaded at run time.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    root = Path(os.environ.get("GREENRT_CACHE", Path.home() / ".cache" / "greenrt")) / "zoo"
    root.mkdir(parents=True, exist_ok=True)
    return root
