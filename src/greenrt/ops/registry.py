"""The op registry: ONNX (domain, op_type) -> {since_version: implementation}.

An op is a plain function named like the ONNX op. Inputs come positionally (torch.Tensor; None for an omitted
optional input; a list for a sequence; a numpy object array for a string tensor), ONNX attributes come as typed
keyword arguments whose defaults are the ONNX defaults. A function that declares a ``ctx`` keyword also gets the
OpContext (number of outputs requested, opset, device, a way to run subgraphs). It returns one value or a tuple.

    @op("Softmax", 13)
    def Softmax_13(x, *, axis=-1): ...

The implementation picked for a node is the one with the highest since-version not above the model's opset for
that domain, as in onnx.reference.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

def canonical_domain(domain: str | None) -> str:
    return "" if domain in (None, "", "ai.onnx") else domain


@dataclass(frozen=True)
class OpImpl:
    domain: str
    op_type: str
    since: int
    fn: Callable[..., Any]
    wants_ctx: bool
    family: str

    @property
    def name(self) -> str:
        return f"{self.op_type}-{self.since}" if not self.domain else f"{self.domain}.{self.op_type}-{self.since}"


@dataclass
class OpContext:
    """What an op may need beyond its inputs and attributes."""

    node_name: str
    op_type: str
    opset: int
    device: torch.device
    num_outputs: int
    run_graph: Callable[..., list] | None = None  # run_graph(graph, inputs) -> outputs, with outer scope
    input_types: list = field(default_factory=list)  # ir.TypeProtocol | None per input (for Optional ops)
    output_types: list = field(default_factory=list)  # ir.TypeProtocol | None per output


class Registry:
    def __init__(self) -> None:
        self._ops: dict[tuple[str, str], dict[int, OpImpl]] = {}

    def register(self, op_type: str, *since_versions: int, domain: str = ""):
        """Decorator registering ``fn`` for each since-version given (same semantics across those versions)."""
        if not since_versions:
            raise ValueError(f"register({op_type!r}) needs at least one since-version")

        def decorator(fn):
            wants_ctx = "ctx" in inspect.signature(fn).parameters
            family = fn.__module__.rsplit(".", 1)[-1]
            versions = self._ops.setdefault((canonical_domain(domain), op_type), {})
            for since in since_versions:
                if since in versions:
                    raise ValueError(f"{op_type}-{since} registered twice ({versions[since].fn} and {fn})")
                versions[since] = OpImpl(canonical_domain(domain), op_type, since, fn, wants_ctx, family)
            return fn

        return decorator

    def lookup(self, domain: str, op_type: str, opset: int) -> OpImpl | None:
        versions = self._ops.get((canonical_domain(domain), op_type))
        if not versions:
            return None
        usable = [v for v in versions if v <= opset]
        return versions[max(usable)] if usable else None

    def known(self, domain: str, op_type: str) -> bool:
        return (canonical_domain(domain), op_type) in self._ops

    def versions(self, domain: str, op_type: str) -> list[int]:
        return sorted(self._ops.get((canonical_domain(domain), op_type), {}))

    def all(self) -> list[OpImpl]:
        return [impl for versions in self._ops.values() for impl in versions.values()]


REGISTRY = Registry()
op = REGISTRY.register
