"""Execute a Plan over torch ops on any torch device.

Construction binds the plan once: each step to its OpImpl, attributes decoded (weights moved to the device once,
subgraphs to nested plans), and each value gets a last-use index so its memory returns to the allocator as soon as
nothing needs it (the caching allocator then reuses those blocks: lifetime-based reuse). ``run`` walks the steps.
The same Executor runs a plan compiled straight from an ONNX file and a plan loaded from an engine.
"""

from __future__ import annotations

from collections import ChainMap
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from ..errors import ExecutionError, GreenrtError
from ..ops import REGISTRY, OpContext, OpImpl, load_all
from ..ops.facts import host_positions
from ..plan.plan import Plan, PlanStep

Observer = Callable[[PlanStep, Sequence[Any]], None]
Before = Callable[["BoundStep", list, dict], None]


@dataclass
class BoundStep:
    step: PlanStep
    impl: OpImpl
    attrs: dict[str, Any]
    fn: Callable[..., Any] | None = None  # what runs: the plan's tactic (ops/tactics.py), else impl.fn
    release: tuple[str, ...] = ()
    host_positions: tuple[int, ...] = ()  # inputs the op reads on the host (ops/facts.py)
    host_args: dict[int, Any] = field(default_factory=dict)  # CPU copies of constants at those positions

    @property
    def label(self) -> str:
        return self.step.label


def to_device_weights(weights: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """Weights (numpy arrays or torch tensors) as torch tensors on ``device``."""
    from ..onnx.dtypes import numpy_to_torch

    out = {}
    for key, w in weights.items():
        out[key] = w.to(device) if isinstance(w, torch.Tensor) else numpy_to_torch(np.asarray(w), device)
    return out


def _decode(value: Any, weights: Mapping[str, Any], plan: Plan) -> Any:
    """A plan attribute (or constant reference) as the runtime value an op receives."""
    if isinstance(value, dict):
        if "tensor" in value:
            return weights[value["tensor"]]
        if "strings" in value:
            return np.array(value["strings"], dtype=object).reshape(value["shape"])
        if "tensors" in value:
            return [_decode(v, weights, plan) for v in value["tensors"]]
        if "graph" in value:
            return plan.subplans[value["graph"]]
        if "graphs" in value:
            return [plan.subplans[i] for i in value["graphs"]]
    return value


def _subplan_outer_names(plan: Plan) -> set[str]:
    """Names a subplan reads from enclosing scopes (used but not produced inside it)."""
    defined = {s.name for s in plan.inputs} | set(plan.constants)
    used: set[str] = set()
    for step in plan.steps:
        used |= {n for n in step.inputs if n}
        defined |= set(step.outputs)
    for sub in plan.subplans:
        used |= _subplan_outer_names(sub)
    used |= {s.name for s in plan.outputs}
    return used - defined


class Executor:
    """Runs one plan (a model's main graph or a subgraph) on ``device``."""

    def __init__(self, plan: Plan, weights: Mapping[str, Any], device: torch.device | str = "cpu",
                 _device_weights: dict[str, Any] | None = None, channels_last: bool = False):
        load_all()
        self.plan = plan
        self.device = torch.device(device)
        self.weights = _device_weights if _device_weights is not None else to_device_weights(weights, self.device)
        self.input_names = [s.name for s in plan.inputs]
        self.output_names = [s.name for s in plan.outputs]
        self.constants = {name: _decode(ref if isinstance(ref, dict) else {"tensor": ref}, self.weights, plan)
                          for name, ref in plan.constants.items()}
        if channels_last:
            self._conv_weights_channels_last()
        self.steps = [self._bind(step) for step in plan.steps]
        self._sub_executors: dict[int, Executor] = {}
        self._assign_releases()

    @classmethod
    def from_model(cls, model, device: torch.device | str = "cpu") -> "Executor":
        """Compile an onnx-ir model (no optimization) and bind it."""
        from ..plan.compile import compile_model

        plan, weights = compile_model(model)
        return cls(plan, weights, device)

    def _conv_weights_channels_last(self) -> None:
        """NHWC through conv chains: 4-D conv weights in channels_last memory format (converted once, here)."""
        for step in self.plan.steps:
            if step.op_type in ("Conv", "FusedConv", "ConvTranspose", "QConv") and len(step.inputs) > 1:
                w = self.constants.get(step.inputs[1])
                if isinstance(w, torch.Tensor) and w.dim() == 4:
                    self.constants[step.inputs[1]] = w.contiguous(memory_format=torch.channels_last)

    def _bind(self, step: PlanStep) -> BoundStep:
        impl = REGISTRY.lookup(step.domain, step.op_type, step.since)
        if impl is None or impl.since != step.since:
            raise GreenrtError(f"{step.label}: implementation {step.op_type}-{step.since} is not in this greenrt")
        attrs = {name: _decode(v, self.weights, self.plan) for name, v in step.attrs.items()}
        fn = impl.fn
        if step.tactic:
            from ..ops.tactics import lookup

            variant = lookup(step.domain, step.op_type, step.tactic)
            if variant is None:
                raise GreenrtError(f"{step.label}: tactic {step.tactic!r} is not in this greenrt; rebuild the engine "
                                   "with this version")
            fn = variant.fn
        bound = BoundStep(step, impl, attrs, fn, host_positions=host_positions(step.domain, step.op_type))
        if self.device.type != "cpu":
            for pos in bound.host_positions:
                name = step.inputs[pos] if pos < len(step.inputs) else ""
                if name in self.constants and isinstance(self.constants[name], torch.Tensor):
                    bound.host_args[pos] = self.constants[name].cpu()
        return bound

    def _assign_releases(self) -> None:
        keep = set(self.output_names) | set(self.constants) | set(self.input_names)
        last_use: dict[str, int] = {}
        for i, bound in enumerate(self.steps):
            reads = {n for n in bound.step.inputs if n}
            for value in bound.attrs.values():
                for sub in (value if isinstance(value, list) else [value]):
                    if isinstance(sub, Plan):
                        reads |= _subplan_outer_names(sub)
            for name in reads:
                last_use[name] = i
        by_step: dict[int, list[str]] = {}
        for name, i in last_use.items():
            if name not in keep:
                by_step.setdefault(i, []).append(name)
        for i, bound in enumerate(self.steps):
            bound.release = tuple(by_step.get(i, ()))

    # -- run -------------------------------------------------------------------------------------------
    def run(self, feeds: Mapping[str, Any], outer: Mapping[str, Any] | None = None,
            observer: Observer | None = None, before: Before | None = None) -> list[Any]:
        """Outputs for ``feeds``; ``observer(step, outputs)`` sees every step's results (calibration, compare);
        ``before(bound, args, kwargs)`` sees every step's arguments just before it runs (the tactic timer)."""
        return self.execute(self.steps, feeds, outer=outer, observer=observer, before=before)

    def execute(self, steps: Sequence[BoundStep], feeds: Mapping[str, Any], *, outer: Mapping[str, Any] | None = None,
                observer: Observer | None = None, known: Mapping[str, Any] | None = None,
                host_values: Mapping[str, Any] | None = None, want_outputs: bool = True,
                before: Before | None = None) -> list[Any]:
        """Run ``steps`` (all, or a shape-specialized subset) with ``known`` values precomputed.

        ``host_values`` are CPU copies of precomputed values, used at host-read input positions.
        """
        local: dict[str, Any] = dict(feeds)
        maps = [local] + ([known] if known is not None else []) + [self.constants]
        maps += [outer] if outer is not None else []
        env: Mapping[str, Any] = ChainMap(*maps)
        for bound in steps:
            step = bound.step
            try:
                args = [env[name] if name else None for name in step.inputs]
            except KeyError as exc:
                raise ExecutionError(f"{bound.label}: input {exc} was never produced") from None
            for pos, value in bound.host_args.items():
                args[pos] = value
            if host_values:
                for pos in bound.host_positions:
                    if pos < len(step.inputs) and step.inputs[pos] in host_values:
                        args[pos] = host_values[step.inputs[pos]]
            kwargs = bound.attrs
            if bound.impl.wants_ctx:
                kwargs = dict(kwargs, ctx=self._context(bound, env))
            if before is not None:
                before(bound, args, kwargs)
            try:
                result = bound.fn(*args, **kwargs)
            except GreenrtError:
                raise
            except Exception as exc:  # an op failing on the given data: name the node, keep the cause
                raise ExecutionError(f"{bound.label} failed: {type(exc).__name__}: {exc}") from exc
            if not isinstance(result, tuple):
                result = (result,)
            if observer is not None:
                observer(step, result)
            for name, value in zip(step.outputs, result):
                if name:
                    local[name] = value
            for name in bound.release:
                local.pop(name, None)
        return [env[name] for name in self.output_names] if want_outputs else []

    def _context(self, bound: BoundStep, env: Mapping[str, Any]) -> OpContext:
        def run_graph(graph: Plan, inputs: Sequence[Any]) -> list[Any]:
            sub = self._sub_executors.get(id(graph))
            if sub is None:
                sub = Executor(graph, {}, self.device, _device_weights=self.weights)
                self._sub_executors[id(graph)] = sub
            return sub.run(dict(zip(sub.input_names, inputs)), outer=env)

        step = bound.step
        return OpContext(
            node_name=step.name,
            op_type=step.op_type,
            opset=self.plan.opsets.get(step.domain, 0),
            device=self.device,
            num_outputs=len(step.outputs),
            run_graph=run_graph,
            input_types=list(step.input_specs),
            output_types=list(step.output_specs),
        )
