"""How far one output is from its reference: the one error measure of the builder's checks, the accuracy search,
`greenrt compare` and the tests.

The relative error is max |ours - ref| / max |ref| (a norm that suits logits and features alike). NaN is never
"small": where the NaN patterns differ, or where ours has a NaN or an infinity the reference has not, the error is
infinite, so a search or a check can never take a broken engine for an accurate one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np


@dataclass
class OutputReport:
    name: str
    shape: tuple
    max_abs: float
    max_rel: float  # max |a - b| / max |reference|: relative to the reference's largest magnitude
    ok: bool
    note: str = ""


# The relative tolerance by the precision an engine computes in: about what that precision's rounding leaves on a
# whole network's outputs against fp32 (fp16's 1e-2 is the corpus' rule; bf16 keeps 3 fewer mantissa bits than
# fp16, so 8x that). `compare`'s default, and what a tactic candidate may differ from its op's default.
# INT8 (per-tensor activations, a step of range/127) leaves about a tenth of the largest value on a whole network's
# outputs (EfficientNet-Lite0's logits at 0.16-0.22 max on photo crops, onnxruntime's own INT8 alike: bench/NOTES.md;
# bench/results/accuracy_cpu.json has the suite), so its tolerance flags a layer that loses far more than its neighbours, not INT8's rounding itself.
DEFAULT_RTOL = {"fp32": 1e-4, "tf32": 1e-3, "fp16": 1e-2, "bf16": 8e-2, "int8": 1e-1}


def default_rtol(precision: str | None) -> float:
    return DEFAULT_RTOL.get(precision or "fp32", DEFAULT_RTOL["fp32"])


def engine_rtol(config: dict) -> float:
    """The default tolerance for an engine by its build config (an INT8 build's float layers run in ``precision``,
    its outputs carry INT8's rounding)."""
    return DEFAULT_RTOL["int8"] if config.get("int8") else default_rtol(config.get("precision"))


def _as_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        from ..onnx.dtypes import torch_to_numpy

        return torch_to_numpy(value)
    return np.asarray(value)


def compare_arrays(name: str, ours, ref, rtol: float, atol: float) -> OutputReport:
    """Elementwise |ours - ref| <= atol + rtol * max|ref|; shapes and dtypes must match exactly."""
    ours, ref = _as_numpy(ours), _as_numpy(ref)
    if ours.shape != ref.shape:
        return OutputReport(name, ref.shape, np.inf, np.inf, False, f"shape {ours.shape} vs {ref.shape}")
    if ours.dtype != ref.dtype:
        return OutputReport(name, ref.shape, np.inf, np.inf, False, f"dtype {ours.dtype} vs {ref.dtype}")
    if ref.dtype == object or ref.dtype.kind in "bUS":
        same = bool(np.array_equal(ours, ref))
        return OutputReport(name, ref.shape, 0.0 if same else np.inf, 0.0 if same else np.inf, same)
    if ref.size == 0:
        return OutputReport(name, ref.shape, 0.0, 0.0, True)
    a, b = ours.astype(np.complex128 if ref.dtype.kind == "c" else np.float64), \
        ref.astype(np.complex128 if ref.dtype.kind == "c" else np.float64)
    max_abs, max_rel, scale, diff, bad = _errors(a, b)
    ok = not bad and max_abs <= atol + rtol * scale
    note = bad
    if not ok and not bad:  # where: one token, one pixel or everything tells different stories
        worst = np.unravel_index(int(diff.argmax()), diff.shape)
        over = int((diff > atol + rtol * scale).sum())
        note = (f"worst at index {tuple(int(i) for i in worst)}: {a[worst]:.6g} vs reference {b[worst]:.6g}; "
                f"{over} of {diff.size} elements over tolerance")
    return OutputReport(name, ref.shape, max_abs, max_rel, ok, note)


def _errors(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float, np.ndarray, str]:
    """(max abs err, max rel err, max |finite ref|, |a - b| with NaN pairs as 0, what is broken or '')."""
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    if (nan_a != nan_b).any():
        return np.inf, np.inf, 0.0, np.zeros(a.shape), "NaN pattern differs"
    inf_a, inf_b = np.isinf(a), np.isinf(b)
    if (inf_a != inf_b).any() or (a[inf_a] != b[inf_b]).any():
        return np.inf, np.inf, 0.0, np.zeros(a.shape), "infinities differ"
    finite = np.isfinite(b)
    diff = np.where(finite, np.abs(np.where(finite, a - b, 0)), 0.0)
    max_abs = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(b[finite]).max()) if finite.any() else 0.0
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else np.inf)
    return max_abs, max_rel, scale, diff, ""


def max_rel_error(ours, ref) -> float:
    """max |ours - ref| / max |ref|; infinite for a shape mismatch or a NaN/Inf the reference does not have."""
    a, b = _as_numpy(ours), _as_numpy(ref)
    if a.shape != b.shape:
        return float("inf")
    if b.size == 0:
        return 0.0
    kind = np.complex128 if b.dtype.kind == "c" or a.dtype.kind == "c" else np.float64
    return float(_errors(a.astype(kind), b.astype(kind))[1])


def worst_error(errors: Sequence[float]) -> float:
    """The largest of ``errors``, NaN counting as infinitely bad (Python's max() would let 0.0 win over NaN)."""
    worst = 0.0
    for e in errors:
        if e != e:  # NaN
            return float("inf")
        worst = max(worst, float(e))
    return worst


def float_output_errors(names: Sequence[str], got: Sequence[Any], ref: Sequence[Any]) -> dict[str, float]:
    """Max relative error per floating-point tensor output (others are compared elsewhere, exactly)."""
    return {n: max_rel_error(g, r) for n, g, r in zip(names, got, ref)
            if hasattr(g, "is_floating_point") and g.is_floating_point()}
