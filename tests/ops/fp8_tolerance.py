"""How close an FP8 kernel's output must be to greenrt's float64 reference on Hopper.

Hopper's FP8 tensor cores do not accumulate in full float32: they keep about 14 bits of mantissa in the running sum
(DeepSeek-V3 technical report, section 3.3.2; seen here on an H100: torch._scaled_mm 4.3e-5 of the largest output
off the float64 sum, a cuDNN FP8 conv three float8 codes off near zero). So the bound is 2^-12 of the largest
output (about 4x the 14-bit rounding of a sum of that size, with room) plus, for float8 outputs, one float8 step at
the value. A wrong scale, zero point or epilogue term is off by the order of the value itself, far outside it."""

from __future__ import annotations

import torch

ACCUMULATION = 2.0 ** -12  # of the largest output


def e4m3_step(v: torch.Tensor) -> torch.Tensor:
    """The float8 e4m3 step at |v| (3 mantissa bits; subnormals below 2^-6 step by 2^-9)."""
    exp = torch.floor(torch.log2(v.abs().clamp(min=2.0 ** -6)))
    return torch.exp2(exp - 3)


def assert_fp8_close(got: torch.Tensor, ref: torch.Tensor, what: str = "") -> None:
    """``got`` within Hopper's FP8 accumulation of ``ref`` (float outputs), plus one float8 step at the value
    where both are float8."""
    g, r = got.double(), ref.double()
    allowed = ACCUMULATION * float(r.abs().max())
    if ref.dtype == torch.float8_e4m3fn:
        allowed = allowed + e4m3_step(r)
    excess = (g - r).abs() - allowed
    worst = int(excess.argmax())
    assert float(excess.max()) <= 0, (f"{what}: {int((excess > 0).sum())} of {r.numel()} outputs outside the FP8 "
                                      f"bound; worst got {float(g.flatten()[worst])} vs {float(r.flatten()[worst])}")
