"""The plan: what an engine holds and the runtime executes, as plain data (no onnx, no onnx-ir needed to load it).

A Plan is an ordered list of steps over named values. Attributes are JSON values; a tensor attribute is a
reference into the weights ({"tensor": key}); a subgraph attribute (If/Loop/Scan bodies) is a nested Plan
({"graph": index into ``subplans``}). Weights live beside the plan (a safetensors file in an engine).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class TensorSpec:
    """A graph input/output: ONNX element type (0 = unknown) and dims (int, symbol name, or None)."""

    name: str
    dtype: int = 0
    shape: list[int | str | None] | None = None
    kind: str = "tensor"  # "tensor" | "sequence" | "optional" | "other"

    @property
    def type(self) -> "TensorSpec":  # ops written against onnx-ir read value.type.dtype
        return self


@dataclass
class PlanStep:
    domain: str
    op_type: str
    since: int  # the implementation's since-version, resolved at compile time
    name: str
    inputs: list[str]  # "" for an omitted optional input
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    input_specs: list[TensorSpec | None] = field(default_factory=list)
    output_specs: list[TensorSpec | None] = field(default_factory=list)
    precision: str = ""  # the precision the step was built for (reported by inspect)
    tactic: str = ""  # the implementation variant the builder timed and kept (ops/tactics.py); "" = the op's default

    @property
    def label(self) -> str:
        return f"node {self.name or '<unnamed>'!r} ({self.domain + '.' if self.domain else ''}{self.op_type})"


@dataclass
class Plan:
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    steps: list[PlanStep]
    constants: dict[str, Any]  # value name -> weight key (or {"strings": [...], "shape": [...]})
    opsets: dict[str, int]
    subplans: list["Plan"] = field(default_factory=list)
    # how the runtime runs the data steps: "" = greenrt's executor, step by step; "inductor" = compiled by Inductor
    # per input shape into a local cache (runtime/compiled.py), where the builder's timing found that faster
    compiled: str = ""

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Plan":
        def spec(d):
            return None if d is None else TensorSpec(**d)

        steps = [
            PlanStep(**{**s, "input_specs": [spec(x) for x in s.get("input_specs", [])],
                        "output_specs": [spec(x) for x in s.get("output_specs", [])]})
            for s in data["steps"]
        ]
        return cls(
            inputs=[TensorSpec(**d) for d in data["inputs"]],
            outputs=[TensorSpec(**d) for d in data["outputs"]],
            steps=steps,
            constants=dict(data["constants"]),
            opsets={k: int(v) for k, v in data["opsets"].items()},
            subplans=[cls.from_json(p) for p in data.get("subplans", [])],
            compiled=str(data.get("compiled", "")),
        )

    def all_steps(self):
        """Every step, those of subplans included (for inspect and reports)."""
        for step in self.steps:
            yield step
        for sub in self.subplans:
            yield from sub.all_steps()
