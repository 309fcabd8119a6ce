"""The plan: what an engine holds and the runtime executes, as plain data (no onnx, no onnx-ir needed to load it).

A Plan is an ordered list of steps over named values. Attributes are JSON values; a tensor attribute is a
reference into the weights ({"tensor": key}); a subgraph attribute (If/Loop/Scan bodies) is a nested Plan
({"graph": index into ``subplans``}). Weights live beside the plan (a safetensors file in an engine).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..errors import GreenrtError

SPEC_KINDS = ("tensor", "sequence", "optional", "other")


class PlanFormatError(GreenrtError, ValueError):
    """A plan (an engine header's ``plan``) that is not of this format; the message names the field."""


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
    def from_json(cls, data: dict, where: str = "plan") -> "Plan":
        """The plan ``data`` describes; PlanFormatError naming the field (``plan.steps[3].inputs``) where it is not
        a plan of this format (a tampered or corrupted engine header)."""
        _expect(data, dict, where)
        for key in ("inputs", "outputs", "steps", "constants", "opsets"):
            if key not in data:
                raise PlanFormatError(f"{where}.{key}: missing")
        unknown = set(data) - {"inputs", "outputs", "steps", "constants", "opsets", "subplans", "compiled"}
        if unknown:
            raise PlanFormatError(f"{where}: unknown field(s) {sorted(unknown)}")
        constants = _expect(data["constants"], dict, f"{where}.constants")
        for name, ref in constants.items():
            _constant_ref(ref, f"{where}.constants[{name!r}]")
        opsets = _expect(data["opsets"], dict, f"{where}.opsets")
        for domain, version in opsets.items():
            _expect_int(version, f"{where}.opsets[{domain!r}]")
        return cls(
            inputs=[_spec(_expect(d, dict, f"{where}.inputs[{i}]"), f"{where}.inputs[{i}]")
                    for i, d in enumerate(_expect(data["inputs"], list, f"{where}.inputs"))],
            outputs=[_spec(_expect(d, dict, f"{where}.outputs[{i}]"), f"{where}.outputs[{i}]")
                     for i, d in enumerate(_expect(data["outputs"], list, f"{where}.outputs"))],
            steps=[_step(d, f"{where}.steps[{i}]") for i, d in enumerate(_expect(data["steps"], list,
                                                                                    f"{where}.steps"))],
            constants=dict(constants),
            opsets=dict(opsets),
            subplans=[cls.from_json(p, f"{where}.subplans[{i}]")
                      for i, p in enumerate(_expect(data.get("subplans", []), list, f"{where}.subplans"))],
            compiled=_expect(data.get("compiled", ""), str, f"{where}.compiled"),
        )

    def check_references(self, weight_keys, where: str = "plan", outer: frozenset = frozenset()) -> None:
        """PlanFormatError unless every weight, subplan and value the plan names exists where it is read: each
        step reads values defined before it (graph inputs, constants, earlier outputs, or, in a subplan, the
        enclosing scope) and every output is produced."""
        for name, ref in self.constants.items():
            key = ref if isinstance(ref, str) else None
            if key is not None and key not in weight_keys:
                raise PlanFormatError(f"{where}.constants[{name!r}]: weight {key!r} is not in the engine's weights")
        defined = set(outer) | {s.name for s in self.inputs} | set(self.constants) | {""}
        for i, step in enumerate(self.steps):
            at = f"{where}.steps[{i}] ({step.label})"
            missing = [n for n in step.inputs if n not in defined]
            if missing:
                raise PlanFormatError(f"{at}: reads {missing}, which nothing before it produces")
            for attr, value in step.attrs.items():
                for sub in _references(value, weight_keys, len(self.subplans), f"{at}.attrs[{attr!r}]"):
                    self.subplans[sub].check_references(weight_keys, f"{where}.subplans[{sub}]",
                                                        frozenset(defined))
            defined.update(step.outputs)
        missing = [s.name for s in self.outputs if s.name not in defined]
        if missing:
            raise PlanFormatError(f"{where}.outputs: {missing} are produced by no step")

    def all_steps(self):
        """Every step, those of subplans included (for inspect and reports)."""
        for step in self.steps:
            yield step
        for sub in self.subplans:
            yield from sub.all_steps()


# -- reading a plan from JSON: every field checked, named where it is wrong ---------------------------------------
_JSON_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer"}


def _expect(value, kind: type, where: str):
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise PlanFormatError(f"{where}: expected {_JSON_NAMES.get(kind, kind.__name__)}, got {_short(value)}")
    return value


def _expect_int(value, where: str) -> int:
    return _expect(value, int, where)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _strings(value, where: str) -> list[str]:
    for i, v in enumerate(_expect(value, list, where)):
        _expect(v, str, f"{where}[{i}]")
    return list(value)


def _spec(data, where: str) -> TensorSpec | None:
    if data is None:
        return None
    _expect(data, dict, where)
    unknown = set(data) - {f.name for f in fields(TensorSpec)}
    if unknown or "name" not in data:
        raise PlanFormatError(f"{where}: expected a tensor spec (name, dtype, shape, kind), got keys {sorted(data)}")
    name = _expect(data["name"], str, f"{where}.name")
    dtype = _expect_int(data.get("dtype", 0), f"{where}.dtype")
    shape = data.get("shape")
    if shape is not None:
        for j, d in enumerate(_expect(shape, list, f"{where}.shape")):
            if d is not None and not isinstance(d, str) and (not isinstance(d, int) or isinstance(d, bool) or d < 0):
                raise PlanFormatError(f"{where}.shape[{j}]: expected a dimension (an integer >= 0, a name or null), "
                                      f"got {_short(d)}")
    kind = data.get("kind", "tensor")
    if kind not in SPEC_KINDS:
        raise PlanFormatError(f"{where}.kind: expected one of {', '.join(SPEC_KINDS)}, got {_short(kind)}")
    return TensorSpec(name, dtype, None if shape is None else list(shape), kind)


def _step(data, where: str) -> PlanStep:
    _expect(data, dict, where)
    names = {f.name for f in fields(PlanStep)}
    unknown, missing = set(data) - names, {"domain", "op_type", "since", "name", "inputs", "outputs"} - set(data)
    if unknown or missing:
        raise PlanFormatError(f"{where}: " + (f"unknown field(s) {sorted(unknown)}" if unknown else
                                              f"missing {sorted(missing)}"))
    return PlanStep(
        domain=_expect(data["domain"], str, f"{where}.domain"),
        op_type=_expect(data["op_type"], str, f"{where}.op_type"),
        since=_expect_int(data["since"], f"{where}.since"),
        name=_expect(data["name"], str, f"{where}.name"),
        inputs=_strings(data["inputs"], f"{where}.inputs"),
        outputs=_strings(data["outputs"], f"{where}.outputs"),
        attrs=dict(_expect(data.get("attrs", {}), dict, f"{where}.attrs")),
        input_specs=[_spec(d, f"{where}.input_specs[{i}]")
                     for i, d in enumerate(_expect(data.get("input_specs", []), list, f"{where}.input_specs"))],
        output_specs=[_spec(d, f"{where}.output_specs[{i}]")
                      for i, d in enumerate(_expect(data.get("output_specs", []), list, f"{where}.output_specs"))],
        precision=_expect(data.get("precision", ""), str, f"{where}.precision"),
        tactic=_expect(data.get("tactic", ""), str, f"{where}.tactic"),
    )


def _constant_ref(ref, where: str) -> None:
    if isinstance(ref, str):
        return
    if isinstance(ref, dict) and set(ref) == {"strings", "shape"}:
        strings = _strings(ref["strings"], f"{where}.strings")
        shape = [_expect_int(d, f"{where}.shape[{i}]") for i, d in enumerate(_expect(ref["shape"], list,
                                                                                     f"{where}.shape"))]
        count = 1
        for d in shape:
            count *= d
        if any(d < 0 for d in shape) or count != len(strings):
            raise PlanFormatError(f"{where}: {len(strings)} strings do not fill shape {shape}")
        return
    raise PlanFormatError(f"{where}: expected a weight key or {{'strings': [...], 'shape': [...]}}, got {_short(ref)}")


def _references(value, weight_keys, n_subplans: int, where: str) -> list[int]:
    """The subplan indices an attribute refers to; PlanFormatError where it names a weight or subplan that does not
    exist (the forms plan/compile.py writes: {"tensor": key}, {"strings", "shape"}, {"tensors": [...]},
    {"graph": i}, {"graphs": [i, ...]})."""
    if not isinstance(value, dict):
        return []
    if "tensor" in value:
        if not isinstance(value["tensor"], str) or value["tensor"] not in weight_keys:
            raise PlanFormatError(f"{where}: weight {_short(value['tensor'])} is not in the engine's weights")
        return []
    if "strings" in value:
        _constant_ref(value, where)
        return []
    if "tensors" in value:
        out = []
        for i, v in enumerate(_expect(value["tensors"], list, f"{where}.tensors")):
            out += _references(_expect(v, dict, f"{where}.tensors[{i}]"), weight_keys, n_subplans,
                               f"{where}.tensors[{i}]")
        return out
    indices = [value["graph"]] if "graph" in value else value.get("graphs") if "graphs" in value else None
    if indices is None:
        return []
    for i in _expect(indices, list, f"{where}.graphs"):
        if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < n_subplans:
            raise PlanFormatError(f"{where}: subplan {_short(i)} does not exist ({n_subplans} subplans)")
    return list(indices)
