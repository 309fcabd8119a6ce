"""The FX lowering: a plan, or a slice of one, as a torch.fx GraphModule that torch.compile / Inductor can take.

One FX node per plan step, a ``call_function`` to the op's own Python implementation (the one the executor runs;
FusedConv gets a wrapper that is the same eagerly and traceable by dynamo) with its decoded attributes as constants; weights and constants are module buffers read by ``get_attr`` nodes.
With a shape specialization (runtime/specialize.py) the static shape-only values are baked in, so the graph has
only data inputs and nothing in it reads a device value on the host: inputs the op reads on the host
(ops/facts.py HOST_INPUTS) get Python lists where the op reads them through ``int_list``.

    executor = Executor(plan, weights, "cpu")
    spec = ShapeSpecializer(executor).prepare(feeds)             # optional: bake this input shape's shape math
    gm, input_names, output_names = lower_to_fx(executor, specialization=spec)
    outputs = gm(*[feeds[n] for n in input_names])              # == executor.run(feeds)
    compiled = torch.compile(gm, backend="inductor")

Not every step can be lowered: control flow and anything with a subgraph, random ops, sequence/optional and
string values, and ops whose output shape depends on data. ``lowerable(step)`` says which, and
``split_lowerable(steps)`` cuts a step list into runs of lowerable and non-lowerable steps, so a caller lowers the
former and leaves the rest to the executor.

The module holds the executor's device tensors as buffers (host-read ones on the CPU): lower from an executor on
the target device rather than moving the module. A module lowered with a specialization is valid only for the
input shapes that specialization was prepared for (its shape math is baked in).
"""

from __future__ import annotations

import math
import operator
import re
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.fx as fx

from ..errors import GreenrtError
from ..ops import REGISTRY, OpContext
from ..ops import fused as _fused
from ..ops.facts import DYNAMIC_SHAPE_OPS, RANDOM_OPS
from ..plan.plan import Plan, PlanStep
from .executor import BoundStep, Executor, _subplan_outer_names
from .specialize import Specialization, split_static

STRING = 8  # ONNX TensorProto.STRING

# Ops whose host-read inputs go through ops._util.int_list, which takes a Python list as well as a tensor: a list
# constant keeps the graph free of tensor-to-host reads (no graph break under dynamo). Other host-read inputs
# (Resize scales, Range bounds, OneHot depth...) get a CPU tensor, as in the executor.
_LIST_HOST_OPS = frozenset({
    "Reshape", "Expand", "Tile", "Slice", "Pad", "Unsqueeze", "Squeeze", "Split", "TopK", "ConstantOfShape",
    "Trilu", "CumSum", "CumProd", "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
    "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare",
})
_SEQUENCE_FAMILIES = frozenset({"sequence", "strings", "control_flow"})


class LoweringError(GreenrtError):
    """A step (named) that cannot become an FX node."""


def why_not_lowerable(step: PlanStep, impl=None) -> str | None:
    """None if ``step`` can be lowered, else the reason in a few words."""
    if any(isinstance(v, dict) and ("graph" in v or "graphs" in v) for v in step.attrs.values()):
        return "runs a subgraph (control flow)"
    if any(isinstance(v, dict) and "strings" in v for v in step.attrs.values()):
        return "has a string attribute tensor"
    if step.domain == "" and step.op_type in DYNAMIC_SHAPE_OPS:
        return "its output shape depends on input values"
    if step.domain == "" and step.op_type in RANDOM_OPS:
        return "draws random numbers (its results could not match the executor's)"
    if "Sequence" in step.op_type or step.op_type.startswith("Optional"):
        return "works on sequences/optionals"
    for spec in list(step.input_specs) + list(step.output_specs):
        if spec is not None and spec.kind != "tensor":
            return f"has a {spec.kind} value"
        if spec is not None and spec.dtype == STRING:
            return "has a string tensor"
    if impl is not None and impl.family in _SEQUENCE_FAMILIES:
        return f"is a {impl.family} op"
    return None


def lowerable(step: PlanStep | BoundStep) -> bool:
    """Whether a step can become one FX node (see ``why_not_lowerable``)."""
    if isinstance(step, BoundStep):
        return why_not_lowerable(step.step, step.impl) is None
    return why_not_lowerable(step) is None


def split_lowerable(steps: Sequence[PlanStep | BoundStep]) -> list[tuple[bool, list]]:
    """``steps`` cut into maximal runs, in order: [(lowerable, steps), ...]."""
    out: list[tuple[bool, list]] = []
    for step in steps:
        ok = lowerable(step)
        if out and out[-1][0] == ok:
            out[-1][1].append(step)
        else:
            out.append((ok, [step]))
    return out


def fused_conv_traceable(eager):
    """FusedConv as the executor runs it (``eager``: the op or the tactic the plan chose), except while dynamo
    traces: oneDNN's fused conv with a residual (mkldnn::_convolution_pointwise.binary) has no fake-tensor kernel,
    so a trace would break there. Traced, it is conv + bias + residual + activation in plain aten ops, which
    Inductor's CPU backend fuses back into oneDNN post-ops itself."""

    def fused_conv(x, w, b=None, z=None, *, activation="", activation_params=(), **conv_attrs):
        if not torch.compiler.is_compiling():
            return eager(x, w, b, z, activation=activation, activation_params=activation_params, **conv_attrs)
        return _traced_fused_conv(x, w, b, z, activation, activation_params, conv_attrs)

    return fused_conv


def _traced_fused_conv(x, w, b, z, activation, activation_params, conv_attrs):
    conv = REGISTRY.lookup("", "Conv", 22).fn
    y = conv(x, w, None, **{k: v for k, v in conv_attrs.items() if v is not None})
    if b is not None:
        y = y + b.view(-1, *([1] * (y.dim() - 2)))
    if z is not None:
        y = y + z
    return _fused._activation(activation, activation_params)(y)


def flatten_traceable(eager):
    """Flatten with math.prod on the shape (the op's np.prod over a traced shape is a graph break)."""

    def flatten(x, *, axis=1):
        if not torch.compiler.is_compiling():
            return eager(x, axis=axis)
        axis = axis + x.ndim if axis < 0 else axis
        return x.reshape((math.prod(x.shape[:axis]), math.prod(x.shape[axis:])))

    return flatten


# op implementations wrapped in the lowered graph by a traceable equivalent: eagerly they run what the executor
# runs (the op, or the plan's tactic), traced the equivalent in plain aten ops
_TRACEABLE = {(_fused.GREENRT, "FusedConv"): fused_conv_traceable, ("", "Flatten"): flatten_traceable}


def _first(result: Any) -> Any:
    """The first output of a one-output step (an op may return a tuple; the executor keeps its first item)."""
    return result[0] if isinstance(result, (tuple, list)) else result


def _ident(name: str) -> str:
    return re.sub(r"\W", "_", name) or "_"


class _Lowering:
    def __init__(self, executor: Executor, specialization: Specialization | None):
        self.executor = executor
        self.spec = specialization
        self.graph = fx.Graph()
        self.root = torch.nn.Module()
        self.env: dict[str, fx.Node] = {}
        self._attr_nodes: dict[tuple[str, str], fx.Node] = {}
        self._count = 0

    # -- constants ---------------------------------------------------------------------------------------
    def _attr(self, kind: str, key: str, value: Any) -> fx.Node:
        """A get_attr node for a tensor (a non-persistent buffer) or another object (a plain attribute)."""
        node = self._attr_nodes.get((kind, key))
        if node is None:
            self._count += 1
            name = f"{kind}{self._count}_{_ident(key)}"[:60]
            if isinstance(value, torch.Tensor):
                self.root.register_buffer(name, value, persistent=False)
            else:
                setattr(self.root, name, value)
            node = self.graph.get_attr(name)
            self._attr_nodes[(kind, key)] = node
        return node

    def _known(self, name: str) -> tuple[bool, Any]:
        if self.spec is not None and name in self.spec.values:
            return True, self.spec.values[name]
        if name in self.executor.constants:
            return True, self.executor.constants[name]
        return False, None

    def _host_value(self, bound: BoundStep, pos: int, name: str, value: Any) -> Any:
        """A known value at a host-read position: a Python list for int_list readers, else a CPU tensor."""
        if self.spec is not None and name in self.spec.host:
            value = self.spec.host[name]
        elif pos in bound.host_args:
            value = bound.host_args[pos]
        if not isinstance(value, torch.Tensor):
            return value
        cpu = value.cpu()
        if bound.step.op_type in _LIST_HOST_OPS and not cpu.is_floating_point() and cpu.dim() <= 1:
            return [int(v) for v in cpu.reshape(-1).tolist()]
        return self._attr("host", name, cpu)

    def _value(self, bound: BoundStep, pos: int, name: str) -> Any:
        if not name:
            return None
        if name in self.env:
            return self.env[name]
        known, value = self._known(name)
        if not known:
            raise LoweringError(f"{bound.label}: input {name!r} is neither a graph input nor produced before it")
        if isinstance(value, np.ndarray):
            raise LoweringError(f"{bound.label}: input {name!r} is a string tensor")
        if pos in bound.host_positions:
            return self._host_value(bound, pos, name, value)
        if isinstance(value, torch.Tensor):
            return self._attr("c", name, value)
        return value

    def _attr_value(self, bound: BoundStep, key: str, value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return self._attr("a", f"{bound.step.name}.{key}", value)
        if isinstance(value, list) and any(isinstance(v, torch.Tensor) for v in value):
            return [self._attr("a", f"{bound.step.name}.{key}.{i}", v) for i, v in enumerate(value)]
        if isinstance(value, np.ndarray):
            raise LoweringError(f"{bound.label}: attribute {key!r} is a string tensor")
        return value

    # -- steps ---------------------------------------------------------------------------------------------
    def step(self, bound: BoundStep) -> None:
        step = bound.step
        reason = why_not_lowerable(step, bound.impl)
        if reason is not None:
            raise LoweringError(f"{bound.label} cannot be lowered to FX: it {reason}")
        args = tuple(self._value(bound, pos, name) for pos, name in enumerate(step.inputs))
        kwargs = {key: self._attr_value(bound, key, v) for key, v in bound.attrs.items()}
        if bound.impl.wants_ctx:
            ctx = OpContext(node_name=step.name, op_type=step.op_type,
                            opset=self.executor.plan.opsets.get(step.domain, 0), device=self.executor.device,
                            num_outputs=len(step.outputs), run_graph=None, input_types=list(step.input_specs),
                            output_types=list(step.output_specs))
            kwargs["ctx"] = self._attr("ctx", step.name or step.op_type, ctx)
        wrap = _TRACEABLE.get((step.domain, step.op_type))
        fn = wrap(bound.fn) if wrap is not None else bound.fn
        node = self.graph.create_node("call_function", fn, args, kwargs, name=_ident(step.name or step.op_type))
        node.meta["greenrt_step"] = step.name
        if len(step.outputs) == 1:
            if step.outputs[0]:
                self.env[step.outputs[0]] = self.graph.create_node("call_function", _first, (node,),
                                                                   name=_ident(step.outputs[0]))
            return
        for i, name in enumerate(step.outputs):
            if name:
                self.env[name] = self.graph.call_function(operator.getitem, (node, i))

    def output(self, names: Sequence[str]) -> None:
        values = []
        for name in names:
            if name in self.env:
                values.append(self.env[name])
                continue
            known, value = self._known(name)
            if not known:
                raise LoweringError(f"output {name!r} is not produced by the lowered steps")
            values.append(self._attr("c", name, value) if isinstance(value, torch.Tensor) else value)
        self.graph.output(tuple(values))


def _bound_steps(executor: Executor, steps: Iterable[PlanStep | BoundStep] | None,
                 specialization: Specialization | None) -> list[BoundStep]:
    if steps is None:
        if specialization is None:
            return list(executor.steps)
        _, data_steps = split_static(executor)
        return [b for b in data_steps if not all(n in specialization.values for n in b.step.outputs if n)]
    by_id = {id(b.step): b for b in executor.steps}
    out = []
    for step in steps:
        if isinstance(step, BoundStep):
            out.append(step)
        elif id(step) in by_id:
            out.append(by_id[id(step)])
        else:
            raise LoweringError(f"{step.label} is not a step of this executor's plan")
    return out


def _slice_io(executor: Executor, steps: list[BoundStep],
              specialization: Specialization | None) -> tuple[list[str], list[str]]:
    """(inputs, outputs) of a slice: what it reads that nothing in it produces and is not known; what it
    produces that a later step or the plan's outputs read."""
    known = set(executor.constants) | (set(specialization.values) if specialization else set())
    produced: set[str] = set()
    reads: list[str] = []
    for bound in steps:
        for name in bound.step.inputs:
            if name and name not in produced and name not in known and name not in reads:
                reads.append(name)
        produced.update(n for n in bound.step.outputs if n)
    order = {name: i for i, name in enumerate(executor.input_names)}
    inputs = sorted(reads, key=lambda n: (order.get(n, len(order)), reads.index(n)))
    in_slice = {id(b.step) for b in steps}
    later: set[str] = set(executor.output_names)
    seen_slice = False
    for bound in executor.steps:
        if id(bound.step) in in_slice:
            seen_slice = True
            continue
        if seen_slice:
            later.update(n for n in bound.step.inputs if n)
            for value in bound.attrs.values():  # subgraphs read outer values by name
                for sub in (value if isinstance(value, list) else [value]):
                    if isinstance(sub, Plan):
                        later |= _subplan_outer_names(sub)
    outputs = [n for b in steps for n in b.step.outputs if n and n in later]
    return inputs, outputs


def lower_to_fx(executor_or_plan: Executor | Plan, steps: Iterable[PlanStep | BoundStep] | None = None,
                specialization: Specialization | None = None, *, weights: Mapping[str, Any] | None = None,
                device: torch.device | str = "cpu", outputs: Sequence[str] | None = None,
                ) -> tuple[fx.GraphModule, list[str], list[str]]:
    """``(GraphModule, input_names, output_names)`` for ``steps`` (default: the whole plan, or with a
    ``specialization`` its data steps, the static values baked in as constants).

    ``gm(*inputs)`` returns a tuple in ``output_names`` order. For the whole plan the inputs and outputs are the
    plan's own; for a slice they are what it reads from before it and what later steps (or the plan's outputs)
    read from it, unless ``outputs`` names them. A Plan is bound first (``weights``, ``device``).
    Raises LoweringError naming the first step that cannot be lowered (see ``lowerable``).
    """
    executor = executor_or_plan
    if isinstance(executor_or_plan, Plan):
        executor = Executor(executor_or_plan, weights or {}, device)
    bound_steps = _bound_steps(executor, steps, specialization)
    whole = steps is None
    if whole:
        input_names = list(executor.input_names)
        output_names = list(executor.output_names)
    else:
        input_names, output_names = _slice_io(executor, bound_steps, specialization)
    if outputs is not None:
        output_names = list(outputs)
    lowering = _Lowering(executor, specialization)
    for name in input_names:
        lowering.env[name] = lowering.graph.placeholder(_ident(name))
        lowering.env[name].meta["greenrt_value"] = name
    for bound in bound_steps:
        lowering.step(bound)
    lowering.output(output_names)
    lowering.graph.eliminate_dead_code()
    lowering.graph.lint()
    gm = fx.GraphModule(lowering.root, lowering.graph, class_name="LoweredPlan")
    return gm, input_names, output_names
