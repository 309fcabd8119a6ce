"""greenrt.QConv on cuDNN's graph API (nvidia-cudnn-frontend): the conv and its whole epilogue as one fused graph,
INT8 in, INT32 accumulation, INT8 / UINT8 / float out (or float8 e4m3 in and out with float32 accumulation, --fp8).
The Hopper issue's first kernels, as tactics of QConv.

    conv_fprop(X int8 NHWC, W int8 NHWC) -> acc (int32, read as float32)
        [+ 128 * sum(W[c])]  * S[c]  [+ B[c]]  [ReLU / Clip]  [* float32(1 / y_scale)]  -> out

S[c] = float32(x_scale) * W_scale[c], as the reference epilogue (ops/int8.py) computes it, so every plan is checked
against the reference by the builder's tactic stage. A UINT8 input (a tensor after a ReLU, quantized at twice the
resolution) runs as INT8 x - 128 (its bits XOR 0x80), padded explicitly with -128 (its zero), and 128 * sum(W[c])
joins the accumulator. Each of the first execution plans cuDNN offers for a layer is a tactic (``cudnn-int8-p0`` ...
``-p4``: plan N in cuDNN's heuristic order for this GPU and version, which the timing cache keys on): the builder
checks and times them against ``reference``. The graphs live in a process-local cache, made at a layer shape's first
call, each plan built at its first use (an engine's load builds only the plans it names); an engine names the plan
index only, never code.

Needs the ``cudnn`` module (``pip install --no-deps nvidia-cudnn-frontend``, which loads the libcudnn torch ships);
without it, or where a graph does not build for a shape, these tactics do not apply and the reference runs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..onnx.dtypes import to_torch_dtype
from ._util import derived_constant
from .int8 import FLOAT, FLOAT8E4M3FN, FLOAT16, INT8, UINT8, QConv
from .tactics import tactic

GREENRT = "greenrt"
# the plans offered as tactics: cuDNN's first five in its heuristic order. In the probe (nine ResNet-50 shapes,
# H100, bench/results/cudnn_int8_conv_h100_b256.json) the fastest plan was among them on eight shapes and 8%
# off on the ninth; each plan built costs a kernel compile at build time
MAX_PLANS = 5
CHANNEL_ALIGN = 16
ACTIVATIONS = ("", "Relu", "Clip")
OUT_TYPES = (FLOAT, FLOAT16, INT8, UINT8, FLOAT8E4M3FN)


@functools.cache
def _cudnn():
    """The cudnn module, or None where nvidia-cudnn-frontend is not installed (or cannot load libcudnn)."""
    try:
        import cudnn
    except Exception:  # noqa: BLE001  (missing wheel, or its libcudnn not found: the tactics do not apply)
        return None
    return cudnn


@functools.cache
def _handle(device_index: int):
    with torch.cuda.device(device_index):
        return _cudnn().create_handle()


@dataclass
class _Graph:
    graph: Any
    tensors: dict[str, Any]
    count: int  # execution plans cuDNN offers (heuristic order), of which the first MAX_PLANS are tactics
    built: dict[int, bool] = field(default_factory=dict)  # plan -> whether it built (each built at first use)
    buffers: dict[int, torch.Tensor] = field(default_factory=dict)  # plan -> workspace tensor

    def has(self, index: int) -> bool:
        """Whether plan ``index`` exists and builds here: built on first asking (a build compiles kernels, about
        0.2 s a plan; an engine's load builds only the plans it names)."""
        if index >= min(self.count, MAX_PLANS):
            return False
        if index not in self.built:
            try:
                self.graph.build_plan_at_index(index)
                self.built[index] = True
            except Exception:  # noqa: BLE001  (this engine cannot take the layer: the other plans may)
                self.built[index] = False
        return self.built[index]


_GRAPHS: dict[tuple, _Graph | None] = {}


def _pads(attrs: dict) -> list[int]:
    pads = list(attrs.get("pads") or [0, 0, 0, 0])
    return pads if len(pads) == 4 else [0, 0, 0, 0]


_CUDNN_TYPES = {torch.int8: lambda: _cudnn().data_type.INT8, torch.uint8: lambda: _cudnn().data_type.UINT8,
                torch.float8_e4m3fn: lambda: _cudnn().data_type.FP8_E4M3,
                torch.float32: lambda: _cudnn().data_type.FLOAT, torch.float16: lambda: _cudnn().data_type.HALF}
Z_TYPES = tuple(_CUDNN_TYPES)


def _out_hw(x_shape, w_shape, pads, strides, dilations) -> list[int]:
    """The conv's output height and width (before the UINT8 input's explicit padding: ``pads`` as in the layer)."""
    return [(x_shape[2 + i] + pads[i] + pads[i + 2] - dilations[i] * (w_shape[2 + i] - 1) - 1) // strides[i] + 1
            for i in range(2)]


def _padded_channels(c: int) -> int:
    """Input channels as the INT8 conv kernels take them, a multiple of 16 (a 3-channel stem runs as 16, the extra
    channels zero in the weights)."""
    return -(-c // CHANNEL_ALIGN) * CHANNEL_ALIGN


def _layer(args, attrs) -> tuple | None:
    """The key of a layer cuDNN's graph could run (shapes, types, attributes), else None."""
    if _cudnn() is None or len(args) < 3:
        return None
    x, w, w_scale = args[0], args[1], args[2]
    extra = list(args[3:]) + [None] * (5 - len(args[3:]))
    b, z, w_zp, x_scale_t, x_zp_t = extra[:5]
    if not (isinstance(x, torch.Tensor) and x.is_cuda and x.dim() == 4
            and x.dtype in (torch.int8, torch.uint8, torch.float8_e4m3fn)):
        return None
    fp8 = x.dtype == torch.float8_e4m3fn
    if w.dtype != (torch.float8_e4m3fn if fp8 else torch.int8) or w.dim() != 4 \
            or any(v is not None for v in (w_zp, x_scale_t, x_zp_t)):
        return None
    if fp8 and (torch.cuda.get_device_capability(x.device) < (8, 9)  # FP8 tensor cores: Ada and Hopper on
                or x.shape[1] % CHANNEL_ALIGN):  # (float8 channels are not padded here)
        return None
    if b is not None and not (b.is_floating_point() and b.numel() == w.shape[0]):
        return None
    z_dtype = None
    if z is not None:  # the residual: float, or INT8 / UINT8 with z_scale and a zero point of 0
        if not (isinstance(z, torch.Tensor) and z.is_cuda and z.dim() == 4 and z.shape[1] == w.shape[0]
                and z.dtype in Z_TYPES and (z.is_floating_point() or not attrs.get("z_zero_point", 0))):
            return None
        z_dtype = z.dtype
    if attrs.get("x_zero_point", 0) or attrs.get("y_zero_point", 0):
        return None
    if (attrs.get("group") or 1) != 1 or (attrs.get("auto_pad") or "NOTSET") != "NOTSET":
        return None
    activation, params = attrs.get("activation", ""), tuple(attrs.get("activation_params", ()))
    if activation not in ACTIVATIONS or (activation == "Clip" and len(params) != 2):
        return None
    out = attrs.get("out_dtype", FLOAT)
    if out not in OUT_TYPES or w.shape[0] % 4 or x.shape[1] != w.shape[1]:
        return None
    strides = tuple(attrs.get("strides") or (1, 1))
    dilations = tuple(attrs.get("dilations") or (1, 1))
    pads = tuple(_pads(attrs))
    if z is not None and list(z.shape) != [x.shape[0], w.shape[0], *_out_hw(x.shape, w.shape, pads, strides,
                                                                              dilations)]:
        return None
    return (x.device.index, tuple(x.shape), x.dtype, tuple(w.shape), pads, strides, dilations, b is not None,
            z_dtype, activation, params, out)


def _build(key: tuple) -> _Graph | None:
    cudnn = _cudnn()
    device, x_shape, x_dtype, w_shape, pads, strides, dilations, has_bias, z_dtype, activation, params, out = key
    n, _, h, wd = x_shape
    c = _padded_channels(x_shape[1])
    k = w_shape[0]
    unsigned = x_dtype == torch.uint8
    if unsigned:  # padded explicitly with the zero point, so the conv itself pads nothing
        h, wd, conv_pads = h + pads[0] + pads[2], wd + pads[1] + pads[3], (0, 0, 0, 0)
    else:
        conv_pads = pads
    dt = cudnn.data_type
    fp8 = x_dtype == torch.float8_e4m3fn  # float8 e4m3 in, float32 accumulation
    io = dt.FP8_E4M3 if fp8 else dt.INT8
    graph = cudnn.pygraph(io_data_type=io, intermediate_data_type=dt.FLOAT, compute_data_type=dt.INT32,
                          handle=_handle(device))

    def nhwc(name, dims, dtype):
        n_, c_, h_, w_ = dims
        return graph.tensor(name=name, dim=list(dims), stride=[c_ * h_ * w_, 1, c_ * w_, c_], data_type=dtype)

    t = {"x": nhwc("x", (n, c, h, wd), io), "w": nhwc("w", (k, c, *w_shape[2:]), io),
         "s": nhwc("s", (1, k, 1, 1), dt.FLOAT)}
    y = graph.conv_fprop(image=t["x"], weight=t["w"], pre_padding=[conv_pads[0], conv_pads[1]],
                         post_padding=[conv_pads[2], conv_pads[3]], stride=list(strides), dilation=list(dilations),
                         compute_data_type=dt.FLOAT if fp8 else dt.INT32)
    f32 = dt.FLOAT  # the epilogue computes in float32, as the reference's (an INT32 pointwise would round S to 0)
    if unsigned:
        t["c"] = nhwc("c", (1, k, 1, 1), dt.FLOAT)
        y = graph.bias(input=y, bias=t["c"], compute_data_type=f32)
    y = graph.scale(input=y, scale=t["s"], compute_data_type=f32)
    if has_bias:
        t["b"] = nhwc("b", (1, k, 1, 1), dt.FLOAT)
        y = graph.bias(input=y, bias=t["b"], compute_data_type=f32)
    if z_dtype is not None:  # + the residual, an integer one scaled by z_scale first (its zero point is 0)
        t["z"] = nhwc("z", (n, k, *_out_hw(x_shape, w_shape, pads, strides, dilations)), _CUDNN_TYPES[z_dtype]())
        z = t["z"]
        if not z_dtype.is_floating_point or z_dtype == torch.float8_e4m3fn:  # a quantized residual
            t["zs"] = nhwc("zs", (1, 1, 1, 1), dt.FLOAT)
            z = graph.scale(input=z, scale=t["zs"], compute_data_type=f32)
        y = graph.add(a=y, b=z, compute_data_type=f32)
    if activation == "Relu":
        y = graph.relu(input=y, compute_data_type=f32)
    elif activation == "Clip":
        y = graph.relu(input=y, lower_clip=float(params[0]), upper_clip=float(params[1]), compute_data_type=f32)
    if out in (INT8, UINT8, FLOAT8E4M3FN):
        t["inv"] = nhwc("inv", (1, 1, 1, 1), dt.FLOAT)
        y = graph.scale(input=y, scale=t["inv"], compute_data_type=f32)
    y.set_output(True).set_data_type({INT8: dt.INT8, UINT8: dt.UINT8, FLOAT: dt.FLOAT, FLOAT16: dt.HALF,
                                      FLOAT8E4M3FN: dt.FP8_E4M3}[out])
    t["y"] = y
    graph.validate()
    graph.build_operation_graph()
    graph.create_execution_plans([cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK])
    graph.check_support()
    count = graph.get_execution_plan_count()  # built one by one, on first use (_Graph.has): with the ALL policy
    # one plan that does not build fails them all, and an engine needs only its winners
    return _Graph(graph, t, count) if count else None


def _graph(key: tuple) -> _Graph | None:
    if key not in _GRAPHS:
        try:
            _GRAPHS[key] = _build(key)
        except Exception:  # noqa: BLE001  (cuDNN cannot express or has no engine for this layer: no tactic here)
            _GRAPHS[key] = None
    return _GRAPHS[key]


def _supports(index: int):
    def supports(args, attrs) -> bool:
        key = _layer(args, attrs)
        g = _graph(key) if key is not None else None
        return g is not None and g.has(index)
    return supports


def _run(index: int, x, w, w_scale, b=None, z=None, w_zero_point=None, x_scale_t=None, x_zero_point_t=None, *,
         x_scale=0.0, y_scale=0.0, out_dtype=FLOAT, **attrs):
    args = (x, w, w_scale, b, z, w_zero_point, x_scale_t, x_zero_point_t)
    attrs = dict(attrs, x_scale=x_scale, y_scale=y_scale, out_dtype=out_dtype)
    key = _layer(args, attrs)
    g = _graph(key) if key is not None else None
    if g is None or not g.has(index):  # an engine built elsewhere whose plan this GPU lacks: the reference
        return QConv(*args, **attrs)
    cudnn = _cudnn()
    k = w.shape[0]
    cl = torch.channels_last
    pads = list(key[4])
    if x.dtype == torch.uint8:  # x - 128 as INT8, padded with -128 (the UINT8 zero)
        x = (x ^ 128).view(torch.int8)
        if any(pads):
            x = F.pad(x, (pads[1], pads[3], pads[0], pads[2]), value=-128)
    extra = _padded_channels(x.shape[1]) - x.shape[1]
    if extra:  # channels padded to the kernels' alignment, zero weights for them
        x = F.pad(x, (0, 0, 0, 0, 0, extra))
        w = derived_constant(w, "padded", lambda t: F.pad(t, (0, 0, 0, 0, 0, extra)).contiguous(memory_format=cl))
    x = x.contiguous(memory_format=cl)
    w = w.contiguous(memory_format=cl)  # a no-op in a channels-last engine (the executor converts conv weights once)
    # S = float32(x_scale) * W_scale[c] in float32, as the reference's epilogue (x_scale is exact as a float32)
    x_scale32 = float(np.float32(x_scale))
    pack = {g.tensors["x"]: x, g.tensors["w"]: w,
            g.tensors["s"]: derived_constant(w_scale, f"s{x_scale32!r}",
                                  lambda t: (t.to(torch.float32) * x_scale32).reshape(1, k, 1, 1))}
    if "c" in g.tensors:  # a UINT8 input's 128 * sum(W[c]), for the x - 128 the conv reads
        pack[g.tensors["c"]] = derived_constant(args[1], "128sum", lambda t: (
            128.0 * t.sum(dim=(1, 2, 3), dtype=torch.int32).to(torch.float32)).reshape(1, k, 1, 1))
    if "b" in g.tensors:
        pack[g.tensors["b"]] = derived_constant(b, "bias", lambda t: t.to(torch.float32).reshape(1, k, 1, 1))
    if "z" in g.tensors:
        pack[g.tensors["z"]] = z.contiguous(memory_format=cl)
    if "zs" in g.tensors:
        zs = float(np.float32(attrs.get("z_scale", 0.0)))
        pack[g.tensors["zs"]] = derived_constant(w_scale, f"zs{zs!r}", lambda t: torch.full(
            (1, 1, 1, 1), zs, dtype=torch.float32, device=t.device))
    if "inv" in g.tensors:
        inv = float(np.float32(1.0 / y_scale))  # as the reference: float32(1 / y_scale)
        pack[g.tensors["inv"]] = derived_constant(w_scale, f"inv{inv!r}", lambda t: torch.full(
            (1, 1, 1, 1), inv, dtype=torch.float32, device=t.device))
    dtype = to_torch_dtype(out_dtype)
    out = torch.empty(g.tensors["y"].get_dim(), dtype=dtype, device=x.device).contiguous(memory_format=cl)
    pack[g.tensors["y"]] = out
    if index not in g.buffers:
        size = g.graph.get_workspace_size_plan_at_index(index)
        g.buffers[index] = torch.empty(max(size, 1), dtype=torch.uint8, device=x.device)
    handle = _handle(x.device.index)
    cudnn.set_stream(handle=handle, stream=torch.cuda.current_stream(x.device).cuda_stream)
    g.graph.execute_plan_at_index(pack, g.buffers[index], index=index, handle=handle)
    return out


for _i in range(MAX_PLANS):
    tactic(GREENRT, "QConv", f"cudnn-int8-p{_i}", _supports(_i),
           doc=f"cuDNN graph API: the conv and its epilogue as one fused INT8 graph, execution plan {_i}")(
        functools.partial(_run, _i))


__all__ = ["MAX_PLANS"]
