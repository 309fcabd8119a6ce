"""Compare greenrt's outputs with onnxruntime's (the reference) on the same inputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ..errors import GreenrtError


@dataclass
class OutputReport:
    name: str
    shape: tuple
    max_abs: float
    max_rel: float  # max |a - b| / max |reference|: relative to the reference's largest magnitude
    ok: bool
    note: str = ""


def run_onnxruntime(model_path: str, feeds: Mapping[str, np.ndarray],
                    extra_outputs: Sequence[str] = ()) -> list[np.ndarray]:
    """onnxruntime's outputs (CPU); ``extra_outputs``: intermediate tensors to return after the graph outputs."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise GreenrtError("onnxruntime is not installed: pip install 'greenrt[reference]'") from None
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    source: str | bytes = str(model_path)
    if extra_outputs:
        import onnx_ir as ir

        from ..onnx.importer import load_model
        from ..onnx.outputs import mark_outputs

        model = load_model(model_path)
        mark_outputs(model, list(extra_outputs))
        source = ir.to_proto(model).SerializeToString()
    try:
        sess = ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
        return sess.run(None, {k: np.asarray(v) for k, v in feeds.items()})
    except Exception as exc:
        raise GreenrtError(f"onnxruntime could not run {model_path}: {str(exc).splitlines()[0]}") from None


def compare_arrays(name: str, ours, ref, rtol: float, atol: float) -> OutputReport:
    """Elementwise |ours - ref| <= atol + rtol * max|ref| (a norm that suits logits and features alike)."""
    ours, ref = np.asarray(ours), np.asarray(ref)
    if ours.shape != ref.shape:
        return OutputReport(name, ref.shape, np.inf, np.inf, False, f"shape {ours.shape} vs {ref.shape}")
    if ours.dtype != ref.dtype:
        return OutputReport(name, ref.shape, np.inf, np.inf, False, f"dtype {ours.dtype} vs {ref.dtype}")
    if ref.dtype == object or ref.dtype.kind in "bUS":
        same = bool(np.array_equal(ours, ref))
        return OutputReport(name, ref.shape, 0.0 if same else np.inf, 0.0 if same else np.inf, same)
    if ref.size == 0:
        return OutputReport(name, ref.shape, 0.0, 0.0, True)
    a, b = ours.astype(np.float64), ref.astype(np.float64)
    nan_mismatch = bool((np.isnan(a) != np.isnan(b)).any())
    diff = np.abs(np.nan_to_num(a - b, nan=0.0, posinf=np.inf, neginf=np.inf))
    max_abs = float(diff.max())
    scale = float(np.nanmax(np.abs(b[np.isfinite(b)]))) if np.isfinite(b).any() else 0.0
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else np.inf)
    ok = not nan_mismatch and max_abs <= atol + rtol * scale
    note = "NaN pattern differs" if nan_mismatch else ""
    if not ok and not nan_mismatch:  # where: one token, one pixel or everything tells different stories
        worst = np.unravel_index(int(diff.argmax()), diff.shape)
        over = int((diff > atol + rtol * scale).sum())
        note = (f"worst at index {tuple(int(i) for i in worst)}: {a[worst]:.6g} vs reference {b[worst]:.6g}; "
                f"{over} of {diff.size} elements over tolerance")
    return OutputReport(name, ref.shape, max_abs, max_rel, ok, note)


def compare_outputs(names: Sequence[str], ours: Sequence, refs: Sequence, rtol: float, atol: float):
    return [compare_arrays(n, o, r, rtol, atol) for n, o, r in zip(names, ours, refs)]
