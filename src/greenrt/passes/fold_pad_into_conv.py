"""Zero Pad in front of a Conv folds into the Conv's own pads (exporters of TF-style SAME padding write them)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from .base import RewritePass, attr, const_array, only_consumer


def _spatial_pads(pad: ir.Node, rank: int) -> list[int] | None:
    """The Pad's [b1..bn, e1..en] over the spatial axes, if it is a zero constant pad of those axes only."""
    if attr(pad, "mode", "constant") != "constant":
        return None
    if "pads" in pad.attributes:  # opset < 11
        pads, value = list(attr(pad, "pads")), attr(pad, "value", 0.0)
    else:
        p = const_array(pad.inputs[1]) if len(pad.inputs) > 1 else None
        if p is None:
            return None
        pads = [int(v) for v in p.reshape(-1)]
        v = pad.inputs[2] if len(pad.inputs) > 2 else None
        value = 0.0 if v is None else const_array(v)
        if value is None:
            return None
        if len(pad.inputs) > 3 and pad.inputs[3] is not None:
            return None  # explicit axes: rare, leave it
        value = float(np.asarray(value).reshape(-1)[0]) if np.asarray(value).size else 0.0
    if value != 0.0 or len(pads) != 2 * rank or min(pads) < 0:
        return None
    begin, end = pads[:rank], pads[rank:]
    if any(begin[:2]) or any(end[:2]):
        return None  # pads the batch or channel axis
    return begin[2:] + end[2:]


@dataclass
class _Fold:
    pad: ir.Node
    conv: ir.Node
    extra: list[int]  # the Pad's spatial [b1..bn, e1..en], added to the conv's pads


class FoldPadIntoConv(RewritePass[_Fold]):
    name = "fold_pad_into_conv"
    rule = "Conv(Pad(x, zeros on H/W), W) => Conv(x, W, pads += those)"
    op_types = ("Pad",)

    def match(self, pad: ir.Node, graph: ir.Graph) -> _Fold | None:
        conv = only_consumer(pad.outputs[0])
        x = pad.inputs[0]
        if conv is None or conv.op_type != "Conv" or conv.inputs[0] is not pad.outputs[0] or x is None:
            return None
        if attr(conv, "auto_pad", "NOTSET") != "NOTSET" or x.shape is None:
            return None
        extra = _spatial_pads(pad, len(x.shape))
        return None if extra is None else _Fold(pad, conv, extra)

    def rewrite(self, graph: ir.Graph, m: _Fold) -> None:
        nd = len(m.extra) // 2
        old = list(attr(m.conv, "pads", [0] * (2 * nd)))
        m.conv.attributes["pads"] = ir.AttrInt64s("pads", [a + b for a, b in zip(old, m.extra)])
        m.conv.replace_input_with(0, m.pad.inputs[0])
        graph.remove(m.pad, safe=True)
