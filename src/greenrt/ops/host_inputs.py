"""Inputs that op implementations read on the host (shapes, axes, sizes, loop counts), by ONNX op.

The runtime hands these positions a CPU copy, made once per constant or per shape specialization, so reading
them never synchronizes the GPU and never breaks CUDA-graph capture (onnxruntime's CUDA kernels declare the same
thing as OrtMemTypeCPUInput).
"""

from __future__ import annotations

_REDUCE = ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
           "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare")

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
    **{name: (1,) for name in _REDUCE},
}


def host_positions(domain: str, op_type: str) -> tuple[int, ...]:
    return HOST_INPUTS.get(op_type, ()) if domain in ("", "ai.onnx") else ()
