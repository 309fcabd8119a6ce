"""A projection whose rows come out in one order and are transposed straight back computes them in the other.

torch's MultiheadAttention works in (S, B, E) and its export from a batch-first module (torchvision's ViT) ends
every attention with

    A (B, H, S, D) -> Transpose(2, 0, 1, 3) -> Reshape(S*B, H*D) -> FusedMatMul(W, b) -> Reshape(S, B, N)
      -> Transpose(1, 0, 2) -> (B, S, N)

The GEMM treats rows independently, so the same values come from rows taken in (B, S) order:

    A -> Transpose(0, 2, 1, 3) -> Reshape(0, 0, H*D) -> FusedMatMul(W, b) -> (B, S, N), contiguous

One copy (the Reshape of the transposed view) either way; what goes is the transposed output, which made the
residual Add after it a strided, non-vectorized kernel and the LayerNorm after that copy its input again
(bench/NOTES.md, 2026-12-07).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from .base import GREENRT_DOMAIN, RewritePass, add_initializer, attr, const_array, only_consumer, replace_node
from .patterns import producer


@dataclass
class _Rows:
    t1: ir.Node
    r1: ir.Node
    gemm: ir.Node
    r2: ir.Node
    t2: ir.Node
    perm: list[int]  # t1's perm with its two leading entries swapped
    k: int


def _static(dim) -> int | None:
    return dim if isinstance(dim, int) else None


class GemmRowOrder(RewritePass[_Rows]):
    name = "gemm_row_order"
    rule = ("Transpose(Reshape(FusedMatMul(Reshape(Transpose(A, p), [S*B, K])), [S, B, N]), (1, 0, 2)) => "
            "FusedMatMul(Reshape(Transpose(A, p with its first two swapped), [0, 0, K]))")
    op_types = ("Transpose",)

    def match(self, t2: ir.Node, graph: ir.Graph) -> _Rows | None:
        if list(attr(t2, "perm", []) or []) != [1, 0, 2]:
            return None
        r2 = producer(t2.inputs[0], "Reshape")
        if r2 is None or only_consumer(r2.outputs[0]) is not t2:
            return None
        gemm = r2.inputs[0].producer() if r2.inputs[0] is not None else None
        if gemm is None or gemm.domain != GREENRT_DOMAIN or gemm.op_type != "FusedMatMul":
            return None
        if only_consumer(gemm.outputs[0]) is not r2:
            return None
        r1 = producer(gemm.inputs[0], "Reshape")
        if r1 is None or only_consumer(r1.outputs[0]) is not gemm:
            return None
        t1 = producer(r1.inputs[0], "Transpose")
        if t1 is None or only_consumer(t1.outputs[0]) is not r1:
            return None
        a = t1.inputs[0]
        perm = list(attr(t1, "perm", []) or [])
        if a is None or a.shape is None or len(a.shape) != 4 or sorted(perm) != [0, 1, 2, 3]:
            return None
        rows_out = _static(a.shape[perm[0]])  # the row dim that comes first in t1's order (S above)
        k = [_static(a.shape[perm[2]]), _static(a.shape[perm[3]])]
        if rows_out is None or None in k:
            return None
        k = k[0] * k[1]
        shape1, shape2 = const_array(r1.inputs[1]), const_array(r2.inputs[1])
        if shape1 is None or shape2 is None or attr(r1, "allowzero", 0) or attr(r2, "allowzero", 0):
            return None
        if shape1.tolist()[1:] != [k] or len(shape1) != 2 or shape1[0] not in (-1, _rows(a, perm)):
            return None
        w = const_array(gemm.inputs[1]) if len(gemm.inputs) > 1 else None
        if w is None or w.ndim != 2:
            return None
        n = w.shape[0] if attr(gemm, "trans_w", 0) else w.shape[1]
        batch = _static(a.shape[perm[1]])
        if len(shape2) != 3 or int(shape2[0]) != rows_out or int(shape2[2]) not in (-1, n):
            return None
        if int(shape2[1]) != -1 and int(shape2[1]) != batch or (int(shape2[1]) == -1 and int(shape2[2]) == -1):
            return None
        return _Rows(t1, r1, gemm, r2, t2, [perm[1], perm[0], perm[2], perm[3]], k)

    def rewrite(self, graph: ir.Graph, m: _Rows) -> str:
        base = m.gemm.name or "gemm"
        t1 = ir.Node("", "Transpose", [m.t1.inputs[0]], attributes=[ir.AttrInt64s("perm", m.perm)],
                     name=f"{m.t1.name or base}/rows_b_first")
        target = add_initializer(graph, f"{base}_rows_shape", np.array([0, 0, m.k], np.int64))
        r1 = ir.Node("", "Reshape", [t1.outputs[0], target], name=f"{m.r1.name or base}/rows_b_first")
        for node in (t1, r1):
            graph.insert_before(m.t2, node)
        gemm = ir.Node(GREENRT_DOMAIN, "FusedMatMul", [r1.outputs[0], *m.gemm.inputs[1:]],
                       attributes=list(m.gemm.attributes.values()), name=m.gemm.name)
        out = m.t2.outputs[0]
        replace_node(graph, [m.t1, m.r1, m.gemm, m.r2, m.t2], gemm, out)
        return f"{m.gemm.name}: rows in order {m.perm[:2]} (was {[m.perm[1], m.perm[0]]}), no transposed output"


def _rows(a: ir.Value, perm: list[int]) -> int:
    """The row count S*B where both are static, else -2 (matches no constant)."""
    d0, d1 = _static(a.shape[perm[0]]), _static(a.shape[perm[1]])
    return d0 * d1 if d0 is not None and d1 is not None else -2
