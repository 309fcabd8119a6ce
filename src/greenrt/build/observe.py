"""Range observation: run a model in fp32 over sample batches and record what each value holds.

The fp16 range fallback reads it today (precision/: a node whose values leave fp16's range stays fp32); INT8
calibration and tactic timing run the model the same way. Precision decisions stay a pure graph rewrite: this
stage runs the model and hands the rewrite an ObservedRanges.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import onnx_ir as ir
import torch

from ..onnx.dtypes import TORCH_TO_ONNX, numpy_to_torch
from ..plan.compile import compile_model
from ..precision import ObservedRanges
from ..runtime.runner import Runner


def observe_ranges(model: ir.Model, sample_feeds: Sequence[Mapping[str, Any]]) -> ObservedRanges:
    """Run ``model`` (as it is now, fp32) on CPU over the batches: value name -> finite max |x| and ONNX dtype."""
    plan, weights = compile_model(model)
    runner = Runner(plan, weights, "cpu", precision="fp32")
    observed = ObservedRanges(batches=len(sample_feeds))

    def record(name: str, value: Any) -> None:
        if not name or not isinstance(value, torch.Tensor):
            return
        observed.dtypes.setdefault(name, TORCH_TO_ONNX.get(value.dtype, 0))
        if not value.is_floating_point() or value.numel() == 0:
            return
        a = value.detach().abs()
        a = torch.where(torch.isfinite(a), a, torch.zeros((), dtype=a.dtype, device=a.device))
        observed.maxima[name] = max(observed.maxima.get(name, 0.0), float(a.max()))

    def observer(step, outputs) -> None:
        for name, value in zip(step.outputs, outputs):
            record(name, value)

    for batch in sample_feeds:
        feeds = {}
        for name, array in batch.items():
            tensor = array.cpu() if isinstance(array, torch.Tensor) else numpy_to_torch(np.asarray(array), "cpu")
            feeds[name] = tensor
            record(name, tensor)
        runner.run(feeds, observer=observer)
    return observed
