"""Dead-code elimination: nodes whose outputs nothing reads, and initializers no node reads."""

from __future__ import annotations

import onnx_ir as ir
from onnx_ir.passes.common import RemoveUnusedNodesPass

from .base import GraphPass, PassReport


class EliminateDeadCode(GraphPass):
    name = "dead_code"
    rule = "node whose outputs are never read => removed; unused initializer => removed"

    def apply(self, model: ir.Model, report: PassReport) -> int:
        before = model.graph.num_nodes() + len(model.graph.initializers)
        RemoveUnusedNodesPass()(model)
        return before - model.graph.num_nodes() - len(model.graph.initializers)
