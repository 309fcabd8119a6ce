"""Gather(x, constant scalar i, axis) => Squeeze(Slice(x, i, i + 1, axis), axis): a view, not a copy.

Exporters split fused projections this way (torch's MultiheadAttention export takes q, k and v as proj[0], proj[1],
proj[2]). As a Gather each is an index_select kernel over the whole slice (plus a kernel fixing negative indices);
as Slice and Squeeze with constant operands it is a strided view of x, no kernel at all. Gathers of shape values
stay (simplify_reshape reads them, and they run once per input shape anyway). Opset 13 and up (Slice and Squeeze
take their operands as inputs there).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from .base import RewritePass, add_initializer, attr, const_array, replace_node
from .patterns import producer

_INT64_MAX = np.iinfo(np.int64).max


@dataclass
class _Take:
    gather: ir.Node
    index: int
    axis: int  # as the Gather has it (Slice and Squeeze accept a negative axis as well)


class GatherToSlice(RewritePass[_Take]):
    name = "gather_to_slice"
    rule = "Gather(x, constant scalar i, axis) => Squeeze(Slice(x, [i], [i + 1], [axis]), [axis])"
    op_types = ("Gather",)

    def match(self, gather: ir.Node, graph: ir.Graph) -> _Take | None:
        if graph.opset_imports.get("", 1) < 13 or len(gather.inputs) != 2:
            return None
        x, indices = gather.inputs
        idx = const_array(indices)
        if x is None or idx is None or idx.ndim != 0 or idx.dtype.kind not in "iu" or const_array(x) is not None:
            return None
        if producer(x, "Shape") is not None:
            return None
        axis, i = attr(gather, "axis", 0), int(idx)
        if x.shape is not None:  # Slice and Squeeze take negative axes too: the rank is only needed to check
            rank = len(x.shape)
            if not -rank <= axis < rank:
                return None
            dim = x.shape[axis]
            if isinstance(dim, int) and not -dim <= i < dim:
                return None  # out of range: leave the Gather to report it
        return _Take(gather, i, axis)

    def rewrite(self, graph: ir.Graph, m: _Take) -> str:
        g = m.gather
        base = g.name or "gather"
        end = _INT64_MAX if m.index == -1 else m.index + 1
        starts = add_initializer(graph, f"{base}_start", np.array([m.index], np.int64))
        ends = add_initializer(graph, f"{base}_end", np.array([end], np.int64))
        axes = add_initializer(graph, f"{base}_axes", np.array([m.axis], np.int64))
        sliced = ir.Node("", "Slice", [g.inputs[0], starts, ends, axes], name=f"{base}/slice")
        sliced.outputs[0].name = f"{base}_slice_output"
        sliced.outputs[0].type = g.outputs[0].type
        graph.insert_before(g, sliced)
        squeeze = ir.Node("", "Squeeze", [sliced.outputs[0], axes], name=g.name)
        replace_node(graph, [g], squeeze, g.outputs[0])
        return f"{g.name}: index {m.index} on axis {m.axis}"
