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
    """The caller's math settings, to hand back to ``restore_math``."""
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


def set_engine_math(device: torch.device, precision: str | None) -> None:
    """Set the engine's settings (no restore: use ``engine_math`` unless you own the process)."""
    mode = "tf32" if precision == "tf32" else "ieee"
    if _has_precision_api():
        b = torch.backends
        b.cuda.matmul.fp32_precision = mode
        b.cudnn.conv.fp32_precision = mode
        b.cudnn.rnn.fp32_precision = mode
        for leaf in (b.mkldnn.matmul, b.mkldnn.conv, b.mkldnn.rnn):  # oneDNN may not run fp32 math in bf16
            leaf.fp32_precision = "ieee"
    else:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = mode == "tf32"
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


@contextlib.contextmanager
def engine_math(device: torch.device, precision: str | None) -> Iterator[None]:
    """Run the body under an engine's math settings; the caller's come back on exit, also after an error."""
    state = save_math()
    try:
        set_engine_math(device, precision)
        yield
    finally:
        restore_math(state)
