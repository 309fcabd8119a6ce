"""How precision flows through an engine's plan, for `greenrt inspect`: which tensors quantized layers hand to each
other in INT8 / UINT8 / FP8, and the reformats the plan spends on the way (steps that only change a tensor's
precision: QuantizeLinear, DequantizeLinear, Cast; and quantized layers writing float for float readers).

    flow = precision_flow(plan)
    print(flow.summary())    # "INT8 between layers: 52 tensors (UINT8 49, INT8 3); reformats: 2 QuantizeLinear ..."
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

QUANTIZED_LAYERS = ("QConv", "QMatMul")
REFORMATS = ("QuantizeLinear", "DequantizeLinear", "Cast")
LOW_TYPES = {2: "UINT8", 3: "INT8", 17: "FP8"}  # ONNX element types of the tensors quantized layers hand on


@dataclass
class PrecisionFlow:
    quantized_layers: int = 0
    handed_on: Counter = field(default_factory=Counter)  # low-precision type -> tensors between quantized layers
    float_out: int = 0  # quantized layers that write float (their readers are float layers)
    reformats: Counter = field(default_factory=Counter)  # op type -> steps that only change precision

    def to_json(self) -> dict:
        return {"quantized_layers": self.quantized_layers, "handed_on": dict(self.handed_on),
                "float_out": self.float_out, "reformats": dict(self.reformats)}

    def summary(self) -> str:
        if not self.quantized_layers:
            counts = ", ".join(f"{n} {op}" for op, n in self.reformats.items())
            return f"reformats in the plan: {counts or 'none'}"
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.handed_on.items()))
        between = sum(self.handed_on.values())
        reformats = ", ".join(f"{n} {op}" for op, n in self.reformats.items()) or "none"
        return (f"{self.quantized_layers} quantized layers hand {between} tensor(s) on without leaving low precision"
                f"{f' ({kinds})' if kinds else ''}; {self.float_out} write float for float readers; reformats in "
                f"the plan: {reformats}")


def precision_flow(plan) -> PrecisionFlow:
    flow = PrecisionFlow()
    for step in plan.steps:
        if step.domain in ("", "ai.onnx") and step.op_type in REFORMATS:
            flow.reformats[step.op_type] += 1
            continue
        spec = step.output_specs[0] if step.output_specs else None
        dtype = getattr(spec, "dtype", 0) or 0
        if step.op_type in QUANTIZED_LAYERS:
            flow.quantized_layers += 1
            out = step.attrs.get("out_dtype", 1)
            if out in LOW_TYPES:
                flow.handed_on[LOW_TYPES[out]] += 1
            else:
                flow.float_out += 1
        elif dtype in LOW_TYPES:  # an op passing a quantized tensor on in its type (MaxPool)
            flow.handed_on[LOW_TYPES[dtype]] += 1
    return flow


__all__ = ["precision_flow", "PrecisionFlow"]
