"""Mark intermediate tensors as graph outputs, so an engine returns them too (Polygraphy's ``--onnx-outputs``).

    mark_outputs(model, ["logits"])    # before the passes: fusions keep a graph output intact

Used to check an fp16 engine on the logits under a final Sigmoid/Softmax, and by layer-by-layer comparison.
"""

from __future__ import annotations

import difflib
from typing import Sequence

import onnx_ir as ir

from ..errors import GreenrtError


def mark_outputs(model: ir.Model, names: Sequence[str]) -> list[str]:
    """Append the values called ``names`` to the graph outputs (in order, skipping ones already outputs);
    returns the names added. GreenrtError names every unknown tensor, with near matches."""
    graph = model.graph
    values: dict[str, ir.Value] = {}
    for v in graph.inputs:
        values.setdefault(v.name or "", v)
    for node in graph:
        for v in node.outputs:
            if v.name:
                values.setdefault(v.name, v)
    missing = [n for n in names if n not in values]
    if missing:
        hints = []
        for n in missing:
            close = difflib.get_close_matches(n, list(values), n=3)
            hints.append(f"{n!r}" + (f" (did you mean {', '.join(map(repr, close))}?)" if close else ""))
        raise GreenrtError(f"--outputs: no tensor named {', '.join(hints)} in the main graph; "
                           "tensor names are the node outputs of the ONNX graph (e.g. as Netron shows them)")
    present = {id(v) for v in graph.outputs}
    added = []
    for n in names:
        v = values[n]
        if id(v) not in present:
            graph.outputs.append(v)
            present.add(id(v))
            added.append(n)
    return added


__all__ = ["mark_outputs"]
