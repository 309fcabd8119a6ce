"""greenrt.QMatMul on integer GEMM kernels: ``torch._int_mm`` (INT8 x INT8 -> INT32; cuBLASLt's IMMA kernels on the
GPU, oneDNN's VNNI ones on the CPU), then the reference's float32 epilogue. A tactic of QMatMul (``int-mm``).

    A (int8, or uint8 run as A - 128: its bits XOR 0x80) [M, K] @ W [K, N]  -> int32 acc
    acc += (128 - zp_A) * colsum(W)        (the zero point and the UINT8 shift, exact in int32)
    epilogue(acc) as ops/int8.py's:  * (a_scale * W_scale[n]) [+ B] [+ Z] [activation] [requantize]

The accumulator is the reference's exactly (integer sums, |acc| < 2**31 for any K under 66,000), and the epilogue is
the same function on it, so the outputs are the reference's bit for bit. W with ``trans_w`` (stored [N, K]) is the
layout the kernels want (column-major B); colsum(W) is made once per weight tensor.
"""

from __future__ import annotations

import torch

from ._util import derived_constant
from .int8 import FLOAT, GREENRT, QMatMul, _common, _runtime_qparams, epilogue
from .tactics import tactic

# cuBLASLt's INT8 GEMM (torch._int_mm on CUDA): more than 16 rows, K and N multiples of 8
CUDA_MIN_ROWS, CUDA_ALIGN = 17, 8


def _args(args) -> tuple:
    extra = list(args[3:]) + [None] * (5 - len(args[3:]))
    return (args[0], args[1], *extra[:5])


def _supports(args, attrs) -> bool:
    if len(args) < 3:
        return False
    a, w, b, z, w_zp, a_scale_t, a_zp_t = _args(args)
    if not (isinstance(a, torch.Tensor) and isinstance(w, torch.Tensor)):
        return False
    if a.dtype not in (torch.int8, torch.uint8) or w.dtype != torch.int8 or w.dim() != 2 or a.dim() < 2:
        return False
    if w_zp is not None or (a_zp_t is not None and a_zp_t.numel() != 1) or a.device != w.device:
        return False
    k = a.shape[-1]
    n = w.shape[0] if attrs.get("trans_w") else w.shape[1]
    if k != (w.shape[1] if attrs.get("trans_w") else w.shape[0]) or k == 0 or n == 0:
        return False
    if a.is_cuda:
        rows = a.numel() // k
        return rows >= CUDA_MIN_ROWS and k % CUDA_ALIGN == 0 and n % CUDA_ALIGN == 0
    return a.device.type == "cpu"


def _column_sums(w: torch.Tensor, trans_w: int) -> torch.Tensor:
    return derived_constant(w, f"colsum{int(bool(trans_w))}",
                            lambda t: t.sum(dim=1 if trans_w else 0, dtype=torch.int32))


@tactic(GREENRT, "QMatMul", "int-mm", _supports,
        doc="torch._int_mm (cuBLASLt IMMA on the GPU, oneDNN VNNI on the CPU): exact INT32 accumulation, then the "
            "reference's float32 epilogue")
def QMatMulIntMM(a, w, w_scale, b=None, z=None, w_zero_point=None, a_scale_t=None, a_zero_point_t=None, *,
                 a_scale=0.0, a_zero_point=0, y_scale=0.0, y_zero_point=0, out_dtype=FLOAT, z_scale=0.0,
                 z_zero_point=0, activation="", activation_params=(), trans_w=0):
    if not _supports((a, w, w_scale, b, z, w_zero_point, a_scale_t, a_zero_point_t), {"trans_w": trans_w}):
        # an engine built elsewhere named this tactic for arguments it cannot take here: the reference
        return QMatMul(a, w, w_scale, b, z, w_zero_point, a_scale_t, a_zero_point_t, a_scale=a_scale,
                       a_zero_point=a_zero_point, y_scale=y_scale, y_zero_point=y_zero_point, out_dtype=out_dtype,
                       z_scale=z_scale, z_zero_point=z_zero_point, activation=activation,
                       activation_params=activation_params, trans_w=trans_w)
    a_scale, zp = _runtime_qparams("A", a_scale, a_zero_point, a_scale_t, a_zero_point_t)
    _common(a_scale, w_scale, out_dtype, y_scale)
    k = a.shape[-1]
    a2 = a.reshape(-1, k)
    # acc = (A - zp) @ W = A' @ W + (shift - zp) * colsum(W), with A' = A - shift the INT8 the kernel reads
    shift = 0
    if a.dtype == torch.uint8:
        a2, shift = (a2 ^ 128).view(torch.int8), 128
    acc = torch._int_mm(a2.contiguous(), w.t() if trans_w else w)
    offset = (shift - zp.to(torch.int32)) if isinstance(zp, torch.Tensor) else shift - int(zp or 0)
    if not isinstance(offset, int) or offset:
        acc = acc + offset * _column_sums(w, trans_w)
    acc = acc.reshape(*a.shape[:-1], acc.shape[-1])
    return epilogue(acc, acc.dim() - 1, a_scale, w_scale, b, z, z_scale=z_scale, z_zero_point=z_zero_point,
                    activation=activation, activation_params=activation_params, out_dtype=out_dtype,
                    y_scale=y_scale, y_zero_point=y_zero_point)


__all__ = ["QMatMulIntMM"]


# -- float8 e4m3 (--fp8): torch._scaled_mm (cuBLASLt's FP8 tensor-core GEMM on Hopper; a float32 kernel on the CPU)
SCALED_MM_ALIGN = 16  # cuBLASLt's FP8 GEMM: K and N multiples of 16


def _supports_fp8(args, attrs) -> bool:
    if len(args) < 3:
        return False
    a, w, b, z, w_zp, a_scale_t, a_zp_t = _args(args)
    if not (isinstance(a, torch.Tensor) and isinstance(w, torch.Tensor)):
        return False
    if a.dtype != torch.float8_e4m3fn or w.dtype != torch.float8_e4m3fn or w.dim() != 2 or a.dim() < 2:
        return False
    if any(t is not None for t in (w_zp, a_scale_t, a_zp_t)) or a.device != w.device:
        return False
    k = a.shape[-1]
    n = w.shape[0] if attrs.get("trans_w") else w.shape[1]
    if k != (w.shape[1] if attrs.get("trans_w") else w.shape[0]) or k == 0 or n == 0:
        return False
    if a.is_cuda:
        return k % SCALED_MM_ALIGN == 0 and n % SCALED_MM_ALIGN == 0 and torch.cuda.get_device_capability(a.device) \
            >= (8, 9)
    return a.device.type == "cpu"


@tactic(GREENRT, "QMatMul", "scaled-mm", _supports_fp8,
        doc="torch._scaled_mm on float8 e4m3 (cuBLASLt's FP8 tensor cores on Hopper): float32 accumulation, then "
            "the reference's float32 epilogue")
def QMatMulScaledMM(a, w, w_scale, b=None, z=None, w_zero_point=None, a_scale_t=None, a_zero_point_t=None, *,
                    a_scale=0.0, a_zero_point=0, y_scale=0.0, y_zero_point=0, out_dtype=FLOAT, z_scale=0.0,
                    z_zero_point=0, activation="", activation_params=(), trans_w=0):
    if not _supports_fp8((a, w, w_scale, b, z, w_zero_point, a_scale_t, a_zero_point_t), {"trans_w": trans_w}):
        return QMatMul(a, w, w_scale, b, z, w_zero_point, a_scale_t, a_zero_point_t, a_scale=a_scale,
                       a_zero_point=a_zero_point, y_scale=y_scale, y_zero_point=y_zero_point, out_dtype=out_dtype,
                       z_scale=z_scale, z_zero_point=z_zero_point, activation=activation,
                       activation_params=activation_params, trans_w=trans_w)
    _common(a_scale, w_scale, out_dtype, y_scale)
    k = a.shape[-1]
    one = derived_constant(w, "one", lambda t: torch.ones((), dtype=torch.float32, device=t.device))
    # B column-major, as the kernels want it: W stored [N, K] (trans_w) is that already
    wt = w.t() if trans_w else derived_constant(w, "colmajor", lambda t: t.t().contiguous().t())
    acc = torch._scaled_mm(a.reshape(-1, k).contiguous(), wt, scale_a=one, scale_b=one, out_dtype=torch.float32)
    acc = acc.reshape(*a.shape[:-1], acc.shape[-1])
    return epilogue(acc, acc.dim() - 1, a_scale, w_scale, b, z, z_scale=z_scale, z_zero_point=z_zero_point,
                    activation=activation, activation_params=activation_params, out_dtype=out_dtype,
                    y_scale=y_scale, y_zero_point=y_zero_point)


__all__ += ["QMatMulScaledMM"]
