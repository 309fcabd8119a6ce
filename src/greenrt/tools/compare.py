"""Compare greenrt's outputs with onnxruntime's (the reference) on the same inputs.

The error measure itself (compare_arrays, OutputReport) lives in build/accuracy.py, shared with the builder's checks.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..build.accuracy import OutputReport, compare_arrays
from ..errors import GreenrtError


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


def compare_outputs(names: Sequence[str], ours: Sequence, refs: Sequence, rtol: float, atol: float):
    return [compare_arrays(n, o, r, rtol, atol) for n, o, r in zip(names, ours, refs)]


__all__ = ["OutputReport", "compare_arrays", "compare_outputs", "run_onnxruntime"]
