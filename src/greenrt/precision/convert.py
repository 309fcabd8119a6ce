"""Mixed precision as a graph rewrite: float32 work runs in fp16/bf16 except nodes kept at fp32.

    observed = greenrt.build.observe_ranges(model, [{"x": x}])     # the build stage runs the model
    report = apply_precision(model, PrecisionConfig("fp16", [("Softmax", "fp32")]), observed)

Runs after the fusion passes and before compile, in place on the onnx-ir model:

1. Decide each float node's precision: the config's default, then wildcard overrides (node name or op type,
   later rule wins). Ops with no reduced-precision form here (control flow, random generators, quantization,
   spectral ops, non-greenrt custom domains, sequences) stay fp32; so does integer-derived shape arithmetic
   (Cast(int -> float) on rank <= 1 tensors and what computes on them only: fp16 is exact only to 2048, bf16 to
   256). For fp16 only, automatic fallback: the build stage runs the fp32 model on sample batches with an
   observer recording max |x| of every float value (``observed``); a node whose float input or output exceeds ``fallback_threshold`` x 65504 stays
   fp32 (weights and constants are checked statically, without samples). An explicit override to fp16 wins over
   the fallback (reported as a warning).
2. Float32 constants (initializers, Constant nodes) consumed only by reduced-precision nodes are converted in place;
   a constant read by nodes of different precisions gets one copy per dtype. fp32-only input positions (Resize
   roi/scales, Upsample scales, Dropout ratio) keep float32.
3. Cast nodes are inserted at precision boundaries (after the producer, one per value and target dtype); graph
   inputs and outputs stay float32 under their original names.
4. Cast(to=FLOAT) and ConstantOfShape's float value inside reduced-precision nodes follow the node's dtype.

Integer, bool, string and float64 tensors are untouched. Each decided node gets
``metadata_props["greenrt.precision"]``; the model gets ``metadata_props["greenrt.precision.default"]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx_ir as ir

from ..errors import GreenrtError
from ..ops.facts import DTYPE_AGNOSTIC_INPUTS, FP32_INPUTS, FP32_ONLY_OPS
from ..ops.registry import canonical_domain
from ..passes.base import GREENRT_DOMAIN, add_initializer
from .policy import PrecisionConfig

FP16_MAX = 65504.0
FP16_TINY = 6.103515625e-05  # smallest normal fp16: a tensor whose largest |x| is below it loses its digits
F32 = ir.DataType.FLOAT
F16 = ir.DataType.FLOAT16
LOW_DTYPES = {"fp16": ir.DataType.FLOAT16, "bf16": ir.DataType.BFLOAT16}
_SUFFIX = {ir.DataType.FLOAT: "fp32", ir.DataType.FLOAT16: "fp16", ir.DataType.BFLOAT16: "bf16"}

_INT_TYPES = {ir.DataType.INT8, ir.DataType.INT16, ir.DataType.INT32, ir.DataType.INT64, ir.DataType.UINT8,
              ir.DataType.UINT16, ir.DataType.UINT32, ir.DataType.UINT64, ir.DataType.BOOL}


@dataclass
class NodePrecision:
    node: str
    op_type: str
    precision: str  # "fp32" | "fp16" | "bf16" | "tf32"
    reason: str = ""  # why, for overrides and fp32 fallbacks ("" when the default applied)


@dataclass
class PrecisionReport:
    default: str
    nodes: list[NodePrecision] = field(default_factory=list)
    casts_inserted: int = 0
    constants_converted: int = 0  # initializers / Constant nodes converted in place
    constants_copied: int = 0  # extra copies for constants read at two precisions
    warnings: list[str] = field(default_factory=list)
    observed_batches: int = 0

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for n in self.nodes:
            out[n.precision] = out.get(n.precision, 0) + 1
        return out

    @property
    def fallbacks(self) -> list[NodePrecision]:
        """Nodes kept fp32 by a rule other than an explicit override (range, op support, shape math)."""
        return [n for n in self.nodes if n.precision == "fp32" and n.reason and not n.reason.startswith("override")]

    @property
    def overridden(self) -> list[NodePrecision]:
        return [n for n in self.nodes if n.reason.startswith("override")]

    def precision_of(self, node_name: str) -> str | None:
        for n in self.nodes:
            if n.node == node_name:
                return n.precision
        return None

    def to_json(self) -> dict:
        """What the engine header keeps: counts, and every node with a reason (overrides and fallbacks)."""
        return {
            "default": self.default,
            "counts": self.counts,
            "casts_inserted": self.casts_inserted,
            "observed_batches": self.observed_batches,  # sample batches the range fallback saw (0: weights only)
            "kept_or_overridden": [{"node": n.node, "op_type": n.op_type, "precision": n.precision,
                                    "reason": n.reason} for n in self.nodes if n.reason],
            "warnings": list(self.warnings),
        }

    def summary(self) -> str:
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(self.counts.items()))
        lines = [f"precision {self.default}: {counts}; {self.casts_inserted} cast(s) inserted, "
                 f"{self.constants_converted} constant(s) converted, {self.constants_copied} copied"]
        by_reason: dict[tuple[str, str], list[NodePrecision]] = {}
        for n in self.nodes:
            if n.reason:
                by_reason.setdefault((n.precision, n.reason), []).append(n)
        for (precision, reason), group in by_reason.items():
            if len(group) > 3:  # e.g. the accuracy search's prefix: one line, first and last node
                lines.append(f"  {len(group)} nodes, {group[0].node} ... {group[-1].node}: {precision} - {reason}")
                continue
            for n in group:
                lines.append(f"  {n.node or '<unnamed>'} ({n.op_type}): {precision} - {reason}")
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


# -- helpers --------------------------------------------------------------------------------------------------
def _fact_key(node: ir.Node) -> str:
    """The key of ops/facts.py's per-input tables: the op type, or 'domain.Op' outside the ONNX domain."""
    domain = canonical_domain(node.domain)
    return node.op_type if domain == "" else f"{domain}.{node.op_type}"


def _is_tensor(value: ir.Value | None) -> bool:
    return value is not None and (value.type is None or isinstance(value.type, ir.TensorType))


def _is_f32(value: ir.Value | None) -> bool:
    return _is_tensor(value) and value.dtype == F32


def _has_subgraph(node: ir.Node) -> bool:
    return any(a.type in (ir.AttributeType.GRAPH, ir.AttributeType.GRAPHS) for a in node.attributes.values())


def _rank(value: ir.Value) -> int | None:
    return None if value.shape is None else len(value.shape)


def _astype(array: np.ndarray, dtype: ir.DataType) -> np.ndarray:
    with np.errstate(over="ignore"):  # out-of-range values become inf; reported as a warning
        return np.asarray(array).astype(_np_dtype(dtype))


def _np_dtype(dtype: ir.DataType) -> np.dtype:
    if dtype == ir.DataType.BFLOAT16:
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return {ir.DataType.FLOAT: np.dtype(np.float32), ir.DataType.FLOAT16: np.dtype(np.float16)}[dtype]


def _finite_max(array: np.ndarray) -> float:
    a = np.abs(np.asarray(array, dtype=np.float64).reshape(-1))
    a = a[np.isfinite(a)]
    return float(a.max()) if a.size else 0.0


def _constant_node_array(node: ir.Node) -> np.ndarray | None:
    """The float32 value of a Constant node (value / value_float / value_floats), else None."""
    a = node.attributes
    if "value" in a and a["value"].value is not None:
        t = a["value"].value
        return t.numpy() if t.dtype == F32 else None
    if "value_float" in a:
        return np.array(a["value_float"].value, dtype=np.float32)
    if "value_floats" in a:
        return np.array(list(a["value_floats"].value), dtype=np.float32)
    return None


def _const_source(value: ir.Value) -> tuple[str, Any] | None:
    """('init', None) for a float32 initializer, ('const', node) for a main-graph Constant node output."""
    if value.is_initializer() and not value.is_graph_input() and value.const_value is not None:
        return ("init", None)
    node = value.producer()
    if node is not None and node.op_type == "Constant" and canonical_domain(node.domain) == "":
        if _constant_node_array(node) is not None:
            return ("const", node)
    return None


def _const_array(value: ir.Value) -> np.ndarray:
    src = _const_source(value)
    assert src is not None
    return value.const_value.numpy() if src[0] == "init" else _constant_node_array(src[1])


class _Names:
    def __init__(self, graph: ir.Graph):
        self.used: set[str] = set(graph.initializers)
        for v in graph.inputs:
            self.used.add(v.name or "")
        for node in graph.all_nodes():
            self.used.add(node.name or "")
            for v in node.outputs:
                self.used.add(v.name or "")

    def fresh(self, hint: str) -> str:
        name, i = hint, 0
        while name in self.used:
            i += 1
            name = f"{hint}_{i}"
        self.used.add(name)
        return name


# -- observation ----------------------------------------------------------------------------------------------
@dataclass
class ObservedRanges:
    """What an fp32 run of the model (as it is before this rewrite) over sample batches saw, per value name:
    the largest finite |x| and the ONNX dtype. Made by the build stage (build/observe.py): this stage never runs
    the model."""

    maxima: dict[str, float] = field(default_factory=dict)
    dtypes: dict[str, int] = field(default_factory=dict)
    batches: int = 0


# -- the rewrite ----------------------------------------------------------------------------------------------
class _Rewriter:
    def __init__(self, model: ir.Model, config: PrecisionConfig, observed: ObservedRanges | None):
        self.model = model
        self.graph = model.graph
        self.config = config
        self.observed = observed
        self.report = PrecisionReport(config.default)
        self.nodes = list(self.graph)
        self.in_main = {id(n) for n in self.nodes}
        self.decision: dict[int, str] = {}  # id(node) -> "fp32" | "fp16" | "bf16" | "tf32"
        self.maxima: dict[str, float] = {}
        self.names = _Names(self.graph)

    # precision of a decided node as a storage dtype
    def node_dtype(self, node: ir.Node) -> ir.DataType:
        return LOW_DTYPES.get(self.decision.get(id(node), "fp32"), F32)

    def required(self, node: ir.Node, index: int) -> ir.DataType | None:
        """The dtype ``node`` needs at input ``index`` (a float32-origin value), None when any dtype will do."""
        if id(node) not in self.in_main:
            return F32  # read inside a subgraph: those stay fp32
        op = _fact_key(node)
        if index in DTYPE_AGNOSTIC_INPUTS.get(op, ()):
            return None
        if index in FP32_INPUTS.get(op, ()):
            return F32
        return self.node_dtype(node)

    def float_positions(self, node: ir.Node) -> list[int]:
        """Input positions holding float32 values that follow the node's precision."""
        op = _fact_key(node)
        skip = DTYPE_AGNOSTIC_INPUTS.get(op, frozenset()) | FP32_INPUTS.get(op, frozenset())
        return [i for i, v in enumerate(node.inputs) if i not in skip and _is_f32(v)]

    def touches_float(self, node: ir.Node) -> bool:
        return bool(self.float_positions(node)) or any(_is_f32(v) for v in node.outputs)

    # -- step 1: decide ------------------------------------------------------------------------------------
    def forced_fp32(self, node: ir.Node) -> str | None:
        domain = canonical_domain(node.domain)
        if _has_subgraph(node):
            return "control flow (subgraphs) stays fp32"
        if domain not in ("", GREENRT_DOMAIN):
            return f"domain {domain!r} has no reduced-precision form"
        if node.op_type in FP32_ONLY_OPS:
            return f"{node.op_type} has no reduced-precision form (float-only types or dtype attribute)"
        if any(v is not None and not _is_tensor(v) for v in list(node.inputs) + list(node.outputs)):
            return "sequence/optional values stay fp32"
        if node.op_type == "Constant" and domain == "" and _constant_node_array(node) is None \
                and any(_is_f32(v) for v in node.outputs):
            return "sparse constant stays fp32"
        return None

    def decide(self) -> None:
        cfg = self.config
        wants_fp16 = cfg.default == "fp16" or any(p == "fp16" for _, p in cfg.overrides)
        if wants_fp16 and cfg.auto_fallback and self.observed is not None:
            self.maxima = self.observed.maxima
            self.report.observed_batches = self.observed.batches
        limit = cfg.fallback_threshold * FP16_MAX
        shape_math: set[int] = set()  # id(value) of integer-derived float values

        for node in self.nodes:
            if node.op_type == "Constant" and canonical_domain(node.domain) == "":
                if self.forced_fp32(node) is None:
                    continue  # constants follow their consumers (converted in step 2)
            if not self.touches_float(node):
                continue
            precision, rule = cfg.resolve(node.name or "", node.op_type)
            reason = f"override {rule}" if rule else ""
            if not rule and precision in LOW_DTYPES and node.name in cfg.keep_fp32:
                precision, reason = "fp32", cfg.keep_fp32[node.name]
            forced = self.forced_fp32(node)
            if forced and precision in LOW_DTYPES:
                precision, reason = "fp32", forced
            is_shape_math = self.is_shape_math(node, shape_math)
            if is_shape_math:
                shape_math.update(id(v) for v in node.outputs if _is_f32(v))
                if precision in LOW_DTYPES and not rule:
                    precision, reason = "fp32", "integer-derived shape/index arithmetic stays fp32"
            if precision == "fp16" and cfg.auto_fallback:
                over = self.over_range(node, limit)
                if over:
                    if rule:
                        self.report.warnings.append(f"node {node.name!r} forced to fp16 by {rule} but {over}")
                    else:
                        precision, reason = "fp32", over
            self.decision[id(node)] = precision
            node.metadata_props["greenrt.precision"] = precision
            self.report.nodes.append(NodePrecision(node.name or "", node.op_type, precision, reason))

    def is_shape_math(self, node: ir.Node, shape_math: set[int]) -> bool:
        outs = [v for v in node.outputs if _is_f32(v)]
        if not outs or any(_rank(v) is None or _rank(v) > 1 for v in outs):
            return False
        if node.op_type == "Cast" and canonical_domain(node.domain) == "":
            src = node.inputs[0] if node.inputs else None
            return src is not None and (src.dtype in _INT_TYPES or id(src) in shape_math)
        ins = [node.inputs[i] for i in self.float_positions(node)]
        if not ins or not any(id(v) in shape_math for v in ins):
            return False
        return all(id(v) in shape_math or _const_source(v) is not None for v in ins)

    def over_range(self, node: ir.Node, limit: float) -> str | None:
        for v in node.outputs:
            if _is_f32(v):
                m = self.maxima.get(v.name or "")
                if m is None and node.op_type == "ConstantOfShape" and "value" in node.attributes:
                    m = _finite_max(node.attributes["value"].value.numpy())
                if m is not None and m > limit:
                    return f"activation max |x| = {m:.3g} over fp16 range (output {v.name!r}, limit {limit:.6g})"
                if m is not None and 0.0 < m < FP16_TINY:
                    return (f"activation max |x| = {m:.3g} under fp16's normal range (output {v.name!r}, smallest "
                            f"normal {FP16_TINY:.3g}): it would flush toward zero")
        for i in self.float_positions(node):
            v = node.inputs[i]
            if _const_source(v) is not None:
                m = _finite_max(_const_array(v))
                what = "constant"
            else:
                m = self.maxima.get(v.name or "")
                what = "input"
            if m is not None and m > limit:
                return f"{what} {v.name!r} max |x| = {m:.3g} over fp16 range (limit {limit:.6g})"
            if what == "input" and m is not None and 0.0 < m < FP16_TINY:
                return (f"input {v.name!r} max |x| = {m:.3g} under fp16's normal range (smallest normal "
                        f"{FP16_TINY:.3g}): it would flush toward zero")
        return None

    # -- step 2-4: rewrite ---------------------------------------------------------------------------------
    def rewrite(self) -> None:
        graph = self.graph
        originally_f32_outputs = {id(v) for v in graph.outputs if _is_f32(v)}
        # values whose uses must be checked: every float32 graph input, constant and node output, in order
        sources: list[ir.Value] = [v for v in graph.inputs if _is_f32(v)]
        sources += [v for v in graph.initializers.values() if _is_f32(v) and not v.is_graph_input()]
        for node in self.nodes:
            sources += [v for v in node.outputs if _is_f32(v)]

        # retype outputs of reduced-precision nodes (and their dtype attributes)
        for node in self.nodes:
            dtype = self.node_dtype(node)
            if id(node) not in self.decision or dtype == F32:
                continue
            self.retype_node(node, dtype)

        for value in sources:
            if _const_source(value) is not None:
                self.convert_constant(value)
            else:
                self.cast_uses(value)

        # graph outputs keep float32 and their names
        for i, v in enumerate(list(graph.outputs)):
            if id(v) in originally_f32_outputs and v.dtype != F32:
                self.cast_output(v)

    def retype_node(self, node: ir.Node, dtype: ir.DataType) -> None:
        op = _fact_key(node)
        if op == "Cast" and node.attributes["to"].value == int(F32):
            node.attributes["to"] = ir.AttrInt64("to", int(dtype))
        if op == "ConstantOfShape":
            attr = node.attributes.get("value")
            if attr is None:
                node.attributes["value"] = ir.AttrTensor("value", ir.tensor(np.zeros(1, dtype=_np_dtype(dtype))))
            elif attr.value.dtype == F32:
                arr = _astype(attr.value.numpy(), dtype)
                node.attributes["value"] = ir.AttrTensor("value", ir.tensor(arr))
        for v in node.outputs:
            if _is_f32(v):
                v.type = ir.TensorType(dtype)

    def uses_needing(self, value: ir.Value) -> list[tuple[ir.Node, int, ir.DataType]]:
        out = []
        for node, index in list(value.uses()):
            want = self.required(node, index)
            if want is not None:
                out.append((node, index, want))
        return out

    def convert_constant(self, value: ir.Value) -> None:
        uses = self.uses_needing(value)
        wanted = []
        for _, _, d in uses:
            if d not in wanted:
                wanted.append(d)
        if not wanted or wanted == [F32]:
            return
        kind, const_node = _const_source(value)
        array = _const_array(value)
        if F16 in wanted and _finite_max(array) > FP16_MAX:
            self.report.warnings.append(
                f"constant {value.name!r} (max |x| = {_finite_max(array):.3g}) exceeds fp16's range and becomes inf "
                f"in fp16; keep its consumers fp32 (auto_fallback or an override)")
        versions: dict[ir.DataType, ir.Value] = {F32: value}
        if F32 not in wanted and not value.is_graph_output():
            first = wanted[0]
            converted = _astype(array, first)
            if kind == "init":
                value.const_value = ir.tensor(converted, name=value.name)
            else:
                for key in ("value_float", "value_floats"):
                    if key in const_node.attributes:
                        del const_node.attributes[key]
                const_node.attributes["value"] = ir.AttrTensor("value", ir.tensor(converted))
            value.type = ir.TensorType(first)
            versions = {first: value}
            self.report.constants_converted += 1
        for node, index, want in uses:
            if want not in versions:
                name = self.names.fresh(f"{value.name or 'const'}_{_SUFFIX[want]}")
                versions[want] = add_initializer(self.graph, name, _astype(array, want))
                self.names.used.add(versions[want].name)
                self.report.constants_copied += 1
            if node.inputs[index] is not versions[want]:
                node.replace_input_with(index, versions[want])

    def cast_uses(self, value: ir.Value) -> None:
        have = value.dtype
        casts: dict[ir.DataType, ir.Value] = {}
        for node, index, want in self.uses_needing(value):
            if want == have:
                continue
            if want not in casts:
                casts[want] = self.insert_cast(value, want)
            node.replace_input_with(index, casts[want])

    def insert_cast(self, value: ir.Value, dtype: ir.DataType, out_name: str | None = None) -> ir.Value:
        base = value.name or "value"
        name = out_name or self.names.fresh(f"{base}_{_SUFFIX[dtype]}")
        out = ir.Value(name=name, type=ir.TensorType(dtype), shape=value.shape.copy() if value.shape else None)
        cast = ir.Node("", "Cast", [value], [ir.AttrInt64("to", int(dtype))], outputs=[out],
                       name=self.names.fresh(f"Cast_{base}_to_{_SUFFIX[dtype]}"))
        cast.metadata_props["greenrt.precision"] = "boundary"
        producer = value.producer()
        if producer is not None and id(producer) in self.in_main:
            self.graph.insert_after(producer, cast)
        else:
            first = next(iter(self.graph), None)
            if first is None:
                self.graph.append(cast)
            else:
                self.graph.insert_before(first, cast)
        self.report.casts_inserted += 1
        return out

    def cast_output(self, value: ir.Value) -> None:
        """``value`` (a graph output, now reduced) is renamed; a Cast to float32 takes its name and slot."""
        name = value.name
        value.name = self.names.fresh(f"{name}_{_SUFFIX[value.dtype]}")
        out = ir.Value(name=name, type=ir.TensorType(F32), shape=value.shape.copy() if value.shape else None)
        cast = ir.Node("", "Cast", [value], [ir.AttrInt64("to", int(F32))], outputs=[out],
                       name=self.names.fresh(f"Cast_{name}_to_fp32"))
        cast.metadata_props["greenrt.precision"] = "boundary"
        self.graph.append(cast)
        self.report.casts_inserted += 1
        for i, v in enumerate(list(self.graph.outputs)):
            if v is value:
                self.graph.outputs[i] = out

    def fill_unknown_dtypes(self) -> None:
        """Values shape inference left untyped get the dtype the fp32 run observed (when there was one)."""
        unknown = [v for n in self.nodes for v in n.outputs if v.type is None or v.dtype is None]
        if not unknown:
            return
        if self.observed is not None:
            dtypes = self.observed.dtypes
            for v in unknown:
                d = dtypes.get(v.name or "")
                if d:
                    v.type = ir.TensorType(ir.DataType(d))
        still = [v.name for v in unknown if v.type is None or v.dtype is None]
        if still:
            self.report.warnings.append(
                f"{len(still)} value(s) have no known dtype and were left as they are (observe the model on sample "
                f"inputs to type them): {still[:5]}"
            )


def apply_precision(model: ir.Model, config: PrecisionConfig | str,
                    observed: ObservedRanges | None = None) -> PrecisionReport:
    """Rewrite ``model`` in place for ``config`` (a PrecisionConfig or a default precision name); see module doc.

    ``observed``: ranges of an fp32 run of ``model`` on sample inputs (build/observe.py), for the fp16 range
    fallback and for typing values shape inference left untyped."""
    if isinstance(config, str):
        config = PrecisionConfig(config)
    if not isinstance(config, PrecisionConfig):
        raise GreenrtError(f"apply_precision needs a PrecisionConfig or a precision name, got {type(config).__name__}")
    if observed is not None and not isinstance(observed, ObservedRanges):
        raise GreenrtError(f"apply_precision: observed must be ObservedRanges (greenrt.build.observe_ranges), got "
                           f"{type(observed).__name__}")
    rewriter = _Rewriter(model, config, observed)
    rewriter.fill_unknown_dtypes()
    rewriter.decide()
    if any(p in LOW_DTYPES for p in rewriter.decision.values()):
        rewriter.rewrite()
    model.metadata_props["greenrt.precision.default"] = config.default
    return rewriter.report


__all__ = ["apply_precision", "ObservedRanges", "PrecisionReport", "NodePrecision", "FP16_MAX"]
