"""Dead-code elimination: nodes whose outputs nothing reads, and initializers no node reads."""

from __future__ import annotations

import onnx_ir as ir
from onnx_ir.passes.common import RemoveUnusedNodesPass

from .base import GraphPass, PassReport


class EliminateDeadCode(GraphPass):
    """A plain GraphPass, not a RewritePass: nothing is matched at one anchor. Whether a node is dead depends on
    every node after it (a sweep in graph order would miss chains of dead nodes), so it hands the whole graph to
    onnx-ir's RemoveUnusedNodesPass, which walks back from the graph outputs, and counts what went."""

    name = "dead_code"
    rule = "node whose outputs are never read => removed; unused initializer => removed"

    def apply(self, model: ir.Model, report: PassReport) -> int:
        before = model.graph.num_nodes() + len(model.graph.initializers)
        RemoveUnusedNodesPass()(model)
        return before - model.graph.num_nodes() - len(model.graph.initializers)
