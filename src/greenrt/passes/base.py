"""What every graph pass shares: the GraphPass interface, its report, the RewritePass base for pattern rewrites,
and small onnx-ir graph helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np
import onnx_ir as ir

GREENRT_DOMAIN = "greenrt"
ONNX_DOMAINS = ("", "ai.onnx")  # the default domain, as written or spelled out


@dataclass
class PassReport:
    name: str
    rule: str  # readable description, e.g. "conv(x, w) -> bn => conv(x, w * s, (b - mean) * s + beta)"
    count: int  # how many rewrites fired
    details: list[str] = field(default_factory=list)


class GraphPass:
    """A Graph -> Graph rewrite on an ir.Model, in place. ``apply`` returns how many rewrites fired."""

    name = "pass"
    rule = ""

    def apply(self, model: ir.Model, report: PassReport) -> int:
        raise NotImplementedError

    def __call__(self, model: ir.Model) -> PassReport:
        report = PassReport(self.name, self.rule, 0)
        report.count = self.apply(model, report)
        return report


M = TypeVar("M")  # what a RewritePass's match found: the nodes, values and constants its rewrite needs


class RewritePass(GraphPass, Generic[M]):
    """A pattern rewrite (Inductor's register_replacement, hidet's source()/target(), onnxruntime's Fusion.apply()):
    a subclass says which nodes anchor the pattern, ``match`` decides on one anchor, ``rewrite`` applies what it
    found. The sweep, the domain check, the count, the report details and the opset import are written here once.

    The sweep visits the main graph's nodes in order as they stood when it began (nodes a rewrite creates are not
    visited); an anchor an earlier rewrite of the same sweep removed is skipped.
    """

    op_types: tuple[str, ...] = ()  # the anchors' op types ...
    domains: tuple[str, ...] = ONNX_DOMAINS  # ... and domains
    creates_domain: str | None = None  # the domain of the nodes rewrites create, imported (version 1) once one fired

    def is_anchor(self, node: ir.Node) -> bool:
        """Whether ``match`` is asked about ``node`` (a pass whose anchors are no fixed op list overrides it)."""
        return node.op_type in self.op_types and node.domain in self.domains

    def match(self, node: ir.Node, graph: ir.Graph) -> M | None:
        """What the rewrite at anchor ``node`` needs, or None where the pattern does not hold. Pure: it reads the
        graph and never changes it."""
        raise NotImplementedError

    def rewrite(self, graph: ir.Graph, match: M) -> str | None | list[str | None]:
        """Apply ``match`` to ``graph``. Returns the report's detail line for this rewrite (None where the pass's
        report keeps only the count), or a list with one entry per rewrite where one match stands for several
        (a chain folded link by link)."""
        raise NotImplementedError

    def new_domain(self, graph: ir.Graph) -> str | None:
        """The domain to import once a rewrite fired (``creates_domain`` unless it depends on the model)."""
        return self.creates_domain

    def apply(self, model: ir.Model, report: PassReport) -> int:
        graph = model.graph
        count = 0
        for node in list(graph):
            if node.graph is not graph or not self.is_anchor(node):
                continue  # removed by an earlier rewrite of this sweep, or not an anchor
            found = self.match(node, graph)
            if found is None:
                continue
            done = self.rewrite(graph, found)
            for detail in done if isinstance(done, list) else [done]:
                count += 1
                if detail is not None:
                    report.details.append(detail)
        domain = self.new_domain(graph)
        if count and domain:
            graph.opset_imports.setdefault(domain, 1)
        return count


# -- helpers -------------------------------------------------------------------------------------------------
def is_onnx(node: ir.Node | None) -> bool:
    """``node`` is an op of the default ONNX domain."""
    return node is not None and node.domain in ONNX_DOMAINS


def const_array(value: ir.Value | None) -> np.ndarray | None:
    """The constant behind a value (an initializer that is not also a graph input), else None."""
    if value is None or value.const_value is None or value.is_graph_input():
        return None
    return value.const_value.numpy()


def only_consumer(value: ir.Value) -> ir.Node | None:
    """The single node reading ``value`` when nothing else (other nodes, graph outputs) does."""
    if value.is_graph_output():
        return None
    users = {id(node): node for node, _ in value.uses()}
    return next(iter(users.values())) if len(users) == 1 else None


def add_initializer(graph: ir.Graph, name_hint: str, array: np.ndarray) -> ir.Value:
    name = name_hint
    i = 0
    while name in graph.initializers:
        i += 1
        name = f"{name_hint}_{i}"
    value = ir.Value(name=name, shape=ir.Shape(array.shape), type=ir.TensorType(ir.DataType.from_numpy(array.dtype)),
                     const_value=ir.tensor(array, name=name))
    graph.register_initializer(value)
    return value


def attr(node: ir.Node, name: str, default=None):
    a = node.attributes.get(name)
    return default if a is None else a.value


def replace_node(graph: ir.Graph, old_nodes: list[ir.Node], new_node: ir.Node, old_output: ir.Value) -> None:
    """Insert ``new_node`` where the last of ``old_nodes`` stood, route ``old_output``'s uses to its output, drop the
    old nodes. The last position is the safe one: every input of the chain (a residual branch computed after the
    chain's first node, say) exists by then. The new output takes over the old output's name, type and shape.
    """
    position = {id(n): i for i, n in enumerate(graph)}
    graph.insert_after(max(old_nodes, key=lambda n: position[id(n)]), new_node)
    new_out = new_node.outputs[0]
    new_out.type, new_out.shape = old_output.type, old_output.shape
    name = old_output.name
    old_output.replace_all_uses_with(new_out, replace_graph_outputs=True)
    graph.remove(old_nodes, safe=True)
    old_output.name = None
    new_out.name = name


def name_unnamed_nodes(graph: ir.Graph) -> int:
    """Give every unnamed main-graph node a unique name ('{op_type}_{n}'), so per-layer precision rules, the
    accuracy search and reports can point at it; returns how many were named. Deterministic: graph order."""
    taken = {n.name for n in graph if n.name}
    count = 0
    for i, node in enumerate(graph):
        if node.name:
            continue
        name = f"{node.op_type}_{i}"
        while name in taken:
            name += "_"
        node.name = name
        taken.add(name)
        count += 1
    return count
