"""Op implementations over torch, one family per module, registered by ONNX name and opset.

FAMILIES is the explicit list of modules (TACTIC_MODULES those that only add tactics to their ops); ``load_all()``
imports them so that ``REGISTRY`` and the tactics are complete, and
``greenrt inspect ops`` prints what it holds.
"""

from __future__ import annotations

import importlib

from .registry import REGISTRY, OpContext, OpImpl, op

FAMILIES = (
    "elementwise",
    "unary",
    "activation",
    "logical",
    "reduce",
    "shape",
    "indexing",
    "matmul",
    "conv",
    "pool",
    "normalization",
    "cast",
    "generators",
    "control_flow",
    "sequence",
    "rnn",
    "image",
    "signal",
    "quantization",
    "strings",
    "misc",
    "attention",
    "ml",
    "training",
    "fused",
    "int8",
)
# modules that only add tactics (ops/tactics.py) to ops of the families above
TACTIC_MODULES = ("int8_cudnn", "int8_gemm")

_loaded = False


def load_all() -> None:
    global _loaded
    if _loaded:
        return
    for family in FAMILIES + TACTIC_MODULES:
        importlib.import_module(f"{__name__}.{family}")
    _loaded = True


__all__ = ["REGISTRY", "OpContext", "OpImpl", "op", "load_all", "FAMILIES", "TACTIC_MODULES"]
