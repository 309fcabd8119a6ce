"""The build's JSON files (timing cache, calibration cache): read with one clear error, written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import GreenrtError


def read_json(path: Path, what: str, remedy: str) -> Any:
    """``path`` parsed; a GreenrtError naming ``what`` it is and the ``remedy`` where it cannot be read."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GreenrtError(f"{what} {path}: not readable as JSON ({exc}); {remedy}") from None


def write_json(path: Path, data: Any) -> Path:
    """``data`` as indented JSON in ``path``, through a temporary file: a crash mid-write never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)
    return path
