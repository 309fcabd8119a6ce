"""Facts about ONNX ops that more than one stage needs, in one table: which inputs an op reads on the host,
which ops have no reduced-precision form, which draw random numbers, which have value-dependent output shapes.

The passes, the precision rewrite, the runtime's shape specializer and the conformance tool all read these
tables; an op's entry changes in one place.
"""

from __future__ import annotations

_REDUCE = ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
           "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare")

# Inputs that op implementations read on the host (shapes, axes, sizes, loop counts). The runtime hands these
# positions a CPU copy, made once per constant or per shape specialization, so reading them never synchronizes the
# GPU and never breaks CUDA-graph capture (onnxruntime's CUDA kernels declare the same as OrtMemTypeCPUInput).
HOST_INPUTS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,),
    "Expand": (1,),
    "Tile": (1,),
    "Slice": (1, 2, 3, 4),
    "Pad": (1, 3),
    "Resize": (1, 2, 3),
    "Upsample": (1,),
    "ConstantOfShape": (0,),
    "Range": (0, 1, 2),
    "Unsqueeze": (1,),
    "Squeeze": (1,),
    "Split": (1,),
    "TopK": (1,),
    "OneHot": (1,),
    "CenterCropPad": (1,),
    "Trilu": (1,),
    "CumSum": (1,),
    "CumProd": (1,),
    "SplitToSequence": (1,),
    "SequenceAt": (1,),
    "SequenceInsert": (2,),
    "SequenceErase": (1,),
    "Col2Im": (1, 2),
    "AffineGrid": (1,),
    "NonMaxSuppression": (2, 3, 4),
    "DFT": (1, 2),
    "STFT": (1, 3),
    "HannWindow": (0,),
    "HammingWindow": (0,),
    "BlackmanWindow": (0,),
    "MelWeightMatrix": (0, 1, 2, 3, 4),
    "If": (0,),  # the branch is chosen on the host; a condition computed from shapes needs no sync
    **{name: (1,) for name in _REDUCE},
}

# Ops that draw random numbers: never constant-folded, never cached per shape, their conformance cases compare
# random draws (checked by dtype, shape and value domain, not by value).
RANDOM_OPS = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Bernoulli",
                        "Multinomial"})

# Ops whose output *shape* depends on input values (or that run subgraphs a data-dependent number of times).
DYNAMIC_SHAPE_OPS = frozenset({"NonZero", "Unique", "Compress", "NonMaxSuppression", "Loop", "If", "Scan",
                               "StringSplit", "SequenceMap", "TfIdfVectorizer"})

# Ops that read a device value on the host to run at all (a branch, a trip count, an output size): a CUDA graph
# cannot capture them. Scan's trip count comes from a shape, so it can.
HOST_SYNC_OPS = DYNAMIC_SHAPE_OPS - {"Scan"}

# Ops whose result depends only on their input's shape.
SHAPE_ONLY_OPS = frozenset({"Shape", "Size"})

# Ops kept at fp32 by the precision rewrite: float-only type constraints, dtype attributes, or numerics that need
# fp32 (and torch CPU kernels without half support, e.g. torch.fft).
FP32_ONLY_OPS = frozenset({
    "If", "Loop", "Scan",
    "NonMaxSuppression",
    *RANDOM_OPS, "EyeLike",
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul",
    "QConv", "QMatMul",  # greenrt's INT8 layers (ops/int8.py): integer inputs, their float epilogue stays fp32
    "DFT", "STFT", "HannWindow", "HammingWindow", "BlackmanWindow", "MelWeightMatrix",
    "NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss",
    "TfIdfVectorizer",  # float output whatever the input
    "BitCast",  # reinterprets the float32 bits
    "Adagrad", "Adam", "Momentum",  # optimizer state updates need fp32
    "Range",  # its output length is computed from the float inputs: bf16(3001) = 3008
    "Mod",  # fmod is discontinuous: a rounded divisor moves every wrap point
})

# Inputs that keep float32 whatever the node's precision (their type constraint is float-only, or they are
# coordinates/scales read on the host where rounding would change output sizes).
FP32_INPUTS: dict[str, frozenset[int]] = {
    "Resize": frozenset({1, 2}),
    "Upsample": frozenset({1}),
    "Dropout": frozenset({1}),
}

# Inputs whose dtype the op does not care about: they are read as they come, no Cast needed. Ops of greenrt's own
# domain are keyed "greenrt.Op": the fused attention converts its additive mask itself, clamped to the range of
# q's dtype, so an fp32 mask holding finfo(float32).min (BERT's export) keeps the attention in fp16.
DTYPE_AGNOSTIC_INPUTS: dict[str, frozenset[int]] = {
    "Shape": frozenset({0}),
    "Size": frozenset({0}),
    "Cast": frozenset({0}),
    "CastLike": frozenset({0}),
    "greenrt.ScaledDotProductAttention": frozenset({3}),
}


def host_positions(domain: str, op_type: str) -> tuple[int, ...]:
    """Input positions of a (domain, op_type) node that its implementation reads on the host."""
    return HOST_INPUTS.get(op_type, ()) if domain in ("", "ai.onnx") else ()
