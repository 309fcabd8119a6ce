"""Graph -> Graph rewrites, one per file, run as an explicit ordered list; each reports what it did.

    reports = optimize(model)            # in place, default pipeline
    for r in reports: print(r.name, r.count)
"""

from __future__ import annotations

import onnx_ir as ir

from .base import GraphPass, PassReport, RewritePass
from .dead_code import EliminateDeadCode
from .fold_batchnorm import FoldBatchNorm
from .fold_constants import FoldConstants
from .fold_conv_affine import FoldConvAffine
from .fold_pad_into_conv import FoldPadIntoConv
from .fuse_attention import FuseAttention
from .fuse_conv import FuseConvActivation
from .fuse_gelu import FuseGelu
from .fuse_hardswish import FuseHardActivations
from .fuse_layernorm import FuseLayerNorm
from .fuse_matmul import FuseMatMulBiasActivation
from .gather_to_slice import GatherToSlice
from .gemm_row_order import GemmRowOrder
from .import_integer import ImportIntegerLayers
from .import_qdq import ImportQuantized
from .remove_noops import RemoveNoops
from .simplify_reshape import SimplifyReshape


def default_pipeline() -> list[GraphPass]:
    """The order matters: clean up and fold first, then fuse bottom-up patterns, then sweep dead code. The quantized
    layers are imported before the first constant folding, which would dequantize their constant weights. The
    dynamically quantized ones (ConvInteger / MatMulInteger) are imported right after it: folding leaves them alone
    (their input is DynamicQuantizeLinear's runtime output) and turns their bias Reshape(B, shape) and Constant
    nodes into the constants the import reads."""
    return [
        RemoveNoops(),
        ImportQuantized(),
        FoldConstants(),
        ImportIntegerLayers(),
        SimplifyReshape(),
        EliminateDeadCode(),
        FoldConstants(),
        FoldPadIntoConv(),
        FoldBatchNorm(),
        FoldConvAffine(),
        GatherToSlice(),
        FuseGelu(),
        FuseHardActivations(),
        FuseLayerNorm(),
        FuseAttention(),
        FuseConvActivation(),
        FuseMatMulBiasActivation(),
        GemmRowOrder(),
        EliminateDeadCode(),
    ]


def optimize(model: ir.Model, passes: list[GraphPass] | None = None) -> list[PassReport]:
    """Run ``passes`` (default pipeline) over ``model`` in place; one report per pass, in order."""
    return [p(model) for p in (passes if passes is not None else default_pipeline())]


__all__ = ["GraphPass", "RewritePass", "PassReport", "optimize", "default_pipeline"]
