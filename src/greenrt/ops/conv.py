"""Convolutions: Conv, ConvTranspose, ConvInteger, DeformConv.

Symmetric pads go to the conv kernel itself; asymmetric ones (and auto_pad SAME with an odd total) are applied
explicitly with F.pad first, the same way for 1D/2D/3D.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .registry import op

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def _spatial_defaults(nd, strides, dilations, pads):
    strides = list(strides) if strides else [1] * nd
    dilations = list(dilations) if dilations else [1] * nd
    pads = list(pads) if pads else [0] * (2 * nd)
    return strides, dilations, pads


def _auto_pads(auto_pad, in_shape, kernel, strides, dilations, pads):
    """ONNX pads [b1..bn, e1..en] after resolving auto_pad (SAME_* keeps out = ceil(in / stride))."""
    nd = len(in_shape)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = []
        for i in range(nd):
            o = math.ceil(in_shape[i] / strides[i])
            total = max(0, (o - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - in_shape[i])
            small, big = total // 2, total - total // 2
            out.append((small, big) if auto_pad == "SAME_UPPER" else (big, small))
        return [p[0] for p in out] + [p[1] for p in out]
    if auto_pad == "VALID":
        return [0] * (2 * nd)
    return pads


def _pad_spatial(x, pads, value=0.0):
    """F.pad with ONNX-ordered pads [b1..bn, e1..en] over the trailing spatial axes (negative pads crop)."""
    nd = len(pads) // 2
    if not any(pads):
        return x
    torch_pads = []
    for i in reversed(range(nd)):
        torch_pads += [pads[i], pads[i + nd]]
    return F.pad(x, torch_pads, value=value)


def _conv_nd(x, w, b, *, auto_pad, dilations, group, kernel_shape, pads, strides):
    nd = x.dim() - 2
    strides, dilations, pads = _spatial_defaults(nd, strides, dilations, pads)
    kernel = list(kernel_shape) if kernel_shape else list(w.shape[2:])
    pads = _auto_pads(auto_pad, list(x.shape[2:]), kernel, strides, dilations, pads)
    if nd not in _CONV:
        raise NotImplementedError(f"Conv with {nd} spatial dims")
    begin, end = pads[:nd], pads[nd:]
    if begin == end and min(begin) >= 0:  # symmetric: the conv kernel pads itself, no extra pass over memory
        return _CONV[nd](x, w, b, stride=strides, padding=begin, dilation=dilations, groups=group)
    x = _pad_spatial(x, pads)
    return _CONV[nd](x, w, b, stride=strides, dilation=dilations, groups=group)


def cpu_bf16_native() -> bool:
    """Whether oneDNN runs bf16 convs natively on this CPU (avx512_bf16 / AMX): then they stay bf16, about twice
    the fp32 throughput, accumulating in fp32 as the upcast would; else bf16 computes in fp32."""
    global _BF16_NATIVE
    if _BF16_NATIVE is None:
        try:
            _BF16_NATIVE = bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            _BF16_NATIVE = False
    return _BF16_NATIVE


_BF16_NATIVE: bool | None = None


@op("Conv", 1, 11, 22)
def Conv(x, w, b=None, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None, pads=None, strides=None):
    compute = x.dtype
    if x.device.type == "cpu" and (compute == torch.float16 or (compute == torch.bfloat16 and not cpu_bf16_native())):
        compute = torch.float32
    y = _conv_nd(
        x.to(compute), w.to(compute), None if b is None else b.to(compute),
        auto_pad=auto_pad, dilations=dilations, group=group, kernel_shape=kernel_shape, pads=pads, strides=strides,
    )
    return y.to(x.dtype)


@op("ConvInteger", 10)
def ConvInteger(x, w, x_zero_point=None, w_zero_point=None, *, auto_pad="NOTSET", dilations=None, group=1,
                kernel_shape=None, pads=None, strides=None):
    """(x - x_zp) conv (w - w_zp) in int32; computed exactly in float64 (padding is zero after the shift)."""
    xf = x.to(torch.float64)
    wf = w.to(torch.float64)
    if x_zero_point is not None:
        xf = xf - x_zero_point.to(torch.float64)
    if w_zero_point is not None:
        wzp = w_zero_point.to(torch.float64)
        if wzp.dim() == 1 and wzp.numel() == w.shape[0] and wzp.numel() > 1:
            wzp = wzp.reshape([-1] + [1] * (w.dim() - 1))
        wf = wf - wzp
    y = _conv_nd(xf, wf, None, auto_pad=auto_pad, dilations=dilations, group=group, kernel_shape=kernel_shape,
                 pads=pads, strides=strides)
    return torch.round(y).to(torch.int32)


@op("ConvTranspose", 1, 11, 22)
def ConvTranspose(x, w, b=None, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
                  output_padding=None, output_shape=None, pads=None, strides=None):
    """Full transposed conv (no padding), then crop pads / extend output_padding with F.pad."""
    nd = x.dim() - 2
    strides = list(strides) if strides else [1] * nd
    dilations = list(dilations) if dilations else [1] * nd
    kernel = list(kernel_shape) if kernel_shape else list(w.shape[2:])
    out_pad = list(output_padding) if output_padding else [0] * nd
    in_shape = list(x.shape[2:])
    full = [strides[i] * (in_shape[i] - 1) + (kernel[i] - 1) * dilations[i] + 1 for i in range(nd)]
    if output_shape or (not pads and auto_pad in ("SAME_UPPER", "SAME_LOWER")):
        target = list(output_shape)[-nd:] if output_shape else [in_shape[i] * strides[i] for i in range(nd)]
        begins, ends = [], []
        for i in range(nd):
            total = full[i] + out_pad[i] - target[i]
            small, big = total // 2, total - total // 2
            begin, end = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
            if total < 0:  # output larger than the full result: zeros go at the end (as onnxruntime)
                begin, end = 0, total
            begins.append(begin)
            ends.append(end)
        pads = begins + ends
    else:
        pads = list(pads) if pads else [0] * (2 * nd)
    compute = x.dtype
    if x.device.type == "cpu" and (compute == torch.float16 or (compute == torch.bfloat16 and not cpu_bf16_native())):
        compute = torch.float32
    y = _CONV_T[nd](x.to(compute), w.to(compute), None, stride=strides, dilation=dilations, groups=group)
    crop = [-pads[i] for i in range(nd)] + [out_pad[i] - pads[nd + i] for i in range(nd)]
    y = _pad_spatial(y, crop)
    if b is not None:
        y = y + b.to(compute).reshape([1, -1] + [1] * nd)
    return y.to(x.dtype)


def _bilinear_zero(img, ys, xs):
    """Bilinear samples of img (N, G, Cg, H, W) at (N, G, P) float coords; zero outside."""
    n, g, cg, h, w = img.shape
    y0 = torch.floor(ys)
    x0 = torch.floor(xs)
    flat = img.reshape(n, g, cg, h * w)
    out = torch.zeros(n, g, cg, ys.shape[-1], dtype=img.dtype, device=img.device)
    for dy in (0, 1):
        for dx in (0, 1):
            yi = y0 + dy
            xi = x0 + dx
            wgt = (1 - (ys - yi).abs()) * (1 - (xs - xi).abs())
            valid = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
            idx = (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)).long()
            vals = torch.gather(flat, 3, idx.unsqueeze(2).expand(n, g, cg, idx.shape[-1]))
            out = out + vals * (wgt * valid).unsqueeze(2)
    return out


@op("DeformConv", 19, 22)
def DeformConv(x, w, offset, b=None, mask=None, *, dilations=None, group=1, kernel_shape=None, offset_group=1,
               pads=None, strides=None):
    """2D deformable conv: bilinear-sample each kernel tap at its offset position, weight by mask, then matmul."""
    n, c, h, wd = x.shape
    oc = w.shape[0]
    kh, kw = list(kernel_shape) if kernel_shape else list(w.shape[2:])
    sh, sw = list(strides) if strides else [1, 1]
    dh, dw = list(dilations) if dilations else [1, 1]
    pt, pl, pb, pr = list(pads) if pads else [0, 0, 0, 0]
    oh = (h + pt + pb - ((kh - 1) * dh + 1)) // sh + 1
    ow = (wd + pl + pr - ((kw - 1) * dw + 1)) // sw + 1
    k = kh * kw
    dev, dt = x.device, x.dtype
    # base sampling positions (k, oh, ow)
    base_y = (torch.arange(oh, device=dev, dtype=dt) * sh - pt).reshape(1, oh, 1)
    base_x = (torch.arange(ow, device=dev, dtype=dt) * sw - pl).reshape(1, 1, ow)
    ky = (torch.arange(kh, device=dev, dtype=dt) * dh).repeat_interleave(kw).reshape(k, 1, 1)
    kx = (torch.arange(kw, device=dev, dtype=dt) * dw).repeat(kh).reshape(k, 1, 1)
    off = offset.reshape(n, offset_group, k, 2, oh, ow)
    ys = (base_y + ky) + off[:, :, :, 0]
    xs = (base_x + kx) + off[:, :, :, 1]
    img = x.reshape(n, offset_group, c // offset_group, h, wd)
    cols = _bilinear_zero(img, ys.reshape(n, offset_group, -1), xs.reshape(n, offset_group, -1))
    cols = cols.reshape(n, offset_group, c // offset_group, k, oh, ow)
    if mask is not None:
        cols = cols * mask.reshape(n, offset_group, 1, k, oh, ow)
    cols = cols.reshape(n, group, (c // group) * k, oh * ow)
    wg = w.reshape(group, oc // group, (c // group) * k)
    y = torch.einsum("gok,ngkp->ngop", wg, cols).reshape(n, oc, oh, ow)
    if b is not None:
        y = y + b.reshape(1, -1, 1, 1)
    return y
