"""Fused ops produced by greenrt's graph passes (domain ``greenrt``); each is the ONNX ops it replaces, run as one.

    FusedConv(X, W, B?, Z?)    = act(Conv(X, W, B) + Z)        conv + bias + residual add + activation
    FusedMatMul(A, W, B?)      = act(A @ W + B)                 MatMul/Gemm + bias + activation (trans_w: A @ W^T)
    Gelu(X)                    = the erf (or tanh) GELU as one op (exporters before opset 20 decompose it)
    HardSwish(X)               = ONNX HardSwish for models below opset 14 (Paddle writes it as Add/Clip/Mul/Div)
    ScaledDotProductAttention(Q, K, V, mask?) = softmax(Q @ K^T * scale + mask) @ V
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F

from ._util import derived_constant
from .conv import cpu_bf16_native
from .registry import REGISTRY, op
from .tactics import tactic

GREENRT = "greenrt"


def _activation(name: str, params: list[float]):
    """The activation by its ONNX name, with its ONNX parameters (alpha/beta or min/max) in ``params``."""
    p = list(params)
    table = {
        "": lambda x: x,
        "Relu": torch.relu,
        "Sigmoid": torch.sigmoid,
        "Tanh": torch.tanh,
        "SiLU": F.silu,
        "HardSwish": F.hardswish,
        "LeakyRelu": lambda x: F.leaky_relu(x, p[0] if p else 0.01),
        "Clip": lambda x: torch.clamp(x, p[0], p[1]),
        "HardSigmoid": lambda x: torch.clamp(x * (p[0] if p else 0.2) + (p[1] if len(p) > 1 else 0.5), 0, 1),
        "Gelu": lambda x: F.gelu(x),
        "GeluTanh": lambda x: F.gelu(x, approximate="tanh"),
    }
    if name not in table:
        raise ValueError(f"unknown fused activation {name!r}")
    return table[name]


ACTIVATIONS = ("Relu", "Sigmoid", "Tanh", "SiLU", "HardSwish", "LeakyRelu", "Clip", "HardSigmoid", "Gelu", "GeluTanh")


@op("FusedConv", 1, domain=GREENRT)
def FusedConv(x, w, b=None, z=None, *, activation="", activation_params=(), auto_pad="NOTSET", dilations=None,
              group=1, kernel_shape=None, pads=None, strides=None):
    conv_attrs = dict(auto_pad=auto_pad, dilations=dilations, group=group, kernel_shape=kernel_shape, pads=pads,
                      strides=strides)
    fused = _cudnn_conv_relu(x, w, b, z, activation, conv_attrs)
    if fused is None:
        fused = _onednn_conv(x, w, b, z, activation, activation_params, conv_attrs)
    if fused is not None:
        return fused
    return _conv_then_epilogue(x, w, b, z, activation, activation_params, conv_attrs)


def _conv_then_epilogue(x, w, b, z, activation, activation_params, conv_attrs):
    conv = REGISTRY.lookup("", "Conv", 22).fn
    y = conv(x, w, None, **{k: v for k, v in conv_attrs.items() if v is not None})
    if b is not None:
        y = _add_bias(y, b)
    if z is not None:
        y = y.add_(z)
    return _activation(activation, activation_params)(y)


# -- FusedConv's tactics: the builder times these where more than one supports a layer (build/tactics.py) ------
_CONV_ATTRS = ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")


def _split(attrs: dict) -> tuple[str, list, dict]:
    conv = {k: attrs.get(k) for k in _CONV_ATTRS}
    conv["auto_pad"] = conv["auto_pad"] or "NOTSET"
    conv["group"] = conv["group"] or 1
    return attrs.get("activation", ""), list(attrs.get("activation_params", ())), conv


def _cudnn_fusable(args, attrs) -> bool:
    activation, _, conv = _split(attrs)
    return _cudnn_applies(args[0], activation, conv) is not None


def _onednn_fusable(args, attrs) -> bool:
    activation, params, conv = _split(attrs)
    z = args[3] if len(args) > 3 else None
    return _onednn_applies(args[0], args[1], z, activation, params, conv) is not None


@tactic(GREENRT, "FusedConv", "cudnn-fused", _cudnn_fusable,
        doc="one cuDNN call: conv + bias [+ residual add] + ReLU epilogue (torch.cudnn_convolution_[add_]relu)")
def _fused_conv_cudnn(x, w, b=None, z=None, **attrs):
    activation, params, conv = _split(attrs)
    y = _cudnn_conv_relu(x, w, b, z, activation, conv)
    return y if y is not None else _conv_then_epilogue(x, w, b, z, activation, params, conv)


@tactic(GREENRT, "FusedConv", "onednn-fused", _onednn_fusable,
        doc="one oneDNN call with post-ops on the CPU (mkldnn._convolution_pointwise)")
def _fused_conv_onednn(x, w, b=None, z=None, **attrs):
    activation, params, conv = _split(attrs)
    y = _onednn_conv(x, w, b, z, activation, params, conv)
    return y if y is not None else _conv_then_epilogue(x, w, b, z, activation, params, conv)


@tactic(GREENRT, "FusedConv", "conv-then-epilogue",
        doc="the library's plain conv, then bias, residual add and activation as separate in-place kernels")
def _fused_conv_unfused(x, w, b=None, z=None, **attrs):
    activation, params, conv = _split(attrs)
    return _conv_then_epilogue(x, w, b, z, activation, params, conv)


def _add_bias(y, b):
    """y + b per channel, in place. On a channels_last tensor the NHWC view makes it a contiguous
    last-axis broadcast (a vectorized kernel) instead of a strided one that costs as much as the conv."""
    if y.dim() == 4 and y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous():
        y.permute(0, 2, 3, 1).add_(b)
        return y
    return y.add_(b.view(-1, *([1] * (y.dim() - 2))))


_CUDNN_FUSED = {"ok": True}


def _symmetric_pads(attrs) -> list[int] | None:
    """The conv's [top, left, bottom, right] pads when the fused library calls can take them (explicit or VALID,
    symmetric), else None."""
    if attrs["auto_pad"] not in ("NOTSET", "VALID"):
        return None
    pads = list(attrs["pads"] or [0, 0, 0, 0]) if attrs["auto_pad"] == "NOTSET" else [0, 0, 0, 0]
    return pads if pads[:2] == pads[2:] else None


def _cudnn_applies(x, activation, attrs) -> list[int] | None:
    """The pads for cuDNN's fused conv + bias [+ add] + ReLU call, None where it cannot run these arguments."""
    if not (_CUDNN_FUSED["ok"] and x.is_cuda and activation == "Relu" and x.dim() == 4):
        return None
    if x.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        return None
    return _symmetric_pads(attrs)


def _cudnn_conv_relu(x, w, b, z, activation, attrs):
    """relu(conv(x, w) + b [+ z]) as one cuDNN call (conv-bias-add-activation epilogue) on CUDA, else None."""
    pads = _cudnn_applies(x, activation, attrs)
    if pads is None:
        return None
    stride = list(attrs["strides"] or [1, 1])
    dilation = list(attrs["dilations"] or [1, 1])
    try:
        if z is None:
            return torch.cudnn_convolution_relu(x, w, b, stride, pads[:2], dilation, attrs["group"])
        return torch.cudnn_convolution_add_relu(x, w, z, 1.0, b, stride, pads[:2], dilation, attrs["group"])
    except RuntimeError:
        # the unfused path on the same arguments: if it fails too, the arguments are at fault (its error is the one
        # to see, and the fused call stays on); if it runs, this torch/cuDNN build lacks the fused call: off from now
        y = _conv_then_epilogue(x, w, b, z, activation, [], attrs)
        _CUDNN_FUSED["ok"] = False
        return y


_ONEDNN = {"ok": hasattr(torch.ops, "mkldnn") and torch.backends.mkldnn.is_available()}


def _onednn_unary(activation: str, params: list[float]) -> tuple[str, list, str] | None:
    """greenrt's activation name -> oneDNN's post-op (attr, scalars, algorithm), None when it has none."""
    p = list(params)
    if activation == "HardSigmoid" and not (len(p) == 2 and abs(p[0] - 1 / 6) < 1e-6 and p[1] == 0.5):
        return None
    table = {"": ("none", [], ""), "Relu": ("relu", [], ""), "Sigmoid": ("sigmoid", [], ""), "Tanh": ("tanh", [], ""),
             "SiLU": ("swish", [], ""), "HardSwish": ("hardswish", [], ""), "HardSigmoid": ("hardsigmoid", [], ""),
             "Gelu": ("gelu", [], "none"), "GeluTanh": ("gelu", [], "tanh"),
             "LeakyRelu": ("leaky_relu", [p[0] if p else 0.01], ""),
             "Clip": ("hardtanh", [p[0], p[1]] if len(p) == 2 else [], "")}
    found = table.get(activation)
    if found is None or (activation == "Clip" and not all(abs(v) < float("inf") for v in p)):
        return None
    return found


def _onednn_applies(x, w, z, activation, params, attrs) -> tuple[list[int], tuple] | None:
    """(pads, post-op) for oneDNN's fused conv on the CPU, None where it cannot run these arguments."""
    if not (_ONEDNN["ok"] and x.device.type == "cpu" and x.dim() == 4 and w.dtype == x.dtype):
        return None
    if x.dtype != torch.float32 and not (x.dtype == torch.bfloat16 and cpu_bf16_native()):
        return None
    pads = _symmetric_pads(attrs)
    unary = _onednn_unary(activation, params)
    if pads is None or unary is None:
        return None
    if z is not None and (unary[0] not in ("none", "relu") or z.shape != (x.shape[0], w.shape[0], *z.shape[2:])):
        return None
    return pads, unary


def _onednn_conv(x, w, b, z, activation, params, attrs):
    """act(conv(x, w) + b [+ z]) as one oneDNN call with post-ops on CPU (what Inductor's CPU backend calls):
    no separate bias, residual and activation passes over the output. float32 2-D convolutions, and bfloat16 ones
    where the CPU runs them natively; else None."""
    applies = _onednn_applies(x, w, z, activation, params, attrs)
    if applies is None:
        return None
    pads, unary = applies
    stride, dilation = list(attrs["strides"] or [1, 1]), list(attrs["dilations"] or [1, 1])
    try:
        if z is None:
            return torch.ops.mkldnn._convolution_pointwise(x, w, b, pads[:2], stride, dilation, attrs["group"], *unary)
        return torch.ops.mkldnn._convolution_pointwise.binary(
            x, z, w, b, pads[:2], stride, dilation, attrs["group"], "add", None,
            None if unary[0] == "none" else unary[0], [], "")
    except RuntimeError:  # as for cuDNN above: bad arguments raise the unfused path's error, a missing call turns
        # the fused path off from now on
        y = _conv_then_epilogue(x, w, b, z, activation, params, attrs)
        _ONEDNN["ok"] = False
        return y


@op("FusedMatMul", 1, domain=GREENRT)
def FusedMatMul(a, w, b=None, *, activation="", activation_params=(), trans_w=0):
    """``trans_w``: W is stored (N, K), as torch's Linear holds it, and the call is F.linear: cuBLASLt with the
    bias in its epilogue and the kernels eager PyTorch and Inductor pick for a Linear (one pass over the output,
    not a GEMM and then a broadcast add)."""
    if trans_w:
        if b is not None and (b.dtype != a.dtype or b.dim() != 1):
            y = F.linear(a, w) + b
        else:
            y = F.linear(a, w, b)
    else:
        y = torch.matmul(a, w)
        if b is not None:
            y = y + b
    return _activation(activation, activation_params)(y)


# -- FusedMatMul's tactics ---------------------------------------------------------------------------------------
def _in_memory_order(a: torch.Tensor) -> tuple[torch.Tensor, list[int]] | None:
    """(a's leading axes permuted into memory order, that permutation) where ``a`` is a permuted view of a contiguous
    tensor with its last axis in place (torch's MultiheadAttention export feeds its in-projection such a (S, B, E)
    view of a (B, S, E) tensor); else None."""
    if a.dim() < 3 or a.is_contiguous() or a.stride(-1) != 1:
        return None
    lead = sorted(range(a.dim() - 1), key=lambda i: a.stride(i), reverse=True)
    perm = [*lead, a.dim() - 1]
    p = a.permute(perm)
    return (p, perm) if p.is_contiguous() else None


def _linear_in_memory_order(a, w, b=None, *, activation="", activation_params=(), trans_w=0):
    """The GEMM over a's rows in the order they lie in memory (rows are independent), the result returned as the
    view with a's axis order: no copy of the input, the bias in cuBLASLt's epilogue."""
    found = _in_memory_order(a)
    if found is None or not trans_w:
        return FusedMatMul(a, w, b, activation=activation, activation_params=activation_params, trans_w=trans_w)
    p, perm = found
    y = FusedMatMul(p, w, b, activation=activation, activation_params=activation_params, trans_w=trans_w)
    inverse = [perm.index(i) for i in range(len(perm))]
    return y.permute(inverse)


@tactic(GREENRT, "FusedMatMul", "linear", lambda args, attrs: bool(attrs.get("trans_w")) and (
    _in_memory_order(args[0]) is not None or _onednn_linear_applies(args, attrs)),
    doc="F.linear on the input as it comes (cuBLASLt on the GPU, MKL on the CPU; a permuted input is copied to "
        "contiguous rows)")
def _linear_as_is(a, w, b=None, **attrs):
    return FusedMatMul(a, w, b, **attrs)


tactic(GREENRT, "FusedMatMul", "linear-rows-in-memory-order",
       lambda args, attrs: bool(attrs.get("trans_w")) and _in_memory_order(args[0]) is not None,
       doc="F.linear over the rows of a permuted input in memory order, the output a permuted view (no input "
           "copy)")(_linear_in_memory_order)


def _onednn_linear_applies(args, attrs) -> bool:
    """oneDNN's linear runs these arguments: a CPU float32 (or natively supported bfloat16) input, the (N, K) weight
    constant of a trans_w layer, a 1-D bias of the same dtype, an activation oneDNN has as a post-op."""
    a, w = args[0], args[1]
    b = args[2] if len(args) > 2 else None
    if not (attrs.get("trans_w") and hasattr(torch.ops.mkldnn, "_linear_pointwise") and isinstance(a, torch.Tensor)
            and a.device.type == "cpu" and a.dim() >= 2 and w.dim() == 2 and a.dtype == w.dtype
            and a.shape[-1] == w.shape[1]):
        return False
    if a.dtype != torch.float32 and not (a.dtype == torch.bfloat16 and cpu_bf16_native()):
        return False
    if b is not None and (b.dtype != a.dtype or b.shape != (w.shape[0],)):
        return False
    return _onednn_unary(attrs.get("activation", ""), attrs.get("activation_params", ())) is not None


@tactic(GREENRT, "FusedMatMul", "onednn", _onednn_linear_applies,
        doc="oneDNN's linear on the CPU: the weight reordered once into oneDNN's layout, bias and activation as "
            "post-ops (F.linear calls MKL's GEMM, 1.2-2x slower on this project's AMD CPU: bench/NOTES.md)")
def _onednn_linear(a, w, b=None, *, activation="", activation_params=(), trans_w=0):
    attrs = {"activation": activation, "activation_params": activation_params, "trans_w": trans_w}
    # a plan's tactic binds without a check: stay correct. Traced for Inductor (the FX lowering), the plain op:
    # a weight reordered here is opaque to Inductor's freezing, which packs F.linear's weight itself
    if torch.compiler.is_compiling() or not _onednn_linear_applies((a, w, b), attrs):
        return FusedMatMul(a, w, b, **attrs)
    attr, scalars, algorithm = _onednn_unary(activation, activation_params)
    packed = derived_constant(w, "onednn-linear", torch.ops.mkldnn._reorder_linear_weight)
    return torch.ops.mkldnn._linear_pointwise(a, packed, b, attr, scalars, algorithm)


@op("Gelu", 1, domain=GREENRT)
def Gelu(x, *, approximate="none"):
    return F.gelu(x, approximate=approximate)


@op("HardSwish", 1, domain=GREENRT)
def HardSwishAnyOpset(x):
    return F.hardswish(x)


@op("ScaledDotProductAttention", 1, domain=GREENRT)
def ScaledDotProductAttention(q, k, v, mask=None, *, scale=0.0, k_transposed=0):
    """softmax(q @ k^T * scale + mask) @ v; ``k_transposed`` when K arrives already as K^T."""
    if k_transposed:
        k = k.transpose(-1, -2)
    scale = scale or 1.0 / math.sqrt(q.shape[-1])
    if mask is not None and mask.dtype != torch.bool and mask.dtype != q.dtype:
        # an fp32 additive mask (exporters write finfo(float32).min for "masked") kept fp32 by the precision stage
        # (ops/facts.py): clamped to q's range, so masked stays a large negative bias and never becomes -inf or NaN
        if q.is_floating_point() and torch.finfo(q.dtype).max < torch.finfo(mask.dtype).max:
            mask = mask.clamp(min=torch.finfo(q.dtype).min, max=torch.finfo(q.dtype).max)
        mask = mask.to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


# -- ScaledDotProductAttention's tactics: torch's kernels one at a time -------------------------------------------
# torch picks flash, then memory-efficient, then the math path by fixed rules; cuDNN's attention (fast on Hopper)
# is only tried where asked for. Each tactic prefers its kernel and falls back through torch's usual order, so a
# shape inside the profile that the kernel does not take still runs; ``supports`` runs the kernel alone once on
# the layer's arguments, so a tactic is only timed where its own kernel runs.
def _sdpa_backends():
    from torch.nn.attention import SDPBackend

    return {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
            "cudnn": SDPBackend.CUDNN_ATTENTION}


def _sdpa_with(kernel: str, args, attrs, strict: bool):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = _sdpa_backends()
    order = [backends[kernel]] if strict else [backends[kernel], backends["flash"], backends["efficient"],
                                                 SDPBackend.MATH]
    order = list(dict.fromkeys(order))
    with sdpa_kernel(order, set_priority=True):  # restores torch's settings on exit
        return ScaledDotProductAttention(*args, **attrs)


def _sdpa_runs(kernel: str):
    def supports(args, attrs) -> bool:
        q = args[0]
        if not (q.is_cuda and q.dtype in (torch.float16, torch.bfloat16)):
            return False
        try:  # torch warns why a kernel does not apply before it raises: the answer here is the no, not the warning
            with torch.inference_mode(), warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                _sdpa_with(kernel, args, attrs, strict=True)
        except RuntimeError:
            return False
        return True

    return supports


def _sdpa_tactic(kernel: str, doc: str):
    @tactic(GREENRT, "ScaledDotProductAttention", f"sdpa-{kernel}", _sdpa_runs(kernel), doc=doc)
    def run(*args, **attrs):
        return _sdpa_with(kernel, args, attrs, strict=False)

    return run


_sdpa_tactic("flash", "torch SDPA's FlashAttention-2 kernel (no arbitrary mask)")
_sdpa_tactic("efficient", "torch SDPA's memory-efficient kernel (takes an additive mask)")
_sdpa_tactic("cudnn", "cuDNN's fused attention through torch SDPA")


@tactic(GREENRT, "ScaledDotProductAttention", "sdpa-torch-choice",
        lambda args, attrs: args[0].is_cuda and args[0].dtype in (torch.float16, torch.bfloat16),
        doc="torch SDPA with its own kernel choice (the op's default)")
def _sdpa_default(*args, **attrs):
    return ScaledDotProductAttention(*args, **attrs)


@op("LayerNormalization", 1, domain=GREENRT)
def LayerNormalization(x, scale, bias=None, *, axis=-1, epsilon=1e-5):
    """LayerNorm over the trailing axes from ``axis``, at any model opset (ONNX's own op needs opset 17)."""
    shape = tuple(x.shape[axis:])
    if tuple(scale.shape) == shape and (bias is None or tuple(bias.shape) == shape):
        return F.layer_norm(x, shape, scale, bias, epsilon)
    y = F.layer_norm(x, shape, None, None, epsilon) * scale
    return y + bias if bias is not None else y
