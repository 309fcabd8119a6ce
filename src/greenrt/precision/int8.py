"""INT8 as a graph rewrite: convs and GEMMs with constant weights become greenrt INT8 layers (ops/int8.py).

    calibration = greenrt.build.calibration.calibrate(path, source)        # per-tensor thresholds (amax)
    report = quantize_int8(model, calibration.ranges, [("head.*", "fp16")])
    print(report.summary())

Runs after the fusion passes (conv + bias + BN + residual add + activation are one FusedConv by then, so those fold
into the INT8 layer's epilogue) and before the float precision stage (fp32/fp16/bf16 for what stays float); the
calibration ran the same optimized graph, so its tensor names are this graph's.

Placement, as an optimizing builder places it:

- Weights: symmetric per output channel, INT8 in [-127, 127], scale = max |w_c| / 127 (an all-zero channel gets
  scale 1). Activations: per tensor, scale = the calibrated threshold / 127, INT8 with zero point 0; a tensor that
  cannot be negative by construction (the output of a ReLU, a Clip from 0 up, a sigmoid, or of pooling and
  reshaping of one) is UINT8 with zero point 0 and scale threshold / 255 instead: the same range at twice the
  resolution, where symmetric INT8 leaves its negative half unused. An INT8 kernel takes it exactly: x - 128 is
  INT8, and 128 * sum(w) per channel joins the int32 bias.
- The input of each INT8 layer is quantized once per tensor (one ONNX QuantizeLinear shared by its INT8 readers),
  except where its producer is itself an INT8 layer whose every reader is an INT8 layer (as input, or as a conv's
  residual): that producer writes INT8 directly (requantized in its epilogue), with no dequantize/quantize between
  the two. Everything else reads the float output of the layer.
- Bias correction (Nagel et al. 2019, "Data-Free Quantization"; empirical means instead of BatchNorm's): rounding
  the weights shifts each output channel's mean by E[(W_q - W) x] = (W_q - W) E[x], where E[x] is the layer
  input's per-channel mean over the calibration data (the calibration records it). Where that mean is known, the
  shift is subtracted from the layer's float bias (a bias is added where there was none). It matters most on
  depthwise convs with BatchNorm folded in: nine weights per channel, so one rounding step moves a channel's mean.
  A conv's taps count by how often they read inside the input rather than its zero padding (on a 7x7 map with a
  3x3 kernel and padding 1, a corner tap reads padding on 13 of 49 outputs).
- Smoothing (``smooth`` = alpha; Xiao et al. 2023, "SmoothQuant"; off by default): a GEMM input with outlier
  channels (transformers' LayerNorm and GELU outputs) spends its per-tensor range on them. Each channel k is divided
  by s_k = max|x_k|^alpha / max|W_k|^(1-alpha) (W_k the k-th input row of every INT8 reader's weight) and the
  weight rows are multiplied by it, so x W = (x / s)(s W): the GEMM reads x / s per tensor (threshold max_k
  max|x_k| / s_k), written by a per-axis QuantizeLinear with scale * s_k over the last axis, and its per-channel
  weights absorb the outliers. Only tensors every INT8 reader of which is a GEMM; their producer then hands them
  on in float (a per-channel requantize in its epilogue is the Hopper kernels' to do).
- Embedding tables (a Gather along axis 0 of a constant 2-D float table of at least 4,096 values): INT8 rows with
  one symmetric scale each (greenrt.QGather), the rows looked up dequantized to float32; no calibration needed.
- Kept float, with the reason in the report: layers a ``--layer-precision`` rule sends to a float precision, layers
  whose input has no calibrated range or a range of 0 (never seen non-zero), non-float or non-constant weights,
  and reductions long enough that an int32 accumulator could overflow.

The rewritten layers run the exact INT8 reference (ops/int8.py) unless a faster tactic is timed and kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from ..ops.int8 import FLOAT, FP8_MAX, MAX_EXACT_K
from ..ops.registry import canonical_domain
from ..passes.base import GREENRT_DOMAIN, add_initializer, attr, const_array, replace_node
from .policy import matches

QMAX = 127.0
UMAX = 255.0
FORMATS = ("int8", "fp8")  # the quantized layers' format: INT8, or float8 e4m3 (--fp8, Hopper's FP8 tensor cores)
# ops whose output is >= 0 wherever their (first) data input is: pooling, reshaping, picking
_KEEPS_SIGN = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Flatten", "Reshape", "Transpose",
               "Squeeze", "Unsqueeze", "Identity", "Slice", "Gather", "Resize", "Upsample", "SpaceToDepth",
               "DepthToSpace", "ReduceMax", "ReduceMean"}
_NON_NEGATIVE_ACTIVATIONS = {"Relu", "Sigmoid", "HardSigmoid"}
# ops that take an INT8 / UINT8 tensor and hand it on in the same type and scale (max commutes with the monotonic
# quantization): an INT8 layer before them hands INT8 through them to the INT8 layers after (ResNet's stem ->
# MaxPool -> layer1), instead of float out, the op in float, and a QuantizeLinear
_INT8_PASS_THROUGH = {"MaxPool"}


def _activation_non_negative(name: str, params) -> bool:
    if name in _NON_NEGATIVE_ACTIVATIONS:
        return True
    return name == "Clip" and len(params) >= 1 and params[0] >= 0


def non_negative(value: ir.Value, depth: int = 0) -> bool:
    """Whether ``value`` cannot be negative by construction (its producer's activation, or pooling/reshaping of
    such a value); False where it is not known."""
    node = value.producer()
    if node is None or depth > 32:
        return False
    domain, op = canonical_domain(node.domain), node.op_type
    if domain == GREENRT_DOMAIN and op in ("FusedConv", "FusedMatMul", "QConv", "QMatMul"):
        return _activation_non_negative(attr(node, "activation", ""), list(attr(node, "activation_params", [])))
    if domain != "":
        return False
    if op in _NON_NEGATIVE_ACTIVATIONS:
        return True
    if op == "Clip":
        low = const_array(node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] is not None else None
        if low is None and "min" in node.attributes:
            low = np.array(attr(node, "min"))
        return low is not None and low.size == 1 and float(low.reshape(-1)[0]) >= 0
    if op in _KEEPS_SIGN and node.inputs and node.inputs[0] is not None:
        return non_negative(node.inputs[0], depth + 1)
    if op == "Concat":
        return all(v is not None and non_negative(v, depth + 1) for v in node.inputs)
    return False
_CONV_ATTRS = ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")


@dataclass
class LayerInt8:
    node: str
    op_type: str
    precision: str  # "int8" or the float precision it stays in ("" = the build's float precision)
    reason: str = ""
    out: str = ""  # "int8" where the layer hands INT8 to its readers, else "float"


@dataclass
class Int8Report:
    layers: list[LayerInt8] = field(default_factory=list)
    quantize_inserted: int = 0
    bias_corrected: int = 0
    smoothed: int = 0  # tensors quantized as x / s (SmoothQuant)
    format: str = "int8"  # "fp8": the quantized layers are float8 e4m3 (their report lines still say "int8")
    passed_through: int = 0  # outputs of ops that hand an INT8 tensor on in its type (MaxPool)

    @property
    def quantized(self) -> list[LayerInt8]:
        return [x for x in self.layers if x.precision == "int8"]

    @property
    def kept(self) -> list[LayerInt8]:
        return [x for x in self.layers if x.precision != "int8"]

    def to_json(self) -> dict:
        return {"format": self.format, "int8_layers": len(self.quantized), "int8_outputs": sum(x.out == "int8" for x in self.quantized),
                "float_layers": len(self.kept), "quantize_inserted": self.quantize_inserted,
                "bias_corrected": self.bias_corrected, "smoothed": self.smoothed,
                "passed_through": self.passed_through,
                "kept_float": [{"node": x.node, "op_type": x.op_type, "reason": x.reason} for x in self.kept],
                "layers": [{"node": x.node, "op_type": x.op_type, "precision": x.precision, "out": x.out}
                           for x in self.layers]}

    def summary(self) -> str:
        q = self.quantized
        kind = self.format.upper()
        lines = [f"{self.format}: {len(q)} layer(s) {kind} ({sum(x.out == 'int8' for x in q)} hand {kind} to {kind} "
                 f"readers), "
                 f"{len(self.kept)} kept float, {self.quantize_inserted} QuantizeLinear inserted, "
                 f"{self.bias_corrected} bias(es) corrected"
                 + (f", INT8 through {self.passed_through} pooling op(s)" if self.passed_through else "")]
        lines += [f"  {x.node or '<unnamed>'} ({x.op_type}): float - {x.reason}" for x in self.kept[:20]]
        if len(self.kept) > 20:
            lines.append(f"  ... and {len(self.kept) - 20} more (inspect the engine's report)")
        return "\n".join(lines)


@dataclass
class _Layer:
    node: ir.Node
    kind: str  # "conv" | "matmul"
    w: np.ndarray  # float weight as the op reads it
    w_axis: int  # output-channel axis of w
    reduction: int  # K: products summed per output
    int8_out: bool = False


def layer_kind(node: ir.Node) -> str | None:
    """"conv" for an ONNX Conv or a greenrt.FusedConv, "matmul" for a MatMul or a FusedMatMul: the layers INT8
    quantizes (and whose inputs the calibration keeps per-channel statistics of); else None."""
    domain, op = canonical_domain(node.domain), node.op_type
    if (domain == "" and op == "Conv") or (domain == GREENRT_DOMAIN and op == "FusedConv"):
        return "conv"
    if (domain == "" and op == "MatMul") or (domain == GREENRT_DOMAIN and op == "FusedMatMul"):
        return "matmul"
    return None


def _layer_of(node: ir.Node) -> tuple[_Layer | None, str]:
    """The node as an INT8 candidate, or (None, why not) where it is a conv/GEMM that cannot be; ('', '') else."""
    kind = layer_kind(node)
    if kind is None:
        return None, ""
    x = node.inputs[0] if node.inputs else None
    if x is None or x.dtype != ir.DataType.FLOAT:
        return None, "its input is not float32"
    w = const_array(node.inputs[1]) if len(node.inputs) > 1 else None
    if w is None:
        return None, "its weight is not a constant"
    if w.dtype != np.float32:
        return None, f"its weight is {w.dtype}, not float32"
    if kind == "conv":
        if w.ndim < 3:
            return None, f"weight of rank {w.ndim}"
        reduction = int(np.prod(w.shape[1:]))
        layer = _Layer(node, "conv", w, 0, reduction)
    else:
        if w.ndim != 2:
            return None, f"weight of rank {w.ndim} (a batched MatMul)"
        trans = bool(attr(node, "trans_w", 0)) if node.op_type == "FusedMatMul" else False
        layer = _Layer(node, "matmul", w, 0 if trans else 1, int(w.shape[1] if trans else w.shape[0]))
    if layer.reduction > MAX_EXACT_K:
        return None, f"reduction of {layer.reduction} products could overflow an int32 accumulator"
    return layer, ""


MIN_TABLE = 4096  # embedding tables below this many values stay float (nothing to save)


def _embedding_table(node: ir.Node) -> np.ndarray | None:
    """The constant float32 2-D table of an ONNX Gather along axis 0 with integer indices, else None."""
    if canonical_domain(node.domain) != "" or node.op_type != "Gather" or len(node.inputs) != 2:
        return None
    if attr(node, "axis", 0) != 0 or node.inputs[1] is None or node.inputs[1].dtype not in (
            ir.DataType.INT64, ir.DataType.INT32):
        return None
    table = const_array(node.inputs[0])
    if table is None or table.dtype != np.float32 or table.ndim != 2 or table.size < MIN_TABLE:
        return None
    return table


def _weight_scales(w: np.ndarray, axis: int, fmt: str = "int8") -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-channel weights and their scales (float32): INT8 in [-127, 127], or float8 e4m3 with the
    channel's max |w| at 448 (rounded to nearest even)."""
    moved = np.moveaxis(w.astype(np.float64), axis, 0).reshape(w.shape[axis], -1)
    amax = np.abs(moved).max(axis=1)
    top = FP8_MAX if fmt == "fp8" else QMAX
    scale = np.where(amax > 0, amax / top, 1.0)
    shape = [1] * w.ndim
    shape[axis] = -1
    scaled = w / scale.reshape(shape)
    if fmt == "fp8":
        q = np.clip(scaled, -FP8_MAX, FP8_MAX).astype(ir.DataType.FLOAT8E4M3FN.numpy())  # nearest, ties to even
        return q, scale.astype(np.float32)
    return np.clip(np.rint(scaled), -QMAX, QMAX).astype(np.int8), scale.astype(np.float32)


def _tap_coverage(node: ir.Node, kernel: tuple[int, ...]) -> np.ndarray | None:
    """For each kernel tap of a conv, the fraction of output positions where it reads inside the input (not the zero
    padding), from the input's static spatial size; None where that size or the padding is not known."""
    x = node.inputs[0]
    dims = list(x.shape)[2:] if x.shape is not None else []
    if len(dims) != len(kernel) or not all(isinstance(d, int) and d > 0 for d in dims):
        return None
    if str(attr(node, "auto_pad", "NOTSET")) not in ("NOTSET", ""):
        return None
    n = len(kernel)
    pads = list(attr(node, "pads", None) or [0] * 2 * n)
    strides = list(attr(node, "strides", None) or [1] * n)
    dilations = list(attr(node, "dilations", None) or [1] * n)
    coverage = np.ones(kernel)
    for axis, (size, k, s, d) in enumerate(zip(dims, kernel, strides, dilations)):
        out = (size + pads[axis] + pads[axis + n] - d * (k - 1) - 1) // s + 1
        if out < 1:
            return None
        start = np.arange(out) * s - pads[axis]
        inside = [float(np.mean((start + t * d >= 0) & (start + t * d < size))) for t in range(k)]
        shape = [1] * n
        shape[axis] = k
        coverage = coverage * np.asarray(inside).reshape(shape)
    return coverage


def _mean_shift(layer: _Layer, w_q: np.ndarray, w_scale: np.ndarray, mean: list[float] | None) -> np.ndarray | None:
    """E[y_int8 - y_float] per output channel from the weights' rounding: (W_q * scale - W) applied to the input's
    per-channel mean (module doc), a conv's taps weighted by how often they read inside the input rather than its
    zero padding (averaged over the output positions); None where the mean does not fit the layer."""
    if mean is None:
        return None
    mu = np.asarray(mean, dtype=np.float64)
    shape = [1] * layer.w.ndim
    shape[layer.w_axis] = -1
    dw = w_q.astype(np.float64) * w_scale.astype(np.float64).reshape(shape) - layer.w.astype(np.float64)
    if layer.kind == "matmul":
        dw = dw if layer.w_axis == 1 else dw.T  # [K, N]
        return mu @ dw if mu.shape[0] == dw.shape[0] else None
    c_out, c_in_group = dw.shape[0], dw.shape[1]
    if mu.shape[0] % c_in_group or c_out % (mu.shape[0] // c_in_group):
        return None
    coverage = _tap_coverage(layer.node, dw.shape[2:])
    if coverage is not None:
        dw = dw * coverage
    groups = mu.shape[0] // c_in_group
    dw = dw.reshape(c_out, c_in_group, -1).sum(axis=2).reshape(groups, c_out // groups, c_in_group)
    return np.einsum("goi,gi->go", dw, mu.reshape(groups, c_in_group)).reshape(c_out)


def _smoothing(layers: list[_Layer], channel_amax: dict[str, list[float]], alpha: float) -> dict[str, np.ndarray]:
    """SmoothQuant's per-channel factors s (module doc) for each tensor every INT8 reader of which is a GEMM:
    s_k = max|x_k| ** alpha / max|W_k| ** (1 - alpha), W_k the k-th input row of every reader's weight."""
    readers: dict[str, list[_Layer]] = {}
    for layer in layers:
        readers.setdefault(layer.node.inputs[0].name or "", []).append(layer)
    out = {}
    for name, group in readers.items():
        amax = channel_amax.get(name)
        if not name or amax is None or any(layer.kind != "matmul" for layer in group):
            continue
        x = np.asarray(amax, dtype=np.float64)
        rows = [np.abs(layer.w).max(axis=layer.w_axis).astype(np.float64) for layer in group]  # over N: one per k
        if any(r.shape != x.shape for r in rows):
            continue
        w = np.max(rows, axis=0)
        ok = (x > 0) & (w > 0)
        factor = np.ones_like(x)
        factor[ok] = x[ok] ** alpha / w[ok] ** (1.0 - alpha)
        out[name] = np.clip(factor, 1e-5, 1e5)
    return out


def _corrected_bias(graph: ir.Graph, layer: _Layer, shift: np.ndarray, hint: str) -> ir.Value | None:
    """The layer's float bias minus ``shift``, as a new initializer; None where its bias is not a float constant."""
    bias = layer.node.inputs[2] if len(layer.node.inputs) > 2 else None
    b = np.zeros(shift.shape, np.float64) if bias is None else const_array(bias)
    if b is None or b.dtype not in (np.float32, np.float64) or b.shape != shift.shape:
        return None
    return add_initializer(graph, f"{hint}_bias_corrected", (b.astype(np.float64) - shift).astype(np.float32))


def _kept_float(rules, keep: dict[str, str] | None, name: str, op_type: str) -> LayerInt8 | None:
    """The report line of a layer the rules (later wins) or ``keep`` (exact names, where no rule names the layer)
    keep float, else None."""
    precision, rule = "int8", ""
    for pattern, value in rules:
        if matches(pattern, name, op_type):
            precision, rule = value, f"{pattern}={value}"
    if keep and name in keep and not rule:
        return LayerInt8(name, op_type, "", keep[name])
    if precision != "int8":
        return LayerInt8(name, op_type, precision, f"override {rule}")
    return None


def quantize_int8(model: ir.Model, ranges: dict[str, float], rules: list[tuple[str, str]] = (),
                  keep: dict[str, str] | None = None,
                  channel_means: dict[str, list[float]] | None = None,
                  channel_amax: dict[str, list[float]] | None = None, smooth: float | None = None,
                  fmt: str = "int8") -> Int8Report:
    """Rewrite ``model`` in place (see the module doc); ``ranges``: calibrated threshold per tensor name;
    ``rules``: (pattern, precision) as --layer-precision gives them, later wins; a precision other than int8 keeps
    the matching layers float; ``keep``: exact node names kept float, with the reason (the accuracy budget's);
    ``channel_means``: per-channel means of the layers' inputs (the calibration's), for bias correction (None: no
    correction); ``smooth``: SmoothQuant's alpha for the GEMMs' inputs, from ``channel_amax`` (per-channel max |x|
    of the layers' inputs, the calibration's); None: no smoothing; ``fmt``: "int8", or "fp8" for float8 e4m3
    layers (per-tensor activation scale threshold / 448, per-channel weights, no UINT8: float8 is signed)."""
    if fmt not in FORMATS:
        raise ValueError(f"quantized format {fmt!r}: expected one of {FORMATS}")
    fp8 = fmt == "fp8"
    graph = model.graph
    report = Int8Report(format=fmt)
    channel_means = channel_means or {}
    ranges = dict(ranges)
    layers: dict[int, _Layer] = {}
    for node in list(graph):
        layer, why = _layer_of(node)
        if layer is None and not why:
            continue
        name, op = node.name or "", node.op_type
        kept = _kept_float(rules, keep, name, op)
        if kept is not None:
            report.layers.append(kept)
            continue
        if layer is None:
            report.layers.append(LayerInt8(name, op, "", why))
            continue
        x = node.inputs[0]
        amax = ranges.get(x.name or "")
        if amax is None:
            report.layers.append(LayerInt8(name, op, "", f"input {x.name!r} has no calibrated range (not in the "
                                                         "calibration)"))
            continue
        if not amax > 0:
            report.layers.append(LayerInt8(name, op, "", f"input {x.name!r} was never non-zero on the calibration "
                                                         "data"))
            continue
        layers[id(node)] = layer

    def int8_reader(node: ir.Node, index: int) -> bool:
        layer = layers.get(id(node))
        return layer is not None and (index == 0 or (layer.kind == "conv" and index == 3))

    def int8_use(node: ir.Node, index: int, depth: int = 0) -> bool:
        """An INT8 layer's input, or a pass-through op whose output only INT8 layers read."""
        if int8_reader(node, index):
            return True
        if node.op_type not in _INT8_PASS_THROUGH or node.domain not in ("", "ai.onnx") or index != 0 \
                or len(node.outputs) != 1 or depth > 4:
            return False
        out = node.outputs[0]
        uses = list(out.uses())
        return bool(uses) and not out.is_graph_output() and all(int8_use(n, i, depth + 1) for n, i in uses)

    smoothed: dict[str, np.ndarray] = {}
    if smooth is not None and channel_amax and graph.opset_imports.get("", 0) >= 13:  # per-axis QuantizeLinear
        smoothed = _smoothing(list(layers.values()), channel_amax, smooth)
    for x_name, factor in smoothed.items():  # x / s is quantized per tensor: its threshold is max_k max|x_k| / s_k
        ranges[x_name] = float((np.asarray(channel_amax[x_name]) / factor).max())
    report.smoothed = len(smoothed)
    for layer in layers.values():
        if layer.node.inputs[0].name in smoothed:  # the GEMM reads x / s: its weight rows scale by s
            factor = smoothed[layer.node.inputs[0].name]
            layer.w = (layer.w * (factor[:, None] if layer.w_axis == 1 else factor[None, :])).astype(np.float32)
        out = layer.node.outputs[0]
        uses = list(out.uses())
        # a smoothed tensor is quantized per channel of x (x / s): its producer hands it on in float
        layer.int8_out = (bool(uses) and not out.is_graph_output() and ranges.get(out.name or "", 0.0) > 0
                          and out.name not in smoothed and all(int8_use(n, i) for n, i in uses))
    # the outputs of pass-through ops on an INT8 layer's output: INT8 too, in its scale and type
    passed: dict[str, tuple[ir.Value, str]] = {}  # output name -> (value, the INT8 layer output it carries)
    for layer in layers.values():
        if not layer.int8_out:
            continue
        todo = [(n, layer.node.outputs[0].name) for n, _ in layer.node.outputs[0].uses()]
        while todo:
            n, source = todo.pop()
            if n.op_type in _INT8_PASS_THROUGH and id(n) not in layers and n.outputs[0].name not in passed:
                passed[n.outputs[0].name] = (n.outputs[0], source)
                ranges[n.outputs[0].name] = ranges[source]
                todo += [(m, source) for m, _ in n.outputs[0].uses()]

    quantized: dict[int, ir.Value] = {}  # id(float value) -> its QuantizeLinear output
    # the tensors INT8 layers read or hand on, where they cannot be negative: UINT8 (module doc)
    unsigned_values = set()
    for layer in layers.values():
        for v in [layer.node.inputs[0]] + ([layer.node.outputs[0]] if layer.int8_out else []):
            if non_negative(v):
                unsigned_values.add(v.name)
        if layer.kind == "conv" and len(layer.node.inputs) > 3 and layer.node.inputs[3] is not None \
                and non_negative(layer.node.inputs[3]):
            unsigned_values.add(layer.node.inputs[3].name)

    for name, (_, source) in passed.items():  # a pass-through op hands on its input's type
        if source in unsigned_values:
            unsigned_values.add(name)
        else:
            unsigned_values.discard(name)

    if fp8:
        unsigned_values.clear()

    def scale_of(value: ir.Value) -> float:
        if fp8:
            return float(ranges[value.name] / FP8_MAX)
        return float(ranges[value.name] / (UMAX if value.name in unsigned_values else QMAX))

    def int_type(value: ir.Value) -> ir.DataType:
        if fp8:
            return ir.DataType.FLOAT8E4M3FN
        return ir.DataType.UINT8 if value.name in unsigned_values else ir.DataType.INT8

    def quantize(value: ir.Value) -> ir.Value:
        if id(value) not in quantized:
            dtype = int_type(value)
            scale = np.array(scale_of(value), dtype=np.float32)
            zero = np.array(0, dtype=dtype.numpy())
            attrs = []
            if value.name in smoothed:  # x / s per tensor = x per channel with scale * s_k (the last axis)
                factor = smoothed[value.name]
                scale, zero = (scale * factor).astype(np.float32), np.zeros(factor.shape, dtype=dtype.numpy())
                attrs = [ir.AttrInt64("axis", -1)]
            scale = add_initializer(graph, f"{value.name}_int8_scale", scale)
            zero = add_initializer(graph, f"{value.name}_int8_zero_point", zero)
            q = ir.Node("", "QuantizeLinear", [value, scale, zero], attrs, name=f"{value.name}_quantize")
            q.outputs[0].name = f"{value.name}_{dtype.name.lower()}"
            q.outputs[0].type = ir.TensorType(dtype)
            q.outputs[0].shape = value.shape.copy() if value.shape else None
            producer = value.producer()
            if producer is not None and producer.graph is graph:
                graph.insert_after(producer, q)
            else:
                graph.insert_before(next(iter(graph)), q)
            quantized[id(value)] = q.outputs[0]
            report.quantize_inserted += 1
        return quantized[id(value)]

    # by name: a rewritten producer's output keeps its name (replace_node) but is a new value of a new node
    int8_values = {layer.node.outputs[0].name for layer in layers.values() if layer.int8_out} | set(passed)

    def int8_producer(value: ir.Value) -> bool:
        return value.name in int8_values

    replaced_weights: list[ir.Value | None] = []
    for layer in list(layers.values()):
        node = layer.node
        name = node.name or ""
        x = node.inputs[0]
        x_scale = scale_of(x)
        x_in = x if int8_producer(x) else quantize(x)
        w_q, w_scale = _weight_scales(layer.w, layer.w_axis, fmt)
        hint = (name or "layer").replace("/", "_")
        inputs = [x_in, add_initializer(graph, f"{hint}_w_int8", w_q),
                  add_initializer(graph, f"{hint}_w_scale", w_scale)]
        bias = node.inputs[2] if len(node.inputs) > 2 else None
        mean = channel_means.get(x.name or "")
        if mean is not None and x.name in smoothed:
            mean = list(np.asarray(mean) / smoothed[x.name]) if len(mean) == len(smoothed[x.name]) else None
        shift = _mean_shift(layer, w_q, w_scale, mean)
        corrected = _corrected_bias(graph, layer, shift, hint) if shift is not None else None
        if corrected is not None:
            replaced_weights.append(bias)
            bias = corrected
            report.bias_corrected += 1
        inputs.append(bias)
        attrs = [ir.AttrFloat32("a_scale" if layer.kind == "matmul" else "x_scale", x_scale)]
        if layer.kind == "conv":
            z = node.inputs[3] if len(node.inputs) > 3 else None
            if z is not None:
                inputs.append(z)
                if int8_producer(z):
                    attrs.append(ir.AttrFloat32("z_scale", scale_of(z)))
            for key in _CONV_ATTRS:
                if key in node.attributes:
                    attrs.append(node.attributes[key])
        elif "trans_w" in node.attributes:
            attrs.append(node.attributes["trans_w"])
        for key in ("activation", "activation_params"):
            if key in node.attributes:
                attrs.append(node.attributes[key])
        out = node.outputs[0]
        if layer.int8_out:
            attrs += [ir.AttrInt64("out_dtype", int(int_type(out))), ir.AttrFloat32("y_scale", scale_of(out))]
        else:
            attrs.append(ir.AttrInt64("out_dtype", FLOAT))
        while inputs and inputs[-1] is None:
            inputs.pop()
        op = "QConv" if layer.kind == "conv" else "QMatMul"
        replaced_weights.append(node.inputs[1])
        new = ir.Node(GREENRT_DOMAIN, op, inputs, attrs, name=node.name)
        new.metadata_props["greenrt.precision"] = "int8"
        replace_node(graph, [node], new, out)
        if layer.int8_out:
            new.outputs[0].type = ir.TensorType(int_type(new.outputs[0]))
        report.layers.append(LayerInt8(name, node.op_type, "int8", out="int8" if layer.int8_out else "float"))
    for value, _ in passed.values():
        value.type = ir.TensorType(int_type(value))
        report.passed_through += 1
    for node in list(graph):  # embedding tables: INT8 rows, one scale each (no calibration needed)
        table = _embedding_table(node)
        if table is None:
            continue
        name = node.name or ""
        kept = _kept_float(rules, keep, name, node.op_type)
        if kept is not None:
            report.layers.append(kept)
            continue
        q, scale = _weight_scales(table, 0)
        hint = (name or "gather").replace("/", "_")
        new = ir.Node(GREENRT_DOMAIN, "QGather", [add_initializer(graph, f"{hint}_table_int8", q),
                                                  add_initializer(graph, f"{hint}_row_scale", scale),
                                                  node.inputs[1]], name=node.name)
        new.metadata_props["greenrt.precision"] = "int8"
        replaced_weights.append(node.inputs[0])
        replace_node(graph, [node], new, node.outputs[0])
        report.layers.append(LayerInt8(name, "Gather", "int8", out="float"))
    if report.quantized:
        graph.opset_imports.setdefault(GREENRT_DOMAIN, 1)
    for w in replaced_weights:  # the float weights now read by nothing: not kept in the engine beside the INT8 ones
        if w is not None and w.name in graph.initializers and not list(w.uses()) and not w.is_graph_output():
            del graph.initializers[w.name]
    return report


__all__ = ["quantize_int8", "layer_kind", "Int8Report", "LayerInt8"]
