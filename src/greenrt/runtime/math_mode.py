"""The torch math settings an engine runs under, set for the duration of a run and then restored.

fp32 means fp32: torch lets cuDNN convolutions use TF32 by default (about 1e-3 relative error), so fp32 engines
switch TF32 off and tf32 engines switch it on; on CUDA, cuDNN also times its algorithms per conv shape
(``cudnn.benchmark``, the per-layer kernel choice of a shape-specialized plan). These are process-wide flags in
torch, so ``engine_math`` saves the caller's settings, sets the engine's and restores the caller's on exit: a
session never changes the user's own torch code.

Saving and restoring go through torch's current precision API (``torch.backends.*.fp32_precision``), value for
value: restoring exactly what was there keeps whichever API the caller used working (mixing the legacy
``allow_tf32`` flags with the new API raises in recent torch; an exact restore never mixes them).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Iterator

import torch


def _precision_leaves() -> list[tuple[object, str]]:
    """(object, attribute) of every fp32_precision setting torch has, parents before children."""
    b = torch.backends
    names = [(b, ()), (b.cuda, ("matmul",)), (b.cudnn, ()), (b.cudnn, ("conv",)), (b.cudnn, ("rnn",)),
             (b.mkldnn, ()), (b.mkldnn, ("matmul",)), (b.mkldnn, ("conv",)), (b.mkldnn, ("rnn",))]
    out = []
    for root, path in names:
        obj = root
        for part in path:
            obj = getattr(obj, part, None)
        if obj is not None and hasattr(obj, "fp32_precision"):
            out.append((obj, "fp32_precision"))
    return out


def _has_precision_api() -> bool:
    return hasattr(torch.backends.cuda.matmul, "fp32_precision") and hasattr(torch.backends.cudnn, "conv")


def save_math() -> dict:
    """A full snapshot of the math settings, to hand back to ``restore_math`` (for tests and tools that change
    settings themselves; ``engine_math`` restores only what it changed)."""
    state: dict = {"cudnn.benchmark": torch.backends.cudnn.benchmark}
    if _has_precision_api():
        state["fp32_precision"] = [(obj, attr, getattr(obj, attr)) for obj, attr in _precision_leaves()]
    else:  # torch without the precision API: the legacy flags are the only ones
        state["allow_tf32"] = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    return state


def restore_math(state: dict) -> None:
    torch.backends.cudnn.benchmark = state["cudnn.benchmark"]
    for obj, attr, value in state.get("fp32_precision", ()):
        setattr(obj, attr, value)
    if "allow_tf32" in state:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = state["allow_tf32"]


# the settings an engine's math depends on, per device type: (backend module, leaf) with an fp32_precision
_LEAVES = {"cuda": (("cuda", "matmul"), ("cudnn", "conv"), ("cudnn", "rnn")),
           "cpu": (("mkldnn", "matmul"), ("mkldnn", "conv"), ("mkldnn", "rnn"))}


@functools.lru_cache(maxsize=None)
def _device_leaves(device_type: str) -> tuple:
    """The fp32_precision objects that matter on ``device_type`` (looked up once: torch.backends attribute access
    is slow)."""
    out = []
    for module, leaf in _LEAVES.get(device_type, ()):
        obj = getattr(getattr(torch.backends, module, None), leaf, None)
        if obj is not None and hasattr(obj, "fp32_precision"):
            out.append(obj)
    return tuple(out)


def _wanted(device: torch.device, precision: str | None) -> list[tuple[object, str]]:
    if device.type == "cuda":
        mode = "tf32" if precision == "tf32" else "ieee"
    else:
        mode = "ieee"  # oneDNN may not run an engine's fp32 math in bf16 or tf32
    return [(obj, mode) for obj in _device_leaves(device.type)]


def set_engine_math(device: torch.device, precision: str | None) -> list:
    """Set the engine's settings; returns what was changed, [(object, attribute, old value)], for
    ``undo_engine_math``. Only settings that differ are written (each torch.backends write costs microseconds)."""
    changed = []
    if _has_precision_api():
        for obj, mode in _wanted(device, precision):
            old = obj.fp32_precision
            if old != mode:
                changed.append((obj, "fp32_precision", old))
                obj.fp32_precision = mode
    elif device.type == "cuda":
        for obj in (torch.backends.cuda.matmul, torch.backends.cudnn):
            old = obj.allow_tf32
            changed.append((obj, "allow_tf32", old))
            obj.allow_tf32 = precision == "tf32"
    if device.type == "cuda" and not torch.backends.cudnn.benchmark:
        # cuDNN times its algorithms per conv shape on first use and keeps the fastest (shapes are fixed per CUDA
        # graph, so this is per-layer kernel selection)
        changed.append((torch.backends.cudnn, "benchmark", False))
        torch.backends.cudnn.benchmark = True
    return changed


def undo_engine_math(changed: list) -> None:
    for obj, attr, old in reversed(changed):
        setattr(obj, attr, old)


@contextlib.contextmanager
def engine_math(device: torch.device, precision: str | None) -> Iterator[None]:
    """Run the body under an engine's math settings; the caller's come back on exit, also after an error."""
    changed = set_engine_math(device, precision)
    try:
        yield
    finally:
        undo_engine_math(changed)
