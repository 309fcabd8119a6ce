"""The RewritePass base on a toy pass: Relu(Relu(x)) => Relu(x). The sweep, the domain check, the count, the
details and the opset import are the base's; the toy only matches and rewrites."""

from dataclasses import dataclass

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import torch
from onnx import TensorProto, helper

from greenrt.onnx.importer import load_model
from greenrt.passes.base import RewritePass, only_consumer, replace_node
from greenrt.runtime.executor import Executor

R = np.random.default_rng(0)


@dataclass
class ReluPair:
    first: ir.Node
    second: ir.Node


class CollapseRelu(RewritePass[ReluPair]):
    name = "collapse_relu"
    rule = "Relu(Relu(x)) => Relu(x)"
    op_types = ("Relu",)

    def __init__(self):
        self.matched: list[str] = []  # every anchor match() was asked about

    def match(self, node, graph):
        self.matched.append(node.name)
        second = only_consumer(node.outputs[0])
        if second is None or second.op_type != "Relu" or second.domain not in self.domains:
            return None
        return ReluPair(node, second)

    def rewrite(self, graph, match):
        fused = ir.Node("", "Relu", [match.first.inputs[0]], name=match.first.name)
        replace_node(graph, [match.first, match.second], fused, match.second.outputs[0])
        return f"{match.first.name} + {match.second.name}"


def _relu_chain(n, domain=""):
    """x -> Relu r1 -> ... -> Relu rn -> y (the last in ``domain``); opset 17, plus ``domain`` when it is not ONNX's."""
    names = ["x"] + [f"h{i}" for i in range(1, n)] + ["y"]
    nodes = [helper.make_node("Relu", [names[i]], [names[i + 1]], name=f"r{i + 1}") for i in range(n)]
    nodes[-1].domain = domain
    vi = [helper.make_tensor_value_info(v, TensorProto.FLOAT, [2, 5]) for v in ("x", "y")]
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(helper.make_graph(nodes, "g", vi[:1], vi[1:]), opset_imports=opsets)
    model.ir_version = 8
    return model


def _run(model: ir.Model, x: np.ndarray) -> np.ndarray:
    return Executor.from_model(model).run({"x": torch.from_numpy(x)})[0].numpy()


def test_base_counts_records_details_and_skips_removed_nodes():
    proto = _relu_chain(4)
    model = load_model(proto)
    p = CollapseRelu()
    report = p(model)
    # r1+r2 -> one Relu (named r1, after r2); r2 is gone, so the sweep never asks about it; r3+r4 the same
    assert (report.name, report.rule, report.count) == ("collapse_relu", "Relu(Relu(x)) => Relu(x)", 2)
    assert report.details == ["r1 + r2", "r3 + r4"]
    assert p.matched == ["r1", "r3"]
    assert [(n.op_type, n.name) for n in model.graph] == [("Relu", "r1"), ("Relu", "r3")]
    assert "greenrt" not in model.opset_imports  # creates_domain unset: nothing imported
    x = R.standard_normal((2, 5)).astype(np.float32)
    ref = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_allclose(_run(model, x), ref[0], rtol=1e-6)


def test_base_domain_check_and_created_domain_import():
    """A Relu of another domain is no anchor, nor (by the toy's own check) a partner; the created domain is
    imported only when something fired."""

    class Imports(CollapseRelu):
        creates_domain = "greenrt"

    model = load_model(_relu_chain(2, domain="custom"))
    report = Imports()(model)
    assert report.count == 0 and report.details == []
    assert "greenrt" not in model.opset_imports
    assert [n.name for n in model.graph] == ["r1", "r2"]

    model = load_model(_relu_chain(2))
    report = Imports()(model)
    assert report.count == 1 and model.opset_imports["greenrt"] == 1


def test_base_list_result_counts_each_entry():
    """A rewrite that stands for several (a folded chain) returns one entry per rewrite; None keeps no detail."""

    class Several(CollapseRelu):
        def rewrite(self, graph, match):
            super().rewrite(graph, match)
            return ["first", None]

    report = Several()(load_model(_relu_chain(2)))
    assert report.count == 2 and report.details == ["first"]


def test_match_is_not_called_on_other_ops():
    proto = _relu_chain(2)
    proto.graph.node[0].op_type = "Sigmoid"
    p = CollapseRelu()
    assert p(load_model(proto)).count == 0
    assert p.matched == ["r2"]
