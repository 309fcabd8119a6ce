"""Compile an onnx-ir graph into a Plan: resolve every node to its implementation, encode attributes as data,
turn initializers and Constant nodes into weights. Every unsupported node is reported at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx_ir as ir

from ..errors import GreenrtError, UnsupportedModelError
from ..onnx.dtypes import as_str
from ..ops import REGISTRY, load_all
from ..ops.registry import canonical_domain
from .plan import Plan, PlanStep, TensorSpec


def value_spec(value: ir.Value | None) -> TensorSpec | None:
    if value is None:
        return None
    t = value.type
    kind = "tensor"
    if isinstance(t, ir.SequenceType):
        kind = "sequence"
    elif isinstance(t, ir.OptionalType):
        kind = "optional"
    dtype = int(value.dtype) if value.dtype is not None else 0
    shape = None
    if value.shape is not None:
        shape = []
        for d in value.shape:
            if isinstance(d, int):
                shape.append(d if d >= 0 else None)
            else:
                shape.append(d.value if d.value not in (None, "", "?") else None)
    return TensorSpec(value.name or "", dtype, shape, kind)



class _Compiler:
    def __init__(self, opsets: dict[str, int]):
        load_all()
        self.opsets = {canonical_domain(k): v for k, v in opsets.items()}
        self.weights: dict[str, np.ndarray] = {}
        self.problems: list[str] = []

    def weight(self, hint: str, array: np.ndarray) -> str:
        key = hint or "w"
        i = 0
        while key in self.weights:
            i += 1
            key = f"{hint}.{i}"
        self.weights[key] = array
        return key

    def tensor_ref(self, hint: str, tensor: ir.TensorProtocol) -> dict:
        array = tensor.numpy()
        if tensor.dtype == ir.DataType.STRING:
            return {"strings": [as_str(s) for s in array.reshape(-1)], "shape": list(array.shape)}
        return {"tensor": self.weight(hint, np.asarray(array))}

    def attribute(self, plan_subplans: list, node_name: str, a: ir.Attr) -> Any:
        A = ir.AttributeType
        t = a.type
        if t in (A.FLOAT, A.INT):
            return a.value
        if t in (A.FLOATS, A.INTS):
            return list(a.value)
        if t == A.STRING:
            return as_str(a.value)
        if t == A.STRINGS:
            return [as_str(s) for s in a.value]
        if t == A.TENSOR:
            return self.tensor_ref(f"{node_name}.{a.name}", a.value)
        if t == A.TENSORS:
            return {"tensors": [self.tensor_ref(f"{node_name}.{a.name}.{i}", v) for i, v in enumerate(a.value)]}
        if t == A.GRAPH:
            plan_subplans.append(self.graph(a.value))
            return {"graph": len(plan_subplans) - 1}
        if t == A.GRAPHS:
            start = len(plan_subplans)
            plan_subplans.extend(self.graph(g) for g in a.value)
            return {"graphs": list(range(start, len(plan_subplans)))}
        if t in (A.TYPE_PROTO, A.TYPE_PROTOS):
            return None  # only Optional/SequenceEmpty carry one; greenrt's implementations don't read it
        raise GreenrtError(f"attribute {a.name!r} of type {t.name} cannot be compiled")

    def graph(self, graph: ir.Graph) -> Plan:
        plan = Plan(
            inputs=[value_spec(v) for v in graph.inputs],
            outputs=[value_spec(v) for v in graph.outputs],
            steps=[],
            constants={},
            opsets=dict(self.opsets),
        )
        for name, value in graph.initializers.items():
            if value.const_value is None:
                self.problems.append(f"initializer {name!r} has no data")
                continue
            ref = self.tensor_ref(name, value.const_value)
            plan.constants[name] = ref["tensor"] if "tensor" in ref else ref  # type: ignore[assignment]
        for node in graph:
            if node.op_type == "Constant" and canonical_domain(node.domain) == "" and self._constant(plan, node):
                continue
            step = self.node(plan, node)
            if step is not None:
                plan.steps.append(step)
        return plan

    def _constant(self, plan: Plan, node: ir.Node) -> bool:
        """A Constant node becomes a plan constant (its value computed now, sparse and string forms included)."""
        from ..passes.fold_constants import _evaluate

        try:
            outputs = _evaluate(node, self.opsets.get("", 1), [])
        except Exception:
            return False
        if not outputs:
            return False
        name = node.outputs[0].name or ""
        array = outputs[0]
        if array.dtype == object:
            plan.constants[name] = {"strings": [str(s) for s in array.reshape(-1)], "shape": list(array.shape)}
        else:
            plan.constants[name] = self.weight(name, np.ascontiguousarray(array).reshape(array.shape))
        return True

    def node(self, plan: Plan, node: ir.Node) -> PlanStep | None:
        domain = canonical_domain(node.domain)
        label = f"node {node.name or '<unnamed>'!r} ({domain + '.' if domain else ''}{node.op_type})"
        opset = self.opsets.get(domain)
        if opset is None:
            self.problems.append(f"{label}: domain {domain!r} is not imported by the model")
            return None
        impl = REGISTRY.lookup(domain, node.op_type, opset)
        if impl is None:
            if REGISTRY.known(domain, node.op_type):
                have = REGISTRY.versions(domain, node.op_type)
                self.problems.append(f"{label}: opset {opset} is older than any implementation (have {have})")
            elif domain == "com.microsoft" and node.op_type.startswith(("QLinear", "QAttention", "QGemm", "QOrdered",
                                                                            "DynamicQuantize", "MatMulInteger")):
                self.problems.append(
                    f"{label}: onnxruntime's own quantized op, outside the ONNX standard and not supported by greenrt; "
                    "quantize in the QDQ format instead (onnxruntime.quantization.quantize_static(..., "
                    "quant_format=QuantFormat.QDQ)) or give greenrt the float model")
            elif domain:
                self.problems.append(f"{label}: domain {domain!r} is not supported by greenrt")
            else:
                self.problems.append(f"{label}: op {node.op_type!r} is not supported by greenrt")
            return None
        try:
            attrs = {n: self.attribute(plan.subplans, node.name or node.op_type, a) for n, a in node.attributes.items()}
        except GreenrtError as exc:
            self.problems.append(f"{label}: {exc}")
            return None
        return PlanStep(
            domain=domain,
            op_type=node.op_type,
            since=impl.since,
            name=node.name or "",
            inputs=[v.name if v is not None else "" for v in node.inputs],
            outputs=[v.name or "" for v in node.outputs],
            attrs=attrs,
            input_specs=[value_spec(v) for v in node.inputs],
            output_specs=[value_spec(v) for v in node.outputs],
        )


def compile_graph(graph: ir.Graph, opsets: dict[str, int]) -> tuple[Plan, dict[str, np.ndarray]]:
    """(plan, weights) for ``graph``; raises UnsupportedModelError listing every node greenrt cannot run."""
    compiler = _Compiler(opsets)
    plan = compiler.graph(graph)
    if compiler.problems:
        raise UnsupportedModelError(
            f"{len(compiler.problems)} node(s) cannot run in greenrt; see `greenrt inspect ops` for what is supported",
            compiler.problems,
        )
    _check_order(plan)
    return plan, compiler.weights


def _check_order(plan: Plan) -> None:
    """Every step reads only values produced before it (a pass that broke the order is a greenrt bug)."""
    defined = {s.name for s in plan.inputs} | set(plan.constants) | {""}
    for step in plan.steps:
        missing = [n for n in step.inputs if n not in defined]
        if missing:
            raise GreenrtError(f"internal error: {step.label} reads {missing} before they are produced "
                               "(graph not in topological order); please report it")
        defined.update(step.outputs)


def compile_model(model: ir.Model) -> tuple[Plan, dict[str, np.ndarray]]:
    return compile_graph(model.graph, dict(model.opset_imports))
