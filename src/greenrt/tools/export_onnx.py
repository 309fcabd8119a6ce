"""An engine's optimized graph (its plan) as a valid ONNX file: what `greenrt inspect model --export` writes.

Default-domain steps are written as they are; each fused step of the ``greenrt`` domain is a node whose op is
defined by a model-local ONNX function (``model.functions``, domain ``greenrt``) whose body is the standard ONNX
ops the fused op computes, so onnxruntime (and Netron) read the file:

    FusedConv(X, W, B?, Z?)  = act(Conv(X, W) + B + Z)     Conv attributes passed through (ref_attr_name)
    FusedMatMul(A, W, B?)    = act(MatMul(A, W) + B)
    Gelu(X)                  = 0.5 * X * (1 + Erf(X / sqrt 2))   (tanh form for approximate='tanh')
    HardSwish(X)             = X * HardSigmoid(X, 1/6, 1/2)
    LayerNormalization(X, S, B?) = (X - mean) / sqrt(var + eps) * S + B over the axes from ``axis``
    ScaledDotProductAttention(Q, K, V, mask?) = Softmax(Q @ K^T * scale + mask) @ V

What a function cannot take as an attribute (which optional inputs are present, the activation and its
parameters, the element type its constants need) is baked into the function: one function per variant, told
apart by the ONNX ``overload`` field (IR version 10), so every node keeps its op name (``FusedConv``).
Weights become initializers in the dtype the engine holds them (fp16 weights stay fp16, with the precision
stage's Casts as steps); If/Loop/Scan bodies become graph attributes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import onnx
from onnx import TensorProto, helper

from ..errors import GreenrtError
from ..plan.plan import Plan, PlanStep, TensorSpec

GREENRT = "greenrt"
IR_VERSION = 10  # model-local functions with overloads
EXPORTABLE = ("FusedConv", "FusedMatMul", "Gelu", "HardSwish", "LayerNormalization", "ScaledDotProductAttention")
ACTIVATIONS = ("", "Relu", "Sigmoid", "Tanh", "SiLU", "HardSwish", "LeakyRelu", "Clip", "HardSigmoid", "Gelu",
               "GeluTanh")


class NotExportableError(GreenrtError):
    """Some fused steps have no ONNX-function form; ``ops`` lists them (node and why)."""

    def __init__(self, message: str, ops: list[str]):
        super().__init__(message + ":\n  " + "\n  ".join(ops))
        self.ops = ops


# -- tensors ------------------------------------------------------------------------------------------------
def _tensor_proto(name: str, value: Any) -> TensorProto:
    """A weight (torch tensor or numpy array, any dtype incl. bf16/fp8 and strings) as a TensorProto."""
    import torch

    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return helper.make_tensor(name, TensorProto.STRING, list(value.shape),
                                      [str(s).encode() for s in value.reshape(-1)])
        try:
            value = torch.from_numpy(np.ascontiguousarray(value))
        except TypeError:  # a dtype torch lacks (ml_dtypes' float8/int4 kinds): onnx knows it
            return helper.make_tensor(name, helper.np_dtype_to_tensor_dtype(value.dtype), list(value.shape),
                                      np.ascontiguousarray(value).tobytes(), raw=True)
    if not isinstance(value, torch.Tensor):
        raise GreenrtError(f"weight {name!r} of type {type(value).__name__} cannot be exported")
    t = value.detach().cpu().contiguous()
    onnx_type = _TORCH_TO_ONNX.get(t.dtype)
    if onnx_type is None:
        raise GreenrtError(f"weight {name!r} has dtype {t.dtype}, which the exporter cannot write")
    if t.dtype == torch.bool:
        raw = t.to(torch.uint8).numpy().tobytes()
    else:
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
    return helper.make_tensor(name, onnx_type, list(t.shape), raw, raw=True)


def _torch_to_onnx() -> dict:
    import torch

    table = {torch.float32: TensorProto.FLOAT, torch.float16: TensorProto.FLOAT16, torch.bfloat16: TensorProto.BFLOAT16,
             torch.float64: TensorProto.DOUBLE, torch.int8: TensorProto.INT8, torch.uint8: TensorProto.UINT8,
             torch.int16: TensorProto.INT16, torch.int32: TensorProto.INT32, torch.int64: TensorProto.INT64,
             torch.bool: TensorProto.BOOL}
    for tname, oname in (("float8_e4m3fn", "FLOAT8E4M3FN"), ("float8_e5m2", "FLOAT8E5M2"), ("uint16", "UINT16"),
                         ("uint32", "UINT32"), ("uint64", "UINT64")):
        if hasattr(torch, tname) and hasattr(TensorProto, oname):
            table[getattr(torch, tname)] = getattr(TensorProto, oname)
    return table


_TORCH_TO_ONNX = _torch_to_onnx()


def _value_info(spec: TensorSpec | None, name: str | None = None) -> onnx.ValueInfoProto:
    name = name if name is not None else (spec.name if spec else "")
    if spec is None or spec.kind != "tensor" or not spec.dtype:
        return helper.make_empty_tensor_value_info(name) if spec is None or spec.kind == "tensor" else \
            onnx.ValueInfoProto(name=name)
    shape = None if spec.shape is None else [d if d is not None else None for d in spec.shape]
    return helper.make_tensor_value_info(name, spec.dtype, shape)


# -- the function bodies --------------------------------------------------------------------------------------
@dataclass
class _Body:
    """A function body under construction: nodes over fresh names, constants in the variant's element type."""

    dtype: int
    opset: int
    nodes: list = field(default_factory=list)
    n: int = 0

    def fresh(self, hint: str) -> str:
        self.n += 1
        return f"_{hint}{self.n}"

    def op(self, op_type: str, inputs: list[str], **attrs) -> str:
        out = self.fresh(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def const(self, value: float) -> str:
        out = self.fresh("c")
        array = np.array(value, dtype=helper.tensor_dtype_to_np_dtype(self.dtype))
        self.nodes.append(helper.make_node("Constant", [], [out], value=helper.make_tensor(
            out, self.dtype, [], array.tobytes(), raw=True)))
        return out

    def const_ints(self, values: list[int]) -> str:
        out = self.fresh("axes")
        self.nodes.append(helper.make_node("Constant", [], [out], value=helper.make_tensor(
            out, TensorProto.INT64, [len(values)], values)))
        return out

    def gelu(self, x: str, tanh: bool) -> str:
        if tanh:  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
            cube = self.op("Mul", [self.op("Mul", [x, x]), x])
            inner = self.op("Add", [x, self.op("Mul", [cube, self.const(0.044715)])])
            t = self.op("Tanh", [self.op("Mul", [inner, self.const(math.sqrt(2 / math.pi))])])
        else:  # 0.5 x (1 + erf(x / sqrt 2))
            t = self.op("Erf", [self.op("Div", [x, self.const(math.sqrt(2.0))])])
        return self.op("Mul", [self.op("Mul", [x, self.const(0.5)]), self.op("Add", [t, self.const(1.0)])])

    def activation(self, x: str, name: str, params: list[float]) -> str:
        p = list(params)
        if name == "":
            return x
        if name in ("Relu", "Sigmoid", "Tanh"):
            return self.op(name, [x])
        if name == "SiLU":
            return self.op("Mul", [x, self.op("Sigmoid", [x])])
        if name == "HardSwish":
            return self.op("Mul", [x, self.op("HardSigmoid", [x], alpha=1 / 6, beta=0.5)])
        if name == "LeakyRelu":
            return self.op("LeakyRelu", [x], alpha=p[0] if p else 0.01)
        if name == "HardSigmoid":
            return self.op("HardSigmoid", [x], alpha=p[0] if p else 0.2, beta=p[1] if len(p) > 1 else 0.5)
        if name == "Clip":  # Max/Min run at every opset (Clip's bounds moved from attributes to inputs at 11)
            return self.op("Min", [self.op("Max", [x, self.const(p[0])]), self.const(p[1])])
        if name in ("Gelu", "GeluTanh"):
            return self.gelu(x, name == "GeluTanh")
        raise ValueError(f"unknown fused activation {name!r}")

    def reduce_mean(self, x: str, axes: list[int]) -> str:
        if self.opset >= 18:
            return self.op("ReduceMean", [x, self.const_ints(axes)], keepdims=1)
        return self.op("ReduceMean", [x], axes=axes, keepdims=1)


CONV_ATTRS = {"auto_pad": onnx.AttributeProto.STRING, "dilations": onnx.AttributeProto.INTS,
              "group": onnx.AttributeProto.INT, "kernel_shape": onnx.AttributeProto.INTS,
              "pads": onnx.AttributeProto.INTS, "strides": onnx.AttributeProto.INTS}


def _ref_attr(name: str, attr_type: int) -> onnx.AttributeProto:
    """A body attribute that takes the calling node's attribute of the same name (absent there: the default)."""
    return onnx.AttributeProto(name=name, ref_attr_name=name, type=attr_type)


def _present(step: PlanStep) -> list[bool]:
    return [bool(n) for n in step.inputs]


def _step_dtype(step: PlanStep) -> int:
    for spec in list(step.output_specs) + list(step.input_specs):
        if spec is not None and spec.dtype:
            return spec.dtype
    return TensorProto.FLOAT


def _rank(spec: TensorSpec | None) -> int | None:
    return None if spec is None or spec.shape is None else len(spec.shape)


def _variant(step: PlanStep, opset: int) -> tuple[str, list[str], list[str], list[str], _Body] | str:
    """(overload key, function inputs, attribute names, outputs, body) for a fused step, or why it has none."""
    op_type, attrs, dtype = step.op_type, step.attrs, _step_dtype(step)
    body = _Body(dtype, opset)
    present = _present(step)
    dname = helper.tensor_dtype_to_string(dtype).replace("TensorProto.", "").lower()
    if op_type in ("FusedConv", "FusedMatMul"):
        act, params = attrs.get("activation", ""), [float(v) for v in attrs.get("activation_params", []) or []]
        if act not in ACTIVATIONS:
            return f"activation {act!r} has no ONNX form here"
        names = (["X", "W", "B", "Z"] if op_type == "FusedConv" else ["A", "W", "B"])[: len(step.inputs)]
        inputs = [n for n, p in zip(names, present) if p]
        if op_type == "FusedConv":
            attr_names = [k for k in CONV_ATTRS if k in attrs]
            y = body.op("Conv", ["X", "W"])
            body.nodes[-1].attribute.extend(_ref_attr(k, CONV_ATTRS[k]) for k in CONV_ATTRS)
            if "B" in inputs:  # B is [C]: reshape it to [C, 1, ..., 1] by Unsqueeze over the spatial axes
                rank = _rank(step.input_specs[0]) if step.input_specs else None
                if rank is None:
                    return "the input rank is unknown (needed to broadcast the bias)"
                axes = list(range(1, rank - 1))
                b = body.op("Unsqueeze", ["B", body.const_ints(axes)]) if opset >= 13 else \
                    body.op("Unsqueeze", ["B"], axes=axes)
                y = body.op("Add", [y, b])
            if "Z" in inputs:
                y = body.op("Add", [y, "Z"])
        else:
            attr_names = []
            w = body.op("Transpose", ["W"], perm=[1, 0]) if attrs.get("trans_w") else "W"
            y = body.op("MatMul", ["A", w])
            if "B" in inputs:
                y = body.op("Add", [y, "B"])
        y = body.activation(y, act, params)
        key = "_".join(inputs) + f"_{act or 'none'}" + ("_" + "_".join(f"{v:g}" for v in params) if params else "")
        key += "_wT" if op_type == "FusedMatMul" and attrs.get("trans_w") else ""
    elif op_type == "Gelu":
        inputs, attr_names = ["X"], []
        tanh = attrs.get("approximate", "none") == "tanh"
        y = body.gelu("X", tanh)
        key = "tanh" if tanh else "erf"
    elif op_type == "HardSwish":
        inputs, attr_names, key = ["X"], [], "x"
        y = body.activation("X", "HardSwish", [])
    elif op_type == "LayerNormalization":
        axis, eps = int(attrs.get("axis", -1)), float(attrs.get("epsilon", 1e-5))
        inputs, attr_names = [n for n, p in zip(["X", "Scale", "B"], present) if p], []
        rank = _rank(step.input_specs[0]) if step.input_specs else None
        if axis < 0:
            axes = list(range(axis, 0))
        elif rank is not None:
            axes = list(range(axis - rank, 0))
        else:
            return "axis >= 0 with an unknown input rank"
        mean = body.reduce_mean("X", axes)
        d = body.op("Sub", ["X", mean])
        var = body.reduce_mean(body.op("Mul", [d, d]), axes)
        y = body.op("Div", [d, body.op("Sqrt", [body.op("Add", [var, body.const(eps)])])])
        y = body.op("Mul", [y, "Scale"])
        if "B" in inputs:
            y = body.op("Add", [y, "B"])
        key = "_".join(inputs) + f"_axes{'_'.join(str(-a) for a in axes)}_eps{eps:g}"
    elif op_type == "ScaledDotProductAttention":
        inputs, attr_names = [n for n, p in zip(["Q", "K", "V", "Mask"], present) if p], []
        k = "K"
        if not attrs.get("k_transposed", 0):
            rank = _rank(step.input_specs[1]) if len(step.input_specs) > 1 else None
            if rank is None:
                return "K's rank is unknown (needed to transpose it)"
            perm = list(range(rank - 2)) + [rank - 1, rank - 2]
            k = body.op("Transpose", ["K"], perm=perm)
        scores = body.op("MatMul", ["Q", k])
        scale = float(attrs.get("scale", 0.0) or 0.0)
        if scale:
            scores = body.op("Mul", [scores, body.const(scale)])
        else:  # 1 / sqrt(Q.shape[-1]), from the shape at run time
            shape = body.op("Shape", ["Q"])
            last = body.op("Gather", [shape, body.const_ints([-1])], axis=0)
            dim = body.op("Cast", [last], to=dtype)
            scores = body.op("Div", [scores, body.op("Sqrt", [dim])])
        mask_kind = ""
        if "Mask" in inputs:
            mspec = step.input_specs[3] if len(step.input_specs) > 3 else None
            if mspec is not None and mspec.dtype == TensorProto.BOOL:
                scores = body.op("Where", ["Mask", scores, body.const(-np.inf)])
                mask_kind = "boolmask"
            elif mspec is not None and mspec.dtype and mspec.dtype != dtype:
                scores = body.op("Add", [scores, body.op("Cast", ["Mask"], to=dtype)])
                mask_kind = "castmask"
            else:
                scores = body.op("Add", [scores, "Mask"])
                mask_kind = "mask"
        probs = body.op("Softmax", [scores], axis=-1)
        y = body.op("MatMul", [probs, "V"])
        key = f"{'kt' if attrs.get('k_transposed', 0) else 'k'}_{'scaled' if scale else 'sqrtd'}" + \
              (f"{scale:g}" if scale else "") + (f"_{mask_kind}" if mask_kind else "")
    else:
        return f"greenrt.{op_type} has no ONNX function form (exportable: {', '.join(EXPORTABLE)})"
    body.nodes.append(helper.make_node("Identity", [y], ["Y"]))
    return f"{key}_{dname}".replace("-", "m").replace(".", "p"), inputs, attr_names, ["Y"], body


# -- the graph ----------------------------------------------------------------------------------------------
def _attribute(step: PlanStep, name: str, value: Any, weights: Mapping[str, Any], plan: Plan, ctx: "_Exporter",
               opset: int):
    if value is None:
        return None  # a type attribute greenrt's compiler did not keep
    if isinstance(value, dict):
        if "tensor" in value:
            return helper.make_attribute(name, _tensor_proto(name, weights[value["tensor"]]))
        if "strings" in value:
            arr = np.array(value["strings"], dtype=object).reshape(value["shape"])
            return helper.make_attribute(name, _tensor_proto(name, arr))
        if "tensors" in value:
            return helper.make_attribute(name, [_tensor_proto(name, weights[v["tensor"]]) for v in value["tensors"]])
        if "graph" in value:
            return helper.make_attribute(name, ctx.graph(plan.subplans[value["graph"]], f"{step.name}_{name}"))
        if "graphs" in value:
            return helper.make_attribute(name, [ctx.graph(plan.subplans[i], f"{step.name}_{name}{i}")
                                                for i in value["graphs"]])
    attr_type = None
    if step.domain in ("", "ai.onnx"):
        try:
            schema = onnx.defs.get_schema(step.op_type, opset, "")
            if name in schema.attributes:
                attr_type = schema.attributes[name].type
        except Exception:
            pass
    if attr_type is not None:
        return helper.make_attribute(name, value, attr_type=attr_type)
    if isinstance(value, list) and not value:
        return None
    return helper.make_attribute(name, value)


class _Exporter:
    def __init__(self, weights: Mapping[str, Any], opsets: dict[str, int]):
        self.weights = weights
        self.opset = int(opsets.get("", opsets.get("ai.onnx", 17)))
        self.functions: dict[tuple[str, str], onnx.FunctionProto] = {}
        self.problems: list[str] = []

    def fused_node(self, step: PlanStep) -> onnx.NodeProto | None:
        found = _variant(step, self.opset)
        if isinstance(found, str):
            self.problems.append(f"{step.label}: {found}")
            return None
        overload, inputs, attr_names, outputs, body = found
        if (step.op_type, overload) not in self.functions:
            fn = helper.make_function(GREENRT, step.op_type, inputs, outputs, body.nodes,
                                      [helper.make_opsetid("", self.opset)], attributes=attr_names)
            fn.overload = overload
            fn.doc_string = f"greenrt.{step.op_type} ({overload}) as standard ONNX ops"
            self.functions[(step.op_type, overload)] = fn
        node = helper.make_node(step.op_type, [n for n in step.inputs if n], step.outputs[:1], name=step.name,
                                domain=GREENRT)
        node.overload = overload
        for k in attr_names:
            if k in step.attrs and step.attrs[k] is not None:
                node.attribute.append(helper.make_attribute(k, step.attrs[k], attr_type=CONV_ATTRS[k]))
        return node

    def graph(self, plan: Plan, name: str) -> onnx.GraphProto:
        nodes = []
        for step in plan.steps:
            if step.domain == GREENRT:
                node = self.fused_node(step)
                if node is not None:
                    nodes.append(node)
                continue
            node = helper.make_node(step.op_type, list(step.inputs), list(step.outputs), name=step.name,
                                    domain=step.domain or "")
            for k, v in step.attrs.items():
                a = _attribute(step, k, v, self.weights, plan, self, self.opset)
                if a is not None:
                    node.attribute.append(a)
            nodes.append(node)
        inits = []
        for value_name, ref in plan.constants.items():
            if isinstance(ref, dict):  # strings
                arr = np.array(ref["strings"], dtype=object).reshape(ref["shape"])
                inits.append(_tensor_proto(value_name, arr))
            else:
                inits.append(_tensor_proto(value_name, self.weights[ref]))
        return helper.make_graph(nodes, name, [_value_info(s) for s in plan.inputs],
                                 [_value_info(s) for s in plan.outputs], inits)


def plan_to_onnx(plan: Plan, weights: Mapping[str, Any], *, name: str = "greenrt_optimized",
                 doc: str = "") -> onnx.ModelProto:
    """The plan as an ONNX model (fused ops as model-local functions). Raises NotExportableError listing every
    fused step that has no ONNX-function form, rather than writing a file onnxruntime cannot run."""
    exporter = _Exporter(weights, plan.opsets)
    graph = exporter.graph(plan, name)
    if exporter.problems:
        raise NotExportableError(f"{len(exporter.problems)} fused step(s) cannot be written as ONNX functions",
                                 exporter.problems)
    opsets = [helper.make_opsetid(d, v) for d, v in plan.opsets.items() if d not in ("", "ai.onnx", GREENRT)]
    opsets.append(helper.make_opsetid("", exporter.opset))
    if exporter.functions:
        opsets.append(helper.make_opsetid(GREENRT, 1))
    model = helper.make_model(graph, opset_imports=opsets, producer_name="greenrt",
                              functions=list(exporter.functions.values()))
    model.ir_version = IR_VERSION
    if doc:
        model.doc_string = doc
    return model
