"""Image ops: Resize, Upsample, GridSample, AffineGrid, RoiAlign, NonMaxSuppression, Col2Im.

Resize is separable: for each resized axis it builds per-output neighbour indices and weights from the ONNX
coordinate transform and interpolation kernel (as onnx's reference does); nearest mode gathers them, the other
modes apply them as one (out, in) weight matrix per axis (a matmul).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._util import int_list
from .registry import op

# --------------------------------------------------------------------------------------------- Resize


def _source_coords(mode, out_size, scale, in_size, roi, device):
    """Source coordinate of every output index along one axis (float64), and the tf_crop extrapolation mask.

    As onnx's reference (and its conformance tests), the output length is scale * in_size, possibly fractional;
    onnxruntime uses the integer output length, so results differ when scale * in_size is not an integer.
    """
    y = torch.arange(out_size, dtype=torch.float64, device=device)
    out_width = scale * in_size
    extrapolated = None
    if mode == "align_corners":
        x = torch.zeros_like(y) if out_width == 1 else y * (in_size - 1) / (out_width - 1)
    elif mode == "asymmetric":
        x = y / scale
    elif mode == "tf_crop_and_resize":
        start, end = roi
        if out_width == 1:
            x = torch.full_like(y, (end - start) * (in_size - 1) / 2)
        else:
            x = y * (end - start) * (in_size - 1) / (out_width - 1)
        x = x + start * (in_size - 1)
        extrapolated = (x < 0) | (x > in_size - 1)
    elif mode == "pytorch_half_pixel":
        x = torch.full_like(y, -0.5) if out_width == 1 else (y + 0.5) / scale - 0.5
    elif mode == "half_pixel":
        x = (y + 0.5) / scale - 0.5
    elif mode == "half_pixel_symmetric":
        adjustment = out_size / out_width
        offset = in_size / 2 * (1 - adjustment)
        x = offset + (y + 0.5) / scale - 0.5
    else:
        raise ValueError(f"unknown coordinate_transformation_mode {mode!r}")
    return x, extrapolated


def _cubic_kernel(t, a):
    t = t.abs()
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return torch.where(t <= 1, near, torch.where(t < 2, far, torch.zeros_like(t)))


def _kernel_coeffs(ratio, scale, mode, nearest_mode, cubic_a, antialias):
    """(out, n) interpolation weights for the n neighbours, given the fractional positions ``ratio`` in (0, 1]."""
    if mode == "nearest":
        integer = ratio == 1
        if nearest_mode == "round_prefer_floor":
            take_hi = ratio > 0.5
        elif nearest_mode == "round_prefer_ceil":
            take_hi = ratio >= 0.5
        elif nearest_mode == "floor":
            take_hi = torch.zeros_like(integer)
        elif nearest_mode == "ceil":
            take_hi = torch.ones_like(integer)
        else:
            raise ValueError(f"unknown nearest_mode {nearest_mode!r}")
        take_hi = take_hi | integer
        return torch.stack([(~take_hi).double(), take_hi.double()], dim=1)
    if antialias:
        s = min(scale, 1.0)
        if mode == "linear":
            start = math.floor(-1 / s) + 1
            taps = torch.arange(start, 2 - start, dtype=torch.float64, device=ratio.device)
            c = (1 - ((taps[None, :] - ratio[:, None]) * s).abs()).clamp(0, 1)
        else:
            start = math.floor(-2 / s) + 1
            taps = torch.arange(start, 2 - start, dtype=torch.float64, device=ratio.device)
            c = _cubic_kernel(s * (taps[None, :] - ratio[:, None]), cubic_a)
        return c / c.sum(dim=1, keepdim=True)
    if mode == "linear":
        return torch.stack([1 - ratio, ratio], dim=1)
    if mode == "cubic":
        offsets = torch.tensor([-1.0, 0.0, 1.0, 2.0], dtype=torch.float64, device=ratio.device)
        return _cubic_kernel(offsets[None, :] - ratio[:, None], cubic_a)
    raise ValueError(f"unknown Resize mode {mode!r}")


def _axis_weights(in_size, out_size, scale, roi, opts, device):
    """Neighbour indices (out, n), weights (out, n) and extrapolation mask for one axis (onnx reference rules)."""
    x, extrapolated = _source_coords(opts["coord"], out_size, scale, in_size, roi, device)
    base = torch.ceil(x) - 1  # integer x sits at ratio 1 of the cell to its left (as onnx's reference)
    ratio = x - base
    coeffs = _kernel_coeffs(ratio, scale, opts["mode"], opts["nearest_mode"], opts["cubic_a"], opts["antialias"])
    n = coeffs.shape[1]  # always even: taps base + 1 - n/2 ... base + n/2
    idx = base.long()[:, None] + (1 - n // 2) + torch.arange(n, device=device)[None, :]
    if opts["exclude_outside"]:
        coeffs = torch.where((idx < 0) | (idx >= in_size), torch.zeros_like(coeffs), coeffs)
        total = coeffs.sum(dim=1, keepdim=True)
        coeffs = coeffs / torch.where(total == 0, torch.ones_like(total), total)
    return idx.clamp(0, in_size - 1), coeffs, extrapolated


def _resize_axis(x, axis, out_size, scale, roi, opts):
    in_size = x.shape[axis]
    if out_size == 0:
        shape = list(x.shape)
        shape[axis] = 0
        return x.new_zeros(shape)
    idx, coeffs, extrapolated = _axis_weights(in_size, out_size, scale, roi, opts, x.device)
    shape = [1] * x.dim()
    shape[axis] = out_size
    pre, post = math.prod(x.shape[:axis]), math.prod(x.shape[axis + 1:])
    x3 = x.reshape(pre, in_size, post) if post > 1 else x.reshape(pre, in_size)
    if opts["mode"] == "nearest":
        y = x3.index_select(1, torch.where(coeffs[:, 1] > 0, idx[:, 1], idx[:, 0]))
    else:
        weights = torch.zeros(out_size, in_size, dtype=torch.float64, device=x.device)
        weights.scatter_add_(1, idx, coeffs)
        weights = weights.to(x.dtype)
        y = torch.matmul(weights, x3) if post > 1 else x3 @ weights.T
    y = y.reshape(x.shape[:axis] + (out_size,) + x.shape[axis + 1:])
    if extrapolated is not None and bool(extrapolated.any()):
        y = torch.where(extrapolated.reshape(shape), torch.full_like(y, opts["extrapolation_value"]), y)
    return y


def _resize(x, roi, scales, sizes, *, axes=None, keep_aspect_ratio_policy="stretch", **opts):
    r = x.dim()
    axes = [a + r if a < 0 else a for a in axes] if axes else list(range(r))
    shape = list(x.shape)
    scales = [float(v) for v in scales.reshape(-1).tolist()] if scales is not None and scales.numel() else None
    sizes = int_list(sizes) if sizes is not None and sizes.numel() else None
    roi_full = [0.0] * r + [1.0] * r
    if roi is not None and roi.numel():
        roi_vals = [float(v) for v in roi.reshape(-1).tolist()]
        for i, a in enumerate(axes):
            roi_full[a], roi_full[r + a] = roi_vals[i], roi_vals[len(axes) + i]
    scale_full = [1.0] * r
    out_full = list(shape)
    if sizes is not None:
        for i, a in enumerate(axes):
            scale_full[a] = sizes[i] / shape[a]
            out_full[a] = sizes[i]
        if keep_aspect_ratio_policy != "stretch":
            pick = min if keep_aspect_ratio_policy == "not_larger" else max
            s = pick(scale_full[a] for a in axes)
            for a in axes:
                scale_full[a] = s
                out_full[a] = int(s * shape[a] + 0.5)
    else:
        for i, a in enumerate(axes):
            scale_full[a] = scales[i]
            out_full[a] = int(scales[i] * shape[a])
    compute = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    if not x.is_floating_point():
        compute = torch.float64
    y = x.to(compute)
    for a in axes:
        same_roi = math.isclose(roi_full[a], 0.0) and math.isclose(roi_full[r + a], 1.0)
        if math.isclose(scale_full[a], 1.0) and out_full[a] == y.shape[a] and same_roi:
            continue
        y = _resize_axis(y, a, out_full[a], scale_full[a], (roi_full[a], roi_full[r + a]), opts)
    if not x.is_floating_point():
        info = torch.iinfo(x.dtype)
        y = torch.round(y).clamp(info.min, info.max)
    return y.to(x.dtype)


def _opts(mode, coord, nearest_mode="round_prefer_floor", cubic_a=-0.75, exclude_outside=0, extrapolation_value=0.0,
          antialias=0):
    if mode not in ("nearest", "linear", "cubic"):
        raise ValueError(f"unknown Resize mode {mode!r}")
    return dict(mode=mode, coord=coord, nearest_mode=nearest_mode, cubic_a=cubic_a, exclude_outside=exclude_outside,
                extrapolation_value=extrapolation_value, antialias=antialias)


def _legacy_resize(x, scales, mode):
    """Resize-10 / Upsample: asymmetric coordinates; nearest takes floor (ceil when downsampling, as onnxruntime)."""
    mode = "linear" if mode in ("linear", "bilinear") else mode
    scale_list = [float(v) for v in scales.reshape(-1).tolist()]
    downsample = any(s < 1 for s in scale_list)
    opts = _opts(mode, "asymmetric", nearest_mode="ceil" if downsample else "floor")
    return _resize(x, None, scales, None, **opts)


@op("Resize", 10)
def Resize_10(x, scales, *, mode="nearest"):
    return _legacy_resize(x, scales, mode)


@op("Resize", 11, 13, 18, 19)
def Resize_11(x, roi=None, scales=None, sizes=None, *, antialias=0, axes=None,
              coordinate_transformation_mode="half_pixel", cubic_coeff_a=-0.75, exclude_outside=0,
              extrapolation_value=0.0, keep_aspect_ratio_policy="stretch", mode="nearest",
              nearest_mode="round_prefer_floor"):
    opts = _opts(mode, coordinate_transformation_mode, nearest_mode, cubic_coeff_a, exclude_outside,
                 extrapolation_value, antialias)
    return _resize(x, roi, scales, sizes, axes=axes, keep_aspect_ratio_policy=keep_aspect_ratio_policy, **opts)


@op("Upsample", 1)
def Upsample_1(x, *, height_scale=1.0, width_scale=1.0, mode="nearest"):
    scales = torch.tensor([1.0, 1.0, height_scale, width_scale], dtype=torch.float32)
    return _legacy_resize(x, scales, mode)


@op("Upsample", 7)
def Upsample_7(x, *, mode="nearest", scales=None):
    return _legacy_resize(x, torch.tensor(scales, dtype=torch.float32), mode)


@op("Upsample", 9, 10)
def Upsample_9(x, scales, *, mode="nearest"):
    return _legacy_resize(x, scales, mode)


# ----------------------------------------------------------------------------------------- GridSample


_GS_MODES = {"linear": "bilinear", "bilinear": "bilinear", "nearest": "nearest", "cubic": "bicubic",
             "bicubic": "bicubic"}


@op("GridSample", 16, 20, 22)
def GridSample(x, grid, *, align_corners=0, mode="linear", padding_mode="zeros"):
    """torch's grid_sample has the ONNX semantics (nearest rounds half to even); cubic is 2D only."""
    mode = _GS_MODES[mode]
    compute = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    y = F.grid_sample(x.to(compute), grid.to(compute), mode=mode, padding_mode=padding_mode,
                      align_corners=bool(align_corners))
    return y.to(x.dtype)


@op("AffineGrid", 20)
def AffineGrid(theta, size, *, align_corners=0):
    compute = theta.dtype if theta.dtype in (torch.float32, torch.float64) else torch.float32
    grid = F.affine_grid(theta.to(compute), int_list(size), align_corners=bool(align_corners))
    return grid.to(theta.dtype)


# ------------------------------------------------------------------------------------------- RoiAlign


def _roi_axis_samples(start, length, out, grid, limit):
    """Sample coordinates (R, out, G) of one axis, their validity, and bilinear low/high indices and weights."""
    g_max = int(grid.max().item()) if grid.numel() else 1
    dev = start.device
    bin_size = length / out
    p = torch.arange(out, device=dev, dtype=start.dtype)[None, :, None]
    i = torch.arange(max(g_max, 1), device=dev, dtype=start.dtype)[None, None, :]
    g = grid.to(start.dtype)[:, None, None]
    pos = start[:, None, None] + p * bin_size[:, None, None] + (i + 0.5) * bin_size[:, None, None] / g
    in_grid = i < g
    inside = (pos >= -1.0) & (pos <= limit)  # samples outside the image count as 0
    pos = pos.clamp(min=0)
    low = torch.floor(pos).long()
    at_edge = low >= limit - 1
    low = torch.where(at_edge, torch.full_like(low, limit - 1), low)
    high = torch.where(at_edge, low, low + 1)
    pos = torch.where(at_edge, low.to(pos.dtype), pos)
    frac = torch.where(inside, pos - low.to(pos.dtype), torch.zeros_like(pos))
    w_low = torch.where(inside, 1 - frac, torch.zeros_like(pos))
    return in_grid, low, high, w_low, frac


@op("RoiAlign", 10, 16, 22)
def RoiAlign(x, rois, batch_indices, *, coordinate_transformation_mode="half_pixel", mode="avg", output_height=1,
             output_width=1, sampling_ratio=0, spatial_scale=1.0, ctx=None):
    """Bilinear samples averaged (avg) or max of weighted corners (max, as onnxruntime) over each output bin."""
    if ctx is not None and ctx.opset < 16:
        coordinate_transformation_mode = "output_half_pixel"
    n, c, h, w = x.shape
    xd = x.to(torch.float64)
    r = rois.to(torch.float64)
    offset = 0.5 if coordinate_transformation_mode == "half_pixel" else 0.0
    x1, y1, x2, y2 = (r[:, i] * spatial_scale - offset for i in range(4))
    rw, rh = x2 - x1, y2 - y1
    if coordinate_transformation_mode != "half_pixel":
        rw, rh = rw.clamp(min=1.0), rh.clamp(min=1.0)
    if sampling_ratio > 0:
        gh = torch.full_like(rh, sampling_ratio).long()
        gw = torch.full_like(rw, sampling_ratio).long()
    else:
        gh = torch.ceil(rh / output_height).long()
        gw = torch.ceil(rw / output_width).long()
    vy, ly, hy, wly, why = _roi_axis_samples(y1, rh, output_height, gh, h)
    vx, lx, hx, wlx, whx = _roi_axis_samples(x1, rw, output_width, gw, w)
    feats = xd[batch_indices.long()]  # (R, C, H, W)
    if mode == "avg":
        wy = _axis_matrix(vy, ly, hy, wly, why, h)  # (R, out_h, H)
        wx = _axis_matrix(vx, lx, hx, wlx, whx, w)  # (R, out_w, W)
        count = (gh * gw).clamp(min=1).to(torch.float64)[:, None, None, None]
        y = torch.einsum("rph,rchw,rqw->rcpq", wy, feats, wx) / count
        return y.to(x.dtype)
    return _roi_max(feats, (vy, ly, hy, wly, why), (vx, lx, hx, wlx, whx)).to(x.dtype)


def _axis_matrix(valid, low, high, w_low, w_high, size):
    """Sum over the valid samples of each bin of their bilinear weights, as an (R, out, size) matrix."""
    r, out, g = low.shape
    m = torch.zeros(r, out, size, dtype=w_low.dtype, device=low.device)
    m.scatter_add_(2, low, torch.where(valid, w_low, torch.zeros_like(w_low)))
    m.scatter_add_(2, high, torch.where(valid, w_high, torch.zeros_like(w_high)))
    return m


def _roi_max(feats, ys, xs):
    """Max mode: per sample, max over its 4 weighted corners; then max over the bin's valid samples."""
    vy, ly, hy, wly, why = ys
    vx, lx, hx, wlx, whx = xs
    r, c, h, w = feats.shape
    flat = feats.reshape(r, c, h * w)
    best = None
    for yi, wy in ((ly, wly), (hy, why)):
        for xi, wx in ((lx, wlx), (hx, whx)):
            idx = yi[:, :, :, None, None] * w + xi[:, None, None, :, :]  # (R, oh, gh, ow, gw)
            vals = torch.gather(flat, 2, idx.reshape(r, 1, -1).expand(r, c, idx[0].numel()))
            vals = vals.reshape(r, c, *idx.shape[1:]) * (wy[:, None, :, :, None, None] * wx[:, None, None, None])
            best = vals if best is None else torch.maximum(best, vals)
    valid = vy[:, None, :, :, None, None] & vx[:, None, None, None]
    best = torch.where(valid, best, torch.full_like(best, -math.inf))
    out = best.amax(dim=(3, 5))
    return torch.where(out == -math.inf, torch.zeros_like(out), out)


# ---------------------------------------------------------------------------------- NonMaxSuppression


def _corners(boxes, center_point_box):
    if center_point_box:
        xc, yc, bw, bh = boxes.unbind(-1)
        return yc - bh / 2, xc - bw / 2, yc + bh / 2, xc + bw / 2
    y1, x1, y2, x2 = boxes.unbind(-1)
    return torch.minimum(y1, y2), torch.minimum(x1, x2), torch.maximum(y1, y2), torch.maximum(x1, x2)


def _iou_matrix(boxes, center_point_box):
    y1, x1, y2, x2 = _corners(boxes.to(torch.float64), center_point_box)
    area = (y2 - y1) * (x2 - x1)
    ih = (torch.minimum(y2[:, None], y2[None, :]) - torch.maximum(y1[:, None], y1[None, :])).clamp(min=0)
    iw = (torch.minimum(x2[:, None], x2[None, :]) - torch.maximum(x1[:, None], x1[None, :])).clamp(min=0)
    inter = ih * iw
    union = area[:, None] + area[None, :] - inter
    ok = (area[:, None] > 0) & (area[None, :] > 0) & (union > 0)
    return torch.where(ok, inter / torch.where(union > 0, union, torch.ones_like(union)), torch.zeros_like(inter))


def _scalar(t, default):
    """The single value of an optional 0-d/1-element input, or ``default`` when omitted / empty."""
    return default if t is None or t.numel() == 0 else t.reshape(-1)[0].item()


def _greedy_nms(boxes, scores, limit, iou_thr, score_thr, center_point_box):
    """Indices kept for one (batch, class): by descending score, each drops later boxes overlapping it."""
    if limit <= 0:
        return []
    s = scores.to(torch.float64)
    order = torch.sort(s, descending=True, stable=True).indices
    if score_thr is not None:
        order = order[s[order] > score_thr]
    if order.numel() == 0:
        return []
    overlap = (_iou_matrix(boxes[order], center_point_box) > iou_thr).cpu()
    suppressed = torch.zeros(order.numel(), dtype=torch.bool)
    kept = []
    for i in range(order.numel()):
        if suppressed[i]:
            continue
        kept.append(i)
        if len(kept) >= limit:
            break
        suppressed |= overlap[i]
    return order[kept].tolist()


@op("NonMaxSuppression", 10, 11)
def NonMaxSuppression(boxes, scores, max_output_boxes_per_class=None, iou_threshold=None, score_threshold=None, *,
                      center_point_box=0):
    """Greedy per (batch, class) selection; output rows [batch, class, box], int64."""
    limit = int(_scalar(max_output_boxes_per_class, 0))
    iou_thr = float(_scalar(iou_threshold, 0.0))
    score_thr = _scalar(score_threshold, None)
    selected = []
    for b in range(boxes.shape[0]):
        for cls in range(scores.shape[1]):
            kept = _greedy_nms(boxes[b], scores[b, cls], limit, iou_thr, score_thr, center_point_box)
            selected += [[b, cls, i] for i in kept]
    return torch.tensor(selected, dtype=torch.int64, device=boxes.device).reshape(-1, 3)


# --------------------------------------------------------------------------------------------- Col2Im


@op("Col2Im", 18)
def Col2Im(x, image_shape, block_shape, *, dilations=None, pads=None, strides=None):
    """Sum each column's block back into the image (inverse of im2col), any number of spatial dims."""
    image = int_list(image_shape)
    block = int_list(block_shape)
    nd = len(image)
    dilations = list(dilations) if dilations else [1] * nd
    pads = list(pads) if pads else [0] * (2 * nd)
    strides = list(strides) if strides else [1] * nd
    n = x.shape[0]
    k = math.prod(block)
    c = x.shape[1] // k
    counts = [(image[i] + pads[i] + pads[nd + i] - dilations[i] * (block[i] - 1) - 1) // strides[i] + 1
              for i in range(nd)]
    dev = x.device
    # coordinate along each axis for every (block offset, block position): shape (K, L)
    flat = torch.zeros(k, math.prod(counts), dtype=torch.long, device=dev)
    valid = torch.ones_like(flat, dtype=torch.bool)
    kgrid = torch.meshgrid(*[torch.arange(b, device=dev) for b in block], indexing="ij")
    lgrid = torch.meshgrid(*[torch.arange(cnt, device=dev) for cnt in counts], indexing="ij")
    for i in range(nd):
        coord = kgrid[i].reshape(-1, 1) * dilations[i] + lgrid[i].reshape(1, -1) * strides[i] - pads[i]
        valid &= (coord >= 0) & (coord < image[i])
        flat = flat * image[i] + coord.clamp(0, image[i] - 1)
    cols = x.reshape(n, c, k * flat.shape[1])
    cols = torch.where(valid.reshape(1, 1, -1), cols, torch.zeros_like(cols))
    out = torch.zeros(n, c, math.prod(image), dtype=x.dtype, device=dev)
    out.index_add_(2, flat.reshape(-1), cols)
    return out.reshape(n, c, *image)
