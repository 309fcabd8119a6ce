"""The user's own code named on the command line as ``pkg.module:function`` (--calib, --metric, --torch-module):
imported from the user's path when they ask for it, never from a model or an engine file."""

from __future__ import annotations

import importlib
from typing import Callable

from ..errors import GreenrtError


def load_callable(spec: str, option: str, form: str, error: type[GreenrtError] = GreenrtError) -> Callable:
    """``'pkg.module:function'`` -> the function; ``error`` naming ``option`` where the spec is not of that form
    (``form`` says what is expected), the module does not import, or it holds no such callable."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise error(f"{option} {spec!r}: {form}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise error(f"{option} {spec!r}: cannot import {module_name!r} ({exc})") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise error(f"{option} {spec!r}: {module_name} has no callable {attr!r}")
    return fn
