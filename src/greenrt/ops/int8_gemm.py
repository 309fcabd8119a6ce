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


def _operands(args, attrs, a_types: tuple, w_type) -> tuple[torch.Tensor, int, int] | None:
    """(A, K, N) where a GEMM kernel can read these QMatMul arguments: A of ``a_types`` (rank >= 2) and a 2-D W of
    ``w_type`` on A's device, K matching, no weight zero point; None otherwise."""
    if len(args) < 3:
        return None
    extra = list(args[3:]) + [None] * (5 - len(args[3:]))
    (a, w), (_b, _z, w_zp, _a_scale_t, a_zp_t) = args[:2], extra[:5]
    if not (isinstance(a, torch.Tensor) and isinstance(w, torch.Tensor)):
        return None
    if a.dtype not in a_types or w.dtype != w_type or w.dim() != 2 or a.dim() < 2:
        return None
    if w_zp is not None or (a_zp_t is not None and a_zp_t.numel() != 1) or a.device != w.device:
        return None
    k = a.shape[-1]
    n = w.shape[0] if attrs.get("trans_w") else w.shape[1]
    if k != (w.shape[1] if attrs.get("trans_w") else w.shape[0]) or k == 0 or n == 0:
        return None
    return a, k, n


def _supports(args, attrs) -> bool:
    found = _operands(args, attrs, (torch.int8, torch.uint8), torch.int8)
    if found is None:
        return False
    a, k, n = found
    if a.is_cuda:
        return a.numel() // k >= CUDA_MIN_ROWS and k % CUDA_ALIGN == 0 and n % CUDA_ALIGN == 0
    return a.device.type == "cpu"


def _column_sums(w: torch.Tensor, trans_w: int) -> torch.Tensor:
    return derived_constant(w, f"colsum{int(bool(trans_w))}",
                            lambda t: t.sum(dim=1 if trans_w else 0, dtype=torch.int32))


def _gemm_tactic(name: str, supports, accumulate, doc: str):
    """Register QMatMul's tactic ``name``: ``accumulate(A [M, K], W, trans_w, a_zero_point) -> acc [M, N]`` on a
    kernel, then the reference's epilogue; arguments ``supports`` refuses (an engine built elsewhere named this
    tactic) run the reference."""

    def run(a, w, w_scale, b=None, z=None, w_zero_point=None, a_scale_t=None, a_zero_point_t=None, *, a_scale=0.0,
            a_zero_point=0, y_scale=0.0, y_zero_point=0, out_dtype=FLOAT, z_scale=0.0, z_zero_point=0,
            activation="", activation_params=(), trans_w=0):
        args = (a, w, w_scale, b, z, w_zero_point, a_scale_t, a_zero_point_t)
        if not supports(args, {"trans_w": trans_w}):
            return QMatMul(*args, a_scale=a_scale, a_zero_point=a_zero_point, y_scale=y_scale,
                           y_zero_point=y_zero_point, out_dtype=out_dtype, z_scale=z_scale, z_zero_point=z_zero_point,
                           activation=activation, activation_params=activation_params, trans_w=trans_w)
        a_scale, zp = _runtime_qparams("A", a_scale, a_zero_point, a_scale_t, a_zero_point_t)
        _common(a_scale, w_scale, out_dtype, y_scale)
        acc = accumulate(a.reshape(-1, a.shape[-1]), w, trans_w, zp)
        acc = acc.reshape(*a.shape[:-1], acc.shape[-1])
        return epilogue(acc, acc.dim() - 1, a_scale, w_scale, b, z, z_scale=z_scale, z_zero_point=z_zero_point,
                        activation=activation, activation_params=activation_params, out_dtype=out_dtype,
                        y_scale=y_scale, y_zero_point=y_zero_point)

    run.__name__ = run.__qualname__ = f"QMatMul_{name.replace('-', '_')}"
    tactic(GREENRT, "QMatMul", name, supports, doc=doc)(run)
    return run


def _int_mm(a2: torch.Tensor, w: torch.Tensor, trans_w: int, zp) -> torch.Tensor:
    """acc = (A - zp) @ W = A' @ W + (shift - zp) * colsum(W), with A' = A - shift the INT8 the kernel reads."""
    shift = 0
    if a2.dtype == torch.uint8:
        a2, shift = (a2 ^ 128).view(torch.int8), 128
    acc = torch._int_mm(a2.contiguous(), w.t() if trans_w else w)
    offset = (shift - zp.to(torch.int32)) if isinstance(zp, torch.Tensor) else shift - int(zp or 0)
    if not isinstance(offset, int) or offset:
        acc = acc + offset * _column_sums(w, trans_w)
    return acc


QMatMulIntMM = _gemm_tactic(
    "int-mm", _supports, _int_mm,
    doc="torch._int_mm (cuBLASLt IMMA on the GPU, oneDNN VNNI on the CPU): exact INT32 accumulation, then the "
        "reference's float32 epilogue")


# -- float8 e4m3 (--fp8): torch._scaled_mm (cuBLASLt's FP8 tensor-core GEMM on Hopper; a float32 kernel on the CPU)
SCALED_MM_ALIGN = 16  # cuBLASLt's FP8 GEMM: K and N multiples of 16


def _supports_fp8(args, attrs) -> bool:
    found = _operands(args, attrs, (torch.float8_e4m3fn,), torch.float8_e4m3fn)
    if found is None or any(t is not None for t in args[6:8]):  # float8 takes no runtime scale or zero point
        return False
    a, k, n = found
    if a.is_cuda:
        return k % SCALED_MM_ALIGN == 0 and n % SCALED_MM_ALIGN == 0 and torch.cuda.get_device_capability(a.device) \
            >= (8, 9)
    return a.device.type == "cpu"


def _scaled_mm(a2: torch.Tensor, w: torch.Tensor, trans_w: int, zp) -> torch.Tensor:
    one = derived_constant(w, "one", lambda t: torch.ones((), dtype=torch.float32, device=t.device))
    # B column-major, as the kernels want it: W stored [N, K] (trans_w) is that already
    wt = w.t() if trans_w else derived_constant(w, "colmajor", lambda t: t.t().contiguous().t())
    return torch._scaled_mm(a2.contiguous(), wt, scale_a=one, scale_b=one, out_dtype=torch.float32)


QMatMulScaledMM = _gemm_tactic(
    "scaled-mm", _supports_fp8, _scaled_mm,
    doc="torch._scaled_mm on float8 e4m3 (cuBLASLt's FP8 tensor cores on Hopper): float32 accumulation, then the "
        "reference's float32 epilogue")

__all__ = ["QMatMulIntMM", "QMatMulScaledMM"]
